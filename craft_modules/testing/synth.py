"""Deterministic synthetic sound datasets for tests and the demo.

Fourteen procedural sound classes (harmonic tones with different spectral
envelopes, chirps, tremolo and vibrato tones, plucks, coloured noise bursts,
click trains, band noise) are drawn with random pitch, loudness, onset,
length and background noise. The classes overlap in pitch range and loudness;
some pairs differ only in spectral shape (bright / dark / odd harmonics, white
/ brown noise), others only in temporal structure (rising / falling chirp,
slow / fast clicks, steady / tremolo tone), so a model has to learn both.

:func:`make_esc50` and :func:`make_audioset` write them in the official
ESC-50 and AudioSet layouts, so that the real preparation scripts and recipes
run on them. The same seed always gives bit-identical files.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import csv
import os

import numpy as np
import soundfile as sf
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

PITCH_RANGE = (110.0, 880.0)
LEVEL_RANGE_DB = (-32.0, -12.0)
SNR_RANGE_DB = (8.0, 30.0)
ESC50_HEADER = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
YTID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


# ---------------------------------------------------------------- building blocks
def _envelope(n, sample_rate, attack=0.02, release=0.05):
    """Linear attack and release ramps over n samples."""
    env = np.ones(n)
    n_att = max(1, min(n // 2, int(attack * sample_rate)))
    n_rel = max(1, min(n // 2, int(release * sample_rate)))
    env[:n_att] = np.linspace(0.0, 1.0, n_att)
    env[n - n_rel :] = np.linspace(1.0, 0.0, n_rel)
    return env


def _harmonics(rng, phase, f_max, sample_rate, weights):
    """Sums partials k * phase with amplitudes weights(k), below Nyquist."""
    out = np.zeros_like(phase)
    for k in range(1, 40):
        weight = weights(k)
        if k * f_max >= 0.45 * sample_rate:
            break
        if weight > 0:
            out += weight * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return out


def _phase(freq, sample_rate):
    """Instantaneous phase of a signal with per-sample frequency freq (Hz)."""
    return 2 * np.pi * np.cumsum(freq) / sample_rate


def _coloured_noise(rng, n, exponent):
    """Gaussian noise with power spectrum ~ 1 / f**exponent, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.arange(len(spectrum), dtype=float)
    freqs[0] = 1.0
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def _band_noise(rng, n, sample_rate, centre, octaves):
    """Noise band-limited to `octaves` around `centre` Hz (FFT mask)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    low, high = centre * 2 ** (-octaves / 2), centre * 2 ** (octaves / 2)
    spectrum[(freqs < low) | (freqs > high)] = 0.0
    return np.fft.irfft(spectrum, n)


def _bursts(rng, n, sample_rate, n_bursts):
    """Envelope with n_bursts smooth bursts of 80-400 ms at random places."""
    env = np.zeros(n)
    for _ in range(n_bursts):
        length = min(n, int(rng.uniform(0.08, 0.4) * sample_rate))
        start = rng.integers(0, n - length + 1)
        env[start : start + length] = np.maximum(
            env[start : start + length], np.hanning(length)
        )
    return env


def _click_train(rng, n, sample_rate, f0, rate):
    """Resonant clicks at `rate` Hz (jittered), ringing at about 4 * f0."""
    ring_len = int(0.015 * sample_rate)
    t = np.arange(ring_len) / sample_rate
    ring_freq = min(4 * f0, 0.4 * sample_rate)
    ring = np.sin(2 * np.pi * ring_freq * t) * np.exp(-t / 0.003)
    impulses = np.zeros(n)
    position = rng.uniform(0, 1.0 / rate)
    while position * sample_rate < n:
        impulses[int(position * sample_rate)] = rng.uniform(0.6, 1.0)
        position += rng.uniform(0.85, 1.15) / rate
    return np.convolve(impulses, ring)[:n]


# ------------------------------------------------------------------ sound classes
def _harmonic_bright(rng, n, sr, f0):
    """Steady harmonic tone, slowly falling spectrum (k**-0.7)."""
    phase = _phase(np.full(n, f0), sr)
    return _harmonics(rng, phase, f0, sr, lambda k: k**-0.7) * _envelope(n, sr)


def _harmonic_dark(rng, n, sr, f0):
    """Steady harmonic tone, steeply falling spectrum (k**-2.5)."""
    phase = _phase(np.full(n, f0), sr)
    return _harmonics(rng, phase, f0, sr, lambda k: k**-2.5) * _envelope(n, sr)


def _harmonic_odd(rng, n, sr, f0):
    """Steady tone with odd harmonics only (clarinet-like)."""
    phase = _phase(np.full(n, f0), sr)
    return _harmonics(rng, phase, f0, sr, _odd_weights) * _envelope(n, sr)


def _odd_weights(k):
    """1 / k for odd partials, 0 for even ones."""
    return (k % 2) / k


def _chirp(rng, n, sr, f0, direction):
    """Harmonic chirp sweeping two octaves around f0, up or down."""
    sweep = np.geomspace(f0 / 2, f0 * 2, n)[::direction]
    phase = _phase(sweep, sr)
    return _harmonics(rng, phase, 2 * f0, sr, lambda k: k**-1.5) * _envelope(n, sr)


def _chirp_up(rng, n, sr, f0):
    """Rising harmonic chirp."""
    return _chirp(rng, n, sr, f0, 1)


def _chirp_down(rng, n, sr, f0):
    """Falling harmonic chirp."""
    return _chirp(rng, n, sr, f0, -1)


def _tremolo_tone(rng, n, sr, f0):
    """Harmonic tone with deep amplitude modulation at 4-12 Hz."""
    t = np.arange(n) / sr
    rate, depth = rng.uniform(4, 12), rng.uniform(0.7, 1.0)
    modulation = 1 - depth * (0.5 + 0.5 * np.sin(2 * np.pi * rate * t))
    tone = _harmonics(rng, _phase(np.full(n, f0), sr), f0, sr, lambda k: k**-1.2)
    return tone * modulation * _envelope(n, sr)


def _vibrato_tone(rng, n, sr, f0):
    """Harmonic tone with frequency modulation (vibrato) at 4-8 Hz."""
    t = np.arange(n) / sr
    rate, depth = rng.uniform(4, 8), rng.uniform(0.02, 0.06)
    freq = f0 * (1 + depth * np.sin(2 * np.pi * rate * t))
    tone = _harmonics(rng, _phase(freq, sr), f0 * 1.1, sr, lambda k: k**-1.2)
    return tone * _envelope(n, sr)


def _pluck(rng, n, sr, f0):
    """One to three plucked notes: partials decay exponentially, highs faster."""
    out = np.zeros(n)
    for _ in range(rng.integers(1, 4)):
        start = rng.integers(0, max(1, n // 2))
        t = np.arange(n - start) / sr
        decay = rng.uniform(2.0, 5.0)
        note = np.zeros(n - start)
        for k in range(1, 16):
            if k * f0 >= 0.45 * sr:
                break
            note += (
                np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
                * np.exp(-t * decay * (1 + 0.5 * k))
                / k
            )
        out[start:] += note
    return out


def _white_burst(rng, n, sr, f0):
    """One to three bursts of white noise."""
    return rng.standard_normal(n) * _bursts(rng, n, sr, rng.integers(1, 4))


def _brown_burst(rng, n, sr, f0):
    """One to three bursts of brown (1/f**2) noise."""
    noise = _coloured_noise(rng, n, 2.0)
    return noise * _bursts(rng, n, sr, rng.integers(1, 4))


def _clicks_slow(rng, n, sr, f0):
    """Slow click train, 3-8 clicks per second."""
    return _click_train(rng, n, sr, f0, rng.uniform(3, 8))


def _clicks_fast(rng, n, sr, f0):
    """Fast click train (a buzz), 25-60 clicks per second."""
    return _click_train(rng, n, sr, f0, rng.uniform(25, 60))


def _band_noise_steady(rng, n, sr, f0):
    """Steady narrow-band noise (1/3 octave) centred at 3 * f0."""
    centre = min(3 * f0, 0.35 * sr)
    return _band_noise(rng, n, sr, centre, 1 / 3) * _envelope(n, sr, 0.05, 0.1)


def _white_swell(rng, n, sr, f0):
    """White noise that slowly rises then falls (one long crescendo)."""
    peak = rng.uniform(0.3, 0.7)
    rise = np.linspace(0, 1, max(1, int(n * peak))) ** 2
    fall = np.linspace(1, 0, n - len(rise)) ** 2
    return rng.standard_normal(n) * np.concatenate([rise, fall])


SOUND_CLASSES = [
    ("harmonic_bright", "Bright harmonic tone", _harmonic_bright),
    ("harmonic_dark", "Dark harmonic tone", _harmonic_dark),
    ("chirp_up", "Chirp, rising", _chirp_up),
    ("chirp_down", "Chirp, falling", _chirp_down),
    ("clicks_slow", "Clicks, slow", _clicks_slow),
    ("clicks_fast", "Clicks, fast (buzz)", _clicks_fast),
    ("white_burst", "White noise burst", _white_burst),
    ("brown_burst", "Brown noise burst", _brown_burst),
    ("tremolo_tone", "Tremolo tone", _tremolo_tone),
    ("pluck", "Plucked string", _pluck),
    ("harmonic_odd", "Odd-harmonic tone", _harmonic_odd),
    ("vibrato_tone", "Vibrato tone", _vibrato_tone),
    ("band_noise", "Narrow-band noise", _band_noise_steady),
    ("white_swell", "White noise swell", _white_swell),
]
"""(name, display name, generator) for every class, in target order."""


def class_names(n_classes=len(SOUND_CLASSES)):
    """Returns the names of the first `n_classes` synthetic classes.

    Arguments
    ---------
    n_classes : int
        How many classes.

    Returns
    -------
    list of str
        Class names in target order.

    Example
    -------
    >>> class_names(3)
    ['harmonic_bright', 'harmonic_dark', 'chirp_up']
    """
    _check_n_classes(n_classes)
    return [name for name, _, _ in SOUND_CLASSES[:n_classes]]


def _check_n_classes(n_classes):
    """Raises ValueError if n_classes is not in [1, len(SOUND_CLASSES)]."""
    if not 1 <= n_classes <= len(SOUND_CLASSES):
        raise ValueError(
            f"n_classes must be between 1 and {len(SOUND_CLASSES)}, got {n_classes}"
        )


def _rms(x):
    """Root mean square of x."""
    return np.sqrt(np.mean(x**2)) + 1e-12


def _place_event(rng, clip, class_index, sample_rate):
    """Adds one random event of a class to clip (in place) and returns it."""
    n_clip = len(clip)
    length = int(n_clip * rng.uniform(0.4, 0.9))
    length = max(min(n_clip, int(0.3 * sample_rate)), length)
    onset = rng.integers(0, n_clip - length + 1)
    f0 = np.exp(rng.uniform(*np.log(PITCH_RANGE)))
    event = SOUND_CLASSES[class_index][2](rng, length, sample_rate, f0)
    level = 10 ** (rng.uniform(*LEVEL_RANGE_DB) / 20)
    clip[onset : onset + length] += event * level / _rms(event)
    return level


def synth_clip(class_indices, sample_rate=16000, duration=5.0, seed=0):
    """Synthesises one clip: the sum of one event per class, plus background.

    Arguments
    ---------
    class_indices : int or list of int
        Index (or indices, for a multi-label clip) into SOUND_CLASSES.
    sample_rate : int
        Sample rate in Hz.
    duration : float
        Clip length in seconds.
    seed : int or list of int
        Seed of the clip's random generator (numpy SeedSequence entropy).

    Returns
    -------
    numpy.ndarray
        float32 signal in [-1, 1] with round(duration * sample_rate) samples.

    Example
    -------
    >>> a = synth_clip(0, 8000, 0.5, seed=1)
    >>> a.shape, a.dtype
    ((4000,), dtype('float32'))
    >>> bool((a == synth_clip(0, 8000, 0.5, seed=1)).all())
    True
    """
    if np.isscalar(class_indices):
        class_indices = [class_indices]
    rng = np.random.default_rng(seed)
    clip = np.zeros(int(round(duration * sample_rate)))
    levels = [_place_event(rng, clip, int(c), sample_rate) for c in class_indices]
    snr_db = rng.uniform(*SNR_RANGE_DB)
    background = _coloured_noise(rng, len(clip), rng.uniform(0.0, 1.5))
    clip += background * max(levels) * 10 ** (-snr_db / 20)
    peak = np.max(np.abs(clip))
    if peak > 0.95:
        clip *= 0.95 / peak
    return clip.astype(np.float32)


def _write_wav(path, signal, sample_rate):
    """Writes a 16-bit PCM file (format from the extension), making folders."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, signal, sample_rate, subtype="PCM_16")


