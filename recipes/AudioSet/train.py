#!/usr/bin/env python3
"""AudioSet (multi-label) fine-tuning of CRAFT (SWaB), AST or SWAST.

SSAST's AudioSet settings (the YAMLs): waveform mixup Beta(10, 10) with
probability 0.5, SpecAugment 48/192, BCE, lr halved after epochs 10, 15, 20,
uniform weight averaging of epochs 6..25 evaluated at the end; balanced
sampling (AST's label-frequency weights) for the full set. mAP, mAUC and
d-prime are computed on the eval set after every epoch (over the whole set
exactly once under DDP); the final metrics go to
``<output_folder>/results.json`` (keys ``mAP``, ``mAUC``, ``d_prime``).

Usage:
    python recipes/AudioSet/train.py hparams/finetune_craft.yaml --data_folder=/data/AudioSet \
        --pretrained_path=results/AudioSet/pretrain/craft/1986/save

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import os
import sys

import speechbrain as sb
from audioset_prepare import prepare_audioset, training_manifest
from speechbrain.utils.distributed import run_on_main
from speechbrain.utils.logger import get_logger

from craft_modules.data.datasets import multilabel_datasets
from craft_modules.data.labels import checked_labels
from craft_modules.data.manifest import CompactManifest
from craft_modules.data.samplers import balanced_sampler
from craft_modules.training.brains import ClassifierBrain
from craft_modules.training.experiment import (
    finish,
    parse_recipe_arguments,
    start_experiment,
)
from craft_modules.training.loaders import eval_loader_options, train_loader_options
from craft_modules.training.results import multilabel_results, write_results
from craft_modules.weights.official import initialise_model

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
    # loader workers, and weighed by the balanced sampler.
    train_manifest = CompactManifest.from_json(
        training_manifest(prepared, hparams["train_splits"])
    )
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

    # The starting point (a pretraining run, an official checkpoint or
    # scratch) and the Brain.
    initialise_model(
        hparams["model"],
        hparams.get("pretrained_path"),
        hparams.get("init_from", ""),
        allow_missing=hparams.get("allow_missing", ()),
    )
    brain_class = hparams.get("brain_class") or ClassifierBrain
    brain = brain_class(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )

    # SSAST validates on the eval set after every epoch (AudioSet has no dev split).
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["eval"],
        train_loader_kwargs=train_loader_options(
            hparams["batch_size"],
            num_workers=num_workers,
            drop_last=hparams.get("drop_last", False),
            sampler=sampler,
        ),
        valid_loader_kwargs=eval_loader_options(
            datasets["eval"], 2 * hparams["batch_size"], num_workers=num_workers
        ),
    )

    # The best checkpoint, or the weight average, on the eval set.
    brain.evaluate(
        datasets["eval"],
        max_key=hparams["metric"],
        test_loader_kwargs=eval_loader_options(
            datasets["eval"], 2 * hparams["batch_size"], num_workers=num_workers
        ),
    )
    results = multilabel_results(
        brain.test_metrics, brain.history, hparams["model"], brain.weight_averaged
    )
    write_results(os.path.join(hparams["output_folder"], "results.json"), results)
    if sb.utils.distributed.if_main_process():
        print(
            f"AudioSet mAP {results['mAP']:.4f}, mAUC {results['mAUC']:.4f}, d' {results['d_prime']:.3f}"
        )
    finish()


if __name__ == "__main__":
    main()
