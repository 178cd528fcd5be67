#!/usr/bin/env python3
"""Does a model learn speech? AST, CRAFT and an MFCC baseline on spoken keywords.

A learning benchmark, not a test: it needs ``espeak-ng`` (Debian/Ubuntu
package ``espeak-ng``) and takes minutes.

1. Data: ``espeak-ng`` speaks 10 keywords (Speech Commands' ``yes no up down
   left right on off stop go``) in many voices: each *speaker* is an accent
   (``en-gb``, ``en-us``, ``en-gb-scotland`` ...) with a voice variant
   (``m1`` ... ``f5``, ``klatt`` ...), and each clip draws its own speaking
   rate, pitch, sample rate (8, 16 or 22.05 kHz, resampled to 16 kHz by the
   loaders), loudness, background noise and position in the 1 s clip. The
   clips are written in the class-folder layout ``words/<word>/<speaker>_<i>.wav``
   and, for the ESC-50 recipe's official layout, as ``esc50/meta/esc50.csv`` +
   ``esc50/audio/`` (hard links to the same files). Speakers are split into
   five folds; fold 1 is held out, so every test voice is unseen in training.
2. Models, all on the same split and clips: an MFCC-statistics baseline (mean
   and standard deviation over time of 40 MFCCs and their deltas, standardised,
   multinomial logistic regression), and the real recipe
   ``recipes/ESC50/train.py`` as a subprocess for AST (``hparams/ast.yaml``)
   and CRAFT (``hparams/craft.yaml``: SWaB fusion of the spectrogram and the
   waveform streams), both from scratch with the same small model, epochs,
   batch and learning rate; and, with ``--pretrain``, CRAFT fine-tuned after
   a short PSWaCL pretraining (``recipes/AudioSet/pretrain.py
   hparams/craft.yaml``) on the training clips, whose pretraining time is
   reported separately.
3. Results: per model the held-out accuracy at the last epoch and at the best
   epoch (the ESC-50 recipe's score, SSAST's protocol of picking the epoch on
   the evaluated fold, so an optimistic figure), wall time and the machine's
   load average, in ``<output_folder>/learning.json`` and a printed table.

The default budget (DATA, TRAIN): 600 clips of 30 speakers (480 for training),
10 epochs of batches of 8 (600 optimizer steps) for every model, the tiny
preset with 2 blocks. ``--layout auto`` uses the recipe's class-folder input
(``--layout=folders``, speakers grouped by GROUP_REGEX) where the recipe has
it, else the ESC-50 layout.

Usage:
    python benchmarks/bench_learning.py            # the default budget
    python benchmarks/bench_learning.py --quick    # a smoke run of every stage
    python benchmarks/bench_learning.py --pretrain --threads 1 --epochs 20

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import argparse
import csv
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import soundfile as sf
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from craft_modules.data.audio import get_resampler, load_audio  # noqa: E402

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
ACCENTS = (
    "en-gb",
    "en-us",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-029",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)
VARIANTS = (
    *(f"m{i}" for i in range(1, 8)),
    *(f"f{i}" for i in range(1, 6)),
    "klatt",
    "klatt2",
    "klatt3",
    "croak",
    "grandma",
    "grandpa",
)
ESPEAK_RATE = 22050
SAMPLE_RATE = 16000
CLIP_SECONDS = 1.0
N_FOLDS = 5
TEST_FOLD = 1
#: The speaker is the part of a clip's file name before the first underscore.
GROUP_REGEX = r"^([^_]+)_"

DATA = {
    "words": list(WORDS),
    "speakers": 30,
    "repeats": 2,
    "rates": [8000, 16000, 22050],
    "speed_wpm": [120, 220],
    "pitch": [20, 80],
    "gain_db": [-20.0, 0.0],
    "snr_db": [5.0, 30.0],
    "noise_prob": 0.7,
    "seed": 0,
}
"""The default dataset: 30 speakers x 10 words x 2 repeats = 600 clips."""

QUICK_DATA = {**DATA, "speakers": 15, "repeats": 1}

TRAIN = {
    "epochs": 10,
    "batch_size": 8,
    "lr": None,
    "pretrain_epochs": 3,
    "pretrain_lr": 0.0005,
    "layout": "auto",
}
"""The default budget, the same for every model: epochs, clips per batch, peak
learning rate (None: the recipe's; ESC50_LR with today's ESC-50 layout), and
the PSWaCL pretraining's epochs and learning rate."""

QUICK_TRAIN = {**TRAIN, "epochs": 2, "pretrain_epochs": 1}

ESC50_LR = 0.0005
"""Peak learning rate given to the ESC-50-layout recipe (whose default, 1e-4
decayed from epoch 6, is SSAST's fine-tuning rate from a pretrained model)."""

ESC50_TIMEM = 24
"""SpecAugment time mask for the ESC-50 layout (the YAML's ``timem: 96`` is
tuned for 5 s clips of 512 frames; the folders layout follows the clip)."""

MODEL = ["--model_size=tiny", "--depth=2", "--num_workers=0"]
"""The encoder of every run: the tiny preset (192-d) with 2 blocks."""

