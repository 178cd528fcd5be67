"""Glue shared by every recipe script: hparams loading, datasets, loaders, results.

Recipes stay thin: they prepare their data, call these helpers to build
SpeechBrain datasets and loaders, and run ``fit`` / ``evaluate`` with the
Brains of :mod:`craft_modules.training.brains`.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import gc
import math
import os
import sys

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.data_pipeline import provides, takes
from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.logger import get_logger

from craft_modules import distributed
from craft_modules.data.audio import audio_pipeline
from craft_modules.data.batching import SkipBadCollate
from craft_modules.data.manifest import CompactDynamicItemDataset, CompactManifest
from craft_modules.data.preparation import write_json_atomic
from craft_modules.metrics import EvalShardSampler

logger = get_logger(__name__)


def frames_for_duration(seconds, frame_shift_ms=10.0, window_ms=25.0, multiple=128):
    """Input frames for clips of ``seconds``: the fbank frames rounded up to a multiple of 128.

    This gives SSAST's choices, 1024 frames for 10 s and 512 for 5 s.

    Arguments
    ---------
    seconds : float
        Clip duration.
    frame_shift_ms : float
        Fbank hop.
    window_ms : float
        Fbank window.
    multiple : int
        Rounding.

    Returns
    -------
    int
        Number of frames.

    Example
    -------
    >>> frames_for_duration(10.0), frames_for_duration(5.0), frames_for_duration(1.0)
    (1024, 512, 128)
    """
    if not seconds or seconds <= 0:
        raise ValueError(f"clip_duration must be positive, got {seconds}")
    frames = 1 + int((seconds * 1000 - window_ms) // frame_shift_ms)
    return max(multiple, int(math.ceil(frames / multiple) * multiple))


def resolve_hparams_file(path, recipe_file):
    """Finds an hparams file given as-is or relative to the recipe's folder.

    Arguments
    ---------
    path : str
        The path given on the command line.
    recipe_file : str
        ``__file__`` of the recipe script.

    Returns
    -------
    str
        An existing path.

    Example
    -------
    >>> resolve_hparams_file("missing.yaml", __file__)
    Traceback (most recent call last):
        ...
    FileNotFoundError: hparams file 'missing.yaml' not found (also looked in ...)
    """
    if os.path.isfile(path):
        return path
    candidate = os.path.join(os.path.dirname(os.path.abspath(recipe_file)), path)
    if os.path.isfile(candidate):
        return candidate
    raise FileNotFoundError(
        f"hparams file {path!r} not found (also looked in {candidate!r})"
    )


def parse_recipe_arguments(argv, recipe_file):
    """Parses a recipe command line and starts DDP when launched by torchrun.

    Arguments
    ---------
    argv : list of str
        ``sys.argv[1:]``.
    recipe_file : str
        ``__file__`` of the recipe script (for hparams paths).

    Returns
    -------
    tuple
        ``(hparams_file, run_opts, overrides)``.
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    hparams_file = resolve_hparams_file(hparams_file, recipe_file)
    sb.utils.distributed.ddp_init_group(run_opts)
    return hparams_file, run_opts, overrides


def merge_overrides(overrides, extra=None):
    """Adds script-set keys (e.g. the fold) to the command-line overrides.

    Arguments
    ---------
    overrides : str or dict
        YAML text (as SpeechBrain's argument parser gives it) or a dict.
    extra : dict, optional
        Keys set by the script; they win over the command line.

    Returns
    -------
    str or dict
        Overrides of the same kind.

    Example
    -------
    >>> print(merge_overrides("lr: 0.1", {"fold": 2}))
    lr: 0.1
    fold: 2
    >>> merge_overrides({"lr": 0.1}, {"fold": 2})
    {'lr': 0.1, 'fold': 2}
    """
    if not extra:
        return overrides
    if isinstance(overrides, dict):
        return {**overrides, **extra}
    text = overrides or ""
    for key, value in extra.items():
        text += f"\n{key}: {value}"
    return text.strip()


def load_hparams(hparams_file, overrides, extra=None):
    """Loads a YAML with command-line overrides (unknown keys fail here, before any work).

    Arguments
    ---------
    hparams_file : str
        The YAML file.
    overrides : str or dict
        Overrides from the command line.
    extra : dict, optional
        More overrides set by the script (e.g. the fold number).

    Returns
    -------
    dict
        The loaded hyperparameters.
    """
    with open(hparams_file, encoding="utf-8") as fin:
        return load_hyperpyyaml(fin, merge_overrides(overrides, extra))