def _write_csv(path, header, rows):
    """Writes a CSV file with a header line, making its folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fout:
        writer = csv.writer(fout)
        writer.writerow(header)
        writer.writerows(rows)


# ------------------------------------------------------------------------ ESC-50
def make_esc50(
    root,
    n_classes=10,
    clips_per_class=10,
    sample_rate=44100,
    duration=5.0,
    seed=0,
):
    """Writes a synthetic dataset in the official ESC-50 layout.

    Files are `root/audio/{fold}-{src_file}-{take}-{target}.wav` (16-bit PCM)
    and `root/meta/esc50.csv` with the official header. The clips of each
    class are spread evenly over the five folds.

    Arguments
    ---------
    root : str
        Output folder.
    n_classes : int
        Number of classes (at most len(SOUND_CLASSES)).
    clips_per_class : int
        Clips per class (a multiple of 5 fills the folds evenly).
    sample_rate : int
        Sample rate of the wav files.
    duration : float
        Clip length in seconds.
    seed : int
        Seed; the same seed gives bit-identical files.

    Returns
    -------
    list of dict
        The metadata rows (fold, target and src_file as int).

    Example
    -------
    >>> root = getfixture("tmp_path") / "esc"
    >>> rows = make_esc50(str(root), n_classes=2, clips_per_class=5, duration=0.2)
    >>> len(rows), rows[0]["filename"], sorted({r["fold"] for r in rows})
    (10, '1-100000-A-0.wav', [1, 2, 3, 4, 5])
    """
    names = class_names(n_classes)
    rows = []
    for target, category in enumerate(names):
        for clip in range(clips_per_class):
            src_file = 100000 + 7 * (target * clips_per_class + clip)
            fold = clip % 5 + 1
            filename = f"{fold}-{src_file}-A-{target}.wav"
            signal = synth_clip(target, sample_rate, duration, [seed, target, clip])
            _write_wav(os.path.join(root, "audio", filename), signal, sample_rate)
            rows.append(
                {
                    "filename": filename,
                    "fold": fold,
                    "target": target,
                    "category": category,
                    "esc10": target % 2 == 0,
                    "src_file": src_file,
                    "take": "A",
                }
            )
    rows.sort(key=lambda row: row["filename"])
    _write_csv(
        os.path.join(root, "meta", "esc50.csv"),
        ESC50_HEADER,
        [[row[key] for key in ESC50_HEADER] for row in rows],
    )
    return rows


# ---------------------------------------------------------------------- AudioSet
def _random_ids(rng, count, length, alphabet, taken=()):
    """Draws `count` distinct random strings not in `taken`."""
    ids, seen = [], set(taken)
    while len(ids) < count:
        new = "".join(alphabet[i] for i in rng.integers(0, len(alphabet), length))
        if new not in seen:
            seen.add(new)
            ids.append(new)
    return ids


def _make_ontology(rng, n_classes):
    """Returns the class rows [(index, mid, display_name)]."""
    mids = _random_ids(rng, n_classes, 5, "0123456789abcdefghijklmnopqrstuvwxyz")
    return [(i, f"/m/0{mid}", SOUND_CLASSES[i][1]) for i, mid in enumerate(mids)]


def _draw_label_sets(rng, n_clips, n_classes, max_labels):
    """1 to max_labels distinct classes per clip; the first one cycles."""
    label_sets = []
    for clip in range(n_clips):
        first = clip % n_classes
        others = rng.permutation([c for c in range(n_classes) if c != first])
        n_extra = rng.integers(0, min(max_labels, n_classes))
        label_sets.append([first, *sorted(int(c) for c in others[:n_extra])])
    return label_sets


def _segment_header(rows, n_unique):
    """The three official comment lines of a segments CSV."""
    n_positive = sum(len(row[3]) for row in rows)
    return [
        "# Segments csv created Sun Mar  5 10:54:31 2017",
        f"# num_ytids={len(rows)}, num_segs={len(rows)}, "
        f"num_unique_labels={n_unique}, num_positive_labels={n_positive}",
        "# YTID, start_seconds, end_seconds, positive_labels",
    ]


def _write_segments_csv(path, rows, extra_lines=()):
    """Writes rows (ytid, start, end, [mids]) in the official format."""
    n_unique = len({mid for row in rows for mid in row[3]})
    lines = _segment_header(rows, n_unique)
    for ytid, start, end, mids in rows:
        lines.append(f'{ytid}, {start:.3f}, {end:.3f}, "{",".join(mids)}"')
    lines.extend(extra_lines)
    with open(path, "w", encoding="utf-8") as fout:
        fout.write("\n".join(lines) + "\n")


def _audio_path(root, split, ytid, start, extension):
    """Nested location of a clip: audio/<split>/<2 chars of id>/<id>_<s>.<ext>."""
    subfolder = ytid[:2].replace("-", "x").replace("_", "x").lower()
    name = f"{ytid}_{int(start)}.{extension}"
    return os.path.join(root, "audio", split, subfolder, name)


def _write_garbage(rng, path, n_bytes=2000):
    """Writes random bytes (a corrupt audio file)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fout:
        fout.write(rng.bytes(n_bytes))


