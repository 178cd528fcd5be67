"""Tests for recipes/FSD50K/fsd50k_prepare.py on a synthetic FSD50K miniature.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from speechbrain.dataio.dataset import DynamicItemDataset

from craft_modules.data.labels import load_label_list, multi_hot_pipeline
from craft_modules.testing.scripts import load_script
from craft_modules.testing.synth_fsd50k import UNKNOWN_LABEL, make_fsd50k

prep = load_script("recipes/FSD50K/fsd50k_prepare.py")


@pytest.fixture(scope="module")
def fsd50k(tmp_path_factory):
    root = tmp_path_factory.mktemp("FSD50K")
    info = make_fsd50k(
        str(root),
        n_classes=4,
        n_dev=12,
        n_eval=4,
        n_val=3,
        duration=(0.2, 0.6),
        sample_rate=44100,
        n_missing=1,
        n_corrupt=1,
        n_unknown_label=1,
        n_malformed=1,
    )
    return root, info


def _read(path):
    return json.loads(Path(path).read_text())


def test_manifests_splits_labels_and_counts(fsd50k, tmp_path):
    root, info = fsd50k
    out = prep.prepare_fsd50k(str(root), str(tmp_path / "save"))
    train, valid, evaluation = (_read(out[k]) for k in ("train", "valid", "eval"))
    good = [row for row in info["dev"] if "bad" not in row]
    assert sorted(train) == sorted(r["fname"] for r in good if r["split"] == "train")
    assert sorted(valid) == sorted(r["fname"] for r in good if r["split"] == "val")
    assert (len(train), len(valid), len(evaluation)) == (6, 3, 4)
    assert sorted(evaluation) == sorted(r["fname"] for r in info["eval"])
    for row in good + info["eval"]:
        entry = {**train, **valid, **evaluation}[row["fname"]]
        assert entry["labels"] == row["mids"]
        assert entry["label_names"] == row["labels"]
        assert entry["duration"] == pytest.approx(row["duration"], abs=1e-3)
        assert entry["wav"] == row["path"]
    labels = load_label_list(out["labels"])
    assert [(v["index"], v["display_name"], v["mid"]) for v in labels] == [
        tuple(v) for v in info["vocabulary"]
    ]
    summary = _read(out["summary"])
    assert summary["written"] == {"train": 6, "valid": 3, "eval": 4}
    assert summary["skipped"] == {
        "missing_audio": 1,
        "unreadable_audio": 1,
        "unknown_label": 1,
        "malformed_row": 1,
    }
    assert [n for n in os.listdir(tmp_path / "save") if n.endswith(".tmp")] == []


def test_unknown_label_and_missing_audio_are_reported_with_file_and_row(
    fsd50k, tmp_path
):
    root, info = fsd50k
    out = prep.prepare_fsd50k(str(root), str(tmp_path / "save"))
    items = {item["reason"]: item for item in _read(out["summary"])["skipped_items"]}
    bad_row = next(r for r in info["dev"] if r.get("bad") == "unknown_label")
    unknown = items["unknown_label"]
    assert unknown["id"] == bad_row["fname"]
    assert f"dev.csv:{bad_row['line']}" in unknown["detail"]
    assert UNKNOWN_LABEL in unknown["detail"]
    missing_row = next(r for r in info["dev"] if r.get("bad") == "missing")
    assert items["missing_audio"]["id"] == missing_row["fname"]
    assert f"{missing_row['fname']}.wav" in items["missing_audio"]["detail"]
    assert f"dev.csv:{missing_row['line']}" in items["missing_audio"]["detail"]


def test_manifest_feeds_speechbrain_and_multi_hot(fsd50k, tmp_path):
    root, info = fsd50k
    out = prep.prepare_fsd50k(str(root), str(tmp_path / "save"))
    dataset = DynamicItemDataset.from_json(
        out["train"],
        dynamic_items=[multi_hot_pipeline(out["labels"])],
        output_keys=["id", "targets"],
    )
    mids = [v[2] for v in info["vocabulary"]]
    row = next(r for r in info["dev"] if r["fname"] == dataset[0]["id"])
    expected = [float(mid in row["mids"]) for mid in mids]
    assert dataset[0]["targets"].tolist() == expected


def test_preparation_is_skipped_when_done_and_redone_for_new_data(tmp_path):
    data = tmp_path / "data"
    make_fsd50k(str(data), n_classes=3, n_dev=8, n_eval=3, n_val=2)
    save = tmp_path / "save"
    out = prep.prepare_fsd50k(str(data), str(save))
    Path(out["train"]).write_text("{}")  # a skipped run leaves it alone
    prep.prepare_fsd50k(str(data), str(save))
    assert _read(out["train"]) == {}
    os.remove(out["summary"])  # an incomplete output is redone
    prep.prepare_fsd50k(str(data), str(save))
    assert len(_read(out["train"])) == 6
    assert prep.prepare_fsd50k(str(data), str(save), skip_prep=True) is None
    # An edited ground truth invalidates the manifests.
    dev = data / "FSD50K.ground_truth" / "dev.csv"
    lines = dev.read_text().splitlines(keepends=True)
    dev.write_text("".join(lines[:-1]))
    prep.prepare_fsd50k(str(data), str(save))
    assert len(_read(out["train"])) + len(_read(out["valid"])) == 7


def test_preparation_with_missing_audio_is_redone_next_time(fsd50k, tmp_path):
    root, _ = fsd50k  # has clips whose audio is missing or corrupt
    save = tmp_path / "save"
    out = prep.prepare_fsd50k(str(root), str(save))
    Path(out["train"]).write_text("{}")
    prep.prepare_fsd50k(str(root), str(save))  # not marked done: rebuilt
    assert _read(out["train"]) != {}


def test_missing_folder_csv_and_column_errors(fsd50k, tmp_path):
    root, _ = fsd50k
    with pytest.raises(FileNotFoundError, match="nowhere"):
        prep.prepare_fsd50k(str(tmp_path / "nowhere"), str(tmp_path / "save"))
    data = tmp_path / "data"
    shutil.copytree(root, data)
    os.remove(data / "FSD50K.ground_truth" / "eval.csv")
    with pytest.raises(FileNotFoundError, match="eval.csv"):
        prep.prepare_fsd50k(str(data), str(tmp_path / "save"))
    shutil.copy(root / "FSD50K.ground_truth" / "eval.csv", data / "FSD50K.ground_truth")
    (data / "FSD50K.ground_truth" / "dev.csv").write_text("fname,split\n1,train\n")
    with pytest.raises(ValueError, match=r"dev.csv: missing column\(s\) \['labels'\]"):
        prep.prepare_fsd50k(str(data), str(tmp_path / "save"))
    (data / "FSD50K.ground_truth" / "vocabulary.csv").write_text("0,Bark\n")
    with pytest.raises(ValueError, match="vocabulary.csv:1"):
        prep.prepare_fsd50k(str(data), str(tmp_path / "save"))


def test_mismatched_mids_and_bad_split_are_skipped(tmp_path):
    truth = tmp_path / "FSD50K.ground_truth"
    truth.mkdir()
    (truth / "vocabulary.csv").write_text("0,Bark,/m/b\n1,Meow,/m/m\n")
    (truth / "dev.csv").write_text(
        "fname,labels,mids,split\n"
        '1,"Bark,Meow","/m/b,/m/m",train\n'
        "2,Bark,/m/m,train\n"
        "3,Bark,/m/b,test\n"
        '1,"Bark,Meow","/m/b,/m/m",val\n'
    )
    (truth / "eval.csv").write_text("fname,labels,mids\n")
    out = prep.prepare_fsd50k(str(tmp_path), str(tmp_path / "save"))
    summary = _read(out["summary"])
    assert summary["skipped"] == {
        "label_mismatch": 1,
        "malformed_row": 1,
        "duplicate_id": 1,
        "missing_audio": 1,
    }
    details = {i["reason"]: i["detail"] for i in summary["skipped_items"]}
    assert details["label_mismatch"].startswith("dev.csv:3:")
    assert details["malformed_row"].startswith("dev.csv:4:")


def test_csvs_saved_with_a_byte_order_mark_are_read(tmp_path):
    data = tmp_path / "data"
    make_fsd50k(str(data), n_classes=3, n_dev=6, n_eval=2, n_val=2)
    for name in ("dev.csv", "eval.csv", "vocabulary.csv"):
        path = data / "FSD50K.ground_truth" / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # as Excel saves it
    out = prep.prepare_fsd50k(str(data), str(tmp_path / "save"))
    assert len(_read(out["train"])) == 4 and len(load_label_list(out["labels"])) == 3
