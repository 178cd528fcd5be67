"""Pretraining data: AudioSet plus weighted unlabeled folders, or folders alone."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from craft_modules.data.samplers import ShareBatchSampler, source_clip_weights
from craft_modules.testing.scripts import load_script
from craft_modules.testing.synth import make_audioset

ROOT = Path(__file__).resolve().parents[1]
RECIPE_DIR = ROOT / "recipes" / "AudioSet"


pretrain = load_script(RECIPE_DIR / "pretrain.py", "audioset_pretrain")


def _wav_folder(root, n, seconds=0.5):
    """``n`` short noise wavs at 16 kHz, some in a subfolder."""
    rng = np.random.default_rng(0)
    for i in range(n):
        path = root / ("deep" if i % 2 else "") / f"utt{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), 0.1 * rng.standard_normal(int(16000 * seconds)), 16000)
    return root


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    base = tmp_path_factory.mktemp("sources")
    make_audioset(
        str(base / "AudioSet"),
        n_classes=3,
        n_balanced=4,
        n_eval=3,
        n_unbalanced=3,
        duration=0.5,
    )
    speech = _wav_folder(base / "speech", 6)
    # Same relative names as "speech": the ids must stay distinct clips.
    extra = _wav_folder(base / "extra", 4)
    return base, speech, extra


def _hparams(base, tmp_path, **overrides):
    hparams = {
        "data_folder": str(base / "AudioSet"),
        "prepare_folder": str(tmp_path / "data"),
        "audio_folder": "audio",
        "train_splits": ["balanced_train", "unbalanced_train"],
        "unlabeled_folders": [],
        "valid_fraction": 0.25,
    }
    hparams.update(overrides)
    return hparams


def test_folders_are_added_to_audioset(sources, tmp_path):
    base, speech, extra = sources
    hparams = _hparams(
        base,
        tmp_path,
        unlabeled_folders=[str(speech), {"path": str(extra), "weight": 2.5}],
    )
    train, valid, sizes, weights = pretrain.pretraining_data(hparams)
    full = json.loads((tmp_path / "data" / "full_train.json").read_text())
    assert sizes == [len(full), 6, 4] and weights == [1.0, 1.0, 2.5]
    ids = list(train)
    assert len(ids) == len(set(ids)) == 7 + 6 + 4
    assert ids[:7] == list(full)  # AudioSet first, as prepared
    assert sorted(ids[7:13]) == sorted(f"unlabeled_0/{c}" for c in _ids(speech))
    assert sorted(ids[13:]) == sorted(f"unlabeled_1/{c}" for c in _ids(extra))
    assert train.fields == ("wav", "duration")  # folders have no labels
    assert str(speech) in train.entry(7)["wav"] and str(extra) in train.entry(13)["wav"]
    # Validation stays AudioSet's eval set, as in SSAST.
    eval_set = json.loads((tmp_path / "data" / "eval.json").read_text())
    assert list(valid) == list(eval_set)


def _ids(folder):
    return [
        str(p.relative_to(folder).with_suffix(""))
        for p in sorted(folder.rglob("*.wav"))
    ]


def test_empty_train_splits_replace_audioset(sources, tmp_path):
    base, speech, extra = sources
    hparams = _hparams(
        base, tmp_path, train_splits=[], unlabeled_folders=[str(speech), str(extra)]
    )
    train, valid, sizes, weights = pretrain.pretraining_data(hparams)
    assert not (tmp_path / "data" / "full_train.json").exists()
    # 0.25 of each folder is held out for validation, the rest trains.
    assert sizes == [5, 3] and weights == [1.0, 1.0]
    assert len(train) == 8 and len(valid) == 2
    assert all("AudioSet" not in train.entry(i)["wav"] for i in range(len(train)))
    assert not set(train) & set(valid)
    with pytest.raises(ValueError, match="Nothing to pretrain on"):
        pretrain.pretraining_data(_hparams(base, tmp_path, train_splits=[]))


def test_one_folder_alone_keeps_its_ids(sources, tmp_path):
    """Replacing AudioSet by one folder is the former ``unlabeled_folder`` run."""
    base, speech, _ = sources
    hparams = _hparams(base, tmp_path, train_splits=[], unlabeled_folders=str(speech))
    train, valid, sizes, _ = pretrain.pretraining_data(hparams)
    ids = sorted(_ids(speech))
    assert list(train) == ids[:5] and list(valid) == ids[5:]


@pytest.mark.parametrize(
    "spec, message",
    [
        ([{"path": "/x", "weight": -1}], "weight"),
        ([{"path": "/x", "wieght": 2}], "unknown keys"),
        ([3], "paths or"),
    ],
)
def test_bad_folder_specs_raise(spec, message):
    with pytest.raises(ValueError, match=message):
        pretrain.unlabeled_folders(spec)


def test_weighted_sampler_draws_sources_in_proportion():
    """Source s is drawn in proportion to (its clips) x (its weight)."""
    sizes, weights = [300, 100, 50], [1.0, 1.0, 4.0]
    sampler, epochs = pretrain.training_sampler(
        sizes, weights, batch_size=10, epoch_iter=0, number_of_epochs=3, seed=7
    )
    assert epochs == 3 and len(sampler) == 450
    draws = []
    for epoch in range(40):
        sampler.set_epoch(epoch)
        draws.extend(sampler)
    source = np.searchsorted(np.cumsum(sizes), np.array(draws), side="right")
    expected = np.array([300, 100, 200]) / 600
    observed = np.bincount(source, minlength=3) / len(draws)
    # 18,000 draws: a proportion's standard error is below 0.004.
    assert np.abs(observed - expected).max() < 0.015
    # Within a source, every clip is equally likely (clips 400..449 ~ 4x).
    per_clip = np.bincount(np.array(draws), minlength=450) / len(draws)
    assert abs(per_clip[400:].mean() / per_clip[:300].mean() - 4.0) < 0.3
    # Same seed and epoch, same draws (resuming, every DDP process alike).
    sampler.set_epoch(5)
    first = list(sampler)
    sampler.set_epoch(5)
    assert list(sampler) == first


def test_weighted_sampler_intervals_and_ddp_shares():
    """epoch_iter intervals cover number_of_epochs passes; shares cover each batch."""
    sizes, weights = [40, 20], [1.0, 0.5]
    sampler, epochs = pretrain.training_sampler(
        sizes, weights, batch_size=6, epoch_iter=2, number_of_epochs=2, seed=0
    )
    assert len(sampler) == 12 and epochs == math.ceil(2 * 60 / 12)
    shares = [
        ShareBatchSampler(sampler, 6, world_size=2, rank=r, drop_last=True)
        for r in (0, 1)
    ]
    for share in shares:
        share.set_epoch(3)
    sampler.set_epoch(3)
    stream = list(sampler)
    rank0, rank1 = (list(share) for share in shares)
    assert len(rank0) == len(rank1) == 2
    assert [a + b for a, b in zip(rank0, rank1)] == [stream[:6], stream[6:]]


def test_equal_weights_keep_shuffled_passes():
    """SSAST's uniform union: no draw with replacement, the former samplers."""
    sampler, epochs = pretrain.training_sampler(
        [30, 10], [1.0, 1.0], batch_size=4, epoch_iter=0, number_of_epochs=2, seed=0
    )
    assert sampler is None and epochs == 2
    sampler, epochs = pretrain.training_sampler(
        [30, 10], [2.0, 2.0], batch_size=4, epoch_iter=5, number_of_epochs=2, seed=0
    )
    assert type(sampler).__name__ == "StepEpochSampler" and epochs == 4
    assert torch.equal(
        source_clip_weights([2, 1], [1.0, 3.0]),
        torch.tensor([1.0, 1.0, 3.0], dtype=torch.double),
    )
    with pytest.raises(ValueError, match="no clip can be drawn"):
        source_clip_weights([2, 1], [0.0, 0.0])
