"""Audio loading, robust batching and manifest helpers shared by all recipes.

Every recipe reads its clips through :func:`load_audio`: the file is read
with soundfile, mixed down to mono, resampled to the recipe's sample rate and
cropped or zero-padded to a fixed clip length. Problems with a file (missing,
unreadable, empty, NaN samples) raise :class:`AudioLoadError` naming the file.

During training, :func:`audio_pipeline` turns such an error into a warning and
a ``None`` signal, and :class:`SkipBadCollate` drops those items from the
batch (counting them), so one bad file never stops a run hours in.

The data preparation scripts share :func:`probe_audio`,
:func:`find_audio_files`, :func:`manifest_audio_path`, :func:`write_json_atomic`,
:class:`PreparationSummary`, :func:`log_progress` and the "already prepared"
helpers :func:`is_prepared` / :func:`mark_prepared`.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import json
import math
import os
import time
import uuid
from collections import Counter, namedtuple

import soundfile as sf
import torch
import torchaudio
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.data_pipeline import provides, takes
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")

#: Preparation-summary reason of each :class:`AudioLoadError` reason.
SKIP_REASONS = {
    "missing": "missing_audio",
    "unreadable": "unreadable_audio",
    "empty": "empty_audio",
    "non_finite": "unreadable_audio",
}

AudioProbe = namedtuple(
    "AudioProbe", ["path", "sample_rate", "frames", "channels", "duration"]
)

_RESAMPLERS = {}


class AudioLoadError(ValueError):
    """An audio file could not be used; the message names the file.

    Arguments
    ---------
    path : str
        The audio file.
    problem : str
        What went wrong, in words.
    reason : str
        A short machine-readable tag: "missing", "unreadable", "empty" or
        "non_finite".

    Example
    -------
    >>> err = AudioLoadError("a.wav", "file not found", "missing")
    >>> str(err)
    "Cannot use audio file 'a.wav': file not found"
    >>> err.reason
    'missing'
    """

    def __init__(self, path, problem, reason):
        super().__init__(f"Cannot use audio file '{path}': {problem}")
        self.path = path
        self.problem = problem
        self.reason = reason


def _check_file_exists(path):
    """Raises AudioLoadError if path is not an existing, non-empty file."""
    if not os.path.isfile(path):
        raise AudioLoadError(path, "file not found", "missing")
    if os.path.getsize(path) == 0:
        raise AudioLoadError(path, "file is empty (0 bytes)", "empty")


def _read_segment(path, offset, duration):
    """Reads `duration` s (None: to the end) from `offset` s; returns (array, rate)."""
    try:
        with sf.SoundFile(path) as audio_file:
            rate = audio_file.samplerate
            start = int(round(offset * rate))
            frames = -1 if duration is None else math.ceil(duration * rate)
            if start > 0:
                audio_file.seek(min(start, audio_file.frames))
            data = audio_file.read(frames, dtype="float32", always_2d=True)
            return data, rate
    except Exception as err:
        raise AudioLoadError(
            path, f"unreadable or corrupt audio ({err})", "unreadable"
        ) from err


def get_resampler(orig_rate, new_rate):
    """Returns a cached resampler from `orig_rate` to `new_rate`.

    Arguments
    ---------
    orig_rate : int
        Sample rate of the input.
    new_rate : int
        Sample rate of the output.

    Returns
    -------
    torchaudio.transforms.Resample
        The same object for repeated calls with the same rates.

    Example
    -------
    >>> get_resampler(44100, 16000) is get_resampler(44100, 16000)
    True
    """
    key = (int(orig_rate), int(new_rate))
    if key not in _RESAMPLERS:
        _RESAMPLERS[key] = torchaudio.transforms.Resample(*key)
    return _RESAMPLERS[key]


def fit_length(wav, num_samples):
    """Crops the end of a 1-D signal or zero-pads it to `num_samples`.

    Arguments
    ---------
    wav : torch.Tensor
        A 1-D signal.
    num_samples : int
        The wanted length.

    Returns
    -------
    torch.Tensor
        The signal with exactly `num_samples` samples.

    Example
    -------
    >>> fit_length(torch.ones(5), 3).tolist()
    [1.0, 1.0, 1.0]
    >>> fit_length(torch.ones(2), 4).tolist()
    [1.0, 1.0, 0.0, 0.0]
    """
    if wav.shape[0] >= num_samples:
        return wav[:num_samples]
    return torch.nn.functional.pad(wav, (0, num_samples - wav.shape[0]))


def load_audio(path, sample_rate=16000, duration=None, offset=0.0, pad=True):
    """Loads an audio file as a mono float32 signal at `sample_rate`.

    Multichannel audio is averaged to mono; the signal is resampled from the
    file's rate. With `duration`, only the first `duration` seconds (after
    `offset`) are read and the result is zero-padded at the end if the file
    is shorter, so its length is always round(duration * sample_rate).

    Arguments
    ---------
    path : str
        Audio file (any format soundfile reads: wav, flac, ogg, mp3).
    sample_rate : int
        Sample rate of the returned signal.
    duration : float, optional
        Clip length in seconds; None keeps the whole file.
    offset : float
        Seconds to skip at the start of the file.
    pad : bool
        Zero-pad a shorter file to ``duration``; False only crops (the
        batch's padding then tells the model each clip's true length).

    Returns
    -------
    torch.Tensor
        1-D float32 signal.

    Raises
    ------
    AudioLoadError
        If the file is missing, unreadable, empty or has NaN/Inf samples.

    Example
    -------
    >>> import soundfile as sf
    >>> path = str(getfixture("tmp_path") / "stereo.wav")
    >>> sf.write(path, torch.rand(44100, 2).numpy() - 0.5, 44100)
    >>> load_audio(path, sample_rate=16000).shape
    torch.Size([16000])
    >>> load_audio(path, sample_rate=16000, duration=2.0).shape
    torch.Size([32000])
    >>> load_audio(path, sample_rate=16000, duration=2.0, pad=False).shape
    torch.Size([16000])
    """
    path = os.fspath(path)
    _check_file_exists(path)
    data, orig_rate = _read_segment(path, offset, duration)
    if data.shape[0] == 0:
        raise AudioLoadError(path, "no audio samples to read", "empty")
    wav = torch.from_numpy(data).mean(dim=1)
    if not torch.isfinite(wav).all():
        raise AudioLoadError(path, "samples contain NaN or Inf", "non_finite")
    if orig_rate != sample_rate:
        wav = get_resampler(orig_rate, sample_rate)(wav)
    if duration is not None:
        num_samples = int(round(duration * sample_rate))
        wav = fit_length(wav, num_samples) if pad else wav[:num_samples]
    return wav.contiguous()


def probe_audio(path, check_frames=1024):
    """Checks cheaply that a file holds readable audio and returns its info.

    Reads the header and the first `check_frames` frames, which catches
    missing, empty, unknown-format and corrupt files without decoding
    everything.

    Arguments
    ---------
    path : str
        Audio file.
    check_frames : int
        Number of frames to decode as a check.

    Returns
    -------
    AudioProbe
        A namedtuple (path, sample_rate, frames, channels, duration).

    Raises
    ------
    AudioLoadError
        If the file is missing, unreadable or empty.

    Example
    -------
    >>> import soundfile as sf
    >>> path = str(getfixture("tmp_path") / "probe.wav")
    >>> sf.write(path, torch.zeros(8000).numpy(), 16000)
    >>> probe_audio(path).duration
    0.5
    """
    path = os.fspath(path)
    _check_file_exists(path)
    try:
        with sf.SoundFile(path) as audio_file:
            head = audio_file.read(check_frames, dtype="float32")
            info = AudioProbe(
                path=path,
                sample_rate=audio_file.samplerate,
                frames=audio_file.frames,
                channels=audio_file.channels,
                duration=audio_file.frames / audio_file.samplerate,
            )
    except Exception as err:
        raise AudioLoadError(
            path, f"unreadable or corrupt audio ({err})", "unreadable"
        ) from err
    if info.frames <= 0 or len(head) == 0:
        raise AudioLoadError(path, "contains no audio samples", "empty")
    return info


def find_audio_files(folder, extensions=AUDIO_EXTENSIONS):
    """Lists every audio file under `folder`, at any depth, in sorted order.

    The folder is walked once (symbolic links followed); the extension test
    ignores case.

    Arguments
    ---------
    folder : str
        Root folder.
    extensions : tuple of str
        Accepted extensions, with the dot.

    Returns
    -------
    list of str
        Sorted file paths.

    Example
    -------
    >>> root = getfixture("tmp_path")
    >>> (root / "a" / "b").mkdir(parents=True)
    >>> _ = (root / "a" / "b" / "x.WAV").write_bytes(b"")
    >>> _ = (root / "a" / "notes.txt").write_text("hi")
    >>> [os.path.basename(p) for p in find_audio_files(str(root))]
    ['x.WAV']
    """
    extensions = tuple(ext.lower() for ext in extensions)
    found = []
    for dirpath, _, filenames in os.walk(folder, followlinks=True):
        for name in filenames:
            if name.lower().endswith(extensions):
                found.append(os.path.join(dirpath, name))
    return sorted(found)


class AudioReader:
    """Callable that loads one clip for a data pipeline (picklable).

    Arguments
    ---------
    sample_rate : int
        Output sample rate.
    duration : float, optional
        Clip length in seconds (crop or zero-pad); None keeps the file length.
    offset : float
        Seconds skipped at the start of each file.
    skip_bad : bool
        If True, a file that fails to load gives None and a warning instead
        of an exception; :class:`SkipBadCollate` then drops the item.
    pad : bool
        Zero-pad shorter files to ``duration`` (False: crop only).

    Example
    -------
    >>> reader = AudioReader(sample_rate=16000, duration=1.0)
    >>> reader("does/not/exist.wav") is None
    True
    """

    def __init__(
        self, sample_rate=16000, duration=None, offset=0.0, skip_bad=True, pad=True
    ):
        self.sample_rate = sample_rate
        self.duration = duration
        self.offset = offset
        self.skip_bad = skip_bad
        self.pad = pad

    def __call__(self, wav):
        """Loads `wav`; returns None for a bad file when skip_bad is set.

        Arguments
        ---------
        wav : str
            Path of the audio file.

        Returns
        -------
        torch.Tensor or None
            The 1-D signal, or None if it could not be loaded.
        """
        try:
            return load_audio(
                wav, self.sample_rate, self.duration, self.offset, self.pad
            )
        except AudioLoadError as err:
            if not self.skip_bad:
                raise
            logger.warning("Skipping a clip: %s", err)
            return None


def audio_pipeline(
    sample_rate=16000, duration=None, skip_bad=True, offset=0.0, pad=True
):
    """Makes the dynamic item that reads "wav" and provides "sig".

    Arguments
    ---------
    sample_rate : int
        Output sample rate.
    duration : float, optional
        Clip length in seconds; None keeps each file's length.
    skip_bad : bool
        If True, bad files give a None "sig" (dropped by SkipBadCollate)
        instead of raising AudioLoadError.
    offset : float
        Seconds skipped at the start of each file.
    pad : bool
        Zero-pad shorter files to ``duration`` (False: crop only, so that
        ``PaddedBatch``'s relative lengths give each clip's true length).

    Returns
    -------
    speechbrain.utils.data_pipeline.DynamicItem
        Add it to a DynamicItemDataset with `add_dynamic_item`.

    Example
    -------
    >>> import soundfile as sf
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> path = str(getfixture("tmp_path") / "one.wav")
    >>> sf.write(path, torch.zeros(22050).numpy(), 22050)
    >>> data = {"a": {"wav": path}, "b": {"wav": path + ".missing"}}
    >>> dataset = DynamicItemDataset(
    ...     data,
    ...     dynamic_items=[audio_pipeline(16000, duration=0.5)],
    ...     output_keys=["id", "sig"],
    ... )
    >>> dataset[0]["sig"].shape
    torch.Size([8000])
    >>> dataset[1]["sig"] is None
    True
    """
    reader = AudioReader(sample_rate, duration, offset, skip_bad, pad)
    return takes("wav")(provides("sig")(reader))


_COUNTER_SLOTS = 128


def _shared_counts():
    """Zero counts, one slot per process, in shared memory when possible."""
    counts = torch.zeros(_COUNTER_SLOTS, dtype=torch.int64)
    try:
        counts.share_memory_()
    except RuntimeError as err:  # no shared memory: counts stay per process
        logger.debug("Skipped-item counter is not shared: %s", err)
    return counts


def _process_slot():
    """Counter slot of this process: 0 in the main one, 1+ in loader workers."""
    worker = torch.utils.data.get_worker_info()
    if worker is None:
        return 0
    return 1 + worker.id % (_COUNTER_SLOTS - 1)


class SkipBadCollate:
    """Collate function that drops items with a None value, then pads.

    Items whose audio failed to load (see :func:`audio_pipeline`) are removed
    with a warning and counted; the others go through SpeechBrain's
    PaddedBatch. A batch made only of bad items gives None. The counts live
    in shared memory, one slot per DataLoader worker, so `n_skipped` read in
    the main process includes the items dropped by every worker (fork or
    spawn). Under DDP, each rank counts its own items.

    Arguments
    ---------
    **padded_batch_kwargs : dict
        Passed to speechbrain.dataio.batch.PaddedBatch.

    Example
    -------
    >>> collate = SkipBadCollate()
    >>> batch = collate(
    ...     [
    ...         {"id": "a", "sig": torch.ones(3)},
    ...         {"id": "b", "sig": None},
    ...         {"id": "c", "sig": torch.ones(2)},
    ...     ]
    ... )
    >>> batch.id, batch.sig.data.shape, collate.n_skipped
    (['a', 'c'], torch.Size([2, 3]), 1)
    >>> collate([{"id": "d", "sig": None}]) is None
    True
    """

    def __init__(self, **padded_batch_kwargs):
        self.padded_batch_kwargs = padded_batch_kwargs
        self._counts = _shared_counts()

    @property
    def n_skipped(self):
        """Number of items dropped so far (all worker processes)."""
        return int(self._counts.sum())

    def reset(self):
        """Sets the skipped-items counter back to zero."""
        self._counts.zero_()

    def __call__(self, examples):
        """Drops bad examples and collates the rest.

        Arguments
        ---------
        examples : list of dict
            Items from a DynamicItemDataset.

        Returns
        -------
        PaddedBatch or None
            The batch of good items, or None if there are none.
        """
        good = [ex for ex in examples if not _is_bad_example(ex)]
        n_bad = len(examples) - len(good)
        if n_bad:
            self._counts[_process_slot()] += n_bad
            bad_ids = [ex.get("id", "?") for ex in examples if _is_bad_example(ex)]
            logger.warning(
                "Dropped %d bad item(s) from a batch of %d: %s",
                n_bad,
                len(examples),
                ", ".join(str(i) for i in bad_ids),
            )
        if not good:
            return None
        return PaddedBatch(good, **self.padded_batch_kwargs)

    def __setstate__(self, state):
        """Restores a copy; a deep copy gets its own shared counter.

        Arguments
        ---------
        state : dict
            The pickled attributes.
        """
        self.__dict__.update(state)
        if not self._counts.is_shared():
            counts = _shared_counts()
            counts.copy_(self._counts)
            self._counts = counts


def _is_bad_example(example):
    """True if any value of the example is None (e.g. failed audio)."""
    return any(value is None for value in example.values())


collate_skip_bad = SkipBadCollate()
"""Default :class:`SkipBadCollate` instance, usable as `collate_fn`."""


def load_label_list(path):
    """Reads the labels.json written by the preparation scripts.

    Arguments
    ---------
    path : str
        A JSON list of {"index", "mid", "display_name"} dicts (AudioSet) or
        of category names (ESC-50).

    Returns
    -------
    list
        The list, in index order.

    Example
    -------
    >>> path = str(getfixture("tmp_path") / "labels.json")
    >>> write_json_atomic([{"index": 0, "mid": "/m/0a", "display_name": "A"}], path)
    >>> load_label_list(path)[0]["mid"]
    '/m/0a'
    """
    with open(path, encoding="utf-8") as fin:
        return json.load(fin)


class MultiHot:
    """Callable mapping a list of label ids (MIDs) to a multi-hot vector.

    Arguments
    ---------
    labels : list
        Label ids in index order, or the dicts of labels.json (their "mid"
        key is used).

    Example
    -------
    >>> encode = MultiHot(["/m/a", "/m/b", "/m/c"])
    >>> encode(["/m/c", "/m/a"]).tolist()
    [1.0, 0.0, 1.0]
    """

    def __init__(self, labels):
        ids = [lab["mid"] if isinstance(lab, dict) else lab for lab in labels]
        self.index = {label_id: i for i, label_id in enumerate(ids)}

    def __call__(self, labels):
        """Encodes `labels`; unknown ids raise KeyError.

        Arguments
        ---------
        labels : list of str
            The clip's label ids.

        Returns
        -------
        torch.Tensor
            Float multi-hot vector of length len(index).
        """
        target = torch.zeros(len(self.index))
        for label in labels:
            target[self.index[label]] = 1.0
        return target


def multi_hot_pipeline(label_file, input_key="labels", output_key="targets"):
    """Makes the dynamic item that turns a clip's MID list into a vector.

    Arguments
    ---------
    label_file : str
        labels.json written by prepare_audioset.
    input_key : str
        Manifest key holding the list of MIDs.
    output_key : str
        Name of the provided multi-hot tensor.

    Returns
    -------
    speechbrain.utils.data_pipeline.DynamicItem
        Add it to a DynamicItemDataset with `add_dynamic_item`.

    Example
    -------
    >>> path = str(getfixture("tmp_path") / "labels.json")
    >>> write_json_atomic(
    ...     [{"index": i, "mid": m, "display_name": m} for i, m in enumerate("xyz")],
    ...     path,
    ... )
    >>> item = multi_hot_pipeline(path)
    >>> item(["z"]).tolist()
    [0.0, 0.0, 1.0]
    """
    encoder = MultiHot(load_label_list(label_file))
    return takes(input_key)(provides(output_key)(encoder))


def manifest_audio_path(path):
    """Absolute path, with braces doubled, for a SpeechBrain JSON manifest.

    `DynamicItemDataset.from_json` runs `str.format_map` on every string
    value (for `{data_root}`-style replacements), so a literal brace in a
    file name must be written doubled to survive loading.

    Arguments
    ---------
    path : str
        An audio file path.

    Returns
    -------
    str
        The path to store in the manifest.

    Example
    -------
    >>> manifest_audio_path("/data/clip{1}.wav")
    '/data/clip{{1}}.wav'
    """
    return os.path.abspath(path).replace("{", "{{").replace("}", "}}")


def write_json_atomic(data, path, indent=2):
    """Writes `data` as JSON so that `path` is never left half-written.

    The JSON goes to a temporary file in the same folder, which then replaces
    `path` in one `os.replace` call.

    Arguments
    ---------
    data : object
        JSON-serialisable data.
    path : str
        Destination file; its folder is created if needed.
    indent : int
        JSON indentation.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> write_json_atomic({"a": 1}, str(folder / "sub" / "m.json"))
    >>> sorted(os.listdir(folder / "sub"))
    ['m.json']
    """
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    tmp_path = os.path.join(folder, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp_path, "x", encoding="utf-8") as fout:
            json.dump(data, fout, indent=indent, ensure_ascii=False)
            fout.write("\n")
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


#: Seconds between two progress lines of :func:`log_progress`.
PROGRESS_INTERVAL_S = 30.0


def log_progress(items, what, total=None, interval=None):
    """Yields `items`, logging the count, rate and time left every `interval` s.

    For long preparations (millions of rows or files): a line such as
    ``AudioSet unbalanced_train, files probed: 120000/2041789 (6.7%),
    4000/s, 8.0 min left`` every `interval` seconds, and a last line with
    the total and the time taken.

    Arguments
    ---------
    items : iterable
        What is being processed.
    what : str
        Names it in the log lines.
    total : int, optional
        Expected count (for the percentage and time left).
    interval : float, optional
        Seconds between lines; default :data:`PROGRESS_INTERVAL_S`.

    Yields
    ------
    object
        The items, unchanged.

    Example
    -------
    >>> list(log_progress(range(3), "demo rows", total=3))
    [0, 1, 2]
    """
    interval = PROGRESS_INTERVAL_S if interval is None else interval
    start = last = time.monotonic()
    count = 0
    for item in items:
        yield item
        count += 1
        now = time.monotonic()
        if now - last >= interval:
            last = now
            rate = count / max(now - start, 1e-9)
            if total:
                left = (total - count) / max(rate, 1e-9) / 60
                logger.info(
                    "%s: %d/%d (%.1f%%), %.0f/s, %.1f min left",
                    what,
                    count,
                    total,
                    100 * count / total,
                    rate,
                    left,
                )
            else:
                logger.info("%s: %d, %.0f/s", what, count, rate)
    logger.info("%s: %d in %.1f s", what, count, time.monotonic() - start)


class PreparationSummary:
    """Counts what a preparation script wrote and what it skipped, and why.

    Arguments
    ---------
    name : str
        Name shown in the log (e.g. "AudioSet").

    Example
    -------
    >>> summary = PreparationSummary("demo")
    >>> summary.add_written("train", 3)
    >>> summary.skip("train", "clip1", "missing_audio", "x.wav not found")
    >>> summary.to_dict()["skipped"]
    {'missing_audio': 1}
    >>> summary.n_skipped("missing_audio")
    1
    """

    def __init__(self, name):
        self.name = name
        self.written = {}
        self.skipped = Counter()
        self.skipped_items = []
        self.notes = Counter()

    def add_written(self, split, count):
        """Records that `count` items were written to manifest `split`.

        Arguments
        ---------
        split : str
            Manifest name.
        count : int
            Number of items.
        """
        self.written[split] = self.written.get(split, 0) + count

    def skip(self, split, item_id, reason, detail=""):
        """Records one skipped item.

        Arguments
        ---------
        split : str
            Where the item came from.
        item_id : str
            Its id (or the CSV line number for a malformed row).
        reason : str
            A short tag, e.g. "missing_audio".
        detail : str
            Free text, e.g. the file path or the error.
        """
        self.skipped[reason] += 1
        self.skipped_items.append(
            {"split": split, "id": item_id, "reason": reason, "detail": detail}
        )

    def note(self, what, count=1):
        """Counts something that was fixed rather than skipped.

        Arguments
        ---------
        what : str
            A short tag, e.g. "unknown_labels_dropped".
        count : int
            How many.
        """
        self.notes[what] += count

    def n_skipped(self, reason=None):
        """Number of skipped items, for one reason or in total.

        Arguments
        ---------
        reason : str, optional
            The reason tag; None counts all.

        Returns
        -------
        int
            The count.
        """
        if reason is None:
            return sum(self.skipped.values())
        return self.skipped[reason]

    def to_dict(self):
        """Returns the summary as plain JSON-friendly data.

        Returns
        -------
        dict
            Keys "written", "skipped", "notes", "skipped_items".
        """
        return {
            "written": dict(self.written),
            "skipped": dict(self.skipped),
            "notes": dict(self.notes),
            "skipped_items": list(self.skipped_items),
        }

    def save(self, path):
        """Writes the summary to `path` (atomically) and logs it.

        Arguments
        ---------
        path : str
            Destination JSON file.
        """
        write_json_atomic(self.to_dict(), path)
        logger.info(
            "%s preparation: written %s; skipped %s (%s); details in %s",
            self.name,
            dict(self.written),
            self.n_skipped(),
            dict(self.skipped) or "none",
            path,
        )
        for what, count in sorted(self.notes.items()):
            logger.info("%s preparation: %s: %d", self.name, what, count)


def is_prepared(options_file, options, outputs):
    """True if a previous preparation with the same options completed.

    Arguments
    ---------
    options_file : str
        JSON file written by :func:`mark_prepared` at the end of a run.
    options : dict
        The options of the current run (JSON-serialisable).
    outputs : list of str
        Files the preparation must have produced.

    Returns
    -------
    bool
        False if any output is missing or the options differ.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> out = str(folder / "train.json")
    >>> write_json_atomic({}, out)
    >>> mark_prepared(str(folder / "opts.json"), {"a": 1})
    >>> is_prepared(str(folder / "opts.json"), {"a": 1}, [out])
    True
    >>> is_prepared(str(folder / "opts.json"), {"a": 2}, [out])
    False
    """
    if not all(os.path.isfile(out) for out in [options_file, *outputs]):
        return False
    try:
        with open(options_file, encoding="utf-8") as fin:
            saved = json.load(fin)
    except (OSError, ValueError):
        return False
    return saved == json.loads(json.dumps(options))


def mark_prepared(options_file, options):
    """Records the options of a completed preparation (see is_prepared).

    Arguments
    ---------
    options_file : str
        Destination JSON file.
    options : dict
        The run's options.

    Example
    -------
    >>> path = getfixture("tmp_path") / "opts.json"
    >>> mark_prepared(str(path), {"splits": ["eval"]})
    >>> path.read_text().count("eval")
    1
    """
    write_json_atomic(options, options_file)


def clear_prepared(options_file):
    """Removes the options record, so an interrupted run is redone.

    Arguments
    ---------
    options_file : str
        The file written by mark_prepared (may not exist).

    Example
    -------
    >>> path = getfixture("tmp_path") / "opts.json"
    >>> mark_prepared(str(path), {})
    >>> clear_prepared(str(path))
    >>> path.exists()
    False
    """
    if os.path.exists(options_file):
        os.remove(options_file)