def make_audioset(
    root,
    n_classes=6,
    n_balanced=12,
    n_eval=6,
    n_unbalanced=0,
    seed=0,
    sample_rates=(16000,),
    formats=("wav",),
    duration=10.0,
    max_labels=3,
    n_missing=0,
    n_corrupt=0,
    n_empty=0,
    n_unknown_mid=0,
    n_only_unknown_mid=0,
    n_malformed=0,
):
    """Writes a synthetic multi-label dataset in the official AudioSet layout.

    Writes `class_labels_indices.csv`, `balanced_train_segments.csv`,
    `eval_segments.csv` (and `unbalanced_train_segments.csv` when
    n_unbalanced > 0) with the official comment lines and quoted label
    lists, and the audio as `audio/<split>/<xx>/<YTID>_<start>.<ext>`. Each
    clip is the sum of 1 to `max_labels` class sounds plus background noise.

    Bad input for tests is injected into the balanced split, at its last
    rows in this order: rows without audio (`n_missing`), garbage files
    (`n_corrupt`), zero-sample wav files (`n_empty`), rows with an extra
    unknown MID (`n_unknown_mid`), rows whose only MID is unknown
    (`n_only_unknown_mid`); `n_malformed` malformed lines are appended.

    Arguments
    ---------
    root : str
        Output folder.
    n_classes : int
        Number of classes (at most len(SOUND_CLASSES)).
    n_balanced : int
        Rows of balanced_train_segments.csv (including the bad ones).
    n_eval : int
        Rows of eval_segments.csv.
    n_unbalanced : int
        Rows of unbalanced_train_segments.csv (0: no such file).
    seed : int
        Seed; the same seed gives bit-identical files.
    sample_rates : tuple of int
        Sample rates, used in turn clip after clip.
    formats : tuple of str
        File types, "wav" and/or "flac" (16-bit), used in turn clip after
        clip.
    duration : float
        Clip length in seconds.
    max_labels : int
        Maximum number of classes summed in one clip.
    n_missing : int
        Balanced rows whose audio file is not written.
    n_corrupt : int
        Balanced rows whose audio file is random bytes.
    n_empty : int
        Balanced rows whose audio file has no samples.
    n_unknown_mid : int
        Balanced rows with an extra unknown MID (the clip stays usable).
    n_only_unknown_mid : int
        Balanced rows labelled only with an unknown MID.
    n_malformed : int
        Malformed lines appended to the balanced CSV.

    Returns
    -------
    dict
        "labels": [(index, mid, display_name)], "splits": {split: list of
        row dicts (ytid, start, end, mids, classes, path)}, "bad": {kind:
        list of YTIDs}, "malformed_lines": list of str.

    Example
    -------
    >>> root = getfixture("tmp_path") / "as"
    >>> info = make_audioset(
    ...     str(root), n_classes=3, n_balanced=4, n_eval=2, duration=0.2
    ... )
    >>> sorted(info["splits"]), len(info["labels"])
    (['balanced_train', 'eval'], 3)
    >>> (root / "balanced_train_segments.csv").read_text().splitlines()[2]
    '# YTID, start_seconds, end_seconds, positive_labels'
    """
    _check_n_classes(n_classes)
    if not set(formats) <= {"wav", "flac"}:
        raise ValueError(f"formats must be 'wav' or 'flac', got {formats}")
    rng = np.random.default_rng([seed, 0])
    labels = _make_ontology(rng, n_classes)
    _write_csv(
        os.path.join(root, "class_labels_indices.csv"),
        ["index", "mid", "display_name"],
        labels,
    )
    sizes = {"balanced_train": n_balanced, "eval": n_eval}
    if n_unbalanced > 0:
        sizes["unbalanced_train"] = n_unbalanced
    n_bad = n_missing + n_corrupt + n_empty + n_unknown_mid + n_only_unknown_mid
    if n_bad > n_balanced:
        raise ValueError(f"{n_bad} bad rows asked but n_balanced={n_balanced}")
    ytids = _random_ids(rng, sum(sizes.values()), 11, YTID_ALPHABET)
    options = {
        "seed": seed,
        "duration": duration,
        "max_labels": max_labels,
        "sample_rates": sample_rates,
        "formats": formats,
    }
    info = {"labels": labels, "splits": {}, "bad": {}, "malformed_lines": []}
    first_clip = 0
    for split_index, (split, size) in enumerate(sizes.items()):
        clip_numbers = range(first_clip, first_clip + size)
        info["splits"][split] = _draw_rows(
            split_index, clip_numbers, ytids, labels, options
        )
        first_clip += size
    info["bad"] = _assign_bad_rows(
        info["splits"]["balanced_train"],
        [
            ("missing", n_missing),
            ("corrupt", n_corrupt),
            ("empty", n_empty),
            ("unknown_mid", n_unknown_mid),
            ("only_unknown_mid", n_only_unknown_mid),
        ],
    )
    known = {mid for _, mid, _ in labels}
    for split, rows in info["splits"].items():
        for row in rows:
            _write_clip(root, split, row, duration, rng, known)
        extra = _malformed_lines(n_malformed) if split == "balanced_train" else []
        if extra:
            info["malformed_lines"] = extra
        _write_segments_csv(
            os.path.join(root, f"{split}_segments.csv"),
            [(r["ytid"], r["start"], r["end"], r["mids"]) for r in rows],
            extra,
        )
    return info


