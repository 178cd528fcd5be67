"""Running the spectrogram and waveform streams through one shared encoder.

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
