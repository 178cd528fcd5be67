"""A folder of class folders is a dataset: manifest, labels, folds, bad input, auto settings."""

import json
import logging
import os
import random
from collections import Counter, defaultdict

import numpy as np
import pytest
import soundfile as sf
import torch

from craft_modules.atomic_files import write_json_atomic
from craft_modules.data.audio import load_audio
from craft_modules.data.class_folders import prepare_class_folders
from craft_modules.data.folds import assign_folds
from craft_modules.data.labels import checked_labels
from craft_modules.data.norm_stats import cached_norm_stats, manifest_norm_stats
from craft_modules.features.fbank import KaldiFbank, compute_norm_stats
from craft_modules.testing.synth import make_formant_folders
from craft_modules.training.experiment import (
    auto_clip_duration,
    frames_for_duration,
)


def _wav(path, seconds=0.2, sample_rate=8000, seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    noise = np.random.default_rng(seed).normal(0, 0.1, int(seconds * sample_rate))
    sf.write(path, noise, sample_rate)


def _read(path):
    with open(path, encoding="utf-8") as fin:
        return json.load(fin)


@pytest.fixture(scope="module")
def vowels(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "vowels"
    make_formant_folders(str(root), clips_per_class=12, n_speakers=6, duration=0.2)
    return root


def test_manifest_labels_and_reproducible_stratified_folds(vowels, tmp_path):
    out = prepare_class_folders(str(vowels), str(tmp_path / "a"), n_folds=3, seed=7)
    manifest = _read(out["manifest"])
    assert _read(out["labels"]) == ["ah", "uh"]  # sorted class folder names
    assert len(manifest) == 24
    entry = manifest["uh/spk1_1"]
    assert entry["target"] == 1 and entry["category"] == "uh"
    assert entry["wav"].endswith(os.path.join("uh", "spk1_1.wav"))
    assert entry["duration"] == pytest.approx(0.2)
    per_fold = Counter((e["fold"], e["category"]) for e in manifest.values())
    assert per_fold == {(f, c): 4 for f in (1, 2, 3) for c in ("ah", "uh")}
    assert _read(out["summary"])["written"] == {"folders": 24}

    again = prepare_class_folders(str(vowels), str(tmp_path / "b"), n_folds=3, seed=7)
    other = prepare_class_folders(str(vowels), str(tmp_path / "c"), n_folds=3, seed=8)
    folds = {k: v["fold"] for k, v in manifest.items()}
    assert {k: v["fold"] for k, v in _read(again["manifest"]).items()} == folds
    assert {k: v["fold"] for k, v in _read(other["manifest"]).items()} != folds


def test_a_second_preparation_is_skipped_and_new_options_redo_it(vowels, tmp_path):
    save = str(tmp_path / "save")
    out = prepare_class_folders(str(vowels), save, n_folds=3, seed=7)
    written = os.stat(out["manifest"]).st_mtime_ns
    prepare_class_folders(str(vowels), save, n_folds=3, seed=7)
    assert os.stat(out["manifest"]).st_mtime_ns == written
    prepare_class_folders(str(vowels), save, n_folds=2, seed=7)
    assert {e["fold"] for e in _read(out["manifest"]).values()} == {1, 2}


def test_group_regex_keeps_a_speakers_clips_in_one_fold(vowels, tmp_path):
    out = prepare_class_folders(
        str(vowels), str(tmp_path), n_folds=3, seed=0, group_regex=r"spk(\d+)_"
    )
    folds_of = defaultdict(set)
    for clip_id, entry in _read(out["manifest"]).items():
        folds_of[clip_id.split("/")[1].split("_")[0]].add(entry["fold"])
    assert len(folds_of) == 6 and all(len(f) == 1 for f in folds_of.values())
    # Without the regex, speakers straddle folds (the grouping does something).
    plain = prepare_class_folders(str(vowels), str(tmp_path / "plain"), n_folds=3)
    spread = defaultdict(set)
    for clip_id, entry in _read(plain["manifest"]).items():
        spread[clip_id.split("/")[1].split("_")[0]].add(entry["fold"])
    assert any(len(f) > 1 for f in spread.values())


def test_a_regex_matching_nothing_is_an_error_showing_a_file_name(vowels, tmp_path):
    with pytest.raises(
        ValueError, match=r"matches none of the 24 file names \(e.g. 'spk0_0.wav'\)"
    ):
        prepare_class_folders(str(vowels), str(tmp_path), group_regex=r"speaker-(\d+)")


def test_bad_files_and_empty_class_folders_are_skipped_and_reported(tmp_path, caplog):
    data = tmp_path / "data"
    for name in ("dog", "rain"):
        for i in range(3):
            _wav(str(data / name / f"{name}{i}.wav"), seed=i)
    (data / "rain" / "broken.wav").write_bytes(b"not audio at all")
    (data / "rain" / "empty.flac").write_bytes(b"")
    (data / "silence").mkdir()
    (data / "silence" / "bad.wav").write_bytes(b"RIFF")
    (data / "notes").mkdir()
    (data / "notes" / "readme.txt").write_text("no audio here")
    (data / ".cache").mkdir()  # hidden: not a class
    with caplog.at_level(logging.WARNING):
        out = prepare_class_folders(str(data), str(tmp_path / "save"), n_folds=3)
    assert _read(out["labels"]) == ["dog", "rain"]
    assert len(_read(out["manifest"])) == 6
    summary = _read(out["summary"])
    assert summary["skipped"] == {
        "unreadable_audio": 2,
        "empty_audio": 1,
        "empty_class_folder": 2,
    }
    empty = {
        i["id"] for i in summary["skipped_items"] if i["reason"] == "empty_class_folder"
    }
    assert empty == {"silence", "notes"}
    assert "'silence' skipped" in caplog.text and "'notes' skipped" in caplog.text


def test_fewer_than_two_classes_is_an_error(tmp_path):
    for i in range(4):
        _wav(str(tmp_path / "only" / f"{i}.wav"), seed=i)
    with pytest.raises(ValueError, match="at least two class folders .* only 'only'"):
        prepare_class_folders(str(tmp_path), str(tmp_path / "save"))
    with pytest.raises(FileNotFoundError, match="data folder not found"):
        prepare_class_folders(str(tmp_path / "nowhere"), str(tmp_path / "save"))


def test_fold_errors_name_the_numbers():
    with pytest.raises(ValueError, match="3 clips cannot fill n_folds=5"):
        assign_folds([0, 1, 1], 5, seed=0)
    with pytest.raises(ValueError, match="2 sources .* n_folds=3"):
        assign_folds([0, 1, 0, 1], 3, seed=0, groups=["a", "a", "b", "b"])


def test_n_classes_and_clip_duration_come_from_the_data(tmp_path):
    label_file = str(tmp_path / "labels.json")
    write_json_atomic([f"c{i}" for i in range(10)], label_file)
    assert len(checked_labels(label_file, "auto")) == 10
    assert len(checked_labels(label_file, 10)) == 10
    with pytest.raises(ValueError, match=f"n_classes=50 but {label_file} lists 10"):
        checked_labels(label_file, 50)
    # The real ESC-50: 2000 clips of 5.0 s -> 5.0 s, SSAST's 512 frames.
    esc50 = auto_clip_duration([5.0] * 2000)
    assert esc50 == 5.0 and frames_for_duration(esc50) == 512
    assert auto_clip_duration([1.0] * 97 + [0.5, 3.0, 30.0]) == 1.0
    assert auto_clip_duration([0.92, 0.95, 0.99]) == 1.0


def test_norm_stats_of_a_manifest_are_computed_once(vowels, tmp_path):
    out = prepare_class_folders(str(vowels), str(tmp_path), n_folds=2)
    manifest = _read(out["manifest"])
    mean, std, n = manifest_norm_stats(manifest, 128, 1.0, max_clips=8, seed=0)
    assert n == 8
    # Same as compute_norm_stats over those clips by hand (one batch of 8).
    ids = sorted(manifest)
    random.Random(0).shuffle(ids)
    wavs = torch.stack([load_audio(manifest[i]["wav"], 16000, 1.0) for i in ids[:8]])
    lens = torch.tensor([manifest[i]["duration"] / 1.0 for i in ids[:8]])
    assert (mean, std) == pytest.approx(
        compute_norm_stats([(wavs, lens)], KaldiFbank(128))
    )
    path = str(tmp_path / "norm_stats.json")
    assert cached_norm_stats(path, lambda: (mean, std, n)) == {"mean": mean, "std": std}
    assert _read(path)["n_clips"] == 8
