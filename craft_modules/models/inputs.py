"""Checks on the one model input of this project: a padded waveform batch.

Every model of the project is called as ``model(wavs, lens)`` with ``wavs`` a
padded ``(batch, samples)`` float tensor of 16 kHz mono audio and ``lens`` the
relative lengths in [0, 1] (SpeechBrain's convention). The check below turns
malformed input into a ``ValueError`` that names the problem, instead of a
shape error deep inside a convolution or a silent NaN loss.

A model checks its input once per call of a public entry point
(``forward``, ``forward_features``, ``time_embeddings``...; ``forward`` goes
through ``forward_features`` and does not check again); its submodules
(fbank, MSAE, CLAR's front end, feature streams, augmentations) trust their
caller. Shape and dtype checks are free; the value checks (lengths, NaN)
read tensor values, so on an accelerator they are asserted on the device
without a host sync.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import torch


def check_waveform_batch(wavs, lens=None, check_finite=True, on_host=None):
    """Validates a padded waveform batch and returns its relative lengths.

    Arguments
    ---------
    wavs : torch.Tensor
        Padded waveforms, shape ``(batch, samples)``, floating point.
    lens : torch.Tensor, optional
        Relative lengths in [0, 1], shape ``(batch,)``. ``None`` means every
        clip fills the whole batch.
    check_finite : bool
        Whether to reject NaN and Inf samples (one reduction over the batch).
    on_host : bool, optional
        Check the values on the host, with messages naming the clips
        (``None``: for CPU tensors; on an accelerator they are asserted on
        the device, without a sync).

    Returns
    -------
    lens : torch.Tensor
        The relative lengths as a float tensor on the device of ``wavs``.

    Raises
    ------
    ValueError
        If the rank, dtype, lengths or values are not valid.

    Example
    -------
    >>> check_waveform_batch(torch.zeros(2, 16000), torch.tensor([1.0, 0.5]))
    tensor([1.0000, 0.5000])
    >>> check_waveform_batch(torch.zeros(16000))
    Traceback (most recent call last):
        ...
    ValueError: wavs must have shape (batch, samples), got torch.Size([16000])
    """
    if not isinstance(wavs, torch.Tensor):
        raise ValueError(f"wavs must be a torch.Tensor, got {type(wavs).__name__}")
    if wavs.dim() != 2:
        raise ValueError(f"wavs must have shape (batch, samples), got {wavs.shape}")
    if not wavs.is_floating_point():
        raise ValueError(
            f"wavs must be a floating point tensor in [-1, 1], got {wavs.dtype}"
        )
    batch, samples = wavs.shape
    if batch == 0 or samples == 0:
        raise ValueError(f"wavs is empty: shape {tuple(wavs.shape)}")
    if lens is None:
        lens = torch.ones(batch, device=wavs.device)
    if not isinstance(lens, torch.Tensor):
        lens = torch.as_tensor(lens)
    lens = lens.to(device=wavs.device, dtype=torch.float32)
    if lens.dim() != 1 or lens.shape[0] != batch:
        raise ValueError(
            f"lens must have shape ({batch},) to match wavs {tuple(wavs.shape)}, "
            f"got {tuple(lens.shape)}"
        )
    if on_host or (on_host is None and _values_checked_on_host(wavs)):
        _check_values(wavs, lens, check_finite)
    else:
        # On accelerators, reading a check's result would stall the step on a
        # host-device sync: the device asserts it asynchronously instead.
        n_samples = torch.round(lens * samples)
        ok = ((lens >= 0) & (lens <= 1 + 1e-4) & (n_samples >= 1)).all()
        if check_finite:
            ok = ok & torch.isfinite(wavs).all()
        torch._assert_async(
            ok,
            "invalid waveform batch: relative lengths must be in (0, 1] and "
            "samples finite (run on the CPU for the clip-level message)",
        )
    return lens.clamp(max=1.0)


def _values_checked_on_host(wavs):
    """CPU tensors are checked on the host (free, clip-level messages)."""
    return wavs.device.type == "cpu"


def _check_values(wavs, lens, check_finite):
    """The value checks of :func:`check_waveform_batch`, with messages naming the clips."""
    samples = wavs.shape[1]
    if bool(((lens < 0) | (lens > 1 + 1e-4) | ~torch.isfinite(lens)).any()):
        raise ValueError(
            f"lens must be relative lengths in [0, 1], got {lens.tolist()}"
        )
    n_samples = torch.round(lens * samples)
    if bool((n_samples < 1).any()):
        empty = torch.nonzero(n_samples < 1).flatten().tolist()
        raise ValueError(f"clip(s) {empty} of the batch have zero length")
    if check_finite and not bool(torch.isfinite(wavs).all()):
        bad = torch.nonzero(~torch.isfinite(wavs).all(dim=1)).flatten().tolist()
        raise ValueError(f"clip(s) {bad} of the batch contain NaN or Inf samples")


def valid_samples(lens, samples):
    """Returns the number of valid samples of each clip.

    Arguments
    ---------
    lens : torch.Tensor
        Relative lengths, shape ``(batch,)``.
    samples : int
        The padded length of the batch.

    Returns
    -------
    torch.Tensor
        Integer sample counts, shape ``(batch,)``.

    Example
    -------
    >>> valid_samples(torch.tensor([1.0, 0.25]), 400)
    tensor([400, 100])
    """
    return torch.round(lens * samples).long().clamp(1, samples)
