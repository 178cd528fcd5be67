#!/usr/bin/env python3
"""FSD50K (multi-label, 200 classes) training of the diverse-embedding models.

Trains on the dev set's ``train`` split, evaluates on its ``val`` split
after every epoch (checkpoint selection by mAP), then evaluates the best
checkpoint on the eval set. ``<output_folder>/results.json`` holds ``mAP``,
``mAUC``, ``d_prime`` (eval set), the per-epoch validation metrics and, under
``model``, the streams that were used.

The paper's two stages: train each stream on its own
(``hparams/diverse_pitch.yaml`` ... ``diverse_neuralogram.yaml``), then
``hparams/diverse_combine.yaml`` freezes them (``stream_checkpoints``) and
trains the linear head on their concatenated embeddings;
``hparams/diverse.yaml`` trains all streams and the head jointly.
``--streams=[pitch,timbre]`` drops streams (ablation).

Usage:
    python recipes/FSD50K/train.py hparams/diverse.yaml --data_folder=/data/FSD50K

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import os
import sys

import speechbrain as sb
from fsd50k_prepare import prepare_for_recipe

from craft_modules.training.experiment import (
    finish,
    parse_recipe_arguments,
    start_experiment,
    write_results,
)
from craft_modules.training.steps import (
    checked_labels,
    evaluate_classifier,
    fit_classifier,
    multilabel_datasets,
    multilabel_results,
)


def main():
    """Prepares FSD50K, trains, evaluates on the eval set and writes results.json."""
    hparams_file, run_opts, overrides = parse_recipe_arguments(sys.argv[1:], __file__)
    hparams = start_experiment(hparams_file, overrides)
    outputs = prepare_for_recipe(hparams)
    checked_labels(hparams, outputs["labels"])
    datasets = multilabel_datasets(
        hparams,
        outputs["labels"],
        {name: outputs[name] for name in ("train", "valid", "eval")},
    )
    brain = fit_classifier(hparams, run_opts, datasets["train"], datasets["valid"])
    metrics = evaluate_classifier(brain, hparams, datasets["eval"])
    results = multilabel_results(brain, hparams, metrics)
    write_results(os.path.join(hparams["output_folder"], "results.json"), results)
    if sb.utils.distributed.if_main_process():
        print(
            f"FSD50K eval mAP {results['mAP']:.4f}, mAUC {results['mAUC']:.4f}, "
            f"d' {results['d_prime']:.3f} (streams: {', '.join(results['model'].get('streams', []))})"
        )
    finish()


if __name__ == "__main__":
    main()
