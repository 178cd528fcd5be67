"""What a recipe writes to ``results.json``: metrics, the epoch history, the model.

The recipe gathers the values itself (the Brain's ``history`` and
``test_metrics``, the model) and passes them here; :func:`write_results`
writes the file from the main process.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import os

from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.logger import get_logger

from craft_modules.data.preparation import write_json_atomic
from craft_modules.metrics import save_predictions

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


def write_multilabel_results(output_folder, brain, model):
    """Writes a multi-label run's ``results.json`` and ``eval_predictions.npz``.

    ``eval_predictions.npz`` holds each evaluated clip's scores, which
    ``recipes/AudioSet/ensemble.py`` averages over runs.

    Arguments
    ---------
    output_folder : str
        The run's output folder.
    brain : ClassifierBrain
        The Brain after ``evaluate`` (``test_metrics``, ``history``,
        ``weight_averaged``, ``test_predictions``).
    model : torch.nn.Module
        The trained model.

    Returns
    -------
    dict
        The results (see :func:`multilabel_results`).
    """
    results = multilabel_results(
        brain.test_metrics, brain.history, model, brain.weight_averaged
    )
    write_results(os.path.join(output_folder, "results.json"), results)
    save_predictions(
        os.path.join(output_folder, "eval_predictions.npz"), *brain.test_predictions
    )
    return results
