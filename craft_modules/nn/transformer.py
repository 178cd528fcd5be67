"""The ViT encoder of SSAST/AST: pre-norm blocks with fused qkv and SDPA attention.

The blocks reproduce timm 0.4.5's DeiT blocks used by the official SSAST code
(LayerNorm eps 1e-6, fused ``qkv`` linear, exact GELU MLP, no dropout), with
the same parameter names (``blocks.{i}.attn.qkv`` ...) so official weights map
by renaming prefixes only. Attention runs through
``torch.nn.functional.scaled_dot_product_attention``, which picks flash or
memory-efficient kernels on GPU.

:func:`encode_two_streams` runs the spectrogram and waveform streams through
one shared encoder.

Three ways to combine the two token streams of CRAFT fine-tuning:

* single stream (AST): only the spectrogram tokens;
* independent streams (SWAST): both streams through the same encoder, no
  exchange; their pooled outputs are concatenated by the classifier;
* bottleneck fusion (SWaB, Eq. 5a-5c): from block ``fusion_layer`` on, ``B``
  bottleneck tokens are appended to each stream, each fused block runs on
  ``[spec; bottlenecks]`` and ``[wav; bottlenecks]``, and the two bottleneck
  outputs are averaged before the next block.

Spectrogram and waveform tokens have the same count (MSAE produces the
spectrogram's grid), so both streams run as **one batched pass** (concatenated
along the batch) rather than stream after stream: the same arithmetic, with
matrices twice as large. ``batched=False`` runs them one after the other (for
benchmarks and tests). With ``B = 0`` bottlenecks, fusion reduces exactly to
independent streams.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import torch
from torch import nn

#: Size presets: ``(embed_dim, num_heads, depth)`` of the official SSAST ViTs.
PRESETS = {
    "tiny": (192, 3, 12),
    "small": (384, 6, 12),
    "base": (768, 12, 12),
}


def resolve_size(model_size="base", embed_dim=None, depth=None, num_heads=None):
    """Resolves a size preset, letting explicit values override it.

    Arguments
    ---------
    model_size : str
        ``tiny``, ``small`` or ``base``.
    embed_dim : int, optional
        Overrides the preset's token dimension.
    depth : int, optional
        Overrides the preset's number of blocks.
    num_heads : int, optional
        Overrides the preset's number of attention heads.

    Returns
    -------
    tuple of int
        ``(embed_dim, depth, num_heads)``.

    Example
    -------
    >>> resolve_size("tiny")
    (192, 12, 3)
    >>> resolve_size("small", depth=2)
    (384, 2, 6)
    """
    if model_size not in PRESETS:
        raise ValueError(
            f"model_size must be one of {sorted(PRESETS)}, got {model_size!r}"
        )
    preset_dim, preset_heads, preset_depth = PRESETS[model_size]
    embed_dim = int(embed_dim) if embed_dim else preset_dim
    depth = int(depth) if depth is not None else preset_depth
    num_heads = int(num_heads) if num_heads else preset_heads
    if embed_dim % num_heads != 0:
        raise ValueError(
            f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}"
        )
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    return embed_dim, depth, num_heads


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection.

    Arguments
    ---------
    dim : int
        Token dimension.
    num_heads : int
        Number of heads; the head dimension is ``dim // num_heads``.

    Example
    -------
    >>> Attention(64, 4)(torch.randn(2, 10, 64)).shape
    torch.Size([2, 10, 64])
    """

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        """Attends over all tokens of ``x`` ``(B, N, D)``."""
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(
            batch, tokens, 3, self.num_heads, dim // self.num_heads
        )
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    """Two-layer MLP with exact GELU.

    Arguments
    ---------
    dim : int
        Token dimension.
    hidden_dim : int
        Hidden dimension (4 x dim in ViT).

    Example
    -------
    >>> Mlp(8, 32)(torch.randn(1, 3, 8)).shape
    torch.Size([1, 3, 8])
    """

    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x):
        """Applies fc1, GELU, fc2."""
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``.

    Arguments
    ---------
    dim : int
        Token dimension.
    num_heads : int
        Attention heads.
    mlp_ratio : float
        MLP hidden size relative to ``dim``.

    Example
    -------
    >>> Block(64, 4)(torch.randn(2, 5, 64)).shape
    torch.Size([2, 5, 64])
    """

    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        """Runs the block on ``x`` ``(B, N, D)``."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTEncoder(nn.Module):
    """A stack of pre-norm ViT blocks followed by a final LayerNorm.

    The parameters equal those of the official SSAST ViT's ``v.blocks`` and
    ``v.norm`` for each preset (the token embeddings live in
    :class:`craft_modules.nn.embedding.PatchEmbedding`).

    Arguments
    ---------
    model_size : str
        ``tiny`` (192-d, 3 heads), ``small`` (384-d, 6 heads) or ``base``
        (768-d, 12 heads); all have 12 blocks.
    embed_dim : int, optional
        Overrides the preset's token dimension.
    depth : int, optional
        Overrides the preset's number of blocks.
    num_heads : int, optional
        Overrides the preset's number of heads.
    mlp_ratio : float
        MLP hidden size relative to ``embed_dim``.

    Example
    -------
    >>> enc = ViTEncoder("tiny", depth=2)
    >>> enc(torch.randn(2, 10, 192)).shape
    torch.Size([2, 10, 192])
    """

    def __init__(
        self,
        model_size="base",
        embed_dim=None,
        depth=None,
        num_heads=None,
        mlp_ratio=4.0,
    ):
        super().__init__()
        self.embed_dim, self.depth, self.num_heads = resolve_size(
            model_size, embed_dim, depth, num_heads
        )
        self.blocks = nn.ModuleList(
            Block(self.embed_dim, self.num_heads, mlp_ratio) for _ in range(self.depth)
        )
        self.norm = nn.LayerNorm(self.embed_dim, eps=1e-6)
        self.apply(init_vit_weights)

    def forward(self, x):
        """Runs all blocks and the final norm on tokens ``(B, N, D)``."""
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def init_vit_weights(module):
    """timm's ViT initialisation: truncated normal (0.02) linear weights, zero biases.

    Arguments
    ---------
    module : torch.nn.Module
        A module visited by ``Module.apply``.

    Example
    -------
    >>> layer = torch.nn.Linear(4, 4)
    >>> init_vit_weights(layer)
    >>> float(layer.bias.detach().abs().sum())
    0.0
    """
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _apply(blocks, x):
    for block in blocks:
        x = block(x)
    return x