FINETUNE = [
    f"--folds=[{TEST_FOLD}]",
    "--mixup_prob=0",
    "--fusion_layer=1",
    "--n_bottlenecks=8",
]
"""Classification options shared by AST and CRAFT: the held-out fold; no mixup
(SSAST's ESC-50 setting); SWaB fuses from the first block through 8
bottleneck tokens (AST ignores both)."""

PRETRAIN = ["--mask_patch=40", "--warmup_steps=0", "--valid_fraction=0.1"]
"""PSWaCL on 1 s clips: 40 of the 64 patches masked; no staircase warm-up (it
raises the lr only every 50 steps, too coarse for a few hundred steps)."""


# ---------------------------------------------------------------------- progress
class Progress:
    """Prints progress lines stamped with the time since the start.

    Example
    -------
    >>> Progress(start=time.time()).say("hello")  # doctest: +ELLIPSIS
    [learning 0:00] hello
    """

    def __init__(self, start=None):
        self.start = time.time() if start is None else start

    def say(self, message):
        """Prints ``message`` with the elapsed time."""
        seconds = int(time.time() - self.start)
        print(f"[learning {seconds // 60}:{seconds % 60:02d}] {message}", flush=True)


def load_average():
    """The 1, 5 and 15 minute load averages (``uptime``), or None."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# -------------------------------------------------------------------------- data
def speakers(n_speakers, seed=0):
    """``n_speakers`` distinct (speaker id, espeak voice, fold) triples.

    The accent x variant grid is shuffled with ``seed``; the folds go round
    the shuffled speakers, so each fold has (almost) the same number of them.

    Arguments
    ---------
    n_speakers : int
        At most len(ACCENTS) * len(VARIANTS).
    seed : int
        Shuffling seed.

    Returns
    -------
    list of tuple
        ``(speaker, voice, fold)``, e.g. ``("en-us.f2", "en-us+f2", 3)``.

    Example
    -------
    >>> chosen = speakers(10)
    >>> len({s for s, _, _ in chosen}), sorted({f for _, _, f in chosen})
    (10, [1, 2, 3, 4, 5])
    >>> all("_" not in s and v == s.replace(".", "+") for s, v, _ in chosen)
    True
    """
    grid = [(a, v) for a in ACCENTS for v in VARIANTS]
    if not 1 <= n_speakers <= len(grid):
        raise ValueError(f"n_speakers must be in 1..{len(grid)}, got {n_speakers}")
    order = np.random.default_rng(seed).permutation(len(grid))[:n_speakers]
    return [
        (f"{grid[g][0]}.{grid[g][1]}", f"{grid[g][0]}+{grid[g][1]}", i % N_FOLDS + 1)
        for i, g in enumerate(order.tolist())
    ]


def espeak(word, voice, speed, pitch, executable="espeak-ng"):
    """``word`` spoken by espeak-ng: a float32 signal at 22.05 kHz.

    Arguments
    ---------
    word : str
        The text.
    voice : str
        An espeak voice, ``accent+variant``.
    speed : int
        Words per minute.
    pitch : int
        0-99.
    executable : str
        The espeak-ng program.

    Returns
    -------
    numpy.ndarray
        The signal.
    """
    command = [executable, "-v", voice, "-s", str(speed), "-p", str(pitch)]
    out = subprocess.run(
        [*command, "--stdout", word], capture_output=True, check=True
    ).stdout
    signal, rate = sf.read(io.BytesIO(out), dtype="float32")
    if rate != ESPEAK_RATE or signal.size == 0:
        raise RuntimeError(f"{' '.join(command)} {word!r}: no {ESPEAK_RATE} Hz audio")
    return signal


def trim_silence(signal, threshold=0.02):
    """``signal`` without the leading and trailing samples below ``threshold`` x peak.

    Example
    -------
    >>> trim_silence(np.array([0.0, 0.001, 0.5, -1.0, 0.3, 0.0])).tolist()
    [0.5, -1.0, 0.3]
    """
    loud = np.flatnonzero(np.abs(signal) >= threshold * np.abs(signal).max())
    return signal[loud[0] : loud[-1] + 1] if loud.size else signal


def coloured_noise(rng, n, exponent):
    """Unit-RMS noise with a 1/f^exponent power spectrum (0 white, 1 pink).

    Example
    -------
    >>> noise = coloured_noise(np.random.default_rng(0), 1000, 1.0)
    >>> noise.shape, round(float(np.sqrt(np.mean(noise**2))), 3)
    ((1000,), 1.0)
    """
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[1:] /= np.arange(1, spectrum.size) ** (exponent / 2)
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def make_clip(speech, rng, rate, options, speech_rate=ESPEAK_RATE):
    """One 1 s clip at ``rate`` from a spoken word, as a recording might be.

    The word (silence trimmed) is resampled to ``rate``, placed at a random
    offset (cut to the clip if longer), mixed with white or pink noise at a
    random SNR (with probability ``noise_prob``) and scaled to a random level.

    Arguments
    ---------
    speech : numpy.ndarray
        The spoken word at ``speech_rate``.
    rng : numpy.random.Generator
        Draws the offset, noise and level.
    rate : int
        Sample rate of the clip.
    options : dict
        ``gain_db``, ``snr_db`` (ranges) and ``noise_prob``, as in DATA.
    speech_rate : int
        Sample rate of ``speech``.

    Returns
    -------
    tuple
        ``(clip, details)``: float32 samples in [-1, 1] and a dict of the
        drawn ``offset_s``, ``snr_db`` (None without noise) and ``gain_db``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> word = np.sin(np.arange(8000) * 0.3).astype("float32")
    >>> clip, details = make_clip(word, rng, 8000, DATA, speech_rate=16000)
    >>> clip.shape, clip.dtype, bool(np.abs(clip).max() <= 1.0)
    ((8000,), dtype('float32'), True)
    """
    speech = trim_silence(np.asarray(speech, dtype=np.float32))
    if rate != speech_rate:
        speech = get_resampler(speech_rate, rate)(torch.from_numpy(speech)).numpy()
    n = int(round(CLIP_SECONDS * rate))
    if speech.size > n:
        start = (speech.size - n) // 2
        speech = speech[start : start + n]
    offset = int(rng.integers(0, n - speech.size + 1))
    clip = np.zeros(n, dtype=np.float64)
    clip[offset : offset + speech.size] = speech / (np.abs(speech).max() + 1e-12)
    snr_db = None
    if rng.random() < options["noise_prob"]:
        snr_db = float(rng.uniform(*options["snr_db"]))
        speech_rms = np.sqrt(np.mean(clip[offset : offset + speech.size] ** 2))
        noise = coloured_noise(rng, n, float(rng.choice([0.0, 1.0])))
        clip += noise * speech_rms * 10 ** (-snr_db / 20)
    gain_db = float(rng.uniform(*options["gain_db"]))
    clip *= 10 ** (gain_db / 20) / max(np.abs(clip).max(), 1e-12)
    details = {"offset_s": offset / rate, "snr_db": snr_db, "gain_db": gain_db}
    return clip.astype(np.float32), details


def clip_plan(options):
    """Every clip to make: speaker, voice, fold, word, repeat and its draws.

    Arguments
    ---------
    options : dict
        As DATA.

    Returns
    -------
    list of dict
        One per clip, with ``speaker``, ``voice``, ``fold``, ``word``,
        ``target``, ``repeat``, ``speed``, ``pitch``, ``rate`` and ``seed``.

    Example
    -------
    >>> plan = clip_plan({**DATA, "speakers": 3, "repeats": 2})
    >>> len(plan), sorted({p["target"] for p in plan}) == list(range(10))
    (60, True)
    """
    plan = []
    for s, (speaker, voice, fold) in enumerate(speakers(options["speakers"])):
        for t, word in enumerate(options["words"]):
            for r in range(options["repeats"]):
                seed = [options["seed"], s, t, r]
                rng = np.random.default_rng(seed)
                plan.append(
                    {
                        "speaker": speaker,
                        "voice": voice,
                        "fold": fold,
                        "word": word,
                        "target": t,
                        "repeat": r,
                        "speed": int(rng.integers(*options["speed_wpm"])),
                        "pitch": int(rng.integers(*options["pitch"])),
                        "rate": int(rng.choice(options["rates"])),
                        "seed": seed,
                    }
                )
    return plan


def write_layouts(root, clips):
    """Writes the clips in the class-folder and the ESC-50 layouts.

    ``root/words/<word>/<speaker>_<repeat>.wav`` (16-bit PCM at the clip's
    rate) and ``root/esc50/audio/<word>-<speaker>_<repeat>.wav`` (a hard link
    to it, or a copy), with ``root/esc50/meta/esc50.csv`` (filename, fold,
    target, category) and ``root/dataset.json`` (every clip's details).

    Arguments
    ---------
    root : str
        The dataset folder (created).
    clips : list of dict
        Each with ``signal`` (float32 samples), ``rate``, ``word``,
        ``target``, ``speaker``, ``repeat``, ``fold`` and any details to
        record.

    Returns
    -------
    list of dict
        The clips' records without the signals, with ``path`` (class folder)
        and ``filename`` (ESC-50 layout).

    Example
    -------
    >>> clips = [
    ...     {"signal": np.zeros(8000, "float32"), "rate": 8000, "word": w,
    ...      "target": t, "speaker": "en.m1", "repeat": 0, "fold": 1}
    ...     for t, w in enumerate(["yes", "no"])
    ... ]
    >>> root = str(getfixture("tmp_path"))
    >>> records = write_layouts(root, clips)
    >>> os.path.relpath(records[1]["path"], root), records[1]["filename"]
    ('words/no/en.m1_0.wav', 'no-en.m1_0.wav')
    """
    words_dir = os.path.join(root, "words")
    audio_dir = os.path.join(root, "esc50", "audio")
    meta_dir = os.path.join(root, "esc50", "meta")
    os.makedirs(audio_dir, exist_ok=True)
    os.makedirs(meta_dir, exist_ok=True)
    records = []
    for clip in clips:
        record = {k: v for k, v in clip.items() if k != "signal"}
        name = f"{clip['speaker']}_{clip['repeat']}.wav"
        record["path"] = os.path.join(words_dir, clip["word"], name)
        record["filename"] = f"{clip['word']}-{name}"
        os.makedirs(os.path.dirname(record["path"]), exist_ok=True)
        sf.write(record["path"], clip["signal"], clip["rate"], subtype="PCM_16")
        linked = os.path.join(audio_dir, record["filename"])
        if os.path.lexists(linked):
            os.remove(linked)
        try:
            os.link(record["path"], linked)
        except OSError:
            shutil.copyfile(record["path"], linked)
        records.append(record)
    with open(os.path.join(meta_dir, "esc50.csv"), "w", newline="") as fout:
        writer = csv.writer(fout)
        writer.writerow(["filename", "fold", "target", "category"])
        for r in records:
            writer.writerow([r["filename"], r["fold"], r["target"], r["word"]])
    with open(os.path.join(root, "dataset.json"), "w", encoding="utf-8") as fout:
        json.dump(records, fout, indent=1)
    return records


def make_dataset(root, options, progress, executable="espeak-ng"):
    """Speaks, shapes and writes every clip of ``options`` (skipped if already there).

    Arguments
    ---------
    root : str
        The dataset folder.
    options : dict
        As DATA.
    progress : Progress
        For progress lines.
    executable : str
        The espeak-ng program.

    Returns
    -------
    tuple
        ``(records, seconds)``: the clips (see write_layouts) and the time
        spent (0 when the data was reused).
    """
    stamp = os.path.join(root, "settings.json")
    if os.path.isfile(stamp) and os.path.isfile(os.path.join(root, "dataset.json")):
        with open(stamp, encoding="utf-8") as fin:
            if json.load(fin) == options:
                progress.say(f"data: reusing {root}")
                with open(os.path.join(root, "dataset.json"), encoding="utf-8") as f:
                    return json.load(f), 0.0
    if shutil.which(executable) is None:
        sys.exit(
            f"bench_learning: {executable} not found; install it "
            "(Debian/Ubuntu: apt-get install espeak-ng)"
        )
    begin = time.time()
    shutil.rmtree(root, ignore_errors=True)
    plan = clip_plan(options)
    progress.say(
        f"data: espeak-ng speaks {len(options['words'])} words x "
        f"{options['speakers']} speakers x {options['repeats']} = {len(plan)} clips"
    )

    def build(item):
        speech = espeak(item["word"], item["voice"], item["speed"], item["pitch"])
        rng = np.random.default_rng(item["seed"] + [1])
        signal, details = make_clip(speech, rng, item["rate"], options)
        return {**item, **details, "signal": signal}

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        clips = list(pool.map(build, plan))
    records = write_layouts(root, clips)
    with open(stamp, "w", encoding="utf-8") as fout:
        json.dump(options, fout)
    seconds = time.time() - begin
    progress.say(f"data: {len(records)} clips written to {root} in {seconds:.0f} s")
    return records, seconds


def describe_dataset(records, options):
    """Counts of the dataset for the results: clips, speakers, rates, noise.

    Example
    -------
    >>> records = [{"speaker": "a", "rate": 8000, "snr_db": None},
    ...            {"speaker": "b", "rate": 16000, "snr_db": 10.0}]
    >>> d = describe_dataset(records, DATA)
    >>> d["clips"], d["speakers"], d["clips_by_rate"], d["noisy_clips"]
    (2, 2, {'8000': 1, '16000': 1}, 1)
    """
    rates = sorted({r["rate"] for r in records})
    return {
        "source": "espeak-ng " + espeak_version(),
        "settings": options,
        "clips": len(records),
        "speakers": len({r["speaker"] for r in records}),
        "clips_by_rate": {
            str(rate): sum(r["rate"] == rate for r in records) for rate in rates
        },
        "noisy_clips": sum(r.get("snr_db") is not None for r in records),
        "clip_seconds": CLIP_SECONDS,
    }


def speaker_of(path):
    """The speaker of a clip written by write_layouts, from its path.

    Class folders: GROUP_REGEX of the file name; ESC-50 layout (``audio/``):
    the same after the ``<word>-`` prefix.

    Example
    -------
    >>> speaker_of("d/words/yes/en-us.f2_1.wav"), speaker_of("d/esc50/audio/yes-en-us.f2_1.wav")
    ('en-us.f2', 'en-us.f2')
    """
    name = os.path.basename(path)
    if os.path.basename(os.path.dirname(path)) == "audio":
        name = name.split("-", 1)[1]
    return re.match(GROUP_REGEX, name).group(1)


def describe_split(split):
    """Clips and speakers on each side of a split (see speaker_of).

    Example
    -------
    >>> describe_split({"train": [("w/yes/a.m1_0.wav", 0), ("w/no/a.m1_0.wav", 1)],
    ...                 "test": [("w/yes/b.f2_0.wav", 0)]})
    {'test_fold': 1, 'train_clips': 2, 'train_speakers': 1, 'test_clips': 1, 'test_speakers': 1, 'shared_speakers': 0}
    """
    speakers_of = {
        side: {speaker_of(path) for path, _ in split[side]}
        for side in ("train", "test")
    }
    return {
        "test_fold": TEST_FOLD,
        "train_clips": len(split["train"]),
        "train_speakers": len(speakers_of["train"]),
        "test_clips": len(split["test"]),
        "test_speakers": len(speakers_of["test"]),
        "shared_speakers": len(speakers_of["train"] & speakers_of["test"]),
    }


def espeak_version(executable="espeak-ng"):
    """The espeak-ng version string, or "unknown"."""
    try:
        out = subprocess.run(
            [executable, "--version"], capture_output=True, text=True
        ).stdout
    except OSError:
        return "unknown"
    match = re.search(r"text-to-speech:\s*(\S+)", out)
    return match.group(1) if match else "unknown"


# ---------------------------------------------------------------------- baseline
def mfcc_statistics(paths, sample_rate=SAMPLE_RATE, duration=CLIP_SECONDS, n_mfcc=40):
    """Per clip: mean and standard deviation over time of MFCCs and their deltas.

    Each clip is loaded as the recipes load it (mono, resampled to
    ``sample_rate``, cut or zero-padded to ``duration``).

    Arguments
    ---------
    paths : list of str
        Audio files.
    sample_rate : int
        Rate the clips are resampled to.
    duration : float
        Clip length in seconds.
    n_mfcc : int
        MFCCs per frame (from 64 mel bands, 25 ms windows, 10 ms hop).

    Returns
    -------
    numpy.ndarray
        ``(len(paths), 4 * n_mfcc)`` features.

    Example
    -------
    >>> path = str(getfixture("tmp_path") / "tone.wav")
    >>> sf.write(path, np.sin(np.arange(8000) * 0.2), 8000)
    >>> mfcc_statistics([path, path]).shape
    (2, 160)
    """
    import torchaudio

    mfcc = torchaudio.transforms.MFCC(
        sample_rate=sample_rate,
        n_mfcc=n_mfcc,
        melkwargs={
            "n_fft": 512,
            "win_length": int(0.025 * sample_rate),
            "hop_length": int(0.010 * sample_rate),
            "n_mels": 64,
        },
    )
    deltas = torchaudio.transforms.ComputeDeltas()
    features = []
    with torch.no_grad():
        for start in range(0, len(paths), 64):
            wavs = torch.stack(
                [
                    load_audio(path, sample_rate=sample_rate, duration=duration)
                    for path in paths[start : start + 64]
                ]
            )
            coefficients = mfcc(wavs)  # (clips, n_mfcc, frames)
            both = torch.cat([coefficients, deltas(coefficients)], dim=1)
            features.append(torch.cat([both.mean(dim=2), both.std(dim=2)], dim=1))
    return torch.cat(features).numpy()


def mfcc_baseline(train_paths, train_targets, test_paths, test_targets, seed=0):
    """Accuracy of MFCC statistics + standardisation + logistic regression.

    Arguments
    ---------
    train_paths, test_paths : list of str
        Audio files.
    train_targets, test_targets : list of int
        Their classes.
    seed : int
        The classifier's random state.

    Returns
    -------
    dict
        ``accuracy`` on the test clips, ``train_accuracy``, ``seconds``.

    Example
    -------
    >>> root = getfixture("tmp_path")
    >>> paths, targets = [], []
    >>> for i in range(8):
    ...     paths.append(str(root / f"{i}.wav")); targets.append(i % 2)
    ...     tone = np.sin(np.arange(8000) * (0.1 if i % 2 else 1.0) * (1 + i / 50))
    ...     sf.write(paths[-1], tone, 8000)
    >>> result = mfcc_baseline(paths[:6], targets[:6], paths[6:], targets[6:])
    >>> result["accuracy"], result["train_accuracy"]
    (1.0, 1.0)
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    begin = time.time()
    classifier = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed)
    )
    train_features = mfcc_statistics(train_paths)
    classifier.fit(train_features, np.asarray(train_targets))
    test_features = mfcc_statistics(test_paths)
    return {
        "accuracy": float(classifier.score(test_features, np.asarray(test_targets))),
        "train_accuracy": float(
            classifier.score(train_features, np.asarray(train_targets))
        ),
        "seconds": time.time() - begin,
    }


