"""Label-balanced sampling (AudioSet full set) and weighted mixes of sources.

AST and SSAST train on the full (imbalanced) AudioSet with a weighted random
sampler whose weights come from AST's ``gen_weight_file.py``: a label seen
``n`` times in the training manifest weighs ``1000 / (n + 0.01)`` and a clip
weighs the sum of its labels' weights, so clips of rare classes are drawn as
often as clips of frequent ones. Sampling is with replacement, one epoch
being as many draws as there are clips.

Pretraining sets can be unions of sources (SSAST pretrains on AudioSet plus
LibriSpeech, each list shuffled into one, so every clip of the union is
equally likely: a weight of 1.0 per source). :func:`source_weighted_sampler`
draws such a union with a sampling weight per source.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

from collections import Counter

import numpy as np
import torch
from speechbrain.dataio.sampler import ReproducibleWeightedRandomSampler

from craft_modules.data.manifest import CompactManifest, StringListArray
from craft_modules.distributed import batch_shares

LABEL_WEIGHT_NUMERATOR = 1000.0
LABEL_COUNT_SMOOTHING = 0.01


def label_balancing_weights(manifest, label_key="labels"):
    """Per-clip sampling weights, AST's ``gen_weight_file`` formula.

    Arguments
    ---------
    manifest : dict or CompactManifest
        SpeechBrain manifest: clip id -> entry with a list of labels under
        ``label_key``. The weights follow the manifest's iteration order,
        which is the order of the dataset built from it. A compact
        manifest's label lists are weighted with numpy, with the same
        results.
    label_key : str
        Entry key holding the clip's labels (list, or comma-separated str).

    Returns
    -------
    torch.Tensor
        Float64 weights, one per clip.

    Example
    -------
    >>> manifest = {"a": {"labels": ["x"]}, "b": {"labels": ["x"]},
    ...             "c": {"labels": ["x", "y"]}}
    >>> w = label_balancing_weights(manifest)
    >>> [round(v, 2) for v in w.tolist()]
    [332.23, 332.23, 1322.32]
    >>> compact = label_balancing_weights(CompactManifest(manifest))
    >>> torch.equal(compact, w)
    True
    """
    if isinstance(manifest, CompactManifest):
        column = manifest.columns.get(label_key)
        if column is None and len(manifest):
            raise KeyError(f"Clip {manifest.clip_id(0)!r} has no {label_key!r} entry")
        if isinstance(column, StringListArray):
            return _compact_label_weights(column)
    clip_labels = []
    for clip_id, entry in manifest.items():
        labels = entry.get(label_key)
        if labels is None:
            raise KeyError(f"Clip {clip_id!r} has no {label_key!r} entry")
        if isinstance(labels, str):
            labels = [label.strip() for label in labels.split(",") if label.strip()]
        clip_labels.append(labels)
    counts = Counter(label for labels in clip_labels for label in labels)
    label_weight = {
        label: LABEL_WEIGHT_NUMERATOR / (n + LABEL_COUNT_SMOOTHING)
        for label, n in counts.items()
    }
    return torch.tensor(
        [sum(label_weight[label] for label in labels) for labels in clip_labels],
        dtype=torch.double,
    )


def _compact_label_weights(labels):
    """:func:`label_balancing_weights` of CSR label lists, vectorised.

    Each clip's label weights are added one position at a time, left to
    right, as Python's ``sum`` does, so the results are bit-identical.
    """
    counts = np.bincount(labels.indices, minlength=len(labels.vocabulary))
    label_weight = LABEL_WEIGHT_NUMERATOR / (counts + LABEL_COUNT_SMOOTHING)
    lengths = labels.lengths
    starts = labels.offsets[:-1]
    weights = np.zeros(len(labels), dtype=np.float64)
    for position in range(int(lengths.max(initial=0))):
        has = lengths > position
        weights[has] += label_weight[labels.indices[starts[has] + position]]
    return torch.from_numpy(weights)


def balanced_sampler(manifest, seed=563375142, label_key="labels"):
    """Weighted sampler (with replacement, one draw per clip and epoch).

    The sampler is SpeechBrain's reproducible one: each epoch draws a new
    sample that depends only on the seed and the epoch (``set_epoch``, which
    ``Brain.fit`` calls), so a resumed run sees the same clips; under DDP
    SpeechBrain wraps it so that every process gets its own share.

    Arguments
    ---------
    manifest : dict or CompactManifest
        Training manifest (see :func:`label_balancing_weights`).
    seed : int
        Sampling seed.
    label_key : str
        Entry key holding the clip's labels.

    Returns
    -------
    ReproducibleWeightedRandomSampler

    Example
    -------
    >>> manifest = {str(i): {"labels": ["common"]} for i in range(9)}
    >>> manifest["9"] = {"labels": ["rare"]}
    >>> sampler = balanced_sampler(manifest)
    >>> len(sampler)
    10
    """
    weights = label_balancing_weights(manifest, label_key)
    if len(weights) == 0:
        raise ValueError("Cannot build a balanced sampler for an empty manifest")
    return ReproducibleWeightedRandomSampler(
        weights, num_samples=len(weights), replacement=True, seed=seed
    )


class StepEpochSampler(torch.utils.data.Sampler):
    """Fixed-length "epochs" cut from one endless shuffled pass over the data.

    SSAST pretraining validates, checkpoints and steps its plateau schedule
    every ``epoch_iter`` = 4000 optimizer steps, not once per pass over
    AudioSet. With this sampler a SpeechBrain epoch is ``num_samples`` items
    taken from a stream of seeded permutations of the dataset: epoch ``k``
    continues where epoch ``k - 1`` stopped, so every clip is still seen once
    per pass. What an epoch yields depends only on the seed and the epoch
    number (``set_epoch``), so a resumed run reads the same clips.

    Arguments
    ---------
    data_source_length : int
        Number of items in the dataset.
    num_samples : int
        Items per epoch (steps per epoch x global batch size).
    seed : int
        Shuffling seed.

    Example
    -------
    >>> sampler = StepEpochSampler(5, num_samples=3, seed=0)
    >>> sampler.set_epoch(0); first = list(sampler)
    >>> sampler.set_epoch(1); second = list(sampler)
    >>> len(first), len(second)
    (3, 3)
    >>> sorted(first + second[:2])  # one full pass over 5 items
    [0, 1, 2, 3, 4]
    """

    def __init__(self, data_source_length, num_samples, seed=563375142):
        if data_source_length < 1:
            raise ValueError("StepEpochSampler needs a non-empty dataset")
        if num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        self.length = int(data_source_length)
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch):
        """Selects the epoch (SpeechBrain calls this before each epoch)."""
        self.epoch = int(epoch)

    def _permutation(self, index):
        generator = torch.Generator()
        generator.manual_seed(self.seed + index)
        return torch.randperm(self.length, generator=generator)

    def __iter__(self):
        start = self.epoch * self.num_samples
        stop = start + self.num_samples
        indices = []
        for lap in range(start // self.length, (stop - 1) // self.length + 1):
            perm = self._permutation(lap)
            lo = max(start - lap * self.length, 0)
            hi = min(stop - lap * self.length, self.length)
            indices.extend(perm[lo:hi].tolist())
        return iter(indices)

    def __len__(self):
        return self.num_samples


class ShareBatchSampler(torch.utils.data.Sampler):
    """This process's shares of every global batch: the one batch convention.

    ``batch_size`` is the global batch of one optimizer step, over every
    process and gradient accumulation step. Every process draws the same
    stream of indices from ``sampler`` (same seed and epoch), cuts it into
    global batches and keeps its shares (:func:`craft_modules.distributed.batch_shares`):
    at accumulation step ``a`` process ``r`` reads share ``a * world + r``.
    Shares differ by at most one clip, so any world size works with any
    ``batch_size`` of at least ``world * accumulation``, and every process
    yields the same number of batches. A last, incomplete global batch is
    dropped (``drop_last``) or completed with clips from the start of the
    epoch's stream, so every optimizer step sees ``batch_size`` clips.

    Arguments
    ---------
    sampler : Sampler
        Index stream of one epoch, identical on every process (e.g. a seeded
        shuffle, :func:`balanced_sampler` or :class:`StepEpochSampler`); its
        ``set_epoch`` is forwarded.
    batch_size : int
        Global batch per optimizer step.
    world_size : int
        Number of processes.
    rank : int
        This process.
    accumulation : int
        Gradient accumulation factor.
    drop_last : bool
        Drops an incomplete last global batch instead of completing it.

    Example
    -------
    >>> shares = [list(ShareBatchSampler(range(10), 5, world_size=2, rank=r)) for r in (0, 1)]
    >>> shares
    [[[0, 1, 2], [5, 6, 7]], [[3, 4], [8, 9]]]
    """

    def __init__(
        self, sampler, batch_size, world_size=1, rank=0, accumulation=1, drop_last=False
    ):
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.world_size, self.rank = int(world_size), int(rank)
        self.accumulation = int(accumulation)
        self.drop_last = bool(drop_last)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {rank} is outside a world of {world_size}")
        self.shares = batch_shares(self.batch_size, self.world_size, self.accumulation)
        bounds = [0]
        for share in self.shares:
            bounds.append(bounds[-1] + share)
        self.slices = [
            (
                bounds[a * self.world_size + self.rank],
                bounds[a * self.world_size + self.rank + 1],
            )
            for a in range(self.accumulation)
        ]

    @property
    def max_share(self):
        """The largest share of any process (what contrastive gathers pad to)."""
        return max(self.shares)

    def set_epoch(self, epoch):
        """Forwards the epoch to the index sampler (SpeechBrain calls this)."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def _global_batches(self):
        indices = [int(i) for i in self.sampler]
        n_full, rest = divmod(len(indices), self.batch_size)
        if rest and not self.drop_last and indices:
            n_full += 1
            while len(indices) < n_full * self.batch_size:
                indices += indices[: n_full * self.batch_size - len(indices)]
        for step in range(n_full):
            yield indices[step * self.batch_size : (step + 1) * self.batch_size]

    def __iter__(self):
        for batch in self._global_batches():
            for start, stop in self.slices:
                yield batch[start:stop]

    def __len__(self):
        n_full, rest = divmod(len(self.sampler), self.batch_size)
        if rest and not self.drop_last:
            n_full += 1
        return n_full * self.accumulation


