"""Audio loading shared by all recipes, training and inference.

Every recipe reads its clips through :func:`load_audio`: the file is read
with soundfile, mixed down to mono, resampled to the recipe's sample rate and
cropped or zero-padded to a fixed clip length. Files soundfile cannot read
whose extension is one of :data:`~craft_modules.data.decoders.DECODER_EXTENSIONS`
(``.opus``, ``.m4a``, ``.webm``) are read through an optional decoder
(torchcodec or the ffmpeg executable, :mod:`craft_modules.data.decoders`).
Problems with a file (missing, unreadable, empty, NaN samples, no decoder for
its format) raise :class:`AudioLoadError` naming the file.

During training, :func:`audio_pipeline` turns such an error into a warning and
a ``None`` signal, and :class:`craft_modules.data.batching.SkipBadCollate`
drops those items from the batch (counting them), so one bad file never stops
a run hours in. The preparation scripts probe files with :func:`probe_audio`
and list folders with :func:`find_audio_files`.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import math
import os
from collections import namedtuple

import soundfile as sf
import torch
import torchaudio
from speechbrain.utils.data_pipeline import provides, takes
from speechbrain.utils.logger import get_logger

from craft_modules.data import decoders
from craft_modules.data.decoders import DECODER_EXTENSIONS, DECODER_HINT

logger = get_logger(__name__)

#: Extensions of the files the preparations list (soundfile's, then the decoders').
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3") + DECODER_EXTENSIONS

#: Preparation-summary reason of each :class:`AudioLoadError` reason.
SKIP_REASONS = {
    "missing": "missing_audio",
    "unreadable": "unreadable_audio",
    "empty": "empty_audio",
    "non_finite": "unreadable_audio",
    "needs_decoder": "needs_decoder",
}

#: What fixes a skip reason, written once into the preparation summary.
SKIP_HINTS = {
    "needs_decoder": "these files need a decoder for their format: " + DECODER_HINT
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
        A short machine-readable tag: "missing", "unreadable", "empty",
        "non_finite" or "needs_decoder".

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


def _needs_decoder(path):
    """True if soundfile's failure on ``path`` may be a format only a decoder reads."""
    return path.lower().endswith(DECODER_EXTENSIONS)


def _decoder_for(path, soundfile_error):
    """The available decoder, else AudioLoadError("needs_decoder") naming the extra."""
    decoder = decoders.find_decoder()
    if decoder is None:
        extension = os.path.splitext(path)[1].lower()
        raise AudioLoadError(
            path,
            f"soundfile cannot read it ({soundfile_error}); it needs a decoder "
            f"for {extension}: {DECODER_HINT}",
            "needs_decoder",
        ) from soundfile_error
    return decoder


def _decode_segment(path, offset, duration, soundfile_error):
    """_read_segment through the optional decoder (see :mod:`craft_modules.data.decoders`)."""
    decoder = _decoder_for(path, soundfile_error)
    try:
        return decoder.read(path, offset, duration)
    except Exception as err:
        raise AudioLoadError(
            path, f"unreadable or corrupt audio ({decoder.name}: {err})", "unreadable"
        ) from err


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
        if _needs_decoder(path):
            return _decode_segment(path, offset, duration, err)
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


def resample(wav, orig_rate, new_rate):
    """Resamples a signal with the cached resampler, on one CPU thread.

    One clip is a small convolution: spreading it over several intra-op
    threads costs more in synchronisation than it saves, and on a busy machine
    (a data loader in the training process, ``num_workers: 0``) it was measured
    at 36 ms per 1 s clip with 2 threads against 0.5 ms with one. The caller's
    thread count is restored afterwards.

    Arguments
    ---------
    wav : torch.Tensor
        The signal, ``(..., samples)``.
    orig_rate : int
        Its sample rate.
    new_rate : int
        The sample rate wanted.

    Returns
    -------
    torch.Tensor
        The resampled signal.

    Example
    -------
    >>> resample(torch.zeros(8000), 8000, 16000).shape
    torch.Size([16000])
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return get_resampler(orig_rate, new_rate)(wav)
    finally:
        torch.set_num_threads(threads)


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
        Audio file: any format soundfile reads (wav, flac, ogg, mp3), or
        ``.opus``/``.m4a``/``.webm`` through an optional decoder.
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
        If the file is missing, unreadable, empty or has NaN/Inf samples,
        or needs a decoder that is not installed (reason "needs_decoder").

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
        wav = resample(wav, orig_rate, sample_rate)
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
        if not _needs_decoder(path):
            raise AudioLoadError(
                path, f"unreadable or corrupt audio ({err})", "unreadable"
            ) from err
        info, head = _decode_probe(path, check_frames, err)
    if info.frames <= 0 or len(head) == 0:
        raise AudioLoadError(path, "contains no audio samples", "empty")
    return info


def _decode_probe(path, check_frames, soundfile_error):
    """probe_audio through the optional decoder: (AudioProbe, first frames)."""
    decoder = _decoder_for(path, soundfile_error)
    try:
        rate, frames, channels = decoder.info(path)
        head, _ = decoder.read(path, 0.0, check_frames / rate)
    except Exception as err:
        raise AudioLoadError(
            path, f"unreadable or corrupt audio ({decoder.name}: {err})", "unreadable"
        ) from err
    info = AudioProbe(path, rate, frames, channels, frames / rate if rate else 0.0)
    return info, head


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


def locate_audio(folder, filename):
    """``folder/filename``, or the same name with another audio extension if only that exists.

    A dataset's metadata names ``<id>.wav``; a copy downloaded or converted
    as ``<id>.opus`` or ``<id>.flac`` is found in its place. When no such
    file exists the named path is returned (and reported missing).

    Arguments
    ---------
    folder : str
        The audio folder.
    filename : str
        The file name the metadata gives.

    Returns
    -------
    str
        The path to read.

    Example
    -------
    >>> root = getfixture("tmp_path")
    >>> _ = (root / "clip.opus").write_bytes(b"x")
    >>> os.path.basename(locate_audio(str(root), "clip.wav"))
    'clip.opus'
    >>> os.path.basename(locate_audio(str(root), "other.wav"))
    'other.wav'
    """
    path = os.path.join(folder, filename)
    if os.path.exists(path):
        return path
    stem = os.path.splitext(path)[0]
    for extension in AUDIO_EXTENSIONS:
        if os.path.exists(stem + extension):
            return stem + extension
    return path


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