def recipe_split(prepare_folder, test_fold=TEST_FOLD):
    """The training and test clips of a recipe run, from the manifest it prepared.

    Reads the JSON manifest in ``prepare_folder`` whose entries have ``wav``,
    ``fold`` and ``target``, so that the baseline uses exactly the recipe's
    clips and split.

    Arguments
    ---------
    prepare_folder : str
        The recipe's ``prepare_folder`` (``<output_folder>/data``).
    test_fold : int
        The held-out fold.

    Returns
    -------
    dict
        ``train`` and ``test``: lists of ``(path, target)``.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> manifest = {"a": {"wav": "a.wav", "fold": 1, "target": 0},
    ...             "b": {"wav": "b.wav", "fold": 2, "target": 1}}
    >>> _ = (folder / "esc50.json").write_text(json.dumps(manifest))
    >>> recipe_split(str(folder))
    {'train': [('b.wav', 1)], 'test': [('a.wav', 0)]}
    """
    for name in sorted(os.listdir(prepare_folder)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(prepare_folder, name), encoding="utf-8") as fin:
            manifest = json.load(fin)
        entries = list(manifest.values()) if isinstance(manifest, dict) else []
        if entries and all(
            isinstance(e, dict) and {"wav", "fold", "target"} <= set(e) for e in entries
        ):
            split = {"train": [], "test": []}
            for entry in entries:
                key = "test" if int(entry["fold"]) == test_fold else "train"
                split[key].append((entry["wav"], int(entry["target"])))
            return split
    raise FileNotFoundError(
        f"no manifest with wav, fold and target in {prepare_folder}"
    )


