"""Feature streams of the diverse-embedding model (Verma, arXiv 2309.08751).

Each stream turns a padded ``(batch, samples)`` batch of 16 kHz waveforms into
a sequence of frames ``(batch, frames, feature_dim)``, computed batched with
tensor operations on the input's device:

- :class:`PitchPeaks` (``"pitch"``): binary maps of the k strongest spectral
  peaks of a high-resolution (4096-point) magnitude spectrum, per 10 ms frame.
- :class:`Timbre` (``"timbre"``): 12 MFCCs per 10 ms frame (c1..c12).
- :class:`WaveformPatches` (``"waveform"``): the raw waveform cut into 25 ms
  patches; the learned projection lives in the stream transformer.
- :class:`Neuralogram` (``"neuralogram"``): a small MobileNet-style CNN
  (depthwise-separable convolutions) on 0.25 s log-mel windows, one learned
  embedding per window; trainable, optionally initialised from a local file.

The signal processing (STFT, mel, log, DCT) always runs in full float32
(:func:`craft_modules.features.full_fp32.full_fp32`: no autocast, no TF32 on
CUDA), so ``--precision=bf16`` only affects the learned layers.

The paper's exact settings (peak picking, patch size, which MobileNet) were
not given in the paper; the values here
are documented defaults. Every stream has the attributes ``feature_dim`` and
``sample_rate`` and the method ``num_frames(samples)``: the number of frames
a clip of that many samples gives, which :class:`craft_modules.models.diverse.
StreamTransformer` uses to pool over the frames of a clip's true length only.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import torch
import torchaudio
from torch import nn

from craft_modules.features.full_fp32 import full_fp32


def _ms_to_samples(ms, sample_rate):
    """Rounds a duration in milliseconds to a positive number of samples."""
    samples = int(round(float(ms) * sample_rate / 1000.0))
    if samples < 1:
        raise ValueError(f"{ms} ms is less than one sample at {sample_rate} Hz")
    return samples


def _ceil_div(a, b):
    """Ceiling division for ints or integer tensors (``b`` positive)."""
    return -((-a) // b)


def _stft_frames(samples, hop_length):
    """Frames of a centred STFT: ``1 + samples // hop`` (int or tensor)."""
    return 1 + samples // hop_length