def source_clip_weights(source_sizes, weights):
    """Per-clip sampling weights of a union of sources laid end to end.

    Every clip of source ``s`` weighs ``weights[s]``, so with all weights
    1.0 every clip of the union is equally likely (SSAST's shuffled
    AudioSet + LibriSpeech list), and source ``s`` is drawn in proportion to
    ``source_sizes[s] * weights[s]``.

    Arguments
    ---------
    source_sizes : list of int
        Clips of each source, in the order they appear in the dataset.
    weights : list of float
        Sampling weight of one clip of each source (non-negative, not all 0).

    Returns
    -------
    torch.Tensor
        Float64 weights, one per clip of the union.

    Example
    -------
    >>> source_clip_weights([2, 3], [1.0, 0.5]).tolist()
    [1.0, 1.0, 0.5, 0.5, 0.5]
    """
    sizes = [int(n) for n in source_sizes]
    weights = [float(w) for w in weights]
    if len(sizes) != len(weights):
        raise ValueError(f"{len(sizes)} sources but {len(weights)} weights")
    if any(n < 0 for n in sizes):
        raise ValueError(f"source sizes must be non-negative, got {sizes}")
    if any(not w >= 0 or w == float("inf") for w in weights):
        raise ValueError(f"source weights must be finite and >= 0, got {weights}")
    if sum(n * w for n, w in zip(sizes, weights)) <= 0:
        raise ValueError(f"no clip can be drawn: sizes {sizes} with weights {weights}")
    return torch.cat(
        [torch.full((n,), w, dtype=torch.double) for n, w in zip(sizes, weights)]
    )