# ------------------------------------------------------------------------ recipes
SHOWN = re.compile(r"epoch: \d+|error|exception|traceback", re.IGNORECASE)


def epoch_summary(line):
    """A recipe's per-epoch log line shortened to loss and accuracy, else None.

    Example
    -------
    >>> epoch_summary("train_logger - epoch: 3, lr: 1e-4 - train loss: 1.5 - "
    ...               "valid loss: 1.7, valid accuracy: 0.42")
    'epoch 3, train loss 1.5, valid loss 1.7, valid accuracy 0.42'
    """
    match = re.search(r"epoch: (\d+)", line)
    if match is None:
        return None
    fields = re.findall(r"((?:train|valid) [\w ]+?): ([-+.\deE]+|nan)", line)
    keep = ("train loss", "valid loss", "valid accuracy")
    parts = [f"{k} {float(v):.3g}" for k, v in fields if k in keep]
    return ", ".join([f"epoch {match.group(1)}", *parts])


def run_recipe(args, log_path, progress, name):
    """Runs a recipe in a subprocess, logging its output and echoing the epochs.

    Arguments
    ---------
    args : list of str
        Script and arguments, run with this Python from the repository root.
    log_path : str
        Where the full output goes.
    progress : Progress
        For progress lines.
    name : str
        Shown in the progress lines.

    Returns
    -------
    dict
        ``seconds`` (wall time) and ``load`` (load averages after the run).

    Raises
    ------
    RuntimeError
        If the recipe fails (with the tail of its log).
    """
    progress.say(f"{name}: started (log: {os.path.relpath(log_path, ROOT)})")
    begin = time.time()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    command = [sys.executable, *args]
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        for line in process.stdout:
            log.write(line)
            if "%|" not in line and SHOWN.search(line):
                summary = epoch_summary(line) if "epoch:" in line else line.strip()
                print(f"    {summary}", flush=True)
        code = process.wait()
    if code != 0:
        with open(log_path, encoding="utf-8", errors="replace") as fin:
            tail = [line for line in fin.read().splitlines() if "%|" not in line]
        raise RuntimeError(
            f"{name} failed (exit code {code}), log {log_path}:\n"
            + "\n".join(tail[-30:])
        )
    seconds = time.time() - begin
    progress.say(f"{name}: done in {seconds:.0f} s")
    return {"seconds": seconds, "load": load_average()}