def _draw_rows(split_index, clip_numbers, ytids, labels, options):
    """Random rows (ytid, times, classes, rate, format, seed) of one split."""
    rng = np.random.default_rng([options["seed"], 1, split_index])
    label_sets = _draw_label_sets(
        rng, len(clip_numbers), len(labels), options["max_labels"]
    )
    rows = []
    for i, (clip, classes) in enumerate(zip(clip_numbers, label_sets)):
        start = float(rng.integers(0, 30) * 10)
        rows.append(
            {
                "ytid": ytids[clip],
                "start": start,
                "end": start + options["duration"],
                "classes": classes,
                "mids": [labels[c][1] for c in classes],
                "rate": options["sample_rates"][clip % len(options["sample_rates"])],
                "format": options["formats"][clip % len(options["formats"])],
                "seed": [options["seed"], 2, split_index, i],
            }
        )
    return rows


def _assign_bad_rows(rows, kinds):
    """Marks the last rows with a bad kind each; returns {kind: [ytid]}."""
    assigned, position = {}, len(rows)
    for kind, count in kinds:
        assigned[kind] = []
        for _ in range(count):
            position -= 1
            rows[position]["bad"] = kind
            assigned[kind].append(rows[position]["ytid"])
    return assigned


def _unknown_mid(known):
    """A MID that is not in `known`."""
    candidate, i = "/m/0zzzz", 0
    while candidate in known:
        i += 1
        candidate = f"/m/0zzz{i}"
    return candidate


