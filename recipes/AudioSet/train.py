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

import json
import os
import sys

import speechbrain as sb
from audioset_prepare import prepare_for_recipe
from speechbrain.utils.logger import get_logger

from craft_modules.brain import ClassifierBrain
from craft_modules.dataio import load_label_list, multi_hot_pipeline
from craft_modules.official import initialise_model
from craft_modules.recipe import (
    audio_dataset,
    eval_loader_options,
    finish,
    load_hparams,
    parse_recipe_arguments,
    train_loader_options,
    write_results,
)
from craft_modules.sampling import balanced_sampler

logger = get_logger(__name__)


def main():
    """Prepares AudioSet, fine-tunes, evaluates and writes results.json."""
    hparams_file, run_opts, overrides = parse_recipe_arguments(sys.argv[1:], __file__)
    hparams = load_hparams(hparams_file, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    outputs = prepare_for_recipe(hparams)
    labels = load_label_list(outputs["labels"])
    if len(labels) != hparams["n_classes"]:
        raise ValueError(
            f"n_classes={hparams['n_classes']} but {outputs['labels']} lists {len(labels)} classes"
        )
    with open(outputs["train_manifest"], encoding="utf-8") as fin:
        train_manifest = json.load(fin)
    targets = multi_hot_pipeline(outputs["labels"])
    keys = ("id", "sig", "targets")
    make = lambda data: audio_dataset(  # noqa: E731
        data, hparams["sample_rate"], hparams["clip_duration"], [targets], keys
    )
    train_set = make(train_manifest)
    eval_set = make(outputs["eval"])
    train_options = train_loader_options(hparams)
    if hparams["balanced_sampling"]:
        train_options.pop("shuffle")
        train_options["sampler"] = balanced_sampler(train_manifest, hparams["seed"])
        logger.info("Balanced sampling: AST label-frequency weights, with replacement")
    initialise_model(hparams["model"], hparams["pretrained_path"], hparams["init_from"])
    brain = ClassifierBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.fit(
        hparams["epoch_counter"],
        train_set,
        eval_set,
        train_loader_kwargs=train_options,
        valid_loader_kwargs=eval_loader_options(hparams, eval_set),
    )
    brain.evaluate(
        eval_set,
        max_key=hparams["metric"],
        test_loader_kwargs=eval_loader_options(hparams, eval_set),
    )
    metrics = brain.test_metrics
    results = {key: metrics[key] for key in ("mAP", "mAUC", "d_prime")}
    results["weight_averaged"] = bool(
        hparams["use_weight_averaging"] and hparams["weight_averager"].count
    )
    results["epochs"] = brain.load_history()
    results["epochs"] = [
        {k: v for k, v in e.items() if k not in ("predictions", "targets")}
        for e in results["epochs"]
    ]
    write_results(os.path.join(hparams["output_folder"], "results.json"), results)
    if sb.utils.distributed.if_main_process():
        print(
            f"AudioSet mAP {results['mAP']:.4f}, mAUC {results['mAUC']:.4f}, d' {results['d_prime']:.3f}"
        )
    finish()


if __name__ == "__main__":
    main()