def recipe_has_folders_layout(
    yaml=os.path.join(ROOT, "recipes", "ESC50", "hparams", "ast.yaml"),
):
    """Whether the ESC-50 recipe reads class folders (``--layout=folders``)."""
    with open(yaml, encoding="utf-8") as fin:
        return re.search(r"^layout:", fin.read(), re.MULTILINE) is not None


def classification_args(yaml, data_folder, output_folder, train, device, extra=()):
    """The ESC-50 recipe's command line for one model.

    ``data_folder`` is the class-folder root (``--layout=folders``: classes,
    clip length, normalisation statistics and SpecAugment widths follow the
    data, speakers grouped by GROUP_REGEX) when ``train["layout"]`` is
    ``folders``, else the ESC-50-layout root (today's recipe: the class count,
    clip length and ``timem`` are given). ``train["lr"]`` (None: the recipe's
    default) is the peak learning rate.

    Example
    -------
    >>> args = classification_args("ast.yaml", "/d", "/o", TRAIN, "cpu")
    >>> args[:2], "--folds=[1]" in args
    (['recipes/ESC50/train.py', 'hparams/ast.yaml'], True)
    >>> esc50 = classification_args("ast.yaml", "/d", "/o", {**TRAIN, "layout": "esc50"}, "cpu")
    >>> "--n_classes=10" in esc50, "--timem=24" in esc50
    (True, True)
    >>> folders = classification_args("ast.yaml", "/d", "/o", {**TRAIN, "layout": "folders"}, "cpu")
    >>> "--layout=folders" in folders, any(a.startswith("--timem") for a in folders)
    (True, False)
    """
    args = [
        "recipes/ESC50/train.py",
        f"hparams/{yaml}",
        f"--data_folder={data_folder}",
        f"--output_folder={output_folder}",
        f"--number_of_epochs={train['epochs']}",
        f"--batch_size={train['batch_size']}",
        f"--device={device}",
        *MODEL,
        *FINETUNE,
    ]
    if train["layout"] == "folders":
        args += [
            "--layout=folders",
            f"--n_folds={N_FOLDS}",
            f"--group_regex={GROUP_REGEX}",
        ]
        if train.get("lr") is not None:
            scratch = not any(a.startswith("--pretrained_path=") for a in extra)
            args.append(f"--{'scratch_lr' if scratch else 'lr'}={train['lr']}")
    else:
        args += [f"--n_classes={len(WORDS)}", f"--clip_duration={CLIP_SECONDS}"]
        args += [f"--timem={ESC50_TIMEM}", f"--lr={train['lr'] or ESC50_LR}"]
    return [*args, *extra]


