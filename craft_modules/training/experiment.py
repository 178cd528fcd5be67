"""The start and end of a recipe script: arguments, hyperparameters, the experiment folder.

A recipe reads as SpeechBrain's own: :func:`parse_recipe_arguments`, then
:func:`start_experiment` (hparams loaded, experiment folder created), the
preparation, the datasets (:mod:`craft_modules.data.datasets`), the Brain's
``fit`` and ``evaluate`` with the loader options of
:mod:`craft_modules.training.loaders`, the results
(:mod:`craft_modules.training.results`) and :func:`finish`.
:func:`read_plain_hparams` reads settings of a YAML without building its
objects (ESC-50 reads its folds before building a model per fold),
:func:`frames_for_duration` gives the YAMLs their input frames, and
:func:`auto_clip_duration` turns a YAML's ``clip_duration: auto`` into the
data's value (``n_classes: auto``: :func:`craft_modules.data.labels.checked_labels`), which
the recipe passes on as overrides (so they are recorded in the run's
``hyperparams.yaml``).

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import gc
import json
import math
import os
import sys

import ruamel.yaml
import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml, resolve_references

from craft_modules import distributed


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


def auto_clip_duration(durations, percentile=95.0, step=0.1):
    """``clip_duration: auto``: the data's clip length, rounded up to ``step`` seconds.

    The rule: the ``percentile``-th percentile of the clip durations (the
    longest clip but for the longest 5 %, so a few long outliers do not pad
    every batch), rounded up to a multiple of ``step`` (0.1 s). Clips of one
    length give that length: ESC-50's 5.0 s clips give 5.0 s (512 frames).

    Arguments
    ---------
    durations : list of float
        Clip durations in seconds (the manifest's ``duration``).
    percentile : float
        Percentile of the durations, in (0, 100].
    step : float
        Rounding step in seconds.

    Returns
    -------
    float
        Seconds.

    Example
    -------
    >>> auto_clip_duration([5.0] * 2000), auto_clip_duration([0.93, 1.0, 0.71])
    (5.0, 1.0)
    >>> auto_clip_duration([1.0] * 99 + [30.0]), auto_clip_duration([2.01])
    (1.0, 2.1)
    """
    if not durations:
        raise ValueError("clip_duration: auto needs at least one clip")
    value = float(
        torch.quantile(torch.tensor(durations, dtype=torch.float64), percentile / 100)
    )
    ticks = math.ceil(round(value / step, 6))  # 5.0 / 0.1 = 50.00000000000001
    return round(max(1, ticks) * step, 6)


def override_keys(overrides):
    """The keys set on the command line (SpeechBrain's YAML overrides text or a dict).

    Example
    -------
    >>> sorted(override_keys("lr: 0.1\\nnorm_stats: esc50"))
    ['lr', 'norm_stats']
    >>> override_keys("")
    set()
    """
    if isinstance(overrides, dict):
        return set(overrides)
    tree = ruamel.yaml.YAML(typ="safe").load(overrides or "") or {}
    return set(tree)


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
    >>> print(merge_overrides("fold: 1\\nlr: 0.1", {"fold": 2}))
    lr: 0.1
    fold: 2
    >>> merge_overrides({"lr": 0.1}, {"fold": 2})
    {'lr': 0.1, 'fold': 2}
    """
    if not extra:
        return overrides
    if isinstance(overrides, dict):
        return {**overrides, **extra}
    # SpeechBrain writes one "key: value" line per command-line argument; a
    # key set again by the script replaces its line.
    lines = [
        line
        for line in (overrides or "").splitlines()
        if not any(line.startswith(f"{key}:") for key in extra)
    ]
    lines += [f"{key}: {value}" for key, value in extra.items()]
    return "\n".join(line for line in lines if line.strip())


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


def read_plain_hparams(hparams_file, overrides, keys, optional=None):
    """Values of a YAML's plain keys, with overrides and ``!ref`` applied, building nothing.

    HyperPyYAML's reference resolution is run on the text, but no ``!new:``
    / ``!name:`` / ``!apply:`` is called (no model is built, no seed set).
    Unknown override keys and missing ``!PLACEHOLDER`` values fail as when
    loading.

    Arguments
    ---------
    hparams_file : str
        The YAML file.
    overrides : str or dict
        Overrides from the command line.
    keys : list of str
        Top-level keys whose values are plain YAML (numbers, strings, lists,
        mappings without tags, or references to such values).
    optional : dict, optional
        More such keys, each with the value to use when the YAML lacks it.

    Returns
    -------
    dict
        Key -> plain Python value.

    Raises
    ------
    ValueError
        When a key is missing or its value is built by a tag.

    Example
    -------
    >>> path = getfixture("tmp_path") / "h.yaml"
    >>> lines = ["folds: [1, 2]", "out: !ref runs/<folds>", "model: !new:int [x]"]
    >>> _ = path.write_text("\\n".join(lines))
    >>> read_plain_hparams(str(path), "folds: [3]", ["folds", "out"])
    {'folds': [3], 'out': 'runs/[3]'}
    >>> read_plain_hparams(str(path), "", ["model"])
    Traceback (most recent call last):
        ...
    ValueError: model in ... is not a plain value (tag !new:int)
    """
    with open(hparams_file, encoding="utf-8") as fin:
        resolved = resolve_references(fin, overrides, overrides_must_match=True)
    tree = ruamel.yaml.YAML().load(resolved)
    values = {}
    for key in keys:
        if key not in tree:
            raise ValueError(f"{hparams_file} has no key {key!r}")
        tag = getattr(getattr(tree[key], "tag", None), "value", None)
        if tag and tag.startswith("!"):
            raise ValueError(
                f"{key} in {hparams_file} is not a plain value (tag {tag})"
            )
        values[key] = json.loads(json.dumps(tree[key]))
    for key, default in (optional or {}).items():
        values[key] = (
            read_plain_hparams(hparams_file, overrides, [key])[key]
            if key in tree
            else default
        )
    return values


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


def release_memory():
    """Frees what a finished run left: its objects, then the GPU's cached blocks.

    A Brain and its checkpointer refer to each other, so a run's model,
    optimizer state, DDP buckets and loader workers outlive it until the
    garbage collector's next full pass; the recipes that train several runs
    in one process (the ESC-50 folds) call this between runs.

    Example
    -------
    >>> import weakref
    >>> class Run:
    ...     pass
    >>> run = Run()
    >>> run.itself = run  # a reference cycle, as a Brain and its checkpointer
    >>> alive = weakref.ref(run)
    >>> del run
    >>> release_memory()
    >>> alive() is None
    True
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def finish():
    """Ends a recipe cleanly: destroys the DDP process group when there is one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        distributed.barrier()
        torch.distributed.destroy_process_group()
    sys.stdout.flush()
