"""Tests for recipes/ESC50/esc50_prepare.py on synthetic ESC-50 data.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from craft_modules.data.audio import load_audio
from craft_modules.data.datasets import labelled_datasets
from craft_modules.data.labels import one_hot_pipeline
from craft_modules.testing.scripts import load_script
from craft_modules.testing.synth import class_names, make_esc50

REPO = Path(__file__).resolve().parents[1]


prep = load_script("recipes/ESC50/esc50_prepare.py", "esc50_prepare")


@pytest.fixture(scope="module")
def esc50(tmp_path_factory):
    root = tmp_path_factory.mktemp("ESC-50")
    rows = make_esc50(
        str(root), n_classes=3, clips_per_class=5, sample_rate=44100, duration=0.5
    )
    return root, rows


def _read(path):
    return json.loads(Path(path).read_text())


def test_manifest_folds_targets_and_labels(esc50, tmp_path):
    root, rows = esc50
    out = prep.prepare_esc50(str(root), str(tmp_path / "save"))
    manifest = _read(out["manifest"])
    assert len(manifest) == 15
    for row in rows:
        entry = manifest[row["filename"][:-4]]
        assert entry["fold"] == row["fold"] and entry["target"] == row["target"]
        assert entry["category"] == row["category"]
        assert entry["wav"] == str(root / "audio" / row["filename"])
        assert entry["duration"] == pytest.approx(0.5)
    assert sorted({e["fold"] for e in manifest.values()}) == [1, 2, 3, 4, 5]
    assert _read(out["labels"]) == class_names(3)
    assert _read(out["summary"])["skipped"] == {}
    assert [n for n in os.listdir(tmp_path / "save") if n.endswith(".tmp")] == []


def test_44k_clips_are_accepted_and_load_at_16k(esc50, tmp_path):
    root, _ = esc50
    out = prep.prepare_esc50(str(root), str(tmp_path / "save"))
    entry = next(iter(_read(out["manifest"]).values()))
    assert sf.info(entry["wav"]).samplerate == 44100
    assert load_audio(entry["wav"], 16000).shape[0] == 8000


def _append_rows(csv_path, rows):
    with open(csv_path, "a", newline="") as fout:
        csv.writer(fout).writerows(rows)


def test_bad_rows_and_files_are_skipped_and_counted(esc50, tmp_path):
    root, rows = esc50
    data = tmp_path / "data"
    shutil.copytree(root, data)
    corrupt, gone = rows[0]["filename"], rows[1]["filename"]
    (data / "audio" / corrupt).write_bytes(b"\x00garbage" * 100)
    (data / "audio" / gone).unlink()
    shutil.copy(data / "audio" / rows[2]["filename"], data / "audio" / "5-1-A-0.wav")
    _append_rows(
        data / "meta" / "esc50.csv",
        [
            ["1-2-A-0.wav", "one", "0", "x", "False", "2", "A"],
            ["1-3-A-0.wav", "1", "", "x", "False", "3", "A"],
            ["5-1-A-0.wav", "5", "0", "not_the_same_name", "False", "1", "A"],
            [rows[3]["filename"], "1", "0", rows[3]["category"], "False", "4", "A"],
        ],
    )
    out = prep.prepare_esc50(str(data), str(tmp_path / "save"))
    summary = _read(out["summary"])
    assert summary["skipped"] == {
        "malformed_row": 3,
        "unreadable_audio": 1,
        "missing_audio": 1,
        "duplicate_id": 1,
    }
    assert summary["written"] == {"esc50": 13}
    manifest = _read(out["manifest"])
    assert corrupt[:-4] not in manifest and gone[:-4] not in manifest
    assert len(manifest) == 13
    reasons = {item["id"]: item["reason"] for item in summary["skipped_items"]}
    assert reasons[corrupt[:-4]] == "unreadable_audio"
    assert reasons["5-1-A-0"] == "malformed_row"


def test_missing_folder_or_csv_names_the_path(tmp_path, esc50):
    missing = tmp_path / "nothing_here"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        prep.prepare_esc50(str(missing), str(tmp_path / "save"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="esc50.csv"):
        prep.prepare_esc50(str(tmp_path / "empty"), str(tmp_path / "save"))
    bad = tmp_path / "bad"
    (bad / "meta").mkdir(parents=True)
    (bad / "meta" / "esc50.csv").write_text("filename,fold\n1-1-A-0.wav,1\n")
    with pytest.raises(ValueError, match="category"):
        prep.prepare_esc50(str(bad), str(tmp_path / "save"))


def test_rerun_is_skipped(esc50, tmp_path, monkeypatch):
    root, _ = esc50
    save = str(tmp_path / "save")
    first = prep.prepare_esc50(str(root), save)
    calls = []
    monkeypatch.setattr(prep, "read_esc50_csv", lambda *a: calls.append(a) or [])
    assert prep.prepare_esc50(str(root), save) == first
    assert calls == [] and len(_read(first["manifest"])) == 15
    assert prep.prepare_esc50(str(root), save, skip_prep=True) is None
    os.remove(os.path.join(save, prep.OPTIONS_FILE))
    prep.prepare_esc50(str(root), save)
    assert len(calls) == 1


def test_a_data_folder_with_braces_trains(tmp_path, monkeypatch):
    """The preparation doubles braces for SpeechBrain; the recipe reads them back."""
    root = tmp_path / "ESC{50}"
    make_esc50(
        str(root), n_classes=3, clips_per_class=5, sample_rate=44100, duration=0.5
    )
    prep.prepare_esc50(str(root), str(tmp_path / "prepared"))
    monkeypatch.syspath_prepend(str(REPO / "recipes" / "ESC50"))
    recipe = load_script("recipes/ESC50/train.py", "esc50_train")
    manifests = recipe.fold_manifests(tmp_path / "prepared" / "esc50.json", 1)
    datasets = labelled_datasets(manifests, one_hot_pipeline(3), 16000, 0.5)
    train, test = datasets["train"], datasets["test"]
    assert len(train) == 12 and len(test) == 3
    assert train[0]["sig"] is not None and train[0]["sig"].shape[0] == 8000