def _write_clip(root, split, row, duration, rng, known):
    """Writes the audio of one row according to its "bad" kind (if any)."""
    bad = row.get("bad")
    if bad == "unknown_mid":
        row["mids"] = [*row["mids"], _unknown_mid(known)]
    elif bad == "only_unknown_mid":
        row["mids"] = [_unknown_mid(known)]
    path = _audio_path(root, split, row["ytid"], row["start"], row["format"])
    row["path"] = None if bad == "missing" else path
    if bad == "missing":
        return
    if bad == "corrupt":
        _write_garbage(rng, path)
    elif bad == "empty":
        _write_wav(path, np.zeros(0, dtype=np.float32), row["rate"])
    else:
        signal = synth_clip(row["classes"], row["rate"], duration, row["seed"])
        _write_wav(path, signal, row["rate"])


def _malformed_lines(count):
    """Malformed CSV lines: too few fields, or a non-numeric time."""
    kinds = [
        "badrow{i}, 30.000",
        'badrow{i}, thirty, 40.000, "/m/0abc"',
    ]
    return [kinds[i % 2].format(i=i) for i in range(count)]


# ------------------------------------------------------------ class-folder vowels
#: Formant frequencies (Hz) of the vowel classes of :func:`make_formant_folders`:
#: Peterson & Barney's (1952) average adult male F1-F3 of /a/ ("father"),
#: /ʌ/ ("but"), /i/ ("beet") and /u/ ("boot"). /a/ and /ʌ/ differ only a
#: little (F1 730 vs 640 Hz), /a/ and /i/ a lot (F1 730 vs 270, F2 1090 vs 2290).
FORMANT_SETS = {
    "ah": (730.0, 1090.0, 2440.0),
    "uh": (640.0, 1190.0, 2390.0),
    "ee": (270.0, 2290.0, 3010.0),
    "oo": (300.0, 870.0, 2240.0),
}
FORMANT_BANDWIDTHS = (90.0, 110.0, 170.0)
VOICE_PITCH_RANGE = (85.0, 255.0)
SPEAKER_SCALE_RANGE = (0.88, 1.15)  # vocal-tract length: every formant scaled


