"""Optional decoders for audio formats soundfile does not read (.m4a, .webm, ...).

soundfile (libsndfile) reads wav, flac, ogg (Vorbis and, with libsndfile
1.0.29 or later, Opus) and mp3. Audio downloaded from video sites is often
AAC in MP4 (``.m4a``) or Opus in Matroska (``.webm``), which it does not
read. :func:`craft_modules.data.audio.load_audio` and
:func:`~craft_modules.data.audio.probe_audio` hand those files
(:data:`DECODER_EXTENSIONS`) to the decoder :func:`find_decoder` returns:

* :class:`TorchCodecDecoder`: the ``torchcodec`` package (the
  ``formats`` extra, ``pip install 'craft-modules[formats]'``), which links
  the system's FFmpeg libraries;
* :class:`FFmpegDecoder`: the ``ffmpeg`` and ``ffprobe`` executables on
  ``PATH``, run as subprocesses that write 32-bit float PCM.

Both return the file's own sample rate and channels; mixing to mono and
resampling stay in :func:`~craft_modules.data.audio.load_audio`, so a clip
gives the same signal whichever decoder read it. The environment variable
``CRAFT_AUDIO_DECODER`` (``torchcodec``, ``ffmpeg`` or ``none``) picks one
instead of the first available. Without a decoder such files raise
:class:`~craft_modules.data.audio.AudioLoadError` with reason
``needs_decoder`` and :data:`DECODER_HINT` in the message, and the
preparations skip them under that reason.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import json
import os
import shutil
import subprocess

import numpy as np

#: Extensions read through a decoder when soundfile cannot read the file.
DECODER_EXTENSIONS = (".opus", ".m4a", ".webm")

#: What reads those files, for error messages and skip reports.
DECODER_HINT = "pip install 'craft-modules[formats]' (torchcodec) or install ffmpeg"

#: Environment variable that selects a decoder by name (or ``none``).
DECODER_ENV = "CRAFT_AUDIO_DECODER"


class DecoderError(RuntimeError):
    """A decoder could not read a file (the caller names the file)."""


class FFmpegDecoder:
    """Decodes with the ``ffmpeg``/``ffprobe`` executables (32-bit float PCM on a pipe).

    Arguments
    ---------
    ffmpeg : str
        The ``ffmpeg`` executable.
    ffprobe : str
        The ``ffprobe`` executable.

    Example
    -------
    >>> FFmpegDecoder("ffmpeg", "ffprobe").name
    'ffmpeg'
    """

    name = "ffmpeg"

    def __init__(self, ffmpeg, ffprobe):
        self.ffmpeg = ffmpeg
        self.ffprobe = ffprobe

    @classmethod
    def find(cls):
        """The decoder when both executables are on ``PATH``, else None."""
        ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
        return cls(ffmpeg, ffprobe) if ffmpeg and ffprobe else None

    def _run(self, command):
        result = subprocess.run(command, capture_output=True, check=False)
        if result.returncode != 0:
            message = result.stderr.decode("utf-8", "replace").strip()
            raise DecoderError(message.splitlines()[-1] if message else "failed")
        return result.stdout

    def info(self, path):
        """``(sample_rate, frames, channels)`` of the first audio stream."""
        out = self._run(
            [self.ffprobe, "-v", "error", "-select_streams", "a:0"]
            + ["-show_entries", "stream=sample_rate,channels,duration"]
            + ["-show_entries", "format=duration", "-of", "json", path]
        )
        probed = json.loads(out or b"{}")
        streams = probed.get("streams") or []
        if not streams:
            raise DecoderError("no audio stream")
        stream = streams[0]
        rate, channels = int(stream["sample_rate"]), int(stream["channels"])
        duration = stream.get("duration") or probed.get("format", {}).get("duration")
        try:
            frames = int(round(float(duration) * rate))
        except (TypeError, ValueError):
            frames = self.read(path, 0.0, None)[0].shape[0]
        return rate, frames, channels

    def read(self, path, offset, duration, rate=None, channels=None):
        """``(float32 array of shape (frames, channels), sample_rate)``.

        Arguments
        ---------
        path : str
            The file.
        offset : float
            Seconds skipped at the start.
        duration : float or None
            Seconds read (None: to the end).
        rate, channels : int, optional
            The file's, when already known (else read with ``ffprobe``).
        """
        if rate is None or channels is None:
            rate, _, channels = self.info(path)
        command = [self.ffmpeg, "-nostdin", "-v", "error"]
        if offset > 0:
            command += ["-ss", repr(float(offset))]
        command += ["-i", path, "-map", "0:a:0", "-vn"]
        if duration is not None:
            command += ["-t", repr(float(duration))]
        command += ["-f", "f32le", "-acodec", "pcm_f32le", "-ac", str(channels)]
        command += ["-ar", str(rate), "pipe:1"]
        data = np.frombuffer(self._run(command), dtype="<f4")
        return data.reshape(-1, channels).astype(np.float32), rate


class TorchCodecDecoder:
    """Decodes with ``torchcodec.decoders.AudioDecoder`` (the ``formats`` extra).

    Example
    -------
    >>> TorchCodecDecoder.name
    'torchcodec'
    """

    name = "torchcodec"

    def __init__(self, decoder_class):
        self.decoder_class = decoder_class

    @classmethod
    def find(cls):
        """The decoder when torchcodec and its FFmpeg libraries load, else None."""
        try:
            from torchcodec.decoders import AudioDecoder
        except Exception:  # not installed, or FFmpeg / torch mismatch
            return None
        return cls(AudioDecoder)

    def _open(self, path):
        try:
            return self.decoder_class(path)
        except Exception as err:
            raise DecoderError(str(err).strip().splitlines()[0]) from err

    def info(self, path):
        """``(sample_rate, frames, channels)`` of the best audio stream."""
        decoder = self._open(path)
        meta = decoder.metadata
        if meta.duration_seconds is None:
            frames = decoder.get_all_samples().data.shape[1]
        else:
            frames = int(round(meta.duration_seconds * meta.sample_rate))
        return int(meta.sample_rate), frames, int(meta.num_channels)

    def read(self, path, offset, duration, rate=None, channels=None):
        """``(float32 array of shape (frames, channels), sample_rate)`` (see :class:`FFmpegDecoder`)."""
        decoder = self._open(path)
        stop = None if duration is None else offset + duration
        try:
            samples = decoder.get_samples_played_in_range(offset, stop)
        except Exception as err:
            raise DecoderError(str(err).strip().splitlines()[0]) from err
        data = samples.data.numpy().T.astype(np.float32)
        return np.ascontiguousarray(data), int(samples.sample_rate)


#: The decoders :func:`find_decoder` tries, in order.
DECODERS = {"torchcodec": TorchCodecDecoder, "ffmpeg": FFmpegDecoder}

_FOUND = {}


def find_decoder():
    """The first available decoder (or the one ``CRAFT_AUDIO_DECODER`` names), else None.

    The answer is cached per setting of the environment variable.

    Returns
    -------
    TorchCodecDecoder, FFmpegDecoder or None
        An object with ``name``, ``info(path)`` and ``read(path, offset, duration)``.

    Example
    -------
    >>> os.environ[DECODER_ENV] = "none"
    >>> find_decoder() is None
    True
    >>> del os.environ[DECODER_ENV]
    """
    wanted = os.environ.get(DECODER_ENV, "").strip().lower()
    if wanted not in _FOUND:
        if wanted == "none":
            _FOUND[wanted] = None
        elif wanted:
            if wanted not in DECODERS:
                raise ValueError(
                    f"{DECODER_ENV}={wanted!r}: expected one of "
                    f"{sorted(DECODERS)} or 'none'"
                )
            _FOUND[wanted] = DECODERS[wanted].find()
        else:
            found = (decoder.find() for decoder in DECODERS.values())
            _FOUND[wanted] = next((d for d in found if d is not None), None)
    return _FOUND[wanted]
