"""The losses: masked patch modelling (SSAST), SWaCL (CRAFT), NT-Xent and labelled CE (CLAR).

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

CLAR's NT-Xent (SimCLR's 2N x 2N form) gathers its negatives from every rank
the same way; its cross-entropy is averaged over the labelled items only.

Every loss runs inside :func:`float32_losses` (autocast off), so bf16
training computes its losses in float32.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import contextlib

import torch
from torch.nn import functional as F

from craft_modules.distributed import gather_with_grad


@contextlib.contextmanager
def float32_losses():
    """Switches autocast off (CUDA and CPU) for loss arithmetic.

    Cast the loss inputs with ``.float()`` inside the block.

    Example
    -------
    >>> a = torch.randn(2, 3)
    >>> with torch.autocast("cpu", dtype=torch.bfloat16):
    ...     low = (a @ a.T).dtype
    ...     with float32_losses():
    ...         full = (a.float() @ a.float().T).dtype
    >>> low, full
    (torch.bfloat16, torch.float32)
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.autocast("cpu", enabled=False))
        if torch.cuda.is_available():
            stack.enter_context(torch.autocast("cuda", enabled=False))
        yield


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


def nt_xent_loss(z1, z2, temperature=0.5, global_negatives=True):
    """SimCLR's NT-Xent loss in its 2N x 2N form (CLAR uses ``temperature=0.5``).

    The 2N projections of both views are L2-normalised and compared by
    cosine similarity divided by the temperature. For each of the 2N anchors
    the positive is the other view of the same item and the denominator sums
    over all 2N - 1 other projections (self-similarity excluded); the loss is
    the mean cross-entropy over the 2N anchors, as ``utils.nt_xent_loss`` of
    the official code. Under DDP the candidates are the projections of every
    process (gathered with gradient), so the negatives come from the global
    batch, as in SimCLR; the anchors are this process's. Computed in float32
    with autocast off.

    Arguments
    ---------
    z1 : torch.Tensor
        Projections of the first view ``(N, dim)``.
    z2 : torch.Tensor
        Projections of the second view ``(N, dim)``, row ``i`` paired with
        row ``i`` of ``z1``.
    temperature : float
        Softmax temperature, > 0.
    global_negatives : bool
        Under DDP, takes the candidates from every process.

    Returns
    -------
    torch.Tensor
        Scalar loss (float32): the mean over this process's 2N anchors.

    Example
    -------
    >>> z = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    >>> matched = nt_xent_loss(z, z)
    >>> shuffled = nt_xent_loss(z, z[[1, 2, 3, 0]])
    >>> bool(matched < shuffled)
    True
    """
    if z1.dim() != 2 or z1.shape != z2.shape or z1.shape[0] == 0:
        raise ValueError(
            f"z1 and z2 must be (N, dim) tensors of one shape, got {tuple(z1.shape)} "
            f"and {tuple(z2.shape)}"
        )
    if not float(temperature) > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = z1.shape[0]
    with float32_losses():
        z1 = F.normalize(z1.float(), dim=-1)
        z2 = F.normalize(z2.float(), dim=-1)
        g1, g2, valid, start = z1, z2, None, 0
        if global_negatives:
            g1, valid, start = gather_with_grad(z1)
            g2, _, _ = gather_with_grad(z2)
        m = g1.shape[0]
        similarity = torch.cat([z1, z2]) @ torch.cat([g1, g2]).t() / float(temperature)
        index = torch.arange(n, device=z1.device) + start
        self_columns = torch.cat([index, index + m])
        excluded = torch.zeros_like(similarity, dtype=torch.bool)
        excluded[torch.arange(2 * n, device=z1.device), self_columns] = True
        if valid is not None:
            excluded = excluded | ~torch.cat([valid, valid])[None, :]
        similarity = similarity.masked_fill(excluded, float("-inf"))
        positives = torch.cat([index + m, index])
        return F.cross_entropy(similarity, positives)


def labelled_cross_entropy(logits, targets, labelled_mask=None, multilabel=False):
    """Cross-entropy averaged over the labelled items of a batch only.

    Unlabelled items contribute neither to the sum nor to the count. When no
    item is labelled the result is a zero that still depends on ``logits``
    (so ``backward`` works and nothing is NaN, unlike a mean over an empty
    selection). No host-device synchronisation is needed.

    Arguments
    ---------
    logits : torch.Tensor
        ``(batch, n_classes)``.
    targets : torch.Tensor
        Class indices ``(batch,)`` (unlabelled items may hold -1), class
        probabilities ``(batch, n_classes)``, or with ``multilabel`` multi-hot
        targets ``(batch, n_classes)``.
    labelled_mask : torch.Tensor or list of bool, optional
        ``(batch,)``, True for labelled items. None means ``targets >= 0`` for
        class indices and every item otherwise.
    multilabel : bool
        Binary cross-entropy with logits per class (averaged over the classes
        and the labelled items) instead of the softmax cross-entropy.

    Returns
    -------
    torch.Tensor
        Scalar loss.

    Example
    -------
    >>> logits = torch.randn(3, 4, requires_grad=True)
    >>> targets = torch.tensor([2, -1, 0])
    >>> loss = labelled_cross_entropy(logits, targets)
    >>> expected = torch.nn.functional.cross_entropy(logits[[0, 2]], targets[[0, 2]])
    >>> torch.allclose(loss, expected)
    True
    >>> none = labelled_cross_entropy(logits, targets, torch.zeros(3, dtype=torch.bool))
    >>> float(none.detach()), none.requires_grad
    (0.0, True)
    """
    if logits.dim() != 2:
        raise ValueError(
            f"logits must be (batch, n_classes), got {tuple(logits.shape)}"
        )
    batch = logits.shape[0]
    targets = torch.as_tensor(targets, device=logits.device)
    if targets.shape[0] != batch:
        raise ValueError(f"{targets.shape[0]} targets for {batch} logits")
    class_indices = targets.dim() == 1 and not multilabel
    if labelled_mask is None:
        if class_indices:
            labelled_mask = targets >= 0
        else:
            labelled_mask = torch.ones(batch, dtype=torch.bool, device=logits.device)
    labelled = torch.as_tensor(labelled_mask, device=logits.device).bool()
    if labelled.shape != (batch,):
        raise ValueError(
            f"labelled_mask must have shape ({batch},), got {tuple(labelled.shape)}"
        )
    with float32_losses():
        logits = logits.float()
        if class_indices:
            safe = torch.where(labelled, targets.long(), 0)
            per_item = F.cross_entropy(logits, safe, reduction="none")
        else:
            if targets.shape != logits.shape:
                raise ValueError(
                    f"targets {tuple(targets.shape)} must match logits {tuple(logits.shape)}"
                )
            safe = torch.where(labelled[:, None], targets.float(), 0.0)
            if multilabel:
                per_item = F.binary_cross_entropy_with_logits(
                    logits, safe, reduction="none"
                ).mean(dim=-1)
            else:
                per_item = F.cross_entropy(logits, safe, reduction="none")
        per_item = torch.where(labelled, per_item, 0.0)
        return per_item.sum() / labelled.sum().clamp(min=1)
