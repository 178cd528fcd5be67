"""SSAST's patch masking, vectorised over the batch.

The official generator (``gen_maskid_patch``) runs a Python loop per clip:
it draws a cluster side in {3, 4, 5} once per clip, then adds square clusters
(``side x side`` patches, growing towards higher mel rows and later frames,
spilling over the right time edge into the next row) at uniformly random start
ids until *more than* ``mask_patch`` unique ids are covered, never masking id 0,
and finally keeps the ``mask_patch`` lowest ids. :func:`cluster_mask_ids` is the
same random process computed with tensor operations: it draws a pool of
cluster starts per clip, finds for every patch the first cluster that covers
it, and stops each clip at the first cluster after which the union exceeds
``mask_patch``. The distribution of masks is therefore the official one,
including its bias towards the upper mel rows (``gen_maskid_patch`` in ``src/models/ast_models.py`` of YuanGongND/ssast).

Frame models (patches spanning all mel bins) use uniform random masking
(:func:`random_mask_ids`), as the official code does.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import math

import torch


def cluster_mask_ids(batch, f_dim, t_dim, mask_patch, cluster_factor=3, device=None):
    """Draws SSAST cluster masks: ``mask_patch`` sorted patch ids per clip.

    Arguments
    ---------
    batch : int
        Number of clips.
    f_dim : int
        Token grid height (frequency).
    t_dim : int
        Token grid width (time).
    mask_patch : int
        Number of masked patches per clip.
    cluster_factor : int
        The smallest cluster side; sides are drawn from
        ``[cluster_factor, 2 * cluster_factor)`` (3, 4 or 5 in SSAST).
    device : torch.device, optional
        Where to build the ids.

    Returns
    -------
    torch.Tensor
        Sorted, unique masked ids, shape ``(batch, mask_patch)``.

    Example
    -------
    >>> ids = cluster_mask_ids(2, 8, 64, 400)
    >>> ids.shape
    torch.Size([2, 400])
    >>> bool((ids > 0).all() and (ids < 512).all())
    True
    """
    n_patches = f_dim * t_dim
    _check_mask_size(mask_patch, n_patches - 2, f_dim, t_dim, "cluster")
    largest = 2 * cluster_factor - 1
    sides = torch.randint(cluster_factor, 2 * cluster_factor, (batch, 1), device=device)
    rows = torch.arange(largest, device=device).repeat_interleave(largest)
    cols = torch.arange(largest, device=device).repeat(largest)
    offsets = rows * t_dim + cols  # (largest**2,)
    in_square = (rows[None, :] < sides) & (cols[None, :] < sides)  # (batch, largest**2)
    # Expected clusters to cover mask_patch + 1 ids, with room for overlaps.
    n_starts = max(
        16,
        int(
            3
            * n_patches
            * math.log(n_patches / (n_patches - mask_patch))
            / cluster_factor**2
        )
        + 16,
    )
    # Twice the estimate: a clip whose pool runs out is (rarely) completed at random.
    selected = _cover_until(
        batch, n_patches, mask_patch, offsets, in_square, 2 * n_starts, device
    )
    return _lowest_ids(selected, mask_patch)


def _lowest_ids(keep, count):
    """The ``count`` lowest True ids of each row of ``keep``, without ``nonzero``.

    Every row has at least ``count`` True entries. True ids are sorted before
    the others by a key, so the result has a static shape and no host sync.
    """
    n = keep.shape[1]
    ids = torch.arange(n, device=keep.device).expand_as(keep)
    key = torch.where(keep, ids, ids + n)
    return key.sort(dim=1).values[:, :count]


def _cover_until(batch, n_patches, mask_patch, offsets, in_square, n_starts, device):
    """Covers ids cluster by cluster; the union at the cluster that exceeds ``mask_patch``.

    Clusters are taken from a pool of ``n_starts`` random starts per clip. In
    the rare clip whose pool does not cover more than ``mask_patch`` ids, the
    union of the whole pool is completed by ids drawn uniformly from the rest
    (never id 0), so the result is computed on the device without a host
    sync (the official loop would draw more clusters instead).
    """
    starts = torch.randint(0, n_patches, (batch, n_starts, 1), device=device)
    ids = starts + offsets[None, None, :]  # (batch, n_starts, largest**2)
    valid = (ids > 0) & (ids < n_patches) & in_square[:, None, :]
    order = torch.arange(n_starts, device=device)[None, :, None].expand_as(ids)
    order = torch.where(valid, order, torch.full_like(order, n_starts))
    first = torch.full((batch, n_patches), n_starts, dtype=torch.long, device=device)
    first.scatter_reduce_(
        1, ids.clamp(0, n_patches - 1).flatten(1), order.flatten(1), "amin"
    )
    # covered[k] = number of ids covered after the first k + 1 clusters.
    hist = torch.zeros(batch, n_starts + 1, dtype=torch.long, device=device)
    hist.scatter_add_(1, first, torch.ones_like(first))
    covered = hist[:, :n_starts].cumsum(dim=1)
    done = covered > mask_patch
    # The first cluster whose union exceeds mask_patch (the whole pool if none).
    stop = torch.where(done.any(dim=1), done.long().argmax(dim=1), n_starts - 1)
    selected = first <= stop[:, None]
    # Keep the mask_patch lowest ids (the official code truncates a sorted set).
    selected = selected & (selected.cumsum(dim=1) <= mask_patch)
    missing = mask_patch - selected.sum(dim=1, keepdim=True)  # > 0 only if run out
    candidates = ~selected
    candidates[:, 0] = False
    noise = torch.rand(batch, n_patches, device=device).masked_fill(~candidates, 2.0)
    rank = noise.argsort(dim=1).argsort(dim=1)
    return selected | (candidates & (rank < missing))


def random_mask_ids(batch, n_patches, mask_patch, device=None):
    """Draws uniform random masks without replacement (SSAST's frame models).

    Arguments
    ---------
    batch : int
        Number of clips.
    n_patches : int
        Number of patches per clip.
    mask_patch : int
        Number of masked patches per clip.
    device : torch.device, optional
        Where to build the ids.

    Returns
    -------
    torch.Tensor
        Sorted, unique masked ids, shape ``(batch, mask_patch)``.

    Example
    -------
    >>> random_mask_ids(3, 512, 400).shape
    torch.Size([3, 400])
    """
    _check_mask_size(mask_patch, n_patches, 1, n_patches, "random")
    ids = torch.rand(batch, n_patches, device=device).argsort(dim=1)[:, :mask_patch]
    return ids.sort(dim=1).values


def mask_ids(batch, f_dim, t_dim, mask_patch, cluster, cluster_factor=3, device=None):
    """Draws masks the way SSAST chooses: clusters for patch models, random for frame models.

    Arguments
    ---------
    batch : int
        Number of clips.
    f_dim : int
        Token grid height.
    t_dim : int
        Token grid width.
    mask_patch : int
        Masked patches per clip.
    cluster : bool
        Cluster masking (patch models) or uniform random masking (frame models).
    cluster_factor : int
        Smallest cluster side.
    device : torch.device, optional
        Where to build the ids.

    Returns
    -------
    torch.Tensor
        ``(batch, mask_patch)`` sorted ids.

    Example
    -------
    >>> mask_ids(2, 1, 512, 400, cluster=False).shape
    torch.Size([2, 400])
    """
    if cluster:
        return cluster_mask_ids(batch, f_dim, t_dim, mask_patch, cluster_factor, device)
    return random_mask_ids(batch, f_dim * t_dim, mask_patch, device)


def _check_mask_size(mask_patch, limit, f_dim, t_dim, kind):
    if not isinstance(mask_patch, int) or mask_patch < 1:
        raise ValueError(f"mask_patch must be a positive integer, got {mask_patch!r}")
    if mask_patch > limit:
        raise ValueError(
            f"mask_patch={mask_patch} is too large for a {f_dim}x{t_dim} token grid "
            f"({kind} masking allows at most {limit}); use shorter masks or longer clips"
        )
