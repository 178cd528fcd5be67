"""Training precision: the ``auto`` default and losses computed in float32.

``precision: auto`` (every recipe's default) means bf16 autocast on CUDA
devices that support it, for training and evaluation, and fp32 elsewhere.
``--precision=fp32|fp16|bf16`` on the command line still overrides it;
``bf16`` on a CUDA device without bf16 (pre-Ampere) and ``fp16`` off CUDA
are errors naming the device.

Inside autocast, ``x.float()`` is not enough to compute a loss in float32:
the matmuls of an InfoNCE would still run in bf16. The losses of the project
therefore run under :func:`float32_losses`, which switches autocast off and
casts their inputs.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import torch

PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def device_supports_bf16(device):
    """True if ``device`` runs bf16 autocast natively (CUDA with bf16 support).

    Arguments
    ---------
    device : str or torch.device
        The training device.

    Returns
    -------
    bool

    Example
    -------
    >>> device_supports_bf16("cpu")
    False
    """
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    with torch.cuda.device(device):
        # Native bf16 only: by default torch also answers True for GPUs that
        # merely emulate it (compute capability < 8: V100, T4), slowly.
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))


def resolve_precision(precision, device):
    """The precision SpeechBrain should use for ``precision`` on ``device``.

    Arguments
    ---------
    precision : str
        ``auto``, ``fp32``, ``fp16`` or ``bf16``.
    device : str or torch.device
        The training device.

    Returns
    -------
    str
        ``fp32``, ``fp16`` or ``bf16``.

    Example
    -------
    >>> resolve_precision("auto", "cpu")
    'fp32'
    >>> resolve_precision("bf16", "cpu")  # CPU autocast has bf16 (slow without AMX)
    'bf16'
    >>> resolve_precision("half", "cpu")
    Traceback (most recent call last):
        ...
    ValueError: precision must be one of ('auto', 'fp32', 'fp16', 'bf16'), got 'half'
    """
    precision = str(precision).lower()
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    on_cuda = torch.device(device).type == "cuda"
    if precision == "auto":
        return "bf16" if on_cuda and device_supports_bf16(device) else "fp32"
    if precision == "bf16" and on_cuda and not device_supports_bf16(device):
        raise ValueError(
            f"precision=bf16 needs a CUDA device with bf16 support, but the device "
            f"is {device} (use --precision=fp32)"
        )
    if precision == "fp16" and torch.device(device).type != "cuda":
        raise ValueError(
            f"precision=fp16 needs a CUDA device, but the device is {device} "
            "(use --precision=fp32)"
        )
    return precision
