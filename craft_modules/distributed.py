"""Every collective the project issues, on the process's device, and the batch split.

NCCL only reduces tensors that live on the process's GPU, while gloo (every
CPU test) accepts CPU tensors. So that one place gets this right, the
project's all-reduces, all-gathers and broadcasts go through the helpers
below: :func:`all_reduce_sum` moves its tensor to :func:`collective_device`
and back, :func:`all_gather_objects` and :func:`broadcast_object` use the
object collectives (which pick the device themselves), and
:func:`gather_with_grad` gathers contrastive candidates from every rank
without reading a size on the host.

The batch convention of every recipe is also defined here: ``batch_size`` is
the global batch of one optimizer step, over all processes and gradient
accumulation steps. :func:`batch_shares` splits it into shares that differ by
at most one clip, and :func:`share_weight` is the factor each share's mean
loss is multiplied by so that the gradient DDP averages equals the mean over
the global batch.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import math

import torch
import torch.distributed as dist


def is_distributed():
    """True when a process group with more than one process is running.

    Example
    -------
    >>> is_distributed()
    False
    """
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size():
    """Number of processes (1 without a process group).

    Example
    -------
    >>> world_size()
    1
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def rank():
    """This process's rank (0 without a process group).

    Example
    -------
    >>> rank()
    0
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def collective_device():
    """The device a tensor must be on for this process group's collectives.

    The current CUDA device under NCCL (which rejects CPU tensors), the CPU
    otherwise (gloo, or no process group).

    Example
    -------
    >>> collective_device()
    device(type='cpu')
    """
    if dist.is_available() and dist.is_initialized():
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(tensor):
    """Sums ``tensor`` over all processes; returns it on its own device.

    Arguments
    ---------
    tensor : torch.Tensor
        Any tensor, on any device.

    Returns
    -------
    torch.Tensor
        The element-wise sum over processes (``tensor`` itself without a
        process group).

    Example
    -------
    >>> all_reduce_sum(torch.tensor([1.0, 2.0]))
    tensor([1., 2.])
    """
    if not is_distributed():
        return tensor
    device = collective_device()
    moved = tensor.to(device)
    dist.all_reduce(moved)
    return moved.to(tensor.device)


def all_gather_objects(obj):
    """Every process's ``obj``, in rank order (``[obj]`` without a process group).

    Arguments
    ---------
    obj : object
        Any picklable object (tensors inside are pickled through the CPU).

    Returns
    -------
    list
        One entry per process.

    Example
    -------
    >>> all_gather_objects({"a": 1})
    [{'a': 1}]
    """
    if not is_distributed():
        return [obj]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj, src=0):
    """``obj`` of process ``src`` on every process.

    Arguments
    ---------
    obj : object
        Any picklable object (only ``src``'s value is used).
    src : int
        The sending rank.

    Returns
    -------
    object
        ``src``'s object.

    Example
    -------
    >>> broadcast_object([1, 2])
    [1, 2]
    """
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier():
    """Waits for every process (a no-op without a process group)."""
    if is_distributed():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def batch_shares(global_batch, n_processes=1, accumulation=1):
    """Splits a global batch into one share per (accumulation step, process).

    Shares differ by at most one clip. Share ``a * n_processes + r`` is the
    one process ``r`` reads at accumulation step ``a``.

    Arguments
    ---------
    global_batch : int
        Clips per optimizer step, all processes and accumulation steps
        together.
    n_processes : int
        Number of processes (the world size).
    accumulation : int
        Gradient accumulation factor.

    Returns
    -------
    list of int
        ``n_processes * accumulation`` share sizes summing to ``global_batch``.

    Example
    -------
    >>> batch_shares(180, 8)
    [23, 23, 23, 23, 22, 22, 22, 22]
    >>> batch_shares(10, 2, accumulation=2)
    [3, 3, 2, 2]
    >>> batch_shares(4, 8)
    Traceback (most recent call last):
        ...
    ValueError: batch_size=4 is smaller than 8 processes x grad_accumulation_factor 1: every process needs at least one clip per step
    """
    global_batch, n_processes = int(global_batch), int(n_processes)
    accumulation = int(accumulation)
    if n_processes < 1 or accumulation < 1:
        raise ValueError(
            f"need at least one process and one accumulation step, got "
            f"{n_processes} processes and grad_accumulation_factor {accumulation}"
        )
    parts = n_processes * accumulation
    if global_batch < parts:
        raise ValueError(
            f"batch_size={global_batch} is smaller than {n_processes} processes x "
            f"grad_accumulation_factor {accumulation}: every process needs at least "
            "one clip per step"
        )
    base, extra = divmod(global_batch, parts)
    return [base + (i < extra) for i in range(parts)]


def max_share(global_batch, n_processes=1, accumulation=1):
    """The largest share of :func:`batch_shares` (what contrastive gathers pad to).

    Arguments
    ---------
    global_batch : int
        Clips per optimizer step.
    n_processes : int
        Number of processes.
    accumulation : int
        Gradient accumulation factor.

    Returns
    -------
    int
        ``ceil(global_batch / (n_processes * accumulation))``.

    Example
    -------
    >>> max_share(180, 8)
    23
    """
    return math.ceil(int(global_batch) / (int(n_processes) * int(accumulation)))


def share_weight(n_local, global_batch, n_processes=1, accumulation=1):
    """Factor of a share's mean loss that makes DDP's averaged gradient the global mean.

    DDP averages the gradients of the processes and SpeechBrain divides each
    accumulated loss by the accumulation factor, so a share of ``n_local``
    clips whose loss is a mean over its clips is weighted by
    ``n_local * n_processes * accumulation / global_batch``: the sum over all
    shares is then the mean over the global batch. Equal shares get 1.

    Arguments
    ---------
    n_local : int
        Clips in this share.
    global_batch : int
        Clips per optimizer step.
    n_processes : int
        Number of processes.
    accumulation : int
        Gradient accumulation factor.

    Returns
    -------
    float
        The weight.

    Example
    -------
    >>> share_weight(90, 180, 2)
    1.0
    >>> round(share_weight(23, 180, 8), 4), round(share_weight(22, 180, 8), 4)
    (1.0222, 0.9778)
    """
    return n_local * n_processes * accumulation / global_batch


#: Rows every process pads its contrastive candidates to; set by the Brains
#: from the batch split (see :func:`set_gather_rows`).
_GATHER_ROWS = {"rows": None}


def set_gather_rows(rows):
    """Sets how many rows :func:`gather_with_grad` pads every process's share to.

    The Brains set it to :func:`max_share` of the training batch, so the
    gather needs no size exchange read on the host. ``None`` restores the
    default (sizes exchanged and read, one host-device sync).

    Arguments
    ---------
    rows : int or None
        Upper bound of any process's share.
    """
    _GATHER_ROWS["rows"] = None if rows is None else int(rows)


def gather_with_grad(x):
    """All-gathers ``x`` along dim 0 from every process, with gradient.

    Every process pads its rows to a common count (:func:`set_gather_rows`,
    else the largest share, exchanged once), so the result is laid out in
    blocks of that many rows per rank; a boolean mask marks the real rows.
    The mask is built on the device from the gathered sizes, so nothing is
    read on the host. The backward pass sums the gradients of every process's
    loss into each process's rows (``torch.distributed.nn``).

    Arguments
    ---------
    x : torch.Tensor
        The local rows ``(n_local, ...)``.

    Returns
    -------
    gathered : torch.Tensor
        ``(world * rows, ...)``, rank ``r``'s rows starting at ``r * rows``.
    valid : torch.Tensor or None
        ``(world * rows,)`` True for real rows; None without a process group
        (then ``gathered`` is ``x``).
    start : int
        Index of this process's first row in ``gathered``.

    Example
    -------
    >>> out, valid, start = gather_with_grad(torch.ones(3, 2))
    >>> out.shape, valid, start
    (torch.Size([3, 2]), None, 0)
    """
    if not is_distributed():
        return x, None, 0
    from torch.distributed.nn.functional import all_gather

    n_local = x.shape[0]
    rows = _GATHER_ROWS["rows"]
    size = torch.full((1,), n_local, device=x.device, dtype=torch.long)
    if rows is None:
        rows = all_gather_max(n_local)
    elif n_local > rows:
        raise ValueError(
            f"this process has {n_local} rows to gather but set_gather_rows({rows}) "
            "promised at most that many (is the batch split of every process the same?)"
        )
    sizes = torch.cat(all_gather(size))
    padded = torch.nn.functional.pad(x, [0, 0] * (x.dim() - 1) + [0, rows - n_local])
    gathered = torch.cat(all_gather(padded), dim=0)
    valid = (torch.arange(rows, device=x.device)[None, :] < sizes[:, None]).flatten()
    return gathered, valid, rank() * rows


def all_gather_max(value):
    """The largest ``value`` over all processes (read on the host: one sync).

    Arguments
    ---------
    value : int
        This process's value.

    Returns
    -------
    int
        The maximum.

    Example
    -------
    >>> all_gather_max(3)
    3
    """
    if not is_distributed():
        return int(value)
    tensor = torch.tensor([int(value)], device=collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())
