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

from audioset_prepare import (
    prepare_audioset,
    prepare_unlabeled_folder,
    training_manifest,
)
from speechbrain.dataio.dataio import load_data_json
from speechbrain.utils.distributed import run_on_main
from speechbrain.utils.logger import get_logger

from craft_modules.data.datasets import audio_dataset
from craft_modules.data.manifest import CompactManifest
from craft_modules.data.samplers import StepEpochSampler
from craft_modules.training.brains import PretrainBrain
from craft_modules.training.experiment import (
    finish,
    parse_recipe_arguments,
    start_experiment,
)
from craft_modules.training.loaders import eval_loader_options, train_loader_options
from craft_modules.training.results import write_results
from craft_modules.weights.official import initialise_model

logger = get_logger(__name__)


def held_out_split(clips, valid_fraction, folder):
    """(train, valid) compact manifests: the last ``valid_fraction`` of the sorted ids is held out."""
    ids = sorted(clips)
    n_valid = max(1, int(len(ids) * valid_fraction))
    if len(ids) <= n_valid:
        raise ValueError(f"{folder} has too few readable clips ({len(ids)})")
    valid = CompactManifest({k: clips[k] for k in ids[-n_valid:]})
    train = CompactManifest({k: clips[k] for k in ids[:-n_valid]})
    return train, valid


def validation_interval_sampler(
    n_train, batch_size, epoch_iter, number_of_epochs, seed
):
    """SSAST's ``epoch_iter``: one SpeechBrain epoch per validation interval.

    When a pass over the training set is longer than ``epoch_iter`` optimizer
    steps, each SpeechBrain epoch becomes ``epoch_iter`` steps of a continuous
    shuffled stream (:class:`StepEpochSampler`), and the epoch counter's limit
    becomes the number of such intervals in ``number_of_epochs`` passes,
    rounded up. Validation, the plateau schedule and the end-of-epoch
    checkpoint then happen every ``epoch_iter`` steps, as in SSAST.

    Returns ``(sampler, epochs)``, or ``(None, number_of_epochs)`` (ordinary
    passes) when ``epoch_iter`` is unset or a pass is no longer than it.
    """
    interval = int(epoch_iter or 0) * batch_size
    if interval <= 0 or interval >= n_train:
        return None, number_of_epochs
    epochs = math.ceil(number_of_epochs * n_train / interval)
    logger.info(
        "Validating every %d steps: %d epochs of %d clips for %s passes",
        epoch_iter,
        epochs,
        interval,
        number_of_epochs,
    )
    return StepEpochSampler(n_train, interval, seed=seed), epochs


def main():
    """Prepares the data, pretrains, and writes the final validation losses."""
    hparams_file, run_opts, overrides = parse_recipe_arguments(sys.argv[1:], __file__)
    hparams = start_experiment(hparams_file, overrides)

    # Manifests, written once by the main process: an unlabeled folder with a
    # held-out share, or AudioSet's train_splits and eval set.
    if hparams["unlabeled_folder"]:
        path = run_on_main(
            prepare_unlabeled_folder,
            kwargs={
                "folder": hparams["unlabeled_folder"],
                "save_folder": hparams["prepare_folder"],
            },
        )
        train, valid = held_out_split(
            load_data_json(path), hparams["valid_fraction"], hparams["unlabeled_folder"]
        )
    else:
        prepared = run_on_main(
            prepare_audioset,
            kwargs={
                "data_folder": hparams["data_folder"],
                "save_folder": hparams["prepare_folder"],
                "audio_folder": hparams["audio_folder"],
                "splits": [*hparams["train_splits"], "eval"],
            },
        )
        train = CompactManifest.from_json(
            training_manifest(prepared, hparams["train_splits"])
        )
        valid = CompactManifest.from_json(prepared["eval"])

    # Datasets: clips only (self-supervised).
    train_set = audio_dataset(train, hparams["sample_rate"], hparams["clip_duration"])
    valid_set = audio_dataset(valid, hparams["sample_rate"], hparams["clip_duration"])
    sampler, epochs = validation_interval_sampler(
        len(train_set),
        hparams["batch_size"],
        hparams.get("epoch_iter"),
        hparams["number_of_epochs"],
        hparams["seed"],
    )
    if sampler is not None:
        hparams["epoch_counter"].limit = epochs

    # The starting point and the Brain.
    initialise_model(
        hparams["model"],
        hparams["pretrained_path"],
        hparams["init_from"],
        allow_missing=hparams.get("allow_missing", ()),
    )
    brain = PretrainBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    num_workers = hparams.get("num_workers", 0)
    brain.fit(
        hparams["epoch_counter"],
        train_set,
        valid_set,
        train_loader_kwargs=train_loader_options(
            hparams["batch_size"],
            num_workers=num_workers,
            drop_last=hparams.get("drop_last", False),
            sampler=sampler,
        ),
        valid_loader_kwargs=eval_loader_options(
            valid_set, hparams["batch_size"], num_workers=num_workers
        ),
    )

    # The last validation's losses.
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
