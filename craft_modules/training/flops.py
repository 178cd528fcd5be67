"""FLOPs of a training step: counted by ``torch.utils.flop_counter`` and the encoder's analytic count.

``FlopCounterMode`` has formulas for the CUDA attention kernels but not for
the CPU flash-attention kernel that ``scaled_dot_product_attention`` runs on
the CPU, so :func:`flop_counter` adds it: counts on either device agree. The
GPU check (``benchmarks/gpu_check.py``) divides them by a GPU's peak for its
MFU, and the CPU benchmark (``benchmarks/bench_core.py``) reports them per
step next to the official SSAST/AST code's, so step-time ratios can be read
against work ratios.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import torch


def analytic_encoder_flops(model, batch_size):
    """Matmul FLOPs of the encoder blocks in one training step (3 x forward).

    Per block and token, the qkv, output and MLP projections cost
    ``24 * D**2`` and attention ``4 * N * D`` (scores and weighted sum) in the
    forward pass; the backward pass costs twice the forward. Patch embeddings,
    the MSAE, the heads and the fbank are not counted, so a measured count is
    somewhat above this estimate.

    Arguments
    ---------
    model : CraftPretrainer or CraftClassifier
        The model (its method or fusion decides the passes).
    batch_size : int
        Clips per step.

    Returns
    -------
    int
        FLOPs.

    Example
    -------
    >>> from craft_modules.models.craft import CraftClassifier
    >>> model = CraftClassifier(3, fusion="ast", model_size="tiny", depth=1, target_frames=128)
    >>> analytic_encoder_flops(model, 1) == 3 * 146 * (24 * 192**2 + 4 * 146 * 192)
    True
    """
    from craft_modules.models.craft import CraftPretrainer
    from craft_modules.nn.embedding import PatchEmbedding

    dim, depth = model.embed_dim, model.encoder.depth
    tokens = (model.spec_embed or model.wav_embed).num_patches
    tokens += PatchEmbedding.n_class_tokens
    if isinstance(model, CraftPretrainer):
        per_stream = 1 if model.single_pass else 2
        passes = per_stream * (int(model.spec_mspm) + int(model.wav_mspm))
        if model.contrastive:
            passes += 1 + int(model.swacl_spec == "clean")
        layers = [(batch_size * passes, tokens)] * depth
    elif model.fusion in ("ast", "wav"):  # one stream
        layers = [(batch_size, tokens)] * depth
    else:
        fused = model.fusion_layer if model.n_bottlenecks else depth
        layers = [(2 * batch_size, tokens)] * fused + [
            (2 * batch_size, tokens + model.n_bottlenecks)
        ] * (depth - fused)
    forward = sum(n * t * (24 * dim**2 + 4 * t * dim) for n, t in layers)
    return 3 * forward


def _cpu_sdpa_flops(query, key, value, *args, out_val=None, **kwargs):
    """FLOPs of CPU flash attention, as FlopCounterMode counts the CUDA kernels."""
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query.shape, key.shape, value.shape)


def _cpu_sdpa_backward_flops(
    grad_out, query, key, value, *args, out_val=None, **kwargs
):
    """FLOPs of the backward pass of CPU flash attention."""
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape)


_cpu_sdpa_flops._get_raw = True  # FlopCounterMode passes tensors, not shapes
_cpu_sdpa_backward_flops._get_raw = True


def flop_counter():
    """``FlopCounterMode`` that also counts CPU flash attention (not in its registry).

    Returns
    -------
    torch.utils.flop_counter.FlopCounterMode

    Example
    -------
    >>> q = torch.randn(1, 2, 8, 4, requires_grad=True)
    >>> with flop_counter() as counter:
    ...     torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().backward()
    >>> counter.get_total_flops()  # scores and sum: 2 x 2*(2*8*8*4) forward; 2.5 x that backward
    7168
    """
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    custom = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        custom[aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_sdpa_flops
        custom[aten._scaled_dot_product_flash_attention_for_cpu_backward] = (
            _cpu_sdpa_backward_flops
        )
    return FlopCounterMode(display=False, custom_mapping=custom)
