"""Batching that survives bad clips: failed items are dropped from the batch and counted.

:func:`craft_modules.data.audio.audio_pipeline` yields ``None`` for a clip that
cannot be read; :class:`SkipBadCollate` drops such items, pads the rest with
SpeechBrain's ``PaddedBatch`` and counts the skips per reason in shared memory,
so that the counts of every loader worker reach the Brain.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

_COUNTER_SLOTS = 128


def _shared_counts():
    """Zero counts, one slot per process, in shared memory when possible."""
    counts = torch.zeros(_COUNTER_SLOTS, dtype=torch.int64)
    try:
        counts.share_memory_()
    except RuntimeError as err:  # no shared memory: counts stay per process
        logger.debug("Skipped-item counter is not shared: %s", err)
    return counts


def _process_slot():
    """Counter slot of this process: 0 in the main one, 1+ in loader workers."""
    worker = torch.utils.data.get_worker_info()
    if worker is None:
        return 0
    return 1 + worker.id % (_COUNTER_SLOTS - 1)


class SkipBadCollate:
    """Collate function that drops items with a None value, then pads.

    Items whose audio failed to load (see :func:`audio_pipeline`) are removed
    with a warning and counted; the others go through SpeechBrain's
    PaddedBatch. A batch made only of bad items gives None. The counts live
    in shared memory, one slot per DataLoader worker, so `n_skipped` read in
    the main process includes the items dropped by every worker (fork or
    spawn). Under DDP, each rank counts its own items.

    Arguments
    ---------
    **padded_batch_kwargs : dict
        Passed to speechbrain.dataio.batch.PaddedBatch.

    Example
    -------
    >>> collate = SkipBadCollate()
    >>> batch = collate(
    ...     [
    ...         {"id": "a", "sig": torch.ones(3)},
    ...         {"id": "b", "sig": None},
    ...         {"id": "c", "sig": torch.ones(2)},
    ...     ]
    ... )
    >>> batch.id, batch.sig.data.shape, collate.n_skipped
    (['a', 'c'], torch.Size([2, 3]), 1)
    >>> collate([{"id": "d", "sig": None}]) is None
    True
    """

    def __init__(self, **padded_batch_kwargs):
        self.padded_batch_kwargs = padded_batch_kwargs
        self._counts = _shared_counts()

    @property
    def n_skipped(self):
        """Number of items dropped so far (all worker processes)."""
        return int(self._counts.sum())

    def reset(self):
        """Sets the skipped-items counter back to zero."""
        self._counts.zero_()

    def __call__(self, examples):
        """Drops bad examples and collates the rest.

        Arguments
        ---------
        examples : list of dict
            Items from a DynamicItemDataset.

        Returns
        -------
        PaddedBatch or None
            The batch of good items, or None if there are none.
        """
        good = [ex for ex in examples if not _is_bad_example(ex)]
        n_bad = len(examples) - len(good)
        if n_bad:
            self._counts[_process_slot()] += n_bad
            bad_ids = [ex.get("id", "?") for ex in examples if _is_bad_example(ex)]
            logger.warning(
                "Dropped %d bad item(s) from a batch of %d: %s",
                n_bad,
                len(examples),
                ", ".join(str(i) for i in bad_ids),
            )
        if not good:
            return None
        return PaddedBatch(good, **self.padded_batch_kwargs)

    def __setstate__(self, state):
        """Restores a copy; a deep copy gets its own shared counter.

        Arguments
        ---------
        state : dict
            The pickled attributes.
        """
        self.__dict__.update(state)
        if not self._counts.is_shared():
            counts = _shared_counts()
            counts.copy_(self._counts)
            self._counts = counts


def _is_bad_example(example):
    """True if any value of the example is None (e.g. failed audio)."""
    return any(value is None for value in example.values())


collate_skip_bad = SkipBadCollate()
"""Default :class:`SkipBadCollate` instance, usable as `collate_fn`."""
