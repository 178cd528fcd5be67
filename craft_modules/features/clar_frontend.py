"""CLAR's time-frequency input: log-magnitude STFT, STFT phase and log-mel.

:class:`ClarFrontEnd` computes the 3-channel input of CLAR's spectrogram model
(Al-Tahan & Mohsenzadeh, AISTATS 2021, Section 3.1) batched on the waveforms'
device.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import math

import torch
import torchaudio
from torch import nn
from torch.nn import functional as F

from craft_modules.features.full_fp32 import full_fp32


class ClarFrontEnd(nn.Module):
    """CLAR's 3-channel time-frequency input ``(batch, 3, n_bins, frames)``.

    The channels follow ``get_features`` of the official code (nnAudio
    ``STFT(freq_scale='log')`` and ``MelSpectrogram``, 40-8000 Hz):

    0. log-magnitude ``20 log10(max(|S|, amin))`` of the STFT evaluated at
       ``n_bins`` log-spaced frequencies ``f_k = f_min (f_max / f_min) **
       (k / n_bins)``, as nnAudio's log-frequency STFT does (a DFT with one
       kernel per frequency, not a resized linear spectrogram);
    1. the phase of that STFT, ``angle(sum_n x[n] w[n] exp(-2i pi f_k n / sr))``
       in ``[-pi, pi]``, with ``n`` counted from the start of each frame;
    2. log-mel ``10 log10(max(mel power, amin))`` with ``n_bins`` Slaney mel
       filters (librosa's default, used by nnAudio).

    The constant ``-20`` / ``-10`` dB offsets of the official
    ``amplitude_to_DB(..., db_multiplier=1)`` calls are left out (the first
    batch norm of the encoder absorbs them).

    Frames are centred (``center=True`` with reflect padding, as nnAudio and
    ``torch.stft``): ``frames = 1 + samples // hop`` for an even window. The
    window is a periodic Hann window of ``win_ms`` (the paper's 16 ms) or, when
    ``n_fft`` is given, of ``n_fft`` samples as in the official code (2048
    samples, 128 ms). With a short window the 128 log-spaced frequencies below
    a few hundred Hz are closer than the window's resolution (62.5 Hz for
    16 ms), so neighbouring rows of channels 0 and 1 are strongly correlated,
    as in the official features. For the mel channel each windowed frame is
    zero-padded to ``max(window, 2048)`` points before the FFT, so that every
    mel filter down to 40 Hz covers at least one FFT bin (with a 256-point
    FFT the lowest filters would be empty).

    Arguments
    ---------
    sample_rate : int
        Sample rate of the waveforms.
    n_bins : int
        Frequency bins of every channel (128 in CLAR).
    win_ms : float
        STFT window in milliseconds (16 in the paper); ignored when ``n_fft``
        is given.
    hop_ms : float
        STFT hop in milliseconds (8 in the paper and the code).
    n_fft : int, optional
        Window length in samples, overriding ``win_ms`` (2048 in the official
        code).
    f_min : float
        Lowest frequency (40 Hz in the official code).
    f_max : float, optional
        Highest frequency; ``sample_rate / 2`` (8000 Hz) by default.
    amin : float
        Floor of the magnitudes and mel powers before the log (1e-5 in the
        official code).

    Example
    -------
    >>> front_end = ClarFrontEnd()
    >>> feats = front_end(torch.randn(2, 4000))
    >>> feats.shape
    torch.Size([2, 3, 128, 32])
    >>> front_end.n_frames(4000)
    32
    """

    def __init__(
        self,
        sample_rate=16000,
        n_bins=128,
        win_ms=16.0,
        hop_ms=8.0,
        n_fft=None,
        f_min=40.0,
        f_max=None,
        amin=1e-5,
    ):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.n_bins = int(n_bins)
        if n_fft is not None:
            self.win_length = int(n_fft)
        else:
            self.win_length = int(round(float(win_ms) * self.sample_rate / 1000))
        self.hop_length = int(round(float(hop_ms) * self.sample_rate / 1000))
        if self.win_length < 2 or self.hop_length < 1 or self.n_bins < 1:
            raise ValueError(
                f"invalid front end: window {self.win_length} samples, hop "
                f"{self.hop_length} samples, {self.n_bins} bins"
            )
        self.f_min = float(f_min)
        self.f_max = float(f_max) if f_max is not None else self.sample_rate / 2
        if not 0 < self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(
                f"need 0 < f_min < f_max <= sample_rate / 2, got f_min={self.f_min}, "
                f"f_max={self.f_max}, sample_rate={self.sample_rate}"
            )
        self.amin = float(amin)
        self.mel_fft_size = max(self.win_length, 2048)

        window = torch.hann_window(self.win_length, dtype=torch.float64)
        steps = torch.arange(self.n_bins, dtype=torch.float64) / self.n_bins
        freqs = self.f_min * (self.f_max / self.f_min) ** steps
        angle = (
            2
            * math.pi
            * torch.arange(self.win_length, dtype=torch.float64)[:, None]
            * freqs[None, :]
            / self.sample_rate
        )
        # Real and imaginary parts of sum_n x[n] w[n] exp(-i angle[n, k]).
        kernel = torch.cat(
            [window[:, None] * torch.cos(angle), -window[:, None] * torch.sin(angle)],
            dim=1,
        )
        mel = torchaudio.functional.melscale_fbanks(
            self.mel_fft_size // 2 + 1,
            self.f_min,
            self.f_max,
            self.n_bins,
            self.sample_rate,
            norm="slaney",
            mel_scale="slaney",
        )
        self.register_buffer("frequencies", freqs.float(), persistent=False)
        self.register_buffer("window", window.float(), persistent=False)
        self.register_buffer("dft_kernel", kernel.float(), persistent=False)
        self.register_buffer("mel_filters", mel.float(), persistent=False)

    def n_frames(self, samples):
        """Number of frames computed for a clip of ``samples`` samples.

        Arguments
        ---------
        samples : int
            Clip length in samples.

        Returns
        -------
        int
            Number of STFT frames.

        Example
        -------
        >>> ClarFrontEnd().n_frames(16000)
        126
        """
        pad = self.win_length // 2
        return 1 + (samples + 2 * pad - self.win_length) // self.hop_length

    def forward(self, wavs):
        """Computes the 3-channel features of a batch.

        The input is not checked: :class:`craft_modules.models.clar.ClarModel`
        checks it (a batch of clips of at least ``win_length`` samples).

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)`` with at least one window of samples.

        Returns
        -------
        torch.Tensor
            Features ``(batch, 3, n_bins, frames)`` in float32: log-magnitude
            (dB), phase (radians), log-mel (dB).
        """
        with full_fp32(wavs.device):
            pad = self.win_length // 2
            padded = F.pad(wavs.float()[:, None, :], (pad, pad), mode="reflect")[:, 0]
            frames = padded.unfold(-1, self.win_length, self.hop_length)  # (B, T, W)
            dft = frames @ self.dft_kernel  # (B, T, 2 * n_bins)
            real, imag = dft[..., : self.n_bins], dft[..., self.n_bins :]
            magnitude = torch.sqrt(real.square() + imag.square())
            log_magnitude = 20 * torch.log10(magnitude.clamp(min=self.amin))
            phase = torch.atan2(imag, real)
            spectrum = torch.fft.rfft(frames * self.window, n=self.mel_fft_size)
            power = spectrum.real.square() + spectrum.imag.square()
            log_mel = 10 * torch.log10((power @ self.mel_filters).clamp(min=self.amin))
            feats = torch.stack([log_magnitude, phase, log_mel], dim=1)
        return feats.transpose(-1, -2)

    def extra_repr(self):
        """Summarises the settings for ``repr``.

        Returns
        -------
        str
            The main settings.

        Example
        -------
        >>> ClarFrontEnd().extra_repr()
        'sample_rate=16000, n_bins=128, win_length=256, hop_length=128, f_min=40.0, f_max=8000.0'
        """
        return (
            f"sample_rate={self.sample_rate}, n_bins={self.n_bins}, "
            f"win_length={self.win_length}, hop_length={self.hop_length}, "
            f"f_min={self.f_min}, f_max={self.f_max}"
        )
