#!/usr/bin/env python3
"""ESC-50 five-fold fine-tuning of CRAFT, AST, SWAST (or any classifier in YAML).

Runs one fine-tuning per held-out fold (all five, or those given with
``--folds=[1,3]``) from the same starting point, evaluating on the held-out
fold after every epoch, as SSAST does. The reported score follows SSAST's
``get_esc_result.py``: the single epoch with the best fold-averaged accuracy,
and each fold's accuracy at that epoch. ``<output_folder>/results.json``
holds ``per_fold`` (fold -> accuracy), ``mean_accuracy``, ``best_epoch`` and
each fold's last-epoch accuracy; ``confusion_matrix.png`` (and ``.json``) is
drawn from the held-out predictions of every fold at the best epoch, and
``curves.png`` shows every fold's training loss and held-out accuracy per
epoch with their mean (each fold folder has its own ``curves.png``).

Data layouts (``layout``):

* ``esc50`` (default): the official release, ``meta/esc50.csv`` and
  ``audio/`` with its five folds (``esc50_prepare.py``).
* ``folders``: a dataset of one's own, ``<data_folder>/<class_name>/*.wav``
  (any audio format soundfile reads), prepared by
  :func:`craft_modules.data.class_folders.prepare_class_folders`:
  ``n_folds`` folds drawn from the seed, stratified by class and grouped by
  ``group_regex`` when given.

With either, ``n_classes: auto`` and ``clip_duration: auto`` (the YAML
defaults) become the number of prepared labels and the data's clip length
(:func:`craft_modules.training.experiment.auto_clip_duration`: ESC-50 gives
5.0 s), passed to every fold as overrides so that each fold's
``hyperparams.yaml`` records them. With ``layout: folders`` (unless
``--norm_stats`` names statistics) or ``norm_stats: auto``, the fbank
normalisation statistics are computed from each fold's training clips,
saved in ``<prepare_folder>/norm_stats_fold<k>.json`` and recorded the
same way. Without ``pretrained_path`` and ``init_from`` the run trains
from scratch with the YAML's ``scratch_lr_schedule`` (warm-up and cosine
decay), else with SSAST's ``lr_schedule``; the log says which.

Usage:
    python recipes/ESC50/train.py hparams/craft.yaml --data_folder=/data/ESC-50
    # your own data, DATA/<class_name>/*.wav, from scratch:
    python recipes/ESC50/train.py hparams/ast.yaml --layout=folders --data_folder=DATA
    torchrun --nproc_per_node=4 recipes/ESC50/train.py hparams/craft.yaml --data_folder=...
    # prepare, build the model, draw one batch, write dry_run.json, stop:
    ... --dry_run=True

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import hashlib
import os
import sys

import speechbrain as sb
from esc50_prepare import prepare_esc50
from speechbrain.dataio.dataio import load_data_json
from speechbrain.utils.distributed import run_on_main

from craft_modules.data import class_folders
from craft_modules.data.datasets import labelled_datasets
from craft_modules.data.labels import checked_labels, one_hot_pipeline
from craft_modules.data.norm_stats import cached_norm_stats, manifest_norm_stats
from craft_modules.metrics import save_confusion_matrix
from craft_modules.plots import plot_fold_curves
from craft_modules.training.brains import ClassifierBrain
from craft_modules.training.dry_run import report_dry_run
from craft_modules.training.experiment import (
    auto_clip_duration,
    finish,
    frames_for_duration,
    merge_overrides,
    override_keys,
    parse_recipe_arguments,
    read_plain_hparams,
    release_memory,
    start_experiment,
)
from craft_modules.training.loaders import eval_loader_options, train_loader_options
from craft_modules.training.results import describe_model, write_results
from craft_modules.training.schedulers import select_lr_schedule
from craft_modules.weights.loading import initialise, weight_sources

logger = sb.utils.logger.get_logger(__name__)

#: ``layout`` -> the preparation function and the manifest it writes.
LAYOUTS = {
    "esc50": (prepare_esc50, "esc50.json"),
    "folders": (class_folders.prepare_class_folders, class_folders.MANIFEST_FILE),
}


def fold_manifests(manifest_path, fold):
    """Training manifest (the other folds) and evaluation manifest (``fold``)."""
    manifest = load_data_json(manifest_path)  # undoubles braces in file names
    train = {k: v for k, v in manifest.items() if int(v["fold"]) != fold}
    test = {k: v for k, v in manifest.items() if int(v["fold"]) == fold}
    if not train or not test:
        raise ValueError(
            f"fold {fold} leaves an empty training or evaluation set in {manifest_path}"
        )
    return {"train": train, "test": test}


def fold_norm_stats(split, fold, settings, resolved):
    """Normalisation statistics of the fold's training clips, computed once (main process).

    Returns ``[mean, std]`` (as the model's ``norm_stats`` takes them), read from
    ``<prepare_folder>/norm_stats_fold<fold>.json`` (written the first time).
    """
    path = os.path.join(settings["prepare_folder"], f"norm_stats_fold{fold}.json")

    def compute():
        return manifest_norm_stats(
            split["train"],
            frames_for_duration(resolved["clip_duration"]),
            resolved["clip_duration"],
            sample_rate=settings["sample_rate"],
            seed=settings["seed"],
        )

    inputs = {  # a change of any of these recomputes the statistics
        "clip_duration": resolved["clip_duration"],
        "sample_rate": settings["sample_rate"],
        "seed": settings["seed"],
        "clips": hashlib.sha256("\n".join(sorted(split["train"])).encode()).hexdigest(),
    }
    kwargs = {"path": path, "compute": compute, "inputs": inputs}
    run_on_main(cached_norm_stats, kwargs=kwargs)
    stats = cached_norm_stats(**kwargs)  # read back on every process
    return [round(stats["mean"], 6), round(stats["std"], 6)]


def run_fold(
    hparams_file, run_opts, overrides, fold, manifest_path, settings, resolved
):
    """Fine-tunes on every fold but ``fold``, evaluating on ``fold`` after every epoch.

    ``resolved`` holds the settings resolved from the data (``n_classes``,
    ``clip_duration``), passed as overrides; with ``settings["compute_norm_stats"]``
    the fold's normalisation statistics are added. Returns the Brain's
    epoch history and the description of the model.
    """
    split = fold_manifests(manifest_path, fold)
    extra = {"fold": fold, **resolved}
    if settings["compute_norm_stats"]:
        extra["norm_stats"] = fold_norm_stats(split, fold, settings, resolved)
    # Hyperparameters of this fold (the model is built here, once per fold)
    # and its experiment folder, <output_folder>/fold_<fold>.
    overrides = merge_overrides(overrides, extra)  # saved with the run
    hparams = start_experiment(hparams_file, overrides, "experiment_folder")

    # Datasets: clips cut to clip_duration, one-hot targets.
    datasets = labelled_datasets(
        split,
        one_hot_pipeline(hparams["n_classes"]),
        sample_rate=hparams["sample_rate"],
        clip_duration=hparams["clip_duration"],
        eval_clip_duration=hparams.get("eval_clip_duration"),
        pad=bool(hparams.get("pad_clips", True)),
    )
    train_loader_kwargs = train_loader_options(
        hparams["batch_size"],
        num_workers=hparams.get("num_workers", 0),
        drop_last=hparams.get("drop_last", False),
    )

    # --dry_run=True: the built model and one training batch, then stop
    # (pretrained_path is reported, not loaded).
    if hparams.get("dry_run"):
        report_dry_run(hparams, datasets["train"], train_loader_kwargs)
        return None, None

    # The starting point: a pretraining run, an official checkpoint or scratch.
    initialise(hparams["model"], **weight_sources(hparams))
    hparams["lr_schedule"], _ = select_lr_schedule(hparams)
    brain_class = hparams.get("brain_class") or ClassifierBrain
    brain = brain_class(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )

    # SSAST evaluates the held-out fold after every epoch; the score is read
    # from these evaluations (no separate test pass).
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["test"],
        train_loader_kwargs=train_loader_kwargs,
        valid_loader_kwargs=eval_loader_options(
            datasets["test"],
            2 * hparams["batch_size"],
            num_workers=hparams.get("num_workers", 0),
        ),
    )
    history, model = brain.history, describe_model(hparams["model"])
    del brain, hparams, datasets
    release_memory()  # the next fold starts with this fold's memory free
    return history, model


def summarise(folds, histories, labels, output_folder):
    """SSAST's ESC-50 score: the best epoch of the fold-averaged accuracy."""
    common = set.intersection(*({h["epoch"] for h in histories[f]} for f in folds))
    by_epoch = {f: {h["epoch"]: h for h in histories[f]} for f in folds}
    mean = {
        e: sum(by_epoch[f][e]["accuracy"] for f in folds) / len(folds) for e in common
    }
    best_epoch = max(sorted(mean), key=lambda e: mean[e])
    results = {
        "per_fold": {str(f): by_epoch[f][best_epoch]["accuracy"] for f in folds},
        "mean_accuracy": mean[best_epoch],
        "best_epoch": best_epoch,
        "per_fold_last_epoch": {str(f): histories[f][-1]["accuracy"] for f in folds},
        "folds": list(folds),
    }
    targets, predictions = [], []
    for f in folds:
        entry = by_epoch[f][best_epoch]
        for clip, predicted in entry.get("predictions", {}).items():
            targets.append(entry["targets"][clip])
            predictions.append(predicted)
    plot_fold_curves(
        histories,
        os.path.join(output_folder, "curves.png"),
        best_epoch=best_epoch,
    )
    if predictions:
        save_confusion_matrix(
            targets,
            predictions,
            labels,
            os.path.join(output_folder, "confusion_matrix.png"),
        )
    return results


def prepare_data(settings):
    """Prepares the data of ``settings["layout"]`` (main process); returns the manifest path."""
    layout = settings["layout"]
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
    prepare, manifest_file = LAYOUTS[layout]
    kwargs = {
        "data_folder": settings["data_folder"],
        "save_folder": settings["prepare_folder"],
    }
    if layout == "folders":
        kwargs.update(
            n_folds=settings["n_folds"],
            seed=settings["seed"],
            group_regex=settings["group_regex"],
        )
    run_on_main(prepare, kwargs=kwargs)
    return os.path.join(settings["prepare_folder"], manifest_file)


def resolve_from_data(settings, manifest_path, label_file):
    """``n_classes`` and ``clip_duration`` of the YAML, with ``auto`` read from the data."""
    labels = checked_labels(label_file, settings["n_classes"])
    resolved = {"n_classes": len(labels)}
    duration = settings["clip_duration"]
    if str(duration).lower() == "auto":
        manifest = load_data_json(manifest_path)
        duration = auto_clip_duration([e["duration"] for e in manifest.values()])
    resolved["clip_duration"] = float(duration)
    logger.info(
        "%s data: %d classes, clips of %.2f s (%d frames)",
        settings["layout"],
        resolved["n_classes"],
        resolved["clip_duration"],
        frames_for_duration(resolved["clip_duration"]),
    )
    return labels, resolved


def main():
    """Prepares the data, runs the folds and writes results.json."""
    hparams_file, run_opts, overrides = parse_recipe_arguments(sys.argv[1:], __file__)

    # The settings shared by the folds, read without building any object.
    settings = read_plain_hparams(
        hparams_file,
        overrides,
        ["data_folder", "prepare_folder", "output_folder", "n_classes", "folds"],
        optional={
            "layout": "esc50",
            "n_folds": 5,
            "group_regex": None,
            "seed": 1986,
            "sample_rate": 16000,
            "clip_duration": "auto",
            "norm_stats": None,
        },
    )
    manifest_path = prepare_data(settings)
    label_file = os.path.join(settings["prepare_folder"], "labels.json")
    labels, resolved = resolve_from_data(settings, manifest_path, label_file)
    # Statistics of one's own: norm_stats: auto, or layout folders unless
    # --norm_stats names some (YAMLs without norm_stats have no fbank).
    own_data = settings["layout"] == "folders"
    settings["compute_norm_stats"] = settings["norm_stats"] is not None and (
        settings["norm_stats"] == "auto"
        or (own_data and "norm_stats" not in override_keys(overrides))
    )

    # One fine-tuning per held-out fold.
    folds = [int(f) for f in settings["folds"]]
    if own_data and not set(folds) <= set(range(1, int(settings["n_folds"]) + 1)):
        raise ValueError(
            f"folds={folds} but n_folds={settings['n_folds']}: "
            f"choose folds among 1..{settings['n_folds']}"
        )
    histories, models = {}, {}
    for fold in folds:
        histories[fold], models[fold] = run_fold(
            hparams_file, run_opts, overrides, fold, manifest_path, settings, resolved
        )
        if histories[fold] is None:  # --dry_run=True: the first fold only
            return finish()

    results = summarise(folds, histories, labels, settings["output_folder"])
    results["model"] = models[folds[0]]
    write_results(os.path.join(settings["output_folder"], "results.json"), results)
    if sb.utils.distributed.if_main_process():
        print(
            f"ESC-50 accuracy {100 * results['mean_accuracy']:.1f}% (best epoch {results['best_epoch']}); "
            + ", ".join(
                f"fold {f}: {100 * a:.1f}%" for f, a in results["per_fold"].items()
            )
        )
    finish()


if __name__ == "__main__":
    main()
