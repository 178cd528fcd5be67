"""The fit-and-evaluate steps every classification recipe shares.

A recipe prepares its data and builds its datasets; these functions do the
rest the same way for AudioSet, FSD50K and ESC-50: initialise the model
(``pretrained_path`` / ``init_from``), build the Brain named by the YAML's
``brain_class`` (default :class:`craft_modules.training.brains.ClassifierBrain`),
train with evaluation after every epoch, evaluate the best (or weight
averaged) model, and describe the model in the results.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

from craft_modules.data.labels import load_label_list, multi_hot_pipeline
from craft_modules.training.brains import ClassifierBrain
from craft_modules.training.experiment import (
    audio_dataset,
    eval_loader_options,
    train_loader_options,
)
from craft_modules.weights import initialise, weight_sources


def labelled_datasets(hparams, manifests, target_item):
    """Datasets yielding ``id``, ``sig`` and ``targets``.

    Clips are cut to ``clip_duration`` seconds; sets other than ``train`` to
    ``eval_clip_duration`` when the YAML has one (e.g. whole FSD50K clips
    for clip-level evaluation). With ``pad_clips: False`` shorter clips are
    not padded, so the batch's relative lengths carry their true lengths.

    Arguments
    ---------
    hparams : dict
        Needs ``sample_rate`` and ``clip_duration``; optional
        ``eval_clip_duration`` and ``pad_clips``.
    manifests : dict
        Name -> manifest path or dict.
    target_item : DynamicItem
        Provides ``targets`` (e.g. :func:`craft_modules.data.labels.multi_hot_pipeline`
        or :func:`craft_modules.training.experiment.one_hot_pipeline`).

    Returns
    -------
    dict
        Name -> DynamicItemDataset.
    """
    keys = ("id", "sig", "targets")
    pad = bool(hparams.get("pad_clips", True))
    datasets = {}
    for name, manifest in manifests.items():
        duration = hparams["clip_duration"]
        if name != "train" and hparams.get("eval_clip_duration"):
            duration = hparams["eval_clip_duration"]
        datasets[name] = audio_dataset(
            manifest, hparams["sample_rate"], duration, [target_item], keys, pad=pad
        )
    return datasets


def multilabel_datasets(hparams, label_file, manifests):
    """:func:`labelled_datasets` with multi-hot targets from ``label_file``."""
    return labelled_datasets(hparams, manifests, multi_hot_pipeline(label_file))


def fit_classifier(hparams, run_opts, train_set, valid_set, train_options=None):
    """Initialises the model, then trains with evaluation after every epoch.

    Arguments
    ---------
    hparams : dict
        The recipe's hyperparameters (``model``, ``modules``, ``opt_class``,
        ``checkpointer``, ``epoch_counter``, ``pretrained_path``,
        ``init_from``; optional ``brain_class``).
    run_opts : dict
        SpeechBrain run options.
    train_set : Dataset
        Training data.
    valid_set : Dataset
        Evaluated after every epoch (checkpoint selection).
    train_options : dict, optional
        Training loader options (default :func:`train_loader_options`).

    Returns
    -------
    sb.Brain
        The trained Brain.
    """
    initialise(hparams["model"], **weight_sources(hparams))
    brain_class = hparams.get("brain_class") or ClassifierBrain
    brain = brain_class(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.fit(
        hparams["epoch_counter"],
        train_set,
        valid_set,
        train_loader_kwargs=train_options or train_loader_options(hparams),
        valid_loader_kwargs=eval_loader_options(hparams, valid_set),
    )
    return brain


def evaluate_classifier(brain, hparams, test_set):
    """Evaluates the best checkpoint (or the weight average) on ``test_set``.

    Arguments
    ---------
    brain : ClassifierBrain
        From :func:`fit_classifier`.
    hparams : dict
        Needs ``metric``.
    test_set : Dataset
        Evaluation data.

    Returns
    -------
    dict
        The metrics (``mAP``, ``mAUC``, ``d_prime`` or ``accuracy``, ...).
    """
    brain.evaluate(
        test_set,
        max_key=hparams["metric"],
        test_loader_kwargs=eval_loader_options(hparams, test_set),
    )
    return dict(brain.test_metrics)


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


def multilabel_results(brain, hparams, metrics):
    """The results.json of a multi-label recipe.

    Arguments
    ---------
    brain : ClassifierBrain
        The trained Brain (for the epoch history).
    hparams : dict
        The recipe's hyperparameters.
    metrics : dict
        From :func:`evaluate_classifier`.

    Returns
    -------
    dict
        ``mAP``, ``mAUC``, ``d_prime``, ``weight_averaged``, ``model`` and
        ``epochs`` (per-epoch validation metrics).
    """
    results = {key: metrics[key] for key in ("mAP", "mAUC", "d_prime")}
    averager = hparams.get("weight_averager")
    results["weight_averaged"] = bool(
        hparams.get("use_weight_averaging") and averager is not None and averager.count
    )
    results["model"] = describe_model(hparams["model"])
    results["epochs"] = [
        {k: v for k, v in epoch.items() if k not in ("predictions", "targets")}
        for epoch in brain.load_history()
    ]
    return results


def checked_labels(hparams, label_file):
    """Reads labels.json and checks it against the YAML's ``n_classes``.

    Arguments
    ---------
    hparams : dict
        Needs ``n_classes``.
    label_file : str
        The labels.json of the preparation.

    Returns
    -------
    list
        The labels.
    """
    labels = load_label_list(label_file)
    if len(labels) != hparams["n_classes"]:
        raise ValueError(
            f"n_classes={hparams['n_classes']} but {label_file} lists "
            f"{len(labels)} classes (set --n_classes={len(labels)})"
        )
    return labels
