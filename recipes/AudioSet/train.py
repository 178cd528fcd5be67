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
from audioset_prepare import prepare_for_recipe
from speechbrain.utils.logger import get_logger

from craft_modules.data.manifest import CompactManifest
from craft_modules.data.samplers import balanced_sampler
from craft_modules.training.experiment import (
    finish,
    parse_recipe_arguments,
    start_experiment,
    train_loader_options,
    write_results,
)
from craft_modules.training.steps import (
    checked_labels,
    evaluate_classifier,
    fit_classifier,
    multilabel_datasets,
    multilabel_results,
)

logger = get_logger(__name__)


def main():
    """Prepares AudioSet, fine-tunes, evaluates and writes results.json."""
    hparams_file, run_opts, overrides = parse_recipe_arguments(sys.argv[1:], __file__)
    hparams = start_experiment(hparams_file, overrides)
    outputs = prepare_for_recipe(hparams)
    checked_labels(hparams, outputs["labels"])
    # Held as arrays: shared by the loader workers, and weighed by the sampler.
    train_manifest = CompactManifest.from_json(outputs["train_manifest"])
    datasets = multilabel_datasets(
        hparams, outputs["labels"], {"train": train_manifest, "eval": outputs["eval"]}
    )
    train_options = train_loader_options(hparams)
    if hparams["balanced_sampling"]:
        train_options.pop("shuffle")
        train_options["sampler"] = balanced_sampler(train_manifest, hparams["seed"])
        logger.info("Balanced sampling: AST label-frequency weights, with replacement")
    # SSAST validates on the eval set after every epoch (AudioSet has no dev split).
    brain = fit_classifier(
        hparams, run_opts, datasets["train"], datasets["eval"], train_options
    )
    metrics = evaluate_classifier(brain, hparams, datasets["eval"])
    results = multilabel_results(brain, hparams, metrics)
    write_results(os.path.join(hparams["output_folder"], "results.json"), results)
    if sb.utils.distributed.if_main_process():
        print(
            f"AudioSet mAP {results['mAP']:.4f}, mAUC {results['mAUC']:.4f}, d' {results['d_prime']:.3f}"
        )
    finish()


if __name__ == "__main__":
    main()
