#!/usr/bin/env python3
"""ESC-50 five-fold fine-tuning of CRAFT, AST, SWAST (or any classifier in YAML).

Runs one fine-tuning per held-out fold (all five, or those given with
``--folds=[1,3]``) from the same starting point, evaluating on the held-out
fold after every epoch, as SSAST does. The reported score follows SSAST's
``get_esc_result.py``: the single epoch with the best fold-averaged accuracy,
and each fold's accuracy at that epoch. ``<output_folder>/results.json``
holds ``per_fold`` (fold -> accuracy), ``mean_accuracy``, ``best_epoch`` and
each fold's last-epoch accuracy; ``confusion_matrix.png`` (and ``.json``) is
drawn from the held-out predictions of every fold at the best epoch.

Usage:
    python recipes/ESC50/train.py hparams/craft.yaml --data_folder=/data/ESC-50
    torchrun --nproc_per_node=4 recipes/ESC50/train.py hparams/craft.yaml --data_folder=...

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import os
import sys

import speechbrain as sb
from esc50_prepare import prepare_esc50
from speechbrain.dataio.dataio import load_data_json
from speechbrain.utils.distributed import run_on_main

from craft_modules.metrics import save_confusion_matrix
from craft_modules.training.experiment import (
    finish,
    load_hparams,
    merge_overrides,
    one_hot_pipeline,
    parse_recipe_arguments,
    start_experiment,
    write_results,
)
from craft_modules.training.steps import (
    checked_labels,
    describe_model,
    fit_classifier,
    labelled_datasets,
)


def fold_datasets(hparams, manifest_path, fold):
    """Training set (the other folds) and evaluation set (``fold``)."""
    manifest = load_data_json(manifest_path)  # undoubles braces in file names
    train = {k: v for k, v in manifest.items() if int(v["fold"]) != fold}
    test = {k: v for k, v in manifest.items() if int(v["fold"]) == fold}
    if not train or not test:
        raise ValueError(
            f"fold {fold} leaves an empty training or evaluation set in {manifest_path}"
        )
    datasets = labelled_datasets(
        hparams, {"train": train, "test": test}, one_hot_pipeline(hparams["n_classes"])
    )
    return datasets["train"], datasets["test"]


def run_fold(hparams_file, run_opts, overrides, fold, prepared):
    """Fine-tunes on every fold but ``fold`` and evaluates on ``fold`` each epoch."""
    overrides = merge_overrides(overrides, {"fold": fold})  # saved with the run
    hparams = start_experiment(hparams_file, overrides, "experiment_folder")
    train_set, test_set = fold_datasets(hparams, prepared["manifest"], fold)
    brain = fit_classifier(hparams, run_opts, train_set, test_set)
    return brain.load_history(), describe_model(hparams["model"])


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
    hparams = load_hparams(hparams_file, overrides, {"fold": 1})
    run_on_main(
        prepare_esc50,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["prepare_folder"],
        },
    )
    prepared = {
        "manifest": os.path.join(hparams["prepare_folder"], "esc50.json"),
        "labels": os.path.join(hparams["prepare_folder"], "labels.json"),
    }
    labels = checked_labels(hparams, prepared["labels"])
    folds = [int(f) for f in hparams["folds"]]
    runs = {
        fold: run_fold(hparams_file, run_opts, overrides, fold, prepared)
        for fold in folds
    }
    histories = {fold: history for fold, (history, _) in runs.items()}
    results = summarise(folds, histories, labels, hparams["output_folder"])
    results["model"] = runs[folds[0]][1]
    write_results(os.path.join(hparams["output_folder"], "results.json"), results)
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