def source_weighted_sampler(source_sizes, weights, num_samples=None, seed=563375142):
    """Draws a union of sources with a sampling weight per source.

    A with-replacement draw by :func:`source_clip_weights` (SpeechBrain's
    reproducible weighted sampler): each epoch's ``num_samples`` indices
    depend only on the seed and the epoch (``set_epoch``), so every process
    of a DDP run draws the same stream and
    :class:`ShareBatchSampler` keeps its own shares of each global batch,
    and a resumed run reads the same clips. ``num_samples`` may be one
    validation interval (SSAST's ``epoch_iter`` steps times the batch):
    each epoch is then an independent draw of that many clips.

    Arguments
    ---------
    source_sizes : list of int
        Clips of each source, in dataset order.
    weights : list of float
        Sampling weight of one clip of each source.
    num_samples : int, optional
        Draws per epoch; default the size of the union.
    seed : int
        Sampling seed.

    Returns
    -------
    ReproducibleWeightedRandomSampler

    Example
    -------
    >>> sampler = source_weighted_sampler([3, 1], [1.0, 3.0], num_samples=2000, seed=0)
    >>> drawn = torch.tensor(list(sampler))
    >>> round((drawn == 3).float().mean().item(), 1)  # source 2: 1 x 3 of 3 x 1 + 1 x 3
    0.5
    """
    clip_weights = source_clip_weights(source_sizes, weights)
    if num_samples is None:
        num_samples = len(clip_weights)
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    return ReproducibleWeightedRandomSampler(
        clip_weights, num_samples=int(num_samples), replacement=True, seed=seed
    )