class PitchPeaks(nn.Module):
    """Binary spectral-peak maps: the ``top_k`` strongest peaks of each frame.

    The magnitude spectrum of each frame (Hann window of ``n_fft`` samples,
    4096 = 256 ms at 16 kHz, i.e. 3.9 Hz bins; hop ``hop_ms``; centred frames
    with zero padding) is searched for local maxima: bins strictly larger
    than the bin below and at least as large as the bin above, within the
    kept frequency range. Of these, the ``top_k`` largest (fewer if the frame
    has fewer peaks, e.g. none in digital silence) are set to 1, every other
    bin to 0. Peaks more than ``floor_db`` below the frame's largest
    magnitude are ignored, so that low-level noise does not fill the map.

    Only bins with frequency in ``[f_min, f_max]`` are searched and returned:
    output bin ``i`` is FFT bin ``first_bin + i``, at frequency
    ``(first_bin + i) * sample_rate / n_fft`` Hz (see :attr:`frequencies`).
    The default range 0-4 kHz holds the fundamentals and lower partials of
    most pitched sounds and keeps the map at 1025 bins.

    Arguments
    ---------
    sample_rate : int
        Sample rate of the input.
    n_fft : int
        FFT size and window length (high frequency resolution).
    hop_ms : float
        Hop between frames in milliseconds.
    top_k : int
        Number of peaks kept per frame.
    f_min : float
        Lowest kept frequency in Hz.
    f_max : float, optional
        Highest kept frequency in Hz; None means Nyquist.
    floor_db : float, optional
        Peaks this many dB below the frame maximum are dropped; None keeps
        all peaks.

    Example
    -------
    >>> peaks = PitchPeaks(top_k=3)
    >>> t = torch.arange(16000) / 16000
    >>> out = peaks(torch.sin(2 * torch.pi * 500 * t)[None])
    >>> out.shape, peaks.feature_dim
    (torch.Size([1, 101, 1025]), 1025)
    >>> float(peaks.frequencies[out[0, 50].argmax()])
    500.0
    """

    def __init__(
        self,
        sample_rate=16000,
        n_fft=4096,
        hop_ms=10.0,
        top_k=5,
        f_min=0.0,
        f_max=4000.0,
        floor_db=80.0,
    ):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = _ms_to_samples(hop_ms, self.sample_rate)
        self.top_k = int(top_k)
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        nyquist = self.sample_rate / 2
        f_max = nyquist if f_max is None else min(float(f_max), nyquist)
        if not 0 <= f_min < f_max:
            raise ValueError(f"need 0 <= f_min < f_max, got {f_min} and {f_max}")
        bin_hz = self.sample_rate / self.n_fft
        self.first_bin = int(_ceil_div(f_min, bin_hz)) if f_min > 0 else 0
        self.last_bin = int(f_max // bin_hz)
        self.feature_dim = self.last_bin - self.first_bin + 1
        self.floor_db = None if floor_db is None else float(floor_db)
        window = torch.hann_window(self.n_fft)
        self.register_buffer("window", window, persistent=False)
        freqs = torch.arange(self.first_bin, self.last_bin + 1) * bin_hz
        self.register_buffer("frequencies", freqs, persistent=False)

    def num_frames(self, samples):
        """Number of frames for ``samples`` input samples (int or tensor)."""
        return _stft_frames(samples, self.hop_length)

    def magnitude(self, wavs):
        """Magnitude spectrogram ``(batch, frames, n_fft // 2 + 1)``."""
        with full_fp32(wavs.device):
            spec = torch.stft(
                wavs.float(),
                self.n_fft,
                hop_length=self.hop_length,
                window=self.window,
                center=True,
                pad_mode="constant",
                return_complex=True,
            )
            return spec.abs().transpose(1, 2)

    def forward(self, wavs):
        """Computes the binary peak maps.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)``.

        Returns
        -------
        torch.Tensor
            ``(batch, frames, feature_dim)`` of 0.0 and 1.0.
        """
        mag = self.magnitude(wavs)
        # Neighbours outside the spectrum count as -1, so edge bins can peak.
        padded = nn.functional.pad(mag, (1, 1), value=-1.0)
        centre = mag[..., self.first_bin : self.last_bin + 1]
        below = padded[..., self.first_bin : self.last_bin + 1]
        above = padded[..., self.first_bin + 2 : self.last_bin + 3]
        is_peak = (centre > below) & (centre >= above) & (centre > 0)
        if self.floor_db is not None:
            floor = mag.amax(dim=-1, keepdim=True) * 10 ** (-self.floor_db / 20)
            is_peak &= centre > floor
        strength = torch.where(is_peak, centre, torch.zeros_like(centre))
        k = min(self.top_k, self.feature_dim)
        values, indices = strength.topk(k, dim=-1)
        out = torch.zeros_like(centre)
        return out.scatter_(-1, indices, (values > 0).to(out.dtype))


class Timbre(nn.Module):
    """MFCCs per frame, computed with ``torchaudio.transforms.MFCC``.

    Log-mel energies (natural log of the mel power plus 1e-6: torchaudio's
    ``log_mels=True``, a per-frame function with no clip-level clamping) of
    25 ms Hann windows every 10 ms, ``n_mels`` triangular HTK mel filters,
    then an orthonormal DCT-II. By default the energy-like coefficient c0 is
    dropped and c1..c12 are kept (``drop_c0=True``: the spectral shape,
    independent of loudness); with ``drop_c0=False`` c0..c11 are kept.

    Arguments
    ---------
    n_mfcc : int
        Number of coefficients returned (12 in the paper).
    sample_rate : int
        Sample rate of the input.
    drop_c0 : bool
        Whether to drop c0 (returning c1..c_n_mfcc) or keep it.
    n_mels : int
        Number of mel filters.
    win_ms : float
        Window length in milliseconds.
    hop_ms : float
        Hop in milliseconds.
    f_min : float
        Lowest mel filter edge in Hz.
    f_max : float, optional
        Highest mel filter edge in Hz; None means Nyquist.

    Example
    -------
    >>> timbre = Timbre()
    >>> timbre(torch.randn(2, 16000)).shape
    torch.Size([2, 101, 12])
    """

    def __init__(
        self,
        n_mfcc=12,
        sample_rate=16000,
        drop_c0=True,
        n_mels=40,
        win_ms=25.0,
        hop_ms=10.0,
        f_min=0.0,
        f_max=None,
    ):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.n_mfcc = int(n_mfcc)
        self.drop_c0 = bool(drop_c0)
        if self.n_mfcc < 1:
            raise ValueError(f"n_mfcc must be >= 1, got {n_mfcc}")
        n_coefficients = self.n_mfcc + int(self.drop_c0)
        if n_coefficients > n_mels:
            raise ValueError(
                f"{n_coefficients} coefficients need n_mels >= {n_coefficients}, "
                f"got {n_mels}"
            )
        win_length = _ms_to_samples(win_ms, self.sample_rate)
        self.hop_length = _ms_to_samples(hop_ms, self.sample_rate)
        self.melkwargs = {
            "n_fft": 1 << (win_length - 1).bit_length(),
            "win_length": win_length,
            "hop_length": self.hop_length,
            "n_mels": int(n_mels),
            "f_min": float(f_min),
            "f_max": f_max,
            "center": True,
            "pad_mode": "constant",
        }
        self.mfcc = torchaudio.transforms.MFCC(
            sample_rate=self.sample_rate,
            n_mfcc=n_coefficients,
            log_mels=True,
            melkwargs=self.melkwargs,
        )
        self.feature_dim = self.n_mfcc

    def num_frames(self, samples):
        """Number of frames for ``samples`` input samples (int or tensor)."""
        return _stft_frames(samples, self.hop_length)

    def forward(self, wavs):
        """Computes the MFCCs.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)``.

        Returns
        -------
        torch.Tensor
            ``(batch, frames, n_mfcc)``.
        """
        with full_fp32(wavs.device):
            coefficients = self.mfcc(wavs.float()).transpose(1, 2)
        return coefficients[..., int(self.drop_c0) :]


class WaveformPatches(nn.Module):
    """The raw waveform cut into patches of ``patch_ms`` (25 ms) every ``hop_ms``.

    The end of the signal is zero-padded so that every sample falls in a
    patch: ``frames = 1 + ceil((samples - patch) / hop)`` (at least 1). With
    the default ``hop_ms=None`` the patches do not overlap (hop = patch), as
    in Verma & Berger's Audio Transformers; a 1 s chunk gives 40 patches of
    400 samples.

    Arguments
    ---------
    sample_rate : int
        Sample rate of the input.
    patch_ms : float
        Patch length in milliseconds.
    hop_ms : float, optional
        Hop between patch starts in milliseconds; None means ``patch_ms``.

    Example
    -------
    >>> patches = WaveformPatches()
    >>> patches(torch.randn(2, 16000)).shape
    torch.Size([2, 40, 400])
    >>> patches.num_frames(16001)
    41
    """

    def __init__(self, sample_rate=16000, patch_ms=25.0, hop_ms=None):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.patch_length = _ms_to_samples(patch_ms, self.sample_rate)
        self.hop_length = (
            self.patch_length
            if hop_ms is None
            else _ms_to_samples(hop_ms, self.sample_rate)
        )
        self.feature_dim = self.patch_length

    def num_frames(self, samples):
        """Number of patches for ``samples`` input samples (int or tensor)."""
        if isinstance(samples, torch.Tensor):
            extra = (samples - self.patch_length).clamp(min=0)
        else:
            extra = max(0, samples - self.patch_length)
        return 1 + _ceil_div(extra, self.hop_length)

    def forward(self, wavs):
        """Cuts the patches.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)``.

        Returns
        -------
        torch.Tensor
            ``(batch, frames, patch_samples)``.
        """
        frames = self.num_frames(wavs.shape[1])
        needed = self.patch_length + (frames - 1) * self.hop_length
        wavs = nn.functional.pad(wavs.float(), (0, needed - wavs.shape[1]))
        return wavs.unfold(1, self.patch_length, self.hop_length)


class DepthwiseSeparable(nn.Module):
    """MobileNet block: depthwise 3x3 conv, BN, ReLU, pointwise 1x1 conv, BN, ReLU.

    Arguments
    ---------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    stride : int
        Stride of the depthwise convolution.

    Example
    -------
    >>> DepthwiseSeparable(8, 16, stride=2)(torch.randn(2, 8, 10, 10)).shape
    torch.Size([2, 16, 5, 5])
    """

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(
                in_channels,
                in_channels,
                3,
                stride=stride,
                padding=1,
                groups=in_channels,
                bias=False,
            ),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        """Runs the block on ``x`` ``(N, C, H, W)``."""
        return self.layers(x)


#: The log-mel value of silence, ``log(0 + 1e-6)`` in float32 (the padding value).
_LOG_MEL_SILENCE = float(torch.log(torch.tensor(1e-6)))


class Neuralogram(nn.Module):
    """A small MobileNet-style CNN on log-mel windows: one embedding per window.

    The clip's log-mel spectrogram (``n_mels`` HTK mel bands of 25 ms Hann
    windows every 10 ms, natural log of power + 1e-6) is cut into windows of
    ``window_frames`` frames (25 = 0.25 s) every ``window_hop_frames`` frames
    (10 = 0.1 s); the end is padded with silence so that every frame falls in
    a window. Each window goes through a stem convolution and four
    depthwise-separable blocks (MobileNet v1 style: channels ``width``,
    2, 4, 4 and 8 times ``width``, strides 1, 2, 1, 2), global average
    pooling and a linear layer to ``embedding_dim``. A 1 s chunk gives 9
    windows. The paper's neuralogram comes from a pretrained MobileNet; here
    the CNN is trained with the stream, or loaded after construction by
    :func:`craft_modules.weights.streams.load_neuralogram` (the recipes'
    ``neuralogram_checkpoint``).

    Arguments
    ---------
    sample_rate : int
        Sample rate of the input.
    n_mels : int
        Number of mel bands.
    win_ms : float
        Mel analysis window in milliseconds.
    hop_ms : float
        Mel hop in milliseconds.
    window_frames : int
        Mel frames per CNN window.
    window_hop_frames : int
        Mel frames between CNN window starts.
    embedding_dim : int
        Output dimension per window (``feature_dim``).
    width : int
        Channels of the stem convolution.
    f_min : float
        Lowest mel edge in Hz.
    f_max : float, optional
        Highest mel edge in Hz; None means Nyquist.
    freeze : bool
        If True, the CNN's parameters get no gradient and it stays in eval
        mode (its BatchNorm statistics are not updated).

    Example
    -------
    >>> neuralogram = Neuralogram(width=8, embedding_dim=32)
    >>> neuralogram(torch.randn(2, 16000)).shape
    torch.Size([2, 9, 32])
    """

    def __init__(
        self,
        sample_rate=16000,
        n_mels=64,
        win_ms=25.0,
        hop_ms=10.0,
        window_frames=25,
        window_hop_frames=10,
        embedding_dim=128,
        width=16,
        f_min=60.0,
        f_max=None,
        freeze=False,
    ):
        super().__init__()
        self.sample_rate = int(sample_rate)
        win_length = _ms_to_samples(win_ms, self.sample_rate)
        self.hop_length = _ms_to_samples(hop_ms, self.sample_rate)
        self.window_frames = int(window_frames)
        self.window_hop_frames = int(window_hop_frames)
        if self.window_frames < 1 or self.window_hop_frames < 1:
            raise ValueError(
                "window_frames and window_hop_frames must be >= 1, got "
                f"{window_frames} and {window_hop_frames}"
            )
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate,
            n_fft=1 << (win_length - 1).bit_length(),
            win_length=win_length,
            hop_length=self.hop_length,
            f_min=float(f_min),
            f_max=f_max,
            n_mels=int(n_mels),
            center=True,
            pad_mode="constant",
        )
        width = int(width)
        channels = [width, 2 * width, 4 * width, 4 * width, 8 * width]
        strides = [1, 2, 1, 2]
        self.cnn = nn.Sequential(
            nn.Conv2d(1, width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            *(
                DepthwiseSeparable(channels[i], channels[i + 1], strides[i])
                for i in range(len(strides))
            ),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels[-1], int(embedding_dim)),
        )
        self.feature_dim = int(embedding_dim)
        self.freeze = bool(freeze)
        if self.freeze:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode=True):
        """Sets the training mode; a frozen neuralogram stays in eval mode."""
        super().train(mode and not getattr(self, "freeze", False))
        return self

    def num_frames(self, samples):
        """Number of windows for ``samples`` input samples (int or tensor)."""
        mel_frames = _stft_frames(samples, self.hop_length)
        if isinstance(mel_frames, torch.Tensor):
            extra = (mel_frames - self.window_frames).clamp(min=0)
        else:
            extra = max(0, mel_frames - self.window_frames)
        return 1 + _ceil_div(extra, self.window_hop_frames)

    def log_mel(self, wavs):
        """Log-mel spectrogram ``(batch, frames, n_mels)``."""
        with full_fp32(wavs.device):
            return torch.log(self.mel(wavs.float()) + 1e-6).transpose(1, 2)

    def forward(self, wavs):
        """Embeds each log-mel window.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)``.

        Returns
        -------
        torch.Tensor
            ``(batch, windows, embedding_dim)``.
        """
        batch, samples = wavs.shape
        feats = self.log_mel(wavs)
        windows = self.num_frames(samples)
        needed = self.window_frames + (windows - 1) * self.window_hop_frames
        feats = nn.functional.pad(
            feats, (0, 0, 0, needed - feats.shape[1]), value=_LOG_MEL_SILENCE
        )
        # (batch, windows, n_mels, window_frames) -> (batch * windows, 1, T, F)
        tiles = feats.unfold(1, self.window_frames, self.window_hop_frames)
        tiles = tiles.transpose(2, 3).reshape(-1, 1, self.window_frames, feats.shape[2])
        return self.cnn(tiles).reshape(batch, windows, self.feature_dim)


#: Stream name -> feature class; each class takes ``sample_rate`` as a keyword.
STREAMS = {
    "pitch": PitchPeaks,
    "timbre": Timbre,
    "waveform": WaveformPatches,
    "neuralogram": Neuralogram,
}
