#!/usr/bin/env python3
"""Self-supervised pretraining on AudioSet (or any folder of audio): CRAFT and its ablations.

The method is chosen in YAML (``hparams/craft.yaml`` = PSWaCL, ``ssast.yaml``,
``swapt.yaml``, ``wapt.yaml``, ``swacl.yaml``). ``batch_size`` is the global
batch per optimizer step, as in every recipe: it is split over DDP processes
and gradient accumulation steps in shares that differ by at most one clip
(SWaCL's negatives are the clips of one forward pass on all processes). Validation runs on the AudioSet eval set, or on a held-out
share of an unlabeled folder (``unlabeled_folder``).

Usage:
    python recipes/AudioSet/pretrain.py hparams/craft.yaml --data_folder=/data/AudioSet
    torchrun --nproc_per_node=8 recipes/AudioSet/pretrain.py hparams/craft.yaml --data_folder=...
    python recipes/AudioSet/pretrain.py hparams/craft.yaml --unlabeled_folder=/my/audio --data_folder=/my/audio

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import math
import os
import sys

from audioset_prepare import prepare_for_recipe, prepare_unlabeled_folder
from speechbrain.dataio.dataio import load_data_json
from speechbrain.utils.distributed import run_on_main
from speechbrain.utils.logger import get_logger

from craft_modules.data.manifest import CompactManifest
from craft_modules.data.samplers import StepEpochSampler
from craft_modules.training.brains import PretrainBrain
from craft_modules.training.experiment import (
    audio_dataset,
    eval_loader_options,
    finish,
    parse_recipe_arguments,
    start_experiment,
    train_loader_options,
    write_results,
)
from craft_modules.weights.official import initialise_model

logger = get_logger(__name__)


def prepare_manifests(hparams):
    """Writes the manifests on the main process; returns (train, valid) compact manifests."""
    if hparams["unlabeled_folder"]:
        path = run_on_main(
            prepare_unlabeled_folder,
            kwargs={
                "folder": hparams["unlabeled_folder"],
                "save_folder": hparams["prepare_folder"],
            },
        )
        clips = load_data_json(path)
        ids = sorted(clips)
        n_valid = max(1, int(len(ids) * hparams["valid_fraction"]))
        if len(ids) <= n_valid:
            raise ValueError(
                f"{hparams['unlabeled_folder']} has too few readable clips ({len(ids)})"
            )
        valid = CompactManifest({k: clips[k] for k in ids[-n_valid:]})
        train = CompactManifest({k: clips[k] for k in ids[:-n_valid]})
        return train, valid
    outputs = prepare_for_recipe(hparams)
    return tuple(
        CompactManifest.from_json(outputs[key]) for key in ("train_manifest", "eval")
    )


def validation_interval_sampler(hparams, n_train):
    """SSAST's ``epoch_iter``: one SpeechBrain epoch per validation interval.

    When a pass over the training set is longer than ``epoch_iter`` optimizer
    steps, each SpeechBrain epoch becomes ``epoch_iter`` steps of a continuous
    shuffled stream (:class:`StepEpochSampler`), and the epoch counter's limit
    becomes the number of such intervals in ``number_of_epochs`` passes,
    rounded up. Validation, the plateau schedule and the end-of-epoch
    checkpoint then happen every ``epoch_iter`` steps, as in SSAST. Returns
    None (ordinary passes) otherwise.
    """
    interval = int(hparams.get("epoch_iter") or 0) * hparams["batch_size"]
    if interval <= 0 or interval >= n_train:
        return None
    passes = hparams["number_of_epochs"]
    hparams["epoch_counter"].limit = math.ceil(passes * n_train / interval)
    logger.info(
        "Validating every %d steps: %d epochs of %d clips for %s passes",
        hparams["epoch_iter"],
        hparams["epoch_counter"].limit,
        interval,
        passes,
    )
    return StepEpochSampler(n_train, interval, seed=hparams["seed"])


def main():
    """Prepares the data, pretrains, and writes the final validation losses."""
    hparams_file, run_opts, overrides = parse_recipe_arguments(sys.argv[1:], __file__)
    hparams = start_experiment(hparams_file, overrides)
    train, valid = prepare_manifests(hparams)
    keys = ("id", "sig")
    train_set = audio_dataset(
        train, hparams["sample_rate"], hparams["clip_duration"], output_keys=keys
    )
    valid_set = audio_dataset(
        valid, hparams["sample_rate"], hparams["clip_duration"], output_keys=keys
    )
    initialise_model(hparams["model"], hparams["pretrained_path"], hparams["init_from"])
    brain = PretrainBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    train_options = train_loader_options(hparams)
    sampler = validation_interval_sampler(hparams, len(train_set))
    if sampler is not None:
        train_options.pop("shuffle")
        train_options["sampler"] = sampler
    brain.fit(
        hparams["epoch_counter"],
        train_set,
        valid_set,
        train_loader_kwargs=train_options,
        valid_loader_kwargs=eval_loader_options(
            hparams, valid_set, hparams["batch_size"]
        ),
    )
    last = getattr(brain, "last_valid_stats", None) or {}
    results = os.path.join(hparams["output_folder"], "results.json")
    if last:
        write_results(results, {"valid": last})
    elif os.path.isfile(results):  # a rerun of a finished run trains nothing
        logger.info("Nothing left to train: %s is kept", results)
    else:
        write_results(results, {"valid": {}})
    finish()


if __name__ == "__main__":
    main()
