"""SSAST-compatible log-mel filterbank features, computed batched on the device.

SSAST (and therefore every official SSAST/AST checkpoint and its normalisation
statistics) uses ``torchaudio.compliance.kaldi.fbank`` on one clip at a time:
128 mel bins, 25 ms Hann windows every 10 ms, 512-point FFT, pre-emphasis 0.97,
per-frame DC removal, no dither, natural log with a float32 epsilon floor,
after removing the clip's mean. The clip is then zero-padded (in the log-mel
domain) or cut to a fixed number of frames and normalised as
``(x - mean) / (2 * std)``: note the factor 2 of the official code.

:class:`KaldiFbank` reproduces exactly that for a padded batch in one pass of
tensor operations, so features are computed on the model's device instead of
per clip in the data loader. Frames past a clip's true length are zero in the
log-mel domain, as if the clip had been processed alone and padded.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import torch
from torchaudio.compliance.kaldi import get_mel_banks

from craft_modules.features.full_fp32 import full_fp32
from craft_modules.models.inputs import check_waveform_batch, valid_samples

#: Normalisation statistics of the official SSAST/AST recipes, ``(mean, std)``
#: of padded log-mel fbanks (``src/run.py`` of YuanGongND/ssast and YuanGongND/ast).
NORM_STATS = {
    "audioset": (-4.2677393, 4.5689974),
    "esc50": (-6.6268077, 5.358466),
    "speechcommands": (-6.845978, 5.5654526),
    "none": (0.0, 0.5),
}


def norm_stats(name):
    """Returns the ``(mean, std)`` normalisation statistics of a dataset by name.

    Arguments
    ---------
    name : str, list or dict
        One of ``audioset``, ``esc50``, ``speechcommands`` or ``none`` (the
        identity normalisation); or the statistics themselves, ``[mean, std]``
        or ``{"mean": m, "std": s}`` (as computed by :func:`compute_norm_stats`
        for a dataset of one's own and recorded in a run's hyperparams.yaml).

    Returns
    -------
    tuple of float
        ``(mean, std)``.

    Example
    -------
    >>> norm_stats("esc50")
    (-6.6268077, 5.358466)
    >>> norm_stats({"mean": -5.0, "std": 4.0}), norm_stats([-5.0, 4.0])
    ((-5.0, 4.0), (-5.0, 4.0))
    """
    if isinstance(name, (list, tuple)):
        if len(name) != 2:
            raise ValueError(f"normalisation statistics {name!r} are not [mean, std]")
        return float(name[0]), float(name[1])
    if isinstance(name, dict):
        missing = {"mean", "std"} - set(name)
        if missing:
            raise ValueError(
                f"normalisation statistics {name!r} lack {sorted(missing)}"
            )
        return float(name["mean"]), float(name["std"])
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in NORM_STATS:
        raise ValueError(
            f"unknown normalisation statistics {name!r}; choose one of "
            f"{sorted(NORM_STATS)} or pass mean and std"
        )
    return NORM_STATS[key]


class KaldiFbank(torch.nn.Module):
    """Batched, SSAST-compatible kaldi log-mel fbank with padding and normalisation.

    Arguments
    ---------
    target_frames : int
        Number of output frames: shorter clips are zero-padded at the end (in
        the log-mel domain, before normalisation) and longer ones keep their
        first ``target_frames`` frames. 1024 for 10 s AudioSet clips, 512 for
        5 s ESC-50 clips.
    mean : float
        Mean of the padded log-mel features of the training data.
    std : float
        Standard deviation of the same; features become ``(x - mean) / (2 std)``.
    stats : str, list or dict, optional
        Name of published statistics (see :data:`NORM_STATS`) or the
        statistics, ``[mean, std]`` (see :func:`norm_stats`); overrides
        ``mean`` and ``std``.
    n_mels : int
        Number of mel bins (128 in SSAST).
    sample_rate : int
        Sample rate of the input waveforms.
    frame_length_ms : float
        Window length in milliseconds.
    frame_shift_ms : float
        Hop in milliseconds.
    low_freq : float
        Lowest mel filter edge in Hz.
    high_freq : float
        Highest mel filter edge in Hz; zero or negative counts from Nyquist.
    preemphasis : float
        Pre-emphasis coefficient.
    normalize : bool
        Whether to apply ``(x - mean) / (2 std)``.

    Example
    -------
    >>> fbank = KaldiFbank(target_frames=100, stats="audioset")
    >>> wavs = torch.randn(2, 16000) * 0.1
    >>> fbank(wavs, torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 100, 128])
    """

    def __init__(
        self,
        target_frames=1024,
        mean=-4.2677393,
        std=4.5689974,
        stats=None,
        n_mels=128,
        sample_rate=16000,
        frame_length_ms=25.0,
        frame_shift_ms=10.0,
        low_freq=20.0,
        high_freq=0.0,
        preemphasis=0.97,
        normalize=True,
    ):
        super().__init__()
        if stats is not None:
            mean, std = norm_stats(stats)
        if int(target_frames) < 1:
            raise ValueError(f"target_frames must be positive, got {target_frames}")
        if not std > 0:
            raise ValueError(f"std must be positive, got {std}")
        self.target_frames = int(target_frames)
        self.mean = float(mean)
        self.std = float(std)
        self.n_mels = int(n_mels)
        self.sample_rate = int(sample_rate)
        self.win_length = int(sample_rate * frame_length_ms / 1000)
        self.hop_length = int(sample_rate * frame_shift_ms / 1000)
        self.n_fft = 1 << (self.win_length - 1).bit_length()
        self.preemphasis = float(preemphasis)
        self.normalize = bool(normalize)
        banks, _ = get_mel_banks(
            n_mels,
            self.n_fft,
            float(sample_rate),
            low_freq,
            high_freq,
            100.0,
            -500.0,
            1.0,
        )
        banks = torch.nn.functional.pad(banks, (0, 1))  # the Nyquist bin
        self.register_buffer("mel_banks", banks.T.contiguous(), persistent=False)
        window = torch.hann_window(self.win_length, periodic=False, dtype=torch.float64)
        self.register_buffer("window", window.float(), persistent=False)

    @property
    def pad_value(self):
        """The value that padding (log-mel 0) takes after normalisation."""
        if not self.normalize:
            return 0.0
        return (0.0 - self.mean) / (2.0 * self.std)

    def num_frames(self, n_samples):
        """Number of complete frames of clips of ``n_samples`` samples (kaldi's snip_edges).

        Arguments
        ---------
        n_samples : torch.Tensor
            Integer sample counts.

        Returns
        -------
        torch.Tensor
            Frame counts, at most ``target_frames``.

        Example
        -------
        >>> KaldiFbank(target_frames=1024).num_frames(torch.tensor([160000, 80000, 100]))
        tensor([998, 498,   0])
        """
        frames = (
            torch.div(
                n_samples - self.win_length, self.hop_length, rounding_mode="floor"
            )
            + 1
        )
        return frames.clamp(min=0, max=self.target_frames)

    def samples_needed(self):
        """Number of input samples that the ``target_frames`` output frames cover."""
        return self.win_length + self.hop_length * (self.target_frames - 1)

    def forward(self, wavs, lens=None):
        """Computes normalised log-mel features of a padded batch.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms in [-1, 1], shape ``(batch, samples)``.
        lens : torch.Tensor, optional
            Relative lengths in [0, 1], shape ``(batch,)``.

        Returns
        -------
        torch.Tensor
            Features of shape ``(batch, target_frames, n_mels)``.
        """
        if lens is None:  # inputs are checked by the model's forward
            lens = torch.ones(wavs.shape[0], device=wavs.device)
        with full_fp32(wavs.device):
            logmel = self._log_mel(wavs.float(), lens)
            if self.normalize:
                logmel = (logmel - self.mean) / (2.0 * self.std)
        return logmel

    def _log_mel(self, wavs, lens):
        n_valid = valid_samples(lens, wavs.shape[1])
        wavs = remove_dc_offset(wavs, n_valid)[:, : self.samples_needed()]
        if wavs.shape[1] < self.win_length:
            wavs = torch.nn.functional.pad(wavs, (0, self.win_length - wavs.shape[1]))
        frames = wavs.unfold(1, self.win_length, self.hop_length)
        frames = frames - frames.mean(dim=-1, keepdim=True)
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = (frames - self.preemphasis * previous) * self.window
        spectrum = torch.fft.rfft(frames, n=self.n_fft)
        # |z|^2 without the square root of abs() (kaldi squares the magnitude).
        power = spectrum.real.square() + spectrum.imag.square()
        eps = torch.finfo(torch.float32).eps
        logmel = torch.matmul(power, self.mel_banks).clamp_min(eps).log()
        n_frames = self.num_frames(n_valid)
        frame_ok = (
            torch.arange(logmel.shape[1], device=wavs.device)[None, :]
            < n_frames[:, None]
        )
        logmel = logmel * frame_ok[..., None]
        missing = self.target_frames - logmel.shape[1]
        if missing > 0:
            logmel = torch.nn.functional.pad(logmel, (0, 0, 0, missing))
        return logmel[:, : self.target_frames]


def remove_dc_offset(wavs, n_valid):
    """Subtracts each clip's mean over its true samples and zeroes its padding.

    SSAST's dataloader removes the mean of every clip once, before the fbank.

    Arguments
    ---------
    wavs : torch.Tensor
        Padded waveforms, shape ``(batch, samples)``.
    n_valid : torch.Tensor
        Number of true samples of each clip, shape ``(batch,)``.

    Returns
    -------
    torch.Tensor
        The centred waveforms, zero past each clip's end.

    Example
    -------
    >>> remove_dc_offset(torch.tensor([[1.0, 3.0, 9.0]]), torch.tensor([2]))
    tensor([[-1.,  1.,  0.]])
    """
    inside = torch.arange(wavs.shape[1], device=wavs.device)[None, :] < n_valid[:, None]
    wavs = torch.where(inside, wavs, 0.0)
    dc = wavs.sum(dim=1, keepdim=True) / n_valid[:, None]
    return torch.where(inside, wavs - dc, 0.0)


@torch.no_grad()
def compute_norm_stats(batches, fbank):
    """Computes SSAST-style normalisation statistics of a dataset.

    Follows AST's ``get_norm_stats.py``: the mean of the per-batch means and the
    mean of the per-batch standard deviations of the *padded*, unnormalised
    log-mel features (so the statistics include the zero padding).

    Arguments
    ---------
    batches : iterable
        Yields ``(wavs, lens)`` pairs of padded waveform batches.
    fbank : KaldiFbank
        The feature extractor with the recipe's ``target_frames``; its own
        normalisation is bypassed.

    Returns
    -------
    tuple of float
        ``(mean, std)`` to pass to :class:`KaldiFbank`.

    Example
    -------
    >>> fbank = KaldiFbank(target_frames=50)
    >>> data = [(torch.randn(2, 8000) * 0.1, torch.ones(2)) for _ in range(3)]
    >>> mean, std = compute_norm_stats(data, fbank)
    >>> std > 0
    True
    """
    means, stds = [], []
    for wavs, lens in batches:
        lens = check_waveform_batch(wavs, lens)
        logmel = fbank._log_mel(wavs.float(), lens)
        means.append(logmel.mean().item())
        stds.append(logmel.std().item())
    if not means:
        raise ValueError("compute_norm_stats got no batches")
    return sum(means) / len(means), sum(stds) / len(stds)
