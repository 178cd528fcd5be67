#!/usr/bin/env python3
"""AudioSet (multi-label) fine-tuning of CRAFT (SWaB), AST or SWAST.

SSAST's AudioSet settings (the YAMLs): waveform mixup Beta(10, 10) with
probability 0.5, SpecAugment 48/192, BCE, lr halved after epochs 10, 15, 20,
uniform weight averaging of epochs 6..25 evaluated at the end; balanced
sampling (AST's label-frequency weights) for the full set. mAP, mAUC and
d-prime are computed on the eval set after every epoch (over the whole set
exactly once under DDP); the final metrics go to
``<output_folder>/results.json`` (keys ``mAP``, ``mAUC``, ``d_prime``), each
clip's scores to ``<output_folder>/eval_predictions.npz`` (``ids``, sigmoid
``scores``, ``targets``), which ``ensemble.py`` averages over runs (the CRAFT
paper's Table 1 ensemble).

The full set, as AST's full-set recipe (YuanGongND/ast
``egs/audioset/run.sh``, ``set=full``: lr 1e-5, 5 epochs, lr halved after
epochs 2, 3 and 4, uniform average of epochs 1..5): add
``--train_splits=[balanced_train,unbalanced_train] --balanced_sampling=True
--lr=0.00001 --number_of_epochs=5 --weight_averaging_start=1
"--lr_schedule={start: 2, step: 1}"``. A ``weight_averaging_start`` beyond
``number_of_epochs`` is an error at the start of fitting.

Usage:
    python recipes/AudioSet/train.py hparams/finetune_craft.yaml --data_folder=/data/AudioSet \
        --pretrained_path=results/AudioSet/pretrain/pswacl/1986/save
    # prepare, build the model, draw one batch, write dry_run.json, stop:
    ... --dry_run=True

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import sys

import speechbrain as sb
from audioset_prepare import prepare_audioset, training_manifest
from speechbrain.utils.distributed import run_on_main
from speechbrain.utils.logger import get_logger

from craft_modules.data.datasets import multilabel_datasets
from craft_modules.data.labels import checked_labels
from craft_modules.data.manifest_cache import load_manifest
from craft_modules.data.samplers import balanced_sampler
from craft_modules.training.brains import ClassifierBrain
from craft_modules.training.dry_run import report_dry_run
from craft_modules.training.experiment import (
    finish,
    parse_recipe_arguments,
    start_experiment,
)
from craft_modules.training.loaders import eval_loader_options, train_loader_options
from craft_modules.training.results import write_multilabel_results
from craft_modules.training.schedulers import select_lr_schedule
from craft_modules.weights.loading import initialise, weight_sources

logger = get_logger(__name__)


def main():
    """Prepares AudioSet, fine-tunes, evaluates and writes results.json."""
    hparams_file, run_opts, overrides = parse_recipe_arguments(sys.argv[1:], __file__)
    hparams = start_experiment(hparams_file, overrides)

    # Manifests of train_splits and eval, written once by the main process.
    prepared = run_on_main(
        prepare_audioset,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["prepare_folder"],
            "audio_folder": hparams["audio_folder"],
            "splits": [*hparams["train_splits"], "eval"],
        },
    )
    checked_labels(prepared["labels"], hparams["n_classes"])

    # Datasets. The training manifest is held as arrays: shared by the
    # loader workers, and weighed by the balanced sampler; cached beside the
    # JSON, so every rank memory-maps one copy.
    train_manifest = load_manifest(training_manifest(prepared, hparams["train_splits"]))
    datasets = multilabel_datasets(
        {"train": train_manifest, "eval": prepared["eval"]},
        prepared["labels"],
        sample_rate=hparams["sample_rate"],
        clip_duration=hparams["clip_duration"],
        eval_clip_duration=hparams.get("eval_clip_duration"),
        pad=bool(hparams.get("pad_clips", True)),
    )
    sampler = None
    if hparams["balanced_sampling"]:
        sampler = balanced_sampler(train_manifest, hparams["seed"])
        logger.info("Balanced sampling: AST label-frequency weights, with replacement")
    num_workers = hparams.get("num_workers", 0)
    train_loader_kwargs = train_loader_options(
        hparams["batch_size"],
        num_workers=num_workers,
        drop_last=hparams.get("drop_last", False),
        sampler=sampler,
    )

    # --dry_run=True: the built model and one training batch, then stop
    # (pretrained_path is reported, not loaded).
    if hparams.get("dry_run"):
        report_dry_run(hparams, datasets["train"], train_loader_kwargs)
        return finish()

    # The starting point (a pretraining run, an official checkpoint or
    # scratch) and the Brain.
    initialise(hparams["model"], **weight_sources(hparams))
    hparams["lr_schedule"], _ = select_lr_schedule(hparams)  # scratch or SSAST's
    brain_class = hparams.get("brain_class") or ClassifierBrain
    brain = brain_class(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )

    # SSAST validates on the eval set after every epoch (AudioSet has no dev split).
    eval_options = eval_loader_options(
        datasets["eval"], 2 * hparams["batch_size"], num_workers=num_workers
    )
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["eval"],
        train_loader_kwargs=train_loader_kwargs,
        valid_loader_kwargs=eval_options,
    )

    # The best checkpoint, or the weight average, on the eval set.
    brain.evaluate(
        datasets["eval"],
        max_key=hparams["metric"],
        test_loader_kwargs=eval_options,
    )
    # results.json, and each clip's scores for ensembles (ensemble.py).
    results = write_multilabel_results(
        hparams["output_folder"], brain, hparams["model"]
    )
    if sb.utils.distributed.if_main_process():
        print(
            f"AudioSet mAP {results['mAP']:.4f}, mAUC {results['mAUC']:.4f}, d' {results['d_prime']:.3f}"
        )
    finish()


if __name__ == "__main__":
    main()
