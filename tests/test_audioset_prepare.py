"""Tests for recipes/AudioSet/audioset_prepare.py on synthetic AudioSet data.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from craft_modules.data.audio import audio_pipeline
from craft_modules.data.batching import SkipBadCollate
from craft_modules.data.labels import multi_hot_pipeline
from craft_modules.testing.scripts import load_script
from craft_modules.testing.synth import make_audioset

prep = load_script("recipes/AudioSet/audioset_prepare.py", "audioset_prepare")

BAD = {
    "n_missing": 2,
    "n_corrupt": 1,
    "n_empty": 1,
    "n_unknown_mid": 1,
    "n_only_unknown_mid": 1,
    "n_malformed": 2,
}


@pytest.fixture(scope="module")
def audioset(tmp_path_factory):
    root = tmp_path_factory.mktemp("AudioSet")
    info = make_audioset(
        str(root),
        n_classes=5,
        n_balanced=14,
        n_eval=4,
        n_unbalanced=3,
        duration=0.5,
        sample_rates=(16000, 32000),
        formats=("wav", "flac"),
        seed=0,
        **BAD,
    )
    return root, info


def _read(path):
    return json.loads(Path(path).read_text())


def _copy(root, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(root, target)
    return target


def test_counts_labels_and_paths(audioset, tmp_path):
    root, info = audioset
    out = prep.prepare_audioset(str(root), str(tmp_path / "save"))
    assert sorted(out) == ["eval", "labels", "summary", "train"]
    train, evaluation = _read(out["train"]), _read(out["eval"])
    summary = _read(out["summary"])

    bad = info["bad"]
    dropped = bad["missing"] + bad["corrupt"] + bad["empty"] + bad["only_unknown_mid"]
    rows = info["splits"]["balanced_train"]
    assert sorted(train) == sorted(r["ytid"] for r in rows if r["ytid"] not in dropped)
    assert len(train) == 14 - 5 and len(evaluation) == 4
    assert summary["written"] == {"train": 9, "eval": 4}
    assert summary["skipped"] == {
        "malformed_row": 2,
        "missing_audio": 2,
        "unreadable_audio": 1,
        "empty_audio": 1,
        "unknown_label": 1,
    }
    assert summary["notes"] == {"unknown_labels_dropped": 1}
    reasons = {i["id"]: i["reason"] for i in summary["skipped_items"]}
    assert all(reasons[y] == "missing_audio" for y in bad["missing"])
    assert reasons[bad["corrupt"][0]] == "unreadable_audio"

    known = [mid for _, mid, _ in info["labels"]]
    for row in rows:
        if row["ytid"] in train:
            entry = train[row["ytid"]]
            assert entry["labels"] == [m for m in row["mids"] if m in known]
            assert entry["wav"] == os.path.abspath(row["path"])
            assert entry["duration"] == pytest.approx(0.5)
    assert "/m/0zzzz" not in train[bad["unknown_mid"][0]]["labels"]
    assert len(train[bad["unknown_mid"][0]]["labels"]) >= 1

    labels = _read(out["labels"])
    assert labels == [
        {"index": i, "mid": mid, "display_name": name}
        for i, mid, name in info["labels"]
    ]
    leftovers = [n for n in os.listdir(tmp_path / "save") if n.endswith(".tmp")]
    assert leftovers == []


def test_unbalanced_and_full_train(audioset, tmp_path):
    root, _ = audioset
    splits = ("balanced_train", "unbalanced_train", "eval")
    out = prep.prepare_audioset(str(root), str(tmp_path / "save"), splits=splits)
    train, unbalanced = _read(out["train"]), _read(out["unbalanced_train"])
    full = _read(out["full_train"])
    assert len(unbalanced) == 3
    assert full == {**train, **unbalanced} and len(full) == 12


def test_manifest_feeds_a_speechbrain_dataset(audioset, tmp_path):
    root, _ = audioset
    out = prep.prepare_audioset(str(root), str(tmp_path / "save"))
    dataset = DynamicItemDataset.from_json(
        out["train"],
        dynamic_items=[
            audio_pipeline(16000, duration=0.5),
            multi_hot_pipeline(out["labels"]),
        ],
        output_keys=["id", "sig", "targets"],
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=4, collate_fn=SkipBadCollate()
    )
    batch = next(iter(loader))
    assert batch.sig.data.shape == (4, 8000)
    assert batch.targets.data.shape == (4, 5)
    manifest = _read(out["train"])
    for clip_id, target in zip(batch.id, batch.targets.data):
        assert int(target.sum()) == len(manifest[clip_id]["labels"])


def test_audio_found_at_any_depth_and_with_y_prefix(audioset, tmp_path):
    root, info = audioset
    data = _copy(root, tmp_path)
    first = info["splits"]["eval"][0]
    old = Path(str(first["path"]).replace(str(root), str(data)))
    ytid = first["ytid"]
    new = data / "audio" / "deep" / "er" / "still" / f"Y{ytid}_30.000_40.000.wav"
    new.parent.mkdir(parents=True)
    old.rename(new)
    out = prep.prepare_audioset(str(data), str(tmp_path / "save"))
    assert _read(out["eval"])[ytid]["wav"] == str(new)


def test_best_file_is_chosen_among_several(tmp_path):
    folder = tmp_path / "audio"
    (folder / "x").mkdir(parents=True)
    for name in ["abc_10.wav", "abc_30.wav", "x/abcdef.wav", "Yabc.wav"]:
        (folder / name).write_bytes(b"")
    index = prep.AudioIndex(str(folder))
    assert len(index) == 4
    assert index.find("abc", 30.0).endswith("abc_30.wav")
    assert index.find("abc", 10.0).endswith("abc_10.wav")
    (folder / "abc.flac").write_bytes(b"")
    assert prep.AudioIndex(str(folder)).find("abc", 30.0).endswith("abc.flac")
    assert index.find("abcdef").endswith("abcdef.wav")
    assert index.find("zzz") is None


def test_json_data_files(audioset, tmp_path):
    root, info = audioset
    rows = info["splits"]["eval"]
    mids = [mid for _, mid, _ in info["labels"]]
    relative_dir = tmp_path / "lists"
    relative_dir.mkdir()
    shutil.copy(rows[1]["path"], relative_dir / "rel_clip.wav")
    data = [
        {"wav": rows[0]["path"], "labels": ",".join(rows[0]["mids"])},
        {"wav": "rel_clip.wav", "labels": f"{mids[0]},/m/0unknown"},
        {"wav": str(tmp_path / "gone.wav"), "labels": mids[1]},
        {"wav": rows[2]["path"], "labels": "/m/0unknown"},
        {"labels": mids[0]},
        {"wav": rows[3]["path"], "labels": mids[2], "video_id": "vid3"},
    ]
    json_file = relative_dir / "eval_data.json"
    json_file.write_text(json.dumps({"data": data}))
    out = prep.prepare_audioset(
        str(root), str(tmp_path / "save"), json_files={"test": str(json_file)}
    )
    assert sorted(out) == ["labels", "summary", "test"]
    manifest = _read(out["test"])
    first_id = Path(rows[0]["path"]).stem
    assert sorted(manifest) == sorted([first_id, "rel_clip", "vid3"])
    assert manifest["rel_clip"] == {
        "wav": str(relative_dir / "rel_clip.wav"),
        "duration": 0.5,
        "labels": [mids[0]],
    }
    assert manifest[first_id]["labels"] == rows[0]["mids"]
    assert _read(out["summary"])["skipped"] == {
        "malformed_row": 1,
        "missing_audio": 1,
        "unknown_label": 1,
    }


def test_bad_json_data_file(audioset, tmp_path):
    root, _ = audioset
    bad = tmp_path / "bad.json"
    bad.write_text('{"entries": []}')
    with pytest.raises(ValueError, match="bad.json"):
        prep.prepare_audioset(
            str(root), str(tmp_path / "s"), json_files={"x": str(bad)}
        )
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        prep.prepare_audioset(
            str(root),
            str(tmp_path / "s"),
            json_files={"x": str(tmp_path / "nothere.json")},
        )


def test_missing_inputs_raise_file_not_found_naming_them(audioset, tmp_path):
    root, _ = audioset
    save = str(tmp_path / "save")
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        prep.prepare_audioset(str(missing), save)
    data = _copy(root, tmp_path)
    for csv_name, splits in [
        ("eval_segments.csv", ("balanced_train", "eval")),
        ("unbalanced_train_segments.csv", ("unbalanced_train",)),
        ("class_labels_indices.csv", ("eval",)),
    ]:
        (data / csv_name).rename(data / f"{csv_name}.away")
        with pytest.raises(FileNotFoundError, match=csv_name):
            prep.prepare_audioset(str(data), save, splits=splits)
        (data / f"{csv_name}.away").rename(data / csv_name)
    with pytest.raises(ValueError, match="Unknown AudioSet split"):
        prep.prepare_audioset(str(root), save, splits=("train",))
    assert not os.path.exists(save)


def test_rerun_is_skipped_unless_options_change(audioset, tmp_path, monkeypatch):
    root, _ = audioset
    save = str(tmp_path / "save")
    first = prep.prepare_audioset(str(root), save)
    calls = []
    original = prep.build_manifest

    def counting_build(*args, **kwargs):
        calls.append(args[3])
        return original(*args, **kwargs)

    monkeypatch.setattr(prep, "build_manifest", counting_build)
    assert prep.prepare_audioset(str(root), save) == first
    assert calls == []
    prep.prepare_audioset(str(root), save, splits=("eval",))
    assert calls == ["eval"]
    # an interrupted run (no options record) is redone
    os.remove(os.path.join(save, prep.OPTIONS_FILE))
    prep.prepare_audioset(str(root), save, splits=("eval",))
    assert calls == ["eval", "eval"]
    assert prep.prepare_audioset(str(root), save, skip_prep=True) is None
    assert calls == ["eval", "eval"]


def test_threaded_probing_gives_the_same_manifest(audioset, tmp_path):
    root, _ = audioset
    serial = prep.prepare_audioset(str(root), str(tmp_path / "a"))
    threaded = prep.prepare_audioset(str(root), str(tmp_path / "b"), num_workers=3)
    assert _read(serial["train"]) == _read(threaded["train"])


def test_unlabeled_folder(tmp_path):
    folder = tmp_path / "unlabeled"
    (folder / "a" / "b").mkdir(parents=True)
    sf.write(str(folder / "a" / "b" / "one.wav"), np.zeros(16000), 16000)
    sf.write(str(folder / "two.flac"), np.zeros(22050), 44100)
    sf.write(str(folder / "a" / "short.wav"), np.zeros(800), 16000)
    sf.write(str(folder / "a" / "empty.wav"), np.zeros(0), 16000)
    (folder / "a" / "broken.ogg").write_bytes(b"not audio at all" * 20)
    (folder / "readme.txt").write_text("ignored")
    path = prep.prepare_unlabeled_folder(
        str(folder), str(tmp_path / "save"), min_duration=0.1
    )
    manifest = _read(path)
    assert manifest == {
        "a/b/one": {"wav": str(folder / "a" / "b" / "one.wav"), "duration": 1.0},
        "two": {"wav": str(folder / "two.flac"), "duration": 0.5},
    }
    summary = _read(tmp_path / "save" / "unlabeled_summary.json")
    assert summary["skipped"] == {
        "too_short": 1,
        "empty_audio": 1,
        "unreadable_audio": 1,
    }
    assert summary["written"] == {"unlabeled": 2}
    with pytest.raises(FileNotFoundError, match="nowhere"):
        prep.prepare_unlabeled_folder(str(tmp_path / "nowhere"), str(tmp_path))


def test_class_label_csv_errors(tmp_path):
    bad = tmp_path / "classes.csv"
    bad.write_text("index,mid\n0,/m/0a\n")
    with pytest.raises(ValueError, match="display_name"):
        prep.read_class_labels(str(bad))
    bad.write_text("index,mid,display_name\n1,/m/0a,A\n")
    with pytest.raises(ValueError, match="0..N-1"):
        prep.read_class_labels(str(bad))


def test_braces_in_file_names_survive_speechbrain_loading(tmp_path):
    folder = tmp_path / "odd {names}"
    folder.mkdir()
    sf.write(str(folder / "clip{1}.wav"), np.full(1600, 0.25), 16000)
    path = prep.prepare_unlabeled_folder(str(folder), str(tmp_path / "save"))
    dataset = DynamicItemDataset.from_json(
        path,
        dynamic_items=[audio_pipeline(16000, skip_bad=False)],
        output_keys=["id", "sig"],
    )
    item = dataset[0]
    assert item["id"] == "clip{1}"
    assert torch.allclose(item["sig"], torch.full((1600,), 0.25), atol=1e-4)


def test_long_preparations_log_their_progress(audioset, tmp_path, monkeypatch, caplog):
    import craft_modules.data.preparation as preparation

    monkeypatch.setattr(preparation, "PROGRESS_INTERVAL_S", 0.0)  # a line per item
    root, _ = audioset
    with caplog.at_level("INFO"):
        out = prep.prepare_audioset(str(root), str(tmp_path / "save"), num_workers=2)
    messages = [record.getMessage() for record in caplog.records]
    probed = [m for m in messages if m.startswith("AudioSet train, audio files probed")]
    total = int(re.search(r"/(\d+) \(", probed[0]).group(1))
    counts = [int(re.search(r": (\d+)/", m).group(1)) for m in probed[:-1]]
    assert counts == list(range(1, total + 1)) and "min left" in probed[0]
    assert re.fullmatch(rf".*probed: {total} in [\d.]+ s", probed[-1])
    assert total >= len(_read(out["train"])) > 0
    assert any("balanced_train_segments.csv lines read: 3," in m for m in messages)
    assert any(m.startswith(f"Writing {out['train']} (") for m in messages)
    # With the default interval, short preparations log only the totals.
    monkeypatch.setattr(preparation, "PROGRESS_INTERVAL_S", 3600.0)
    caplog.clear()
    with caplog.at_level("INFO"):
        prep.prepare_audioset(str(root), str(tmp_path / "again"))
    lines = [r.getMessage() for r in caplog.records if "probed" in r.getMessage()]
    assert len(lines) == 2 and all(" in " in line for line in lines)
