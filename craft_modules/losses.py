"""Pretraining objectives: masked patch modelling (SSAST) and SWaCL (CRAFT).

Masked spectrogram patch modelling follows the official SSAST code where it
differs from its paper (``mpc`` and ``mpg`` in ``src/models/ast_models.py``
of YuanGongND/ssast), because that is what
produced the released checkpoints and numbers:

* the discriminative InfoNCE scores every masked target against every
  prediction *of the same clip* (no negatives from other clips), with raw dot
  products (no temperature, no normalisation), and normalises the softmax over
  the predictions (``dim=-1``), the transpose of the paper's Eq. 1;
* the generative loss is the plain MSE between predicted and true normalised
  patch values, weighted by ``r_g = 10`` in the total.

SWaCL (Eq. 4a of the CRAFT paper) is an InfoNCE between the pooled, projected
waveform and spectrogram outputs of the clips of a batch: for waveform anchor
``i`` the positive is spectrogram ``i`` and the negatives are the other
spectrograms. Under DDP the candidates are gathered from every rank with a
gradient-preserving all-gather, so the negatives come from the global batch.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import torch

from craft_modules.distributed import gather_with_grad
from craft_modules.training.precision import float32_losses


def masked_patch_infonce(pred, target):
    """SSAST's discriminative loss and accuracy over the masked patches of each clip.

    Arguments
    ---------
    pred : torch.Tensor
        Predictions of the discriminative head, ``(batch, masked, patch_dim)``.
    target : torch.Tensor
        True (normalised) patch values, ``(batch, masked, patch_dim)``.

    Returns
    -------
    nce : torch.Tensor
        ``-mean_{i,a} log_softmax(S_i, dim=-1)[a, a]`` with
        ``S_i[a, b] = <target_a, pred_b>``.
    acc : torch.Tensor
        Fraction of predictions ``b`` whose best-scoring target is ``b``.

    Example
    -------
    >>> target = torch.eye(4).repeat(2, 1, 1)
    >>> nce, acc = masked_patch_infonce(10 * target, target)
    >>> float(acc)
    1.0
    """
    with float32_losses():
        pred, target = pred.float(), target.float()
        scores = torch.bmm(target, pred.transpose(1, 2))  # [a, b] = <x_a, p_b>
        log_probs = torch.log_softmax(scores, dim=-1)
        nce = -torch.diagonal(log_probs, dim1=1, dim2=2).mean()
    eye = torch.arange(scores.shape[1], device=scores.device)
    # For each prediction b, the target a maximising softmax(S, dim=-1)[a, b].
    acc = (log_probs.argmax(dim=1) == eye).float().mean()
    return nce, acc.detach()


def masked_patch_mse(pred, target):
    """SSAST's generative loss: mean squared error over all masked patch values.

    Arguments
    ---------
    pred : torch.Tensor
        Reconstructions, ``(batch, masked, patch_dim)``.
    target : torch.Tensor
        True patch values, same shape.

    Returns
    -------
    torch.Tensor
        The scalar MSE.

    Example
    -------
    >>> float(masked_patch_mse(torch.ones(1, 2, 3), torch.zeros(1, 2, 3)))
    1.0
    """
    with float32_losses():
        return torch.mean((pred.float() - target.float()) ** 2)


def swacl_loss(
    wav, spec, temperature=1.0, cosine=False, symmetric=False, global_negatives=True
):
    """SWaCL (CRAFT Eq. 4a): InfoNCE between waveform and spectrogram embeddings.

    Arguments
    ---------
    wav : torch.Tensor
        Projected, pooled waveform outputs ``(batch, dim)`` (the anchors).
    spec : torch.Tensor
        Projected, pooled spectrogram outputs ``(batch, dim)``; row ``i`` is the
        positive of ``wav[i]``.
    temperature : float
        Divides the similarities (1.0: Eq. 4a's raw dot products).
    cosine : bool
        Uses cosine similarity (L2-normalised embeddings) instead of dot products.
    symmetric : bool
        Averages Eq. 4a with its spectrogram-anchored counterpart.
    global_negatives : bool
        Under DDP, takes the candidates (and, when symmetric, the reverse
        candidates) from every rank's batch.

    Returns
    -------
    loss : torch.Tensor
        The mean InfoNCE over this rank's anchors.
    acc : torch.Tensor
        Fraction of anchors whose most similar candidate is their positive.

    Example
    -------
    >>> x = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    >>> matched, _ = swacl_loss(x, x, temperature=0.1, cosine=True)
    >>> shuffled, _ = swacl_loss(x, x.roll(1, dims=0), temperature=0.1, cosine=True)
    >>> bool(matched < shuffled)
    True
    """
    if temperature <= 0:
        raise ValueError(f"SWaCL temperature must be positive, got {temperature}")
    if cosine:
        wav = torch.nn.functional.normalize(wav, dim=-1)
        spec = torch.nn.functional.normalize(spec, dim=-1)
    loss, acc = _info_nce(wav, spec, temperature, global_negatives)
    if symmetric:
        loss_back, acc_back = _info_nce(spec, wav, temperature, global_negatives)
        loss, acc = (loss + loss_back) / 2, (acc + acc_back) / 2
    return loss, acc


def _info_nce(anchors, candidates, temperature, global_negatives):
    """Cross-entropy of each anchor against all candidates, positive at the same index.

    Under DDP the candidates of every process are gathered (padded blocks,
    padding masked out of the softmax), so no size is read on the host.
    """
    with float32_losses():
        anchors, candidates = anchors.float(), candidates.float()
        valid, start = None, 0
        if global_negatives:
            candidates, valid, start = gather_with_grad(candidates)
        logits = anchors @ candidates.T / temperature
        if valid is not None:
            logits = logits.masked_fill(~valid[None, :], float("-inf"))
        labels = torch.arange(anchors.shape[0], device=anchors.device) + start
        loss = torch.nn.functional.cross_entropy(logits, labels)
        acc = (logits.argmax(dim=1) == labels).float().mean()
    return loss, acc.detach()
