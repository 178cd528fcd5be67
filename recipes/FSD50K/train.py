#!/usr/bin/env python3
"""FSD50K (multi-label, 200 classes) training of the diverse-embedding models.

Trains on the dev set's ``train`` split, evaluates on its ``val`` split
after every epoch (checkpoint selection by mAP), then evaluates the best
checkpoint on the eval set. ``<output_folder>/results.json`` holds ``mAP``,
``mAUC``, ``d_prime`` (eval set), the per-epoch validation metrics and, under
``model``, the streams that were used; ``eval_predictions.npz`` each eval
clip's scores (``ids``, sigmoid ``scores``, ``targets``).

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

import sys

import speechbrain as sb
from fsd50k_prepare import prepare_fsd50k
from speechbrain.utils.distributed import run_on_main

from craft_modules.data.datasets import multilabel_datasets
from craft_modules.data.labels import checked_labels
from craft_modules.training.brains import ClassifierBrain
from craft_modules.training.experiment import (
    finish,
    parse_recipe_arguments,
    start_experiment,
)
from craft_modules.training.loaders import eval_loader_options, train_loader_options
from craft_modules.training.results import write_multilabel_results
from craft_modules.weights.loading import initialise, weight_sources


def main():
    """Prepares FSD50K, trains, evaluates on the eval set and writes results.json."""
    hparams_file, run_opts, overrides = parse_recipe_arguments(sys.argv[1:], __file__)
    hparams = start_experiment(hparams_file, overrides)

    # Manifests (train / valid / eval) and labels.json, written once by the
    # main process.
    prepared = run_on_main(
        prepare_fsd50k,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["prepare_folder"],
            "num_workers": hparams.get("prepare_workers", 1),
        },
    )
    checked_labels(prepared["labels"], hparams["n_classes"])

    # Datasets: training clips cut to clip_duration, the others to
    # eval_clip_duration (clip-level evaluation).
    datasets = multilabel_datasets(
        {name: prepared[name] for name in ("train", "valid", "eval")},
        prepared["labels"],
        sample_rate=hparams["sample_rate"],
        clip_duration=hparams["clip_duration"],
        eval_clip_duration=hparams.get("eval_clip_duration"),
        pad=bool(hparams.get("pad_clips", True)),
    )
    num_workers = hparams.get("num_workers", 0)

    # The starting point and the Brain.
    initialise(hparams["model"], **weight_sources(hparams))
    brain_class = hparams.get("brain_class") or ClassifierBrain
    brain = brain_class(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )

    # Validation on the dev set's val split after every epoch (checkpoint
    # selection by mAP), then the best checkpoint on the eval set.
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=train_loader_options(
            hparams["batch_size"],
            num_workers=num_workers,
            drop_last=hparams.get("drop_last", False),
        ),
        valid_loader_kwargs=eval_loader_options(
            datasets["valid"], 2 * hparams["batch_size"], num_workers=num_workers
        ),
    )
    brain.evaluate(
        datasets["eval"],
        max_key=hparams["metric"],
        test_loader_kwargs=eval_loader_options(
            datasets["eval"], 2 * hparams["batch_size"], num_workers=num_workers
        ),
    )
    # results.json, and each clip's scores for ensembles (ensemble.py).
    results = write_multilabel_results(
        hparams["output_folder"], brain, hparams["model"]
    )
    if sb.utils.distributed.if_main_process():
        print(
            f"FSD50K eval mAP {results['mAP']:.4f}, mAUC {results['mAUC']:.4f}, "
            f"d' {results['d_prime']:.3f} (streams: {', '.join(results['model'].get('streams', []))})"
        )
    finish()


if __name__ == "__main__":
    main()
