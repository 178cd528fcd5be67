"""A trained run folder for inference: its labels, the checkpoint to use and its ``inference.yaml``.

Every training run writes, next to its ``hyperparams.yaml`` and ``save/``
folder, a model-only ``inference.yaml`` (:func:`write_inference_yaml`, called
by :class:`craft_modules.training.brains.CraftBrain` whenever it saves an
end-of-epoch checkpoint). It holds

* the ``model: !new:...`` entry of the run's ``hyperparams.yaml`` with its
  resolved constructor arguments (the architecture only: a stage-1 run, a
  pretrained or official checkpoint is no constructor argument, and the
  run's own checkpoint holds all the weights);
* what :class:`craft_modules.inference.tagger.AudioTagger` needs:
  ``sample_rate``, ``clip_duration``, ``labels`` (the names, so the
  preparation folder may go), ``multilabel``, the run's ``metric`` and
  whether it averaged weights;
* a SpeechBrain ``pretrainer``
  (:class:`speechbrain.utils.parameter_transfer.Pretrainer`) whose ``paths``
  name the checkpoint file to use, relative to ``run_folder`` (overridden
  with the folder it is loaded from, so a moved run still loads), loaded by
  :func:`load_model_weights`.

So ``AudioTagger.from_hparams(source=run_folder)`` loads a run the
SpeechBrain way (:meth:`speechbrain.inference.interfaces.Pretrained.from_hparams`),
without the folders the run started from.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import io
import json
import os

import ruamel.yaml
import torch
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.logger import get_logger

from craft_modules.atomic_files import write_text_atomic
from craft_modules.weights.legacy_paths import upgrade_paths
from craft_modules.weights.transfer import strip_module_prefix

logger = get_logger(__name__)

#: The file name, in the run's experiment folder.
INFERENCE_YAML = "inference.yaml"

#: Label names of a pretraining run (its model embeds; it has no classes).
PRETRAINING_LABELS = ["(pretraining run: no labels)"]


def label_names(run_folder, hparams):
    """The run's label names in output order.

    Looks for ``labels.json`` in the run folder, its parent's ``data/``
    folder (ESC-50 folds) and the run's ``prepare_folder``. AudioSet-style
    entries (``{"mid", "display_name"}``) give their display name.

    Arguments
    ---------
    run_folder : str
        Experiment folder.
    hparams : dict
        Its hyperparameters.

    Returns
    -------
    list of str

    Example
    -------
    >>> run = getfixture("tmp_path")
    >>> _ = (run / "labels.json").write_text('[{"mid": "/m/1", "display_name": "Dog"}, "cat"]')
    >>> label_names(str(run), {})
    ['Dog', 'cat']
    """
    run_folder = os.fspath(run_folder)
    candidates = [
        os.path.join(run_folder, "labels.json"),
        os.path.join(run_folder, "data", "labels.json"),
        os.path.join(os.path.dirname(run_folder.rstrip(os.sep)), "data", "labels.json"),
    ]
    if hparams.get("prepare_folder"):
        candidates.append(os.path.join(hparams["prepare_folder"], "labels.json"))
    for path in candidates:
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fin:
                entries = json.load(fin)
            names = []
            for i, entry in enumerate(entries):
                if isinstance(entry, dict):
                    entry = entry.get("display_name") or entry.get("mid")
                names.append(str(entry) if entry is not None else f"class_{i}")
            return names
    n_classes = int(hparams.get("n_classes", 0))
    logger.warning("No labels.json found for %s; using class indices", run_folder)
    return [f"class_{i}" for i in range(n_classes)]


def checkpoint_to_use(save_folder, metric=None, averager_name=None):
    """The file holding the weights a run is used with, chosen without loading anything.

    The same choice as ``AudioTagger.from_run(checkpoint="auto")``: the
    weight average (in the most recent checkpoint) when ``averager_name`` is
    given, else the best checkpoint by ``metric`` among those that record
    it, else the most recent one.

    Arguments
    ---------
    save_folder : str
        The run's checkpoint folder (``CKPT+*`` folders).
    metric : str, optional
        Meta key to maximise (``mAP``, ``accuracy``).
    averager_name : str, optional
        Recoverable name of a weight averager that holds an average.

    Returns
    -------
    str
        Path of the ``.ckpt`` file.
    str
        What it is, e.g. ``best checkpoint by accuracy``.

    Raises
    ------
    FileNotFoundError
        If the folder holds no complete checkpoint with the file.

    Example
    -------
    >>> save = getfixture("tmp_path")
    >>> ckpt = Checkpointer(save, {"model": torch.nn.Linear(1, 1)})
    >>> best = ckpt.save_checkpoint(meta={"accuracy": 0.9})
    >>> _ = ckpt.save_checkpoint(meta={"accuracy": 0.5})
    >>> path, what = checkpoint_to_use(str(save), "accuracy")
    >>> path == str(best.path / "model.ckpt"), what
    (True, 'best checkpoint by accuracy')
    """
    checkpoints = Checkpointer(save_folder).list_checkpoints()
    name = averager_name or "model"
    checkpoints = [c for c in checkpoints if name in c.paramfiles]
    if not checkpoints:
        raise FileNotFoundError(
            f"no checkpoint with {name}.ckpt in {save_folder!r} (CKPT+* folders)"
        )
    newest = max(checkpoints, key=lambda c: c.meta.get("unixtime", 0))
    if averager_name:
        return str(newest.paramfiles[name]), "weight average"
    scored = [c for c in checkpoints if metric and metric in c.meta]
    if scored:
        best = max(scored, key=lambda c: c.meta[metric])
        return str(best.paramfiles[name]), f"best checkpoint by {metric}"
    return str(newest.paramfiles[name]), "most recent checkpoint"


def load_model_weights(model, path):
    """The pretrainer's loader: a model state dict or a weight average, strictly.

    Arguments
    ---------
    model : torch.nn.Module
        The model built from ``inference.yaml``.
    path : str
        A ``model.ckpt`` (a state dict) or an ``averager.ckpt`` of
        :class:`craft_modules.training.averaging.WeightAverager` (its
        ``average`` is loaded).

    Raises
    ------
    ValueError
        If the file's keys or shapes do not match the model.

    Example
    -------
    >>> path = getfixture("tmp_path") / "model.ckpt"
    >>> torch.save(torch.nn.Linear(2, 1).state_dict(), path)
    >>> load_model_weights(torch.nn.Linear(2, 1), path)
    >>> load_model_weights(torch.nn.Linear(3, 1), path)
    Traceback (most recent call last):
        ...
    ValueError: ... does not match the model built from inference.yaml: ...
    """
    state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("average"), dict):
        state = state["average"]
    try:
        model.load_state_dict(strip_module_prefix(state), strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"{path} does not match the model built from {INFERENCE_YAML}: {err}"
        ) from err


def _plain(node, memo):
    """A copy of a ruamel node without comments or anchors (tags and sharing kept)."""
    if id(node) in memo:
        return memo[id(node)]
    if isinstance(node, dict):
        copy = ruamel.yaml.comments.CommentedMap()
        memo[id(node)] = copy
        for key, value in node.items():
            copy[key] = _plain(value, memo)
    elif isinstance(node, list):
        copy = ruamel.yaml.comments.CommentedSeq()
        memo[id(node)] = copy
        copy.extend(_plain(value, memo) for value in node)
    else:
        return node
    tag = getattr(getattr(node, "tag", None), "value", None)
    if tag:
        copy.yaml_set_ctag(ruamel.yaml.Tag(suffix=tag))
    return copy


def model_entry(hyperparams_text):
    """The ``model:`` entry of a run's (reference-resolved) hyperparams.yaml, as YAML text.

    Arguments
    ---------
    hyperparams_text : str
        The ``hyperparams.yaml`` SpeechBrain writes into the experiment
        folder (its references already resolved).

    Returns
    -------
    str
        ``model: !new:...`` and its arguments, without comments.

    Example
    -------
    >>> text = '''n: 3  # classes
    ... model: &id001 !new:torch.nn.Linear
    ...     in_features: 2  # a comment
    ...     out_features: 3
    ... modules: {model: *id001}
    ... '''
    >>> print(model_entry(text).strip())
    model: !new:torch.nn.Linear
      in_features: 2
      out_features: 3
    """
    yaml = ruamel.yaml.YAML()
    tree = yaml.load(upgrade_paths(hyperparams_text))
    if not isinstance(tree, dict) or "model" not in tree:
        raise ValueError("the run's hyperparams.yaml has no 'model' entry")
    out = io.StringIO()
    yaml.dump({"model": _plain(tree["model"], {})}, out)
    return out.getvalue()


def write_inference_yaml(
    run_folder,
    save_folder,
    labels,
    sample_rate,
    clip_duration,
    multilabel,
    metric=None,
    averager_name=None,
):
    """Writes ``<run_folder>/inference.yaml`` (see the module docstring).

    Call it on the main process only; the file is replaced atomically.

    Arguments
    ---------
    run_folder : str
        The experiment folder, holding the ``hyperparams.yaml`` SpeechBrain
        wrote at the start of the run.
    save_folder : str
        Its checkpoint folder.
    labels : list of str
        Label names in output order.
    sample_rate : int
        The model's sample rate.
    clip_duration : float
        Seconds of audio per model input.
    multilabel : bool
        Sigmoid (multi-label) rather than softmax scores.
    metric : str, optional
        The run's checkpoint-selection metric.
    averager_name : str, optional
        Recoverable name of the run's weight averager, when it holds an
        average (the model is then used with the average).

    Returns
    -------
    str
        The path written.
    """
    run_folder = os.path.abspath(os.fspath(run_folder))
    with open(os.path.join(run_folder, "hyperparams.yaml"), encoding="utf-8") as fin:
        model = model_entry(fin.read())
    weights, description = checkpoint_to_use(save_folder, metric, averager_name)
    weights = os.path.abspath(weights)
    if weights.startswith(run_folder + os.sep):
        relative = os.path.relpath(weights, run_folder).replace(os.sep, "/")
        weights_ref = "!ref " + json.dumps("<run_folder>/" + relative)
    else:
        weights_ref = json.dumps(weights)
    text = "\n".join(
        [
            "# The model of this run and what inference needs; all weights are in",
            "# the run's own checkpoint (no stage-1 run or pretrained file is read).",
            "# Written by craft_modules.weights.run_folder.write_inference_yaml.",
            "#   AudioTagger.from_hparams(source=<this folder>)",
            f"run_folder: {json.dumps(run_folder)}  # overridden with the folder loaded",
            f"sample_rate: {int(sample_rate)}",
            f"clip_duration: {float(clip_duration)}",
            f"multilabel: {json.dumps(bool(multilabel))}",
            f"labels: {json.dumps([str(label) for label in labels])}",
            f"metric: {json.dumps(metric)}",
            f"weight_averaging: {json.dumps(bool(averager_name))}",
            f"checkpoint: {json.dumps(description)}",
            "",
            model.rstrip("\n"),
            "",
            "modules:",
            "    model: !ref <model>",
            "",
            "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer",
            "    loadables:",
            "        model: !ref <model>",
            "    paths:",
            f"        model: {weights_ref}",
            "    custom_hooks:",
            "        model: !name:craft_modules.weights.run_folder.load_model_weights",
            "",
        ]
    )
    path = os.path.join(run_folder, INFERENCE_YAML)
    write_text_atomic(text, path)
    return path


def write_run_inference_yaml(run_folder, hparams, checkpointer):
    """:func:`write_inference_yaml` from a training run's hyperparameters and checkpointer.

    Arguments
    ---------
    run_folder : str
        The experiment folder.
    hparams : dict
        The run's hyperparameters (``model``, ``sample_rate``,
        ``clip_duration``, ``loss``, ``metric``, ``use_weight_averaging``,
        ``weight_averager``...).
    checkpointer : speechbrain.utils.checkpoints.Checkpointer
        The run's checkpointer.

    Returns
    -------
    str or None
        The path written; None when the run has no ``hyperparams.yaml`` or
        no checkpoint yet.
    """
    if not os.path.isfile(os.path.join(run_folder, "hyperparams.yaml")):
        logger.debug("No hyperparams.yaml in %s: no %s", run_folder, INFERENCE_YAML)
        return None
    if not checkpointer.list_checkpoints():
        return None
    model = hparams["model"]
    if hasattr(model, "mask_patch"):  # a pretraining run: embeddings only
        labels, multilabel = PRETRAINING_LABELS, True
    else:
        labels = label_names(run_folder, hparams)
        multilabel = hparams.get("loss", "ce") == "bce"
    averager = hparams.get("weight_averager")
    averager_name = None
    if hparams.get("use_weight_averaging") and averager is not None and averager.count:
        averager_name = next(
            (k for k, v in checkpointer.recoverables.items() if v is averager),
            "averager",
        )
    return write_inference_yaml(
        run_folder,
        checkpointer.checkpoints_dir,
        labels,
        hparams.get("sample_rate", 16000),
        hparams["clip_duration"],
        multilabel,
        metric=hparams.get("metric"),
        averager_name=averager_name,
    )
