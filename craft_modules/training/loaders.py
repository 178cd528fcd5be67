"""DataLoader options of the recipes: batches, shuffling, workers, evaluation shards.

A recipe passes :func:`train_loader_options` and :func:`eval_loader_options`
to ``Brain.fit`` / ``Brain.evaluate``; the Brain
(:meth:`craft_modules.training.brains.CraftBrain.make_dataloader`) turns
``num_workers`` into :func:`loader_worker_options` (``auto`` workers,
persistent and prefetching, pinned memory on CUDA) and the global
``batch_size`` of training into this process's shares.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import gc
import math
import os

import torch

from craft_modules import distributed
from craft_modules.data.batching import SkipBadCollate
from craft_modules.metrics import EvalShardSampler

#: Most loader workers :func:`default_num_workers` gives one process.
MAX_AUTO_WORKERS = 16
#: Batches each loader worker prepares ahead.
PREFETCH_FACTOR = 4


def default_num_workers(max_workers=MAX_AUTO_WORKERS):
    """Loader workers per process: this process's CPUs shared by the processes of its node.

    The CPUs are those this process may run on (``os.sched_getaffinity``,
    which respects cgroup/taskset limits), divided by ``LOCAL_WORLD_SIZE``
    (the processes per node, set by torchrun; 1 without it).

    Arguments
    ---------
    max_workers : int
        Upper bound.

    Returns
    -------
    int
        At least 1, at most `max_workers`.

    Example
    -------
    >>> 1 <= default_num_workers() <= MAX_AUTO_WORKERS
    True
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS)
        cpus = os.cpu_count() or 1
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")
    try:
        processes = max(1, int(local))
    except ValueError as err:
        raise ValueError(f"LOCAL_WORLD_SIZE must be an integer, got {local!r}") from err
    return max(1, min(int(max_workers), cpus // processes))


def resolve_num_workers(value, key="num_workers"):
    """The loader workers an hparams value asks for: ``auto`` (or None) or an int.

    Arguments
    ---------
    value : int, str or None
        ``"auto"``/None: :func:`default_num_workers`; an int (or a string
        of digits) >= 0: that many.
    key : str
        The hparams key, for the error message.

    Returns
    -------
    int
        Number of workers.

    Raises
    ------
    ValueError
        For anything else (negative, fractional, other strings), naming `key`.

    Example
    -------
    >>> resolve_num_workers(3), resolve_num_workers("0")
    (3, 0)
    >>> resolve_num_workers("auto") == default_num_workers()
    True
    >>> resolve_num_workers(-1)
    Traceback (most recent call last):
        ...
    ValueError: num_workers must be 'auto' or an integer >= 0, got -1
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return default_num_workers()
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number is None or number < 0:
        raise ValueError(f"{key} must be 'auto' or an integer >= 0, got {value!r}")
    return number


def loader_worker_options(num_workers, device=None):
    """DataLoader options for `num_workers` processes feeding `device`.

    With workers, they persist across epochs (no restart, and no re-copy of
    the dataset, every epoch) and each prepares ``PREFETCH_FACTOR`` batches
    ahead; batches are pinned for a CUDA device. Without workers, the
    options DataLoader rejects then are left out.

    Arguments
    ---------
    num_workers : int
        Worker processes (0: load in the main process).
    device : str or torch.device, optional
        The training device.

    Returns
    -------
    dict
        ``num_workers``, ``pin_memory`` and, with workers,
        ``persistent_workers`` and ``prefetch_factor``.

    Example
    -------
    >>> options = loader_worker_options(4, "cuda:0")
    >>> options["pin_memory"], options["persistent_workers"], options["prefetch_factor"]
    (True, True, 4)
    >>> loader_worker_options(0, "cpu")
    {'num_workers': 0, 'pin_memory': False}
    """
    num_workers = resolve_num_workers(num_workers)
    pin = device is not None and torch.device(device).type == "cuda"
    options = {"num_workers": num_workers, "pin_memory": pin}
    if num_workers > 0:
        options["persistent_workers"] = True
        options["prefetch_factor"] = PREFETCH_FACTOR
        options["worker_init_fn"] = freeze_inherited_objects
    return options


def freeze_inherited_objects(worker_id):
    """Loader worker start: ``gc.freeze()`` the objects inherited from the parent.

    The garbage collector then never walks (and so never copies, page by
    page) what a forked worker shares with its parent; measured with
    ``benchmarks/bench_scale.py`` on a 2 M-clip manifest and 8 workers, it
    halves the memory the workers add over a long run.

    Arguments
    ---------
    worker_id : int
        The DataLoader worker (unused).
    """
    gc.freeze()


def train_loader_options(batch_size, num_workers=0, drop_last=False, sampler=None):
    """Loader options of training: the global batch, shuffled, bad clips dropped.

    ``batch_size`` is the global batch of one optimizer step; the Brain turns
    it into this process's shares
    (:meth:`craft_modules.training.brains.CraftBrain._train_loader_specifics`).

    Arguments
    ---------
    batch_size : int
        Clips per optimizer step over all processes.
    num_workers : int or str
        Loader workers per process (``auto``: :func:`default_num_workers`).
    drop_last : bool
        Drop the last incomplete global batch of an epoch.
    sampler : torch.utils.data.Sampler, optional
        An index sampler replacing the shuffle (balanced sampling, SSAST's
        ``epoch_iter`` intervals); it must give the same stream on every
        process.

    Returns
    -------
    dict
        Keyword arguments of ``Brain.fit``'s training loader.

    Example
    -------
    >>> options = train_loader_options(180, num_workers=2)
    >>> options["batch_size"], options["shuffle"], options["num_workers"]
    (180, True, 2)
    >>> "shuffle" in train_loader_options(4, sampler=range(8))
    False
    """
    options = {
        "batch_size": batch_size,
        "drop_last": bool(drop_last),
        "num_workers": num_workers,
        "collate_fn": SkipBadCollate(),
    }
    if sampler is None:
        options["shuffle"] = True
    else:
        options["sampler"] = sampler
    return options


def eval_loader_options(dataset, batch_size, num_workers=0):
    """Loader options of evaluation: each DDP process gets a disjoint shard.

    Arguments
    ---------
    dataset : torch.utils.data.Dataset
        The evaluation set (to shard).
    batch_size : int
        Clips per evaluation step over all processes (SSAST evaluates with
        twice the training batch); each process reads its share.
    num_workers : int or str
        Loader workers per process.

    Returns
    -------
    dict
        Keyword arguments of ``Brain.fit``/``evaluate``'s loaders.

    Example
    -------
    >>> options = eval_loader_options(list(range(10)), 8)
    >>> options["batch_size"], len(list(options["sampler"]))
    (8, 10)
    """
    return {
        "batch_size": max(1, math.ceil(batch_size / distributed.world_size())),
        "num_workers": num_workers,
        "collate_fn": SkipBadCollate(),
        "sampler": EvalShardSampler(dataset),
    }