def start_experiment(hparams_file, overrides, folder_key="output_folder"):
    """Loads the hyperparameters and creates the experiment folder.

    The folder receives SpeechBrain's ``hyperparams.yaml`` (with the
    overrides applied: what the inference API rebuilds the model from),
    ``log.txt`` and a copy of the recipe script.

    Arguments
    ---------
    hparams_file : str
        The YAML file.
    overrides : str or dict
        Overrides (command line plus script-set keys, see
        :func:`merge_overrides`).
    folder_key : str
        The hparams key naming the experiment folder.

    Returns
    -------
    dict
        The loaded hyperparameters.
    """
    hparams = load_hparams(hparams_file, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams[folder_key],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    return hparams


def audio_dataset(
    manifest,
    sample_rate,
    clip_duration,
    extra_items=(),
    output_keys=("id", "sig"),
    pad=True,
):
    """A dataset reading, resampling and cropping/padding each clip.

    The manifest is held as numpy arrays (:class:`CompactManifest`), so
    DataLoader workers share it instead of each copying millions of Python
    objects; items are the same as those of SpeechBrain's DynamicItemDataset.

    Arguments
    ---------
    manifest : str, dict or CompactManifest
        A JSON manifest path (loaded as ``DynamicItemDataset.from_json``
        does), its loaded dict, or a compact manifest.
    sample_rate : int
        Target sample rate.
    clip_duration : float
        Clip length in seconds (crop or zero-pad).
    extra_items : list
        More dynamic items (e.g. targets).
    output_keys : list of str
        Keys of each item.
    pad : bool
        Zero-pad shorter clips to ``clip_duration`` (False: crop only; the
        batch's relative lengths then give each clip's true length).

    Returns
    -------
    CompactDynamicItemDataset
        The dataset; bad audio gives a ``None`` signal, dropped by the collate.
    """
    items = [audio_pipeline(sample_rate, clip_duration, pad=pad), *extra_items]
    if not isinstance(manifest, (dict, CompactManifest)):
        manifest = CompactManifest.from_json(manifest)
    return CompactDynamicItemDataset(
        manifest, dynamic_items=items, output_keys=list(output_keys)
    )


def one_hot_pipeline(n_classes, input_key="target", output_key="targets"):
    """Dynamic item turning a class index into a float one-hot vector.

    Arguments
    ---------
    n_classes : int
        Number of classes.
    input_key : str
        Manifest key holding the index.
    output_key : str
        Provided key.

    Returns
    -------
    DynamicItem
        The pipeline item.

    Example
    -------
    >>> one_hot_pipeline(3)(2).tolist()
    [0.0, 0.0, 1.0]
    """

    @takes(input_key)
    @provides(output_key)
    def encode(target):
        target = int(target)
        if not 0 <= target < n_classes:
            raise ValueError(f"class index {target} outside [0, {n_classes})")
        vector = torch.zeros(n_classes)
        vector[target] = 1.0
        return vector

    return encode


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


def train_loader_options(hparams):
    """Loader options of training: the global batch, shuffled, bad clips dropped.

    ``batch_size`` is the global batch of one optimizer step; the Brain turns
    it into this process's shares
    (:meth:`craft_modules.training.brains.CraftBrain._train_loader_specifics`). A
    recipe may replace ``shuffle`` by its own index ``sampler``.

    Arguments
    ---------
    hparams : dict
        Needs ``batch_size``; optional ``drop_last`` and ``num_workers``.

    Returns
    -------
    dict
        Keyword arguments of ``Brain.fit``'s loaders.

    Example
    -------
    >>> options = train_loader_options({"batch_size": 180})
    >>> options["batch_size"], options["shuffle"]
    (180, True)
    """
    return {
        "batch_size": hparams["batch_size"],
        "shuffle": True,
        "drop_last": bool(hparams.get("drop_last", False)),
        "num_workers": hparams.get("num_workers", 0),
        "collate_fn": SkipBadCollate(),
    }


def eval_loader_options(hparams, dataset, batch_size=None):
    """Loader options of evaluation: each DDP process gets a disjoint shard.

    Arguments
    ---------
    hparams : dict
        Needs ``batch_size`` and ``num_workers``.
    dataset : torch.utils.data.Dataset
        The evaluation set (to shard).
    batch_size : int, optional
        Clips per evaluation step over all processes; default twice the
        training batch (SSAST's choice). Each process reads its share.

    Returns
    -------
    dict
        Keyword arguments of ``Brain.fit``/``evaluate``'s loaders.
    """
    global_batch = batch_size or 2 * hparams["batch_size"]
    return {
        "batch_size": max(1, math.ceil(global_batch / distributed.world_size())),
        "num_workers": hparams.get("num_workers", 0),
        "collate_fn": SkipBadCollate(),
        "sampler": EvalShardSampler(dataset),
    }


def write_results(path, results):
    """Writes a results JSON from the main process only, atomically.

    Arguments
    ---------
    path : str
        Output path.
    results : dict
        Plain Python values.
    """
    if if_main_process():
        write_json_atomic(results, path)
        logger.info("Results written to %s", path)


def finish():
    """Ends a recipe cleanly: destroys the DDP process group when there is one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        distributed.barrier()
        torch.distributed.destroy_process_group()
    sys.stdout.flush()