def pretrain_args(audio_folder, output_folder, train, device):
    """The PSWaCL pretraining command line on a folder of training clips.

    Example
    -------
    >>> args = pretrain_args("/a", "/o", TRAIN, "cpu")
    >>> args[:2], "--unlabeled_folders=[\\"/a\\"]" in args
    (['recipes/AudioSet/pretrain.py', 'hparams/craft.yaml'], True)
    """
    return [
        "recipes/AudioSet/pretrain.py",
        "hparams/craft.yaml",
        "--train_splits=[]",
        f"--unlabeled_folders={json.dumps([audio_folder])}",
        f"--data_folder={audio_folder}",
        f"--output_folder={output_folder}",
        f"--number_of_epochs={train['pretrain_epochs']}",
        f"--batch_size={train['batch_size']}",
        f"--lr={train['pretrain_lr']}",
        f"--clip_duration={CLIP_SECONDS}",
        f"--device={device}",
        *MODEL,
        *PRETRAIN,
    ]


def link_clips(paths, folder):
    """Hard-links (or copies) ``paths`` into ``folder``, as ``<parent>-<name>``.

    Example
    -------
    >>> root = getfixture("tmp_path")
    >>> (root / "yes").mkdir()
    >>> _ = (root / "yes" / "a_0.wav").write_bytes(b"RIFF")
    >>> link_clips([str(root / "yes" / "a_0.wav")], str(root / "pre"))
    1
    >>> os.listdir(root / "pre")
    ['yes-a_0.wav']
    """
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for path in paths:
        parent = os.path.basename(os.path.dirname(path))
        target = os.path.join(folder, f"{parent}-{os.path.basename(path)}")
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    return len(paths)


