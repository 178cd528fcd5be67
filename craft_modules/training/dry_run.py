"""A recipe's ``--dry_run=True``: what it would train, without training.

The recipes ``recipes/AudioSet/pretrain.py``, ``recipes/AudioSet/train.py``
and ``recipes/ESC50/train.py`` read a top-level YAML key ``dry_run``
(``False`` in every CRAFT, SSAST and AST YAML). With ``--dry_run=True`` a
recipe prepares the data, builds the model and the datasets, draws one
training batch through the training loader, then writes what it built to
``<output_folder>/dry_run.json``, prints it on one line that starts with
:data:`MARKER`, and stops before the Brain is created (no weights are loaded,
nothing is trained). ``recipes/AudioSet/README.md`` and
``recipes/ESC50/README.md`` (the CRAFT paper's Tables 1 to 8) are checked
this way by ``tests/test_reproduction_tables.py``.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import json
import os

from speechbrain.dataio.dataloader import make_dataloader

from craft_modules.atomic_files import write_json_atomic

#: The line of a dry run's summary on stdout starts with this.
MARKER = "DRY RUN "


def _absolute(path):
    return os.path.abspath(str(path)) if path else ""


def dry_run_summary(hparams, batch=None):
    """What a recipe built: the model's method, streams and fusion, and its folders.

    Arguments
    ---------
    hparams : dict
        The loaded YAML (its ``model``, folders and weight sources).
    batch : speechbrain.dataio.batch.PaddedBatch, optional
        One batch of the training loader: its size and tensor shapes are
        recorded.

    Returns
    -------
    dict
        ``class``; ``method`` (pretraining) or ``fusion``, ``n_bottlenecks``
        and ``fusion_layer`` (fine-tuning); ``msae_kernels`` (None without a
        waveform stream); ``depth``, ``embed_dim``; ``output_folder``,
        ``save_folder``, ``pretrained_path`` (absolute; ``""`` for none),
        ``init_from``, ``batch_size``, ``lr``; ``batch`` (``size`` and
        ``shapes``) when a batch is given.

    Example
    -------
    >>> from craft_modules.models.craft import CraftClassifier
    >>> model = CraftClassifier(
    ...     n_classes=3, fusion="swab", model_size="tiny", depth=2, target_frames=64,
    ...     fusion_layer=1, n_bottlenecks=4,
    ... )
    >>> summary = dry_run_summary({"model": model, "output_folder": "out"})
    >>> summary["fusion"], summary["n_bottlenecks"], summary["fusion_layer"]
    ('swab', 4, 1)
    >>> summary["msae_kernels"], summary["depth"], summary["pretrained_path"]
    ([11, 51, 101], 2, '')
    """
    model = hparams["model"]
    encoder = getattr(model, "encoder", None)
    msae = getattr(model, "msae", None)
    summary = {
        "class": type(model).__name__,
        "method": getattr(model, "method", None),
        "fusion": getattr(model, "fusion", None),
        "n_bottlenecks": getattr(model, "n_bottlenecks", None),
        "fusion_layer": getattr(model, "fusion_layer", None),
        "msae_kernels": list(msae.kernel_sizes) if msae is not None else None,
        "depth": getattr(encoder, "depth", None),
        "embed_dim": getattr(encoder, "embed_dim", None),
        "output_folder": _absolute(hparams.get("output_folder")),
        "save_folder": _absolute(hparams.get("save_folder")),
        "pretrained_path": _absolute(hparams.get("pretrained_path")),
        "init_from": hparams.get("init_from", ""),
        "batch_size": hparams.get("batch_size"),
        "lr": hparams.get("lr"),
    }
    if batch is not None:
        shapes = {}
        for key, value in vars(batch).items():
            data = getattr(value, "data", value)  # PaddedData: the tensor
            if not key.startswith("_") and hasattr(data, "shape"):
                shapes[key] = list(data.shape)
        summary["batch"] = {"size": batch.batchsize, "shapes": shapes}
    return summary


def report_dry_run(hparams, train_set, loader_options):
    """Draws one training batch, then writes and prints :func:`dry_run_summary`.

    Arguments
    ---------
    hparams : dict
        The loaded YAML.
    train_set : torch.utils.data.Dataset
        The training set the recipe would fit on.
    loader_options : dict
        The training loader's options (as given to the Brain's ``fit``);
        the batch is drawn without ``drop_last``.

    Returns
    -------
    dict
        The summary, also written to ``<output_folder>/dry_run.json``.
    """
    # drop_last off: a small data folder still gives a (short) batch.
    options = dict(loader_options, drop_last=False)
    batch = next(iter(make_dataloader(train_set, **options)))
    summary = dry_run_summary(hparams, batch)
    write_json_atomic(summary, os.path.join(hparams["output_folder"], "dry_run.json"))
    print(MARKER + json.dumps(summary), flush=True)
    return summary
