"""Signal processing in full float32 on every device: no autocast, no TF32.

The front ends (SSAST's filterbank, CLAR's spectrogram, the diverse streams)
run their STFTs, mel and DCT matrix products inside :func:`full_fp32`, so
``--precision=bf16`` only affects the learned layers and a GPU computes the
features a CPU computes. Autocast is turned off, and so is TF32 for CUDA
matrix products, which SpeechBrain enables globally: a DFT or a DCT computed
as a matrix product cancels large terms, and TF32's 10-bit mantissa would
leave a noise floor some 60-70 dB under the frame energy (weak bins and
their phase become noise, MFCCs move by about 1e-2).

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import contextlib

import torch


@contextlib.contextmanager
def _cuda_matmul_without_tf32():
    """TF32 off for CUDA matmuls, through whichever of torch's two APIs is in use.

    torch 2.9+ refuses to read the legacy ``allow_tf32`` once the newer
    ``fp32_precision`` has been set (and after reading the legacy flag
    SpeechBrain set, setting the newer one would break later legacy reads),
    so the flag in use is switched and restored.
    """
    matmul = torch.backends.cuda.matmul
    try:
        name, off, previous = "allow_tf32", False, matmul.allow_tf32
    except RuntimeError:  # the newer API is in use
        name, off, previous = "fp32_precision", "ieee", matmul.fp32_precision
    setattr(matmul, name, off)
    try:
        yield
    finally:
        setattr(matmul, name, previous)


@contextlib.contextmanager
def full_fp32(device):
    """Autocast off on ``device``'s type and, on CUDA, TF32 off for matmuls.

    Arguments
    ---------
    device : torch.device or str
        The device the features are computed on (e.g. ``wavs.device``).

    Example
    -------
    >>> with torch.autocast("cpu", dtype=torch.bfloat16):
    ...     with full_fp32("cpu"):
    ...         inner = (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    ...     outer = (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    >>> inner, outer
    (torch.float32, torch.bfloat16)
    """
    device = torch.device(device)
    if device.type == "cuda":
        tf32_off = _cuda_matmul_without_tf32()
    else:
        tf32_off = contextlib.nullcontext()
    with torch.autocast(device_type=device.type, enabled=False), tf32_off:
        yield