def _resonator(signal, centre, bandwidth, sample_rate):
    """Two-pole resonance at `centre` Hz with `bandwidth` Hz, unit gain at DC."""
    from scipy.signal import lfilter

    radius = np.exp(-np.pi * bandwidth / sample_rate)
    theta = 2 * np.pi * centre / sample_rate
    a = [1.0, -2 * radius * np.cos(theta), radius**2]
    return lfilter([sum(a)], a, signal)


def formant_clip(formants, sample_rate=8000, duration=1.0, seed=0, scale=1.0):
    """One buzz (glottal pulse train) through a cascade of formant resonators.

    The pitch (85-255 Hz, with a slow random drift and jitter), the voiced
    segment's onset and length (40-90 % of the clip), the loudness (-32 to
    -12 dBFS) and the background noise (8-30 dB SNR, random colour) are drawn
    per clip, so two vowels differ only in their spectral envelope. Each
    formant is moved by up to ±4 % per clip, all of them by ``scale``
    (a speaker's vocal-tract length).

    Arguments
    ---------
    formants : sequence of float
        Formant centre frequencies in Hz (bandwidths of
        :data:`FORMANT_BANDWIDTHS`).
    sample_rate : int
        Sample rate in Hz.
    duration : float
        Clip length in seconds.
    seed : int or list of int
        Seed of the clip's random generator.
    scale : float
        Factor applied to every formant (the speaker).

    Returns
    -------
    numpy.ndarray
        float32 signal with ``round(duration * sample_rate)`` samples.

    Example
    -------
    >>> a = formant_clip(FORMANT_SETS["ah"], 8000, 0.5, seed=3)
    >>> a.shape, bool((a == formant_clip(FORMANT_SETS["ah"], 8000, 0.5, seed=3)).all())
    ((4000,), True)
    """
    rng = np.random.default_rng(seed)
    n_clip = int(round(duration * sample_rate))
    length = max(1, int(n_clip * rng.uniform(0.4, 0.9)))
    onset = int(rng.integers(0, n_clip - length + 1))
    f0 = np.exp(rng.uniform(*np.log(VOICE_PITCH_RANGE)))
    drift = 1 + 0.08 * np.sin(
        2 * np.pi * rng.uniform(0.5, 3) * np.arange(length) / sample_rate
        + rng.uniform(0, 2 * np.pi)
    )
    phase = np.cumsum(f0 * drift * rng.uniform(0.99, 1.01, length)) / sample_rate
    pulses = np.diff(np.floor(phase), prepend=0.0)  # one impulse per period
    voiced = pulses - pulses.mean()
    for centre, bandwidth in zip(formants, FORMANT_BANDWIDTHS):
        centre = min(centre * scale * rng.uniform(0.96, 1.04), 0.45 * sample_rate)
        voiced = _resonator(voiced, centre, bandwidth, sample_rate)
    voiced *= _envelope(length, sample_rate)
    clip = np.zeros(n_clip)
    level = 10 ** (rng.uniform(*LEVEL_RANGE_DB) / 20)
    clip[onset : onset + length] = voiced * level / _rms(voiced)
    noise = _coloured_noise(rng, n_clip, rng.uniform(0.0, 1.5))
    clip += noise * level * 10 ** (-rng.uniform(*SNR_RANGE_DB) / 20)
    peak = np.max(np.abs(clip))
    if peak > 0.95:
        clip *= 0.95 / peak
    return clip.astype(np.float32)


