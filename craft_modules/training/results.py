"""What a recipe writes to ``results.json``: metrics, the epoch history, the model.

The recipe gathers the values itself (the Brain's ``history`` and
``test_metrics``, the model) and passes them here; :func:`write_results`
writes the file from the main process. Multi-label runs add each class's
average precision (:func:`per_class_results`) and its plot,
``per_class_ap.png`` (:func:`craft_modules.plots.plot_per_class_ap`).

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import math
import os

from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.logger import get_logger

from craft_modules.atomic_files import write_json_atomic
from craft_modules.metrics import per_class_average_precision, save_predictions
from craft_modules.plots import plot_per_class_ap
from craft_modules.weights.run_folder import label_names

logger = get_logger(__name__)

#: Per-clip entries of an epoch's history (ESC-50's confusion matrix), left
#: out of the ``epochs`` of results.json.
PER_CLIP_KEYS = ("predictions", "targets")


def describe_model(model):
    """What the results JSON records about the model.

    Arguments
    ---------
    model : torch.nn.Module
        The trained model.

    Returns
    -------
    dict
        ``class``, ``parameters`` and, where the model has them, ``fusion``,
        ``streams`` (diverse embeddings) or ``encoder`` (CLAR).

    Example
    -------
    >>> import torch
    >>> describe_model(torch.nn.Linear(2, 3))
    {'class': 'Linear', 'parameters': 9}
    """
    info = {
        "class": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    for attribute, key in (
        ("fusion", "fusion"),
        ("stream_names", "streams"),
        ("encoder_type", "encoder"),
    ):
        value = getattr(model, attribute, None)
        if isinstance(value, (str, list, tuple)):
            info[key] = list(value) if isinstance(value, (list, tuple)) else value
    return info


def epoch_summaries(history):
    """The epoch history without its per-clip entries.

    Arguments
    ---------
    history : list of dict
        ``ClassifierBrain.history``: one dict of validation metrics per epoch.

    Returns
    -------
    list of dict
        The same dicts less :data:`PER_CLIP_KEYS`.

    Example
    -------
    >>> epoch_summaries([{"epoch": 1, "accuracy": 0.5, "predictions": {"a": 0}}])
    [{'epoch': 1, 'accuracy': 0.5}]
    """
    return [
        {k: v for k, v in epoch.items() if k not in PER_CLIP_KEYS} for epoch in history
    ]


def _class_names(labels, n_classes):
    """Unique display names of ``n_classes`` labels (str or AudioSet-style dicts)."""
    if len(labels) != n_classes:
        raise ValueError(f"{len(labels)} label names for scores of {n_classes} classes")
    names, seen = [], set()
    for index, entry in enumerate(labels):
        if isinstance(entry, dict):
            entry = entry.get("display_name") or entry.get("mid")
        name = str(entry) if entry is not None else f"class_{index}"
        if name in seen:
            name = f"{name} ({index})"
        seen.add(name)
        names.append(name)
    return names


def per_class_results(scores, targets, labels):
    """Each class's average precision, by label name, for results.json.

    The APs are those the mAP averages
    (:func:`craft_modules.metrics.per_class_average_precision`): a class
    without both positive and negative clips in the evaluation set has none
    and is listed in ``unscored_classes`` instead.

    Arguments
    ---------
    scores : torch.Tensor or numpy.ndarray
        Evaluation scores ``(N, C)``.
    targets : torch.Tensor or numpy.ndarray
        Multi-hot targets ``(N, C)``.
    labels : list
        The ``C`` label names in output order (str, or labels.json's
        ``{"mid", "display_name"}`` entries, which give their display name).

    Returns
    -------
    dict
        ``per_class_AP`` (name -> AP, in label order) and
        ``unscored_classes`` (names).

    Example
    -------
    >>> scores = [[0.9, 0.2, 0.1], [0.4, 0.6, 0.3], [0.7, 0.1, 0.2]]
    >>> targets = [[1, 0, 0], [0, 1, 0], [0, 1, 0]]
    >>> per_class_results(scores, targets, ["dog", {"mid": "/m/1", "display_name": "Cat"}, "owl"])
    {'per_class_AP': {'dog': 1.0, 'Cat': 0.8333333333333333}, 'unscored_classes': ['owl']}
    """
    aps = per_class_average_precision(scores, targets)
    names = _class_names(labels, len(aps))
    return {
        "per_class_AP": {
            name: float(ap) for name, ap in zip(names, aps) if not math.isnan(ap)
        },
        "unscored_classes": [name for name, ap in zip(names, aps) if math.isnan(ap)],
    }


def multilabel_results(metrics, history, model, weight_averaged):
    """The results.json of a multi-label recipe.

    Arguments
    ---------
    metrics : dict
        The evaluation's metrics (``ClassifierBrain.test_metrics``).
    history : list of dict
        The per-epoch validation metrics (``ClassifierBrain.history``).
    model : torch.nn.Module
        The trained model.
    weight_averaged : bool
        Whether the averaged weights were evaluated.

    Returns
    -------
    dict
        ``mAP``, ``mAUC``, ``d_prime``, ``weight_averaged``, ``model`` and
        ``epochs`` (per-epoch validation metrics).

    Example
    -------
    >>> import torch
    >>> metrics = {"mAP": 0.5, "mAUC": 0.7, "d_prime": 0.8, "n_clips": 4}
    >>> results = multilabel_results(metrics, [{"epoch": 1}], torch.nn.Linear(1, 1), False)
    >>> sorted(results)
    ['d_prime', 'epochs', 'mAP', 'mAUC', 'model', 'weight_averaged']
    """
    results = {key: metrics[key] for key in ("mAP", "mAUC", "d_prime")}
    results["weight_averaged"] = bool(weight_averaged)
    results["model"] = describe_model(model)
    results["epochs"] = epoch_summaries(history)
    return results


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


def write_multilabel_results(output_folder, brain, model, labels=None):
    """Writes a multi-label run's ``results.json``, ``eval_predictions.npz`` and ``per_class_ap.png``.

    ``eval_predictions.npz`` holds each evaluated clip's scores, which
    ``recipes/AudioSet/ensemble.py`` averages over runs; ``results.json``
    adds each class's AP on them (:func:`per_class_results`), which
    ``per_class_ap.png`` plots.

    Arguments
    ---------
    output_folder : str
        The run's output folder.
    brain : ClassifierBrain
        The Brain after ``evaluate`` (``test_metrics``, ``history``,
        ``weight_averaged``, ``test_predictions``).
    model : torch.nn.Module
        The trained model.
    labels : list, optional
        The label names in output order; by default those of the run's
        ``labels.json`` (:func:`craft_modules.weights.run_folder.label_names`).

    Returns
    -------
    dict
        The results (see :func:`multilabel_results`), with
        ``per_class_AP`` and ``unscored_classes``.
    """
    results = multilabel_results(
        brain.test_metrics, brain.history, model, brain.weight_averaged
    )
    _, scores, targets = brain.test_predictions
    if labels is None:
        labels = label_names(output_folder, vars(brain.hparams))
    per_class = per_class_results(scores, targets, labels)
    results.update(per_class)
    write_results(os.path.join(output_folder, "results.json"), results)
    save_predictions(
        os.path.join(output_folder, "eval_predictions.npz"), *brain.test_predictions
    )
    plot_per_class_ap(
        per_class["per_class_AP"],
        os.path.join(output_folder, "per_class_ap.png"),
        unscored=per_class["unscored_classes"],
    )
    return results