def _run_pair(fn, spec, wav, batched):
    """Applies ``fn`` to both streams, batched into one call when their shapes allow."""
    if batched and spec.shape[1:] == wav.shape[1:]:
        out = fn(torch.cat([spec, wav], dim=0))
        return out[: spec.shape[0]], out[spec.shape[0] :]
    return fn(spec), fn(wav)


def encode_two_streams(
    encoder, spec, wav, bottlenecks=None, fusion_layer=0, batched=True
):
    """Encodes two token streams with a shared encoder, optionally with bottleneck fusion.

    Arguments
    ---------
    encoder : craft_modules.nn.transformer.ViTEncoder
        The shared encoder (its blocks and final norm are used).
    spec : torch.Tensor
        Spectrogram tokens ``(B, N_s, D)``, class tokens and positions included.
    wav : torch.Tensor
        Waveform tokens ``(B, N_w, D)``.
    bottlenecks : torch.Tensor, optional
        Initial bottleneck tokens ``(1, n_bottlenecks, D)``; ``None`` or zero
        tokens means independent streams (SWAST).
    fusion_layer : int
        Index of the first fused block (0: all blocks fused; ``depth``: none).
    batched : bool
        Runs both streams in one batched call per block.

    Returns
    -------
    tuple of torch.Tensor
        Normalised outputs of the spectrogram and waveform tokens (bottleneck
        tokens removed), shapes ``(B, N_s, D)`` and ``(B, N_w, D)``.

    Example
    -------
    >>> from craft_modules.nn.transformer import ViTEncoder
    >>> enc = ViTEncoder("tiny", depth=2)
    >>> spec, wav = torch.randn(2, 10, 192), torch.randn(2, 10, 192)
    >>> bn = torch.zeros(1, 4, 192)
    >>> out_s, out_w = encode_two_streams(enc, spec, wav, bn, fusion_layer=1)
    >>> out_s.shape, out_w.shape
    (torch.Size([2, 10, 192]), torch.Size([2, 10, 192]))
    """
    depth = len(encoder.blocks)
    n_bottlenecks = 0 if bottlenecks is None else bottlenecks.shape[1]
    if n_bottlenecks and not 0 <= fusion_layer <= depth:
        raise ValueError(f"fusion_layer must be in [0, {depth}], got {fusion_layer}")
    start = fusion_layer if n_bottlenecks > 0 else depth
    spec, wav = _run_pair(
        lambda x: _apply(encoder.blocks[:start], x), spec, wav, batched
    )
    if start < depth:
        spec, wav = _fuse(encoder.blocks[start:], spec, wav, bottlenecks, batched)
    return _run_pair(encoder.norm, spec, wav, batched)


def _fuse(blocks, spec, wav, bottlenecks, batched):
    """Eq. 5a-5c over ``blocks``: each stream attends to the shared bottlenecks."""
    n_spec, n_wav = spec.shape[1], wav.shape[1]
    shared = bottlenecks.expand(spec.shape[0], -1, -1)
    for block in blocks:
        spec_out, wav_out = _run_pair(
            block,
            torch.cat([spec, shared], dim=1),
            torch.cat([wav, shared], dim=1),
            batched,
        )
        spec, wav = spec_out[:, :n_spec], wav_out[:, :n_wav]
        shared = (spec_out[:, n_spec:] + wav_out[:, n_wav:]) / 2
    return spec, wav