def read_results(folder):
    """Accuracy at the best and at the last epoch from a recipe's results.json."""
    with open(os.path.join(folder, "results.json"), encoding="utf-8") as fin:
        results = json.load(fin)
    return {
        "accuracy_last_epoch": results["per_fold_last_epoch"][str(TEST_FOLD)],
        "accuracy_best_epoch": results["mean_accuracy"],
        "best_epoch": results["best_epoch"],
    }


# ------------------------------------------------------------------------ report
def format_table(models, chance):
    """The results table as text (Markdown).

    Example
    -------
    >>> print(format_table({"MFCC": {"accuracy_last_epoch": 0.9, "seconds": 2.0}}, 0.1))
    | model | accuracy (last epoch) | best epoch | wall time |
    |---|---|---|---|
    | MFCC | 90.0 % | - | 2.0 s |
    | chance | 10.0 % | | |
    """
    lines = [
        "| model | accuracy (last epoch) | best epoch | wall time |",
        "|---|---|---|---|",
    ]
    for name, result in models.items():
        best = result.get("accuracy_best_epoch")
        best = f"{100 * best:.1f} % (epoch {result['best_epoch']})" if best else "-"
        seconds = f"{result['seconds']:.{0 if result['seconds'] >= 10 else 1}f} s"
        if result.get("pretrain_seconds"):
            seconds += f" + {result['pretrain_seconds']:.0f} s pretraining"
        lines.append(
            f"| {name} | {100 * result['accuracy_last_epoch']:.1f} % | {best} | {seconds} |"
        )
    lines.append(f"| chance | {100 * chance:.1f} % | | |")
    return "\n".join(lines)


