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

Usage:
    python recipes/ESC50/train.py hparams/craft.yaml --data_folder=/data/ESC-50
    torchrun --nproc_per_node=4 recipes/ESC50/train.py hparams/craft.yaml --data_folder=...
    # prepare, build the model, draw one batch, write dry_run.json, stop:
    ... --dry_run=True

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import os
import sys

import speechbrain as sb
from esc50_prepare import prepare_esc50
from speechbrain.dataio.dataio import load_data_json
from speechbrain.utils.distributed import run_on_main

from craft_modules.data.datasets import labelled_datasets
from craft_modules.data.labels import checked_labels, one_hot_pipeline
from craft_modules.metrics import save_confusion_matrix
from craft_modules.plots import plot_fold_curves
from craft_modules.training.brains import ClassifierBrain
from craft_modules.training.dry_run import report_dry_run
from craft_modules.training.experiment import (
    finish,
    merge_overrides,
    parse_recipe_arguments,
    read_plain_hparams,
    start_experiment,
)
from craft_modules.training.loaders import eval_loader_options, train_loader_options
from craft_modules.training.results import describe_model, write_results
from craft_modules.weights.loading import initialise, weight_sources


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


def run_fold(hparams_file, run_opts, overrides, fold, manifest_path):
    """Fine-tunes on every fold but ``fold``, evaluating on ``fold`` after every epoch.

    Returns the Brain's epoch history and the description of the model.
    """
    # Hyperparameters of this fold (the model is built here, once per fold)
    # and its experiment folder, <output_folder>/fold_<fold>.
    overrides = merge_overrides(overrides, {"fold": fold})  # saved with the run
    hparams = start_experiment(hparams_file, overrides, "experiment_folder")

    # Datasets: clips cut to clip_duration, one-hot targets.
    datasets = labelled_datasets(
        fold_manifests(manifest_path, fold),
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
    return brain.history, describe_model(hparams["model"])


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


def main():
    """Prepares ESC-50, runs the folds and writes results.json."""
    hparams_file, run_opts, overrides = parse_recipe_arguments(sys.argv[1:], __file__)

    # The settings shared by the folds, read without building any object.
    settings = read_plain_hparams(
        hparams_file,
        overrides,
        ["data_folder", "prepare_folder", "output_folder", "n_classes", "folds"],
    )
    run_on_main(
        prepare_esc50,
        kwargs={
            "data_folder": settings["data_folder"],
            "save_folder": settings["prepare_folder"],
        },
    )
    manifest_path = os.path.join(settings["prepare_folder"], "esc50.json")
    labels = checked_labels(
        os.path.join(settings["prepare_folder"], "labels.json"), settings["n_classes"]
    )

    # One fine-tuning per held-out fold.
    folds = [int(f) for f in settings["folds"]]
    histories, models = {}, {}
    for fold in folds:
        histories[fold], models[fold] = run_fold(
            hparams_file, run_opts, overrides, fold, manifest_path
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
