#!/usr/bin/env python3
"""Self-supervised pretraining on AudioSet (or any folder of audio): CRAFT and its ablations.

The method is chosen in YAML (``hparams/craft.yaml`` = PSWaCL, ``ssast.yaml``,
``swapt.yaml``, ``wapt.yaml``, ``swacl.yaml``). ``batch_size`` is the global
batch per optimizer step, as in every recipe: it is split over DDP processes
and gradient accumulation steps in shares that differ by at most one clip
(SWaCL's negatives are the clips of one forward pass on all processes).

The training set is AudioSet's ``train_splits`` (by default balanced +
unbalanced, the full set the CRAFT paper and SSAST pretrain on) plus any
``unlabeled_folders``, each with a sampling weight per clip (SSAST adds
LibriSpeech 960 h and draws the union uniformly: weight 1.0). Equal weights
keep plain shuffled passes; other weights draw the union with replacement
(:func:`craft_modules.data.samplers.source_weighted_sampler`).
``train_splits: []`` replaces AudioSet by the folders. Validation runs on the
AudioSet eval set (as SSAST), or, without AudioSet, on a held-out share
(``valid_fraction``) of each folder.

Usage:
    python recipes/AudioSet/pretrain.py hparams/craft.yaml --data_folder=/data/AudioSet
    torchrun --nproc_per_node=8 recipes/AudioSet/pretrain.py hparams/craft.yaml --data_folder=...
    # SSAST's data: AudioSet + LibriSpeech, every clip equally likely
    python recipes/AudioSet/pretrain.py hparams/craft.yaml --data_folder=/data/AudioSet \
        --unlabeled_folders=[/data/LibriSpeech]
    # half as many draws per LibriSpeech clip; or only a folder of audio
    ... --unlabeled_folders="[{path: /data/LibriSpeech, weight: 0.5}]"
    ... --train_splits=[] --unlabeled_folders=[/my/audio] --data_folder=/my/audio
    # prepare, build the model, draw one batch, write dry_run.json, stop:
    ... --dry_run=True

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import math
import os
import sys

from audioset_prepare import (
    prepare_audioset,
    prepare_unlabeled_folders,
    training_manifest,
    unlabeled_folders,
)
from speechbrain.dataio.dataio import load_data_json
from speechbrain.utils.distributed import run_on_main
from speechbrain.utils.logger import get_logger

from craft_modules.data.datasets import audio_dataset
from craft_modules.data.manifest import CompactManifest, as_compact
from craft_modules.data.manifest_cache import load_manifest
from craft_modules.data.samplers import StepEpochSampler, source_weighted_sampler
from craft_modules.training.brains import PretrainBrain
from craft_modules.training.dry_run import report_dry_run
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


def training_sampler(
    source_sizes, weights, batch_size, epoch_iter, number_of_epochs, seed
):
    """The index sampler of a union of sources, and the epoch counter's limit.

    With equal weights every clip of the union is equally likely, as in
    SSAST's shuffled AudioSet + LibriSpeech list: shuffled passes
    (:func:`validation_interval_sampler`). Otherwise each epoch draws the
    union with replacement by the weights
    (:func:`~craft_modules.data.samplers.source_weighted_sampler`), as many
    clips as the union holds, or one ``epoch_iter`` interval of them; the
    number of epochs then covers the same number of clips as
    ``number_of_epochs`` passes.

    Returns ``(sampler, epochs)``; sampler None means the Brain's shuffle.
    """
    n_train = sum(source_sizes)
    if len(set(weights)) <= 1:
        return validation_interval_sampler(
            n_train, batch_size, epoch_iter, number_of_epochs, seed
        )
    interval = int(epoch_iter or 0) * batch_size
    if 0 < interval < n_train:
        draws, epochs = interval, math.ceil(number_of_epochs * n_train / interval)
    else:
        draws, epochs = n_train, number_of_epochs
    logger.info(
        "Sampling sources of %s clips with weights %s: %d epochs of %d draws",
        list(source_sizes),
        list(weights),
        epochs,
        draws,
    )
    return source_weighted_sampler(source_sizes, weights, draws, seed=seed), epochs


def union_manifest(sources):
    """One manifest of several ``(name, manifest)`` sources, in order.

    A single source is returned as it is. Several keep only the fields all
    of them have (a folder's clips have no labels), and ids of every source
    but the first get a ``<name>/`` prefix, so that equal ids of two sources
    stay two clips.
    """
    if len(sources) == 1:
        return sources[0][1]
    fields = set.intersection(
        *(set(next(iter(clips.values()))) for _, clips in sources if clips)
    )
    union = {}
    for index, (name, clips) in enumerate(sources):
        prefix = "" if index == 0 else f"{name}/"
        for clip_id, entry in clips.items():
            union[prefix + clip_id] = {k: v for k, v in entry.items() if k in fields}
    return union


def pretraining_data(hparams):
    """(train manifest, valid manifest, source sizes, source weights).

    AudioSet's ``train_splits`` (weight 1.0) and then every unlabeled folder
    (its own weight); validation on AudioSet's eval set, or without AudioSet
    on the held-out ``valid_fraction`` of each folder. Manifests are written
    once, by the main process.
    """
    folders = unlabeled_folders(hparams.get("unlabeled_folders"))
    train_splits = list(hparams["train_splits"] or [])
    if not train_splits and not folders:
        raise ValueError(
            "Nothing to pretrain on: train_splits is empty and no unlabeled_folders"
        )
    sources, weights, valid = [], [], []
    if train_splits:
        prepared = run_on_main(
            prepare_audioset,
            kwargs={
                "data_folder": hparams["data_folder"],
                "save_folder": hparams["prepare_folder"],
                "audio_folder": hparams["audio_folder"],
                "splits": [*train_splits, "eval"],
            },
        )
        audioset = training_manifest(prepared, train_splits)
        # Compact arrays cached beside the JSON: every rank memory-maps one copy.
        sources.append(("audioset", load_manifest(audioset)))
        weights.append(1.0)
        valid = [("audioset", load_manifest(prepared["eval"]))]
    paths = run_on_main(
        prepare_unlabeled_folders,
        kwargs={"folders": folders, "save_folder": hparams["prepare_folder"]},
    )
    for index, (folder, path) in enumerate(zip(folders, paths)):
        clips, name = load_data_json(path), f"unlabeled_{index}"
        if not train_splits:
            train, held_out = held_out_split(
                clips, hparams["valid_fraction"], folder.path
            )
            clips = dict(train.items())
            valid.append((name, dict(held_out.items())))
        sources.append((name, clips))
        weights.append(folder.weight)
    sizes = [len(clips) for _, clips in sources]
    return (
        as_compact(union_manifest(sources)),
        as_compact(union_manifest(valid)),
        sizes,
        weights,
    )


def main():
    """Prepares the data, pretrains, and writes the final validation losses."""
    hparams_file, run_opts, overrides = parse_recipe_arguments(sys.argv[1:], __file__)
    hparams = start_experiment(hparams_file, overrides)

    # Manifests: AudioSet's train_splits and unlabeled folders (see
    # pretraining_data), sampled by their weights.
    train, valid, sizes, weights = pretraining_data(hparams)

    # Datasets: clips only (self-supervised).
    train_set = audio_dataset(train, hparams["sample_rate"], hparams["clip_duration"])
    valid_set = audio_dataset(valid, hparams["sample_rate"], hparams["clip_duration"])
    sampler, epochs = training_sampler(
        sizes,
        weights,
        hparams["batch_size"],
        hparams.get("epoch_iter"),
        hparams["number_of_epochs"],
        hparams["seed"],
    )
    if epochs != hparams["number_of_epochs"]:
        hparams["epoch_counter"].limit = epochs
    num_workers = hparams.get("num_workers", 0)
    train_loader_kwargs = train_loader_options(
        hparams["batch_size"],
        num_workers=num_workers,
        drop_last=hparams.get("drop_last", False),
        sampler=sampler,
    )

    # --dry_run=True: the built model and one training batch, then stop.
    if hparams.get("dry_run"):
        report_dry_run(hparams, train_set, train_loader_kwargs)
        return finish()

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
    brain.fit(
        hparams["epoch_counter"],
        train_set,
        valid_set,
        train_loader_kwargs=train_loader_kwargs,
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