def machine():
    """The machine the benchmark ran on."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def parse_arguments(argv=None):
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output_folder",
        default=os.path.join(ROOT, "benchmarks", "results"),
        help="where learning.json and the work folder (data, runs, logs) go",
    )
    parser.add_argument("--quick", action="store_true", help="a ~2 minute smoke run")
    parser.add_argument("--device", default="cpu", help="cpu, cuda:0, ...")
    parser.add_argument("--epochs", type=int, help="training epochs (every model)")
    parser.add_argument("--batch_size", type=int, help="clips per batch")
    parser.add_argument("--lr", type=float, help="peak learning rate (every model)")
    parser.add_argument("--speakers", type=int, help="speakers (voices) to generate")
    parser.add_argument("--repeats", type=int, help="clips per speaker and word")
    parser.add_argument("--pretrain_epochs", type=int, help="PSWaCL epochs")
    parser.add_argument(
        "--layout",
        choices=["auto", "folders", "esc50"],
        default="auto",
        help="the recipe's input: class folders (--layout=folders, when the "
        "recipe has it: auto) or the ESC-50 layout",
    )
    parser.add_argument(
        "--models",
        type=lambda text: text.split(","),
        default=["mfcc", "ast", "craft"],
        help="rows to run, of mfcc, ast, craft (comma-separated; default all)",
    )
    parser.add_argument(
        "--pretrain",
        action="store_true",
        help="add the row of CRAFT fine-tuned after a short PSWaCL pretraining "
        "on the training clips (about doubles the run time)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch/OpenMP threads per process (default: torch's); 1 is much "
        "faster on a machine loaded by other jobs",
    )
    options = parser.parse_args(argv)
    unknown = sorted(set(options.models) - {"mfcc", "ast", "craft"})
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose of mfcc, ast, craft")
    return options


def settings(options):
    """The dataset and training settings of a run: DATA/TRAIN (or QUICK_*) and the options.

    Example
    -------
    >>> data, train = settings(parse_arguments(["--quick", "--epochs", "3"]))
    >>> data["speakers"], train["epochs"], train["layout"] in ("folders", "esc50")
    (15, 3, True)
    """
    data = dict(QUICK_DATA if options.quick else DATA)
    train = dict(QUICK_TRAIN if options.quick else TRAIN)
    for key in ("speakers", "repeats"):
        if getattr(options, key) is not None:
            data[key] = getattr(options, key)
    for key in ("epochs", "batch_size", "lr", "pretrain_epochs"):
        if getattr(options, key) is not None:
            train[key] = getattr(options, key)
    train["layout"] = options.layout
    if options.layout == "auto":
        train["layout"] = "folders" if recipe_has_folders_layout() else "esc50"
    return data, train


def main(argv=None):
    """Generates the data, trains every model, writes learning.json."""
    options = parse_arguments(argv)
    data, train = settings(options)
    if options.threads:
        torch.set_num_threads(options.threads)
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[variable] = str(options.threads)  # the recipes inherit it
    progress = Progress()
    out = os.path.abspath(options.output_folder)
    name = "learning_quick" if options.quick else "learning"
    work = os.path.join(out, name)
    os.makedirs(work, exist_ok=True)
    load_before = load_average()
    progress.say(
        f"load average {load_before}; layout {train['layout']}; work folder {work}"
    )

    records, data_seconds = make_dataset(os.path.join(work, "data"), data, progress)
    data_folder = os.path.join(
        work, "data", "words" if train["layout"] == "folders" else "esc50"
    )
    runs = {
        key: os.path.join(work, key)
        for key in ("split", "ast", "craft", "pretrain", "pswacl")
    }
    for folder in runs.values():
        shutil.rmtree(folder, ignore_errors=True)

    def classify(key, yaml, title, extra=()):
        args = classification_args(
            yaml, data_folder, runs[key], train, options.device, extra
        )
        timing = run_recipe(args, os.path.join(work, f"{key}.log"), progress, title)
        return {**read_results(runs[key]), **timing, "command": " ".join(args)}

    # The split: the recipe's own preparation (a dry run), read by the
    # baseline and the pretraining; every recipe run prepares the same folds.
    args = classification_args(
        "ast.yaml", data_folder, runs["split"], train, "cpu", ["--dry_run=True"]
    )
    run_recipe(args, os.path.join(work, "split.log"), progress, "the recipe's split")
    split = recipe_split(os.path.join(runs["split"], "data"))

    models = {}
    if "mfcc" in options.models:
        progress.say(
            f"MFCC + logistic regression: {len(split['train'])} training, "
            f"{len(split['test'])} test clips"
        )
        baseline = mfcc_baseline(*zip(*split["train"]), *zip(*split["test"]))
        baseline["accuracy_last_epoch"] = baseline.pop("accuracy")
        models["MFCC statistics + logistic regression"] = {
            **baseline,
            "load": load_average(),
        }
        progress.say(
            f"MFCC + logistic regression: {100 * baseline['accuracy_last_epoch']:.1f} %"
        )
    if "ast" in options.models:
        models["AST (from scratch)"] = classify("ast", "ast.yaml", "AST from scratch")
    if "craft" in options.models:
        models["CRAFT (SWaB, from scratch)"] = classify(
            "craft", "craft.yaml", "CRAFT (SWaB) from scratch"
        )
    if options.pretrain:
        audio = os.path.join(work, "pretrain_audio")
        n_clips = link_clips([path for path, _ in split["train"]], audio)
        args = pretrain_args(audio, runs["pretrain"], train, options.device)
        pretrain = run_recipe(
            args,
            os.path.join(work, "pretrain.log"),
            progress,
            f"PSWaCL pretraining on the {n_clips} training clips",
        )
        models["CRAFT (PSWaCL pretraining + SWaB)"] = {
            **classify(
                "pswacl",
                "craft.yaml",
                "CRAFT (SWaB) after PSWaCL",
                [f"--pretrained_path={runs['pretrain']}"],
            ),
            "pretrain_seconds": pretrain["seconds"],
            "pretrain_command": " ".join(args),
        }

    chance = 1.0 / len(data["words"])
    summary = {
        "dataset": describe_dataset(records, data),
        "split": describe_split(split),
        "training": {**train, "device": options.device},
        "models": models,
        "chance": chance,
        "seconds": {"data": data_seconds, "total": time.time() - progress.start},
        "machine": {
            **machine(),
            "load_before": load_before,
            "load_after": load_average(),
        },
    }
    path = os.path.join(out, f"{name}.json")
    with open(path, "w", encoding="utf-8") as fout:
        json.dump(summary, fout, indent=2)
    print()
    print(format_table(models, chance))
    total = summary["seconds"]["total"]
    print(
        f"\n{len(split['test'])} test clips of unseen speakers; total "
        f"{int(total) // 60} min {int(total) % 60:02d} s; load average "
        f"{load_before} -> {summary['machine']['load_after']}; results in {path}"
    )
    return summary


if __name__ == "__main__":
    main()