def make_formant_folders(
    root,
    clips_per_class=40,
    n_speakers=8,
    sample_rate=8000,
    duration=1.0,
    vowels=("ah", "uh"),
    seed=0,
):
    """Writes a two-vowel dataset in the class-folder layout, one folder per class.

    Files are ``root/<vowel>/spk<k>_<n>.wav`` (16-bit PCM), made by
    :func:`formant_clip`: the classes differ only in their formants. Each
    of ``n_speakers`` speakers has one vocal-tract scale (0.88-1.15) used
    for all of its clips, so grouping by ``spk(\\d+)`` keeps a speaker's
    clips in one fold.

    Arguments
    ---------
    root : str
        Output folder.
    clips_per_class : int
        Clips per vowel.
    n_speakers : int
        Speakers, assigned to the clips in turn.
    sample_rate : int
        Sample rate of the files.
    duration : float
        Clip length in seconds.
    vowels : sequence of str
        Keys of :data:`FORMANT_SETS`, one class folder each.
    seed : int
        Seed; the same seed gives bit-identical files.

    Returns
    -------
    list of str
        The files written, sorted.

    Example
    -------
    >>> root = getfixture("tmp_path") / "vowels"
    >>> files = make_formant_folders(str(root), clips_per_class=2, n_speakers=2)
    >>> sorted(os.listdir(root)), os.path.basename(files[0])
    (['ah', 'uh'], 'spk0_0.wav')
    """
    rng = np.random.default_rng([seed, 7])
    scales = rng.uniform(*SPEAKER_SCALE_RANGE, size=n_speakers)
    written = []
    for v, vowel in enumerate(vowels):
        for n in range(clips_per_class):
            speaker = n % n_speakers
            signal = formant_clip(
                FORMANT_SETS[vowel],
                sample_rate,
                duration,
                [seed, v, n],
                scales[speaker],
            )
            path = os.path.join(root, vowel, f"spk{speaker}_{n}.wav")
            _write_wav(path, signal, sample_rate)
            written.append(path)
    return sorted(written)
