"""The on-disk cache of compact manifests: equal entries, memory maps, invalidation, races."""

import json
import os
import pickle

import numpy as np
import pytest

from craft_modules.data import manifest_cache
from craft_modules.data.manifest import CompactManifest
from craft_modules.data.manifest_cache import cache_folder, load_manifest

ENTRIES = {
    "clip{0}": {
        "wav": "{data_root}/audio/a{{x}}.flac",
        "duration": 10.0,
        "labels": ["/m/09x0r", "/m/04rlf"],
        "weight": 1,
        "extra": {"nested": [1, 2.5]},
    },
    "b": {
        "wav": "{data_root}/audio/é.flac",
        "duration": 9.87654321,
        "labels": [],
        "weight": 3,
        "extra": None,
    },
}


ROOT = {"data_root": "/data"}


def write(path, data=ENTRIES):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)
    return str(path)


def caches(folder):
    return sorted(name for name in os.listdir(folder) if ".compact-" in name)


def test_cached_manifest_equals_the_json_one_and_is_memory_mapped(tmp_path):
    path = write(tmp_path / "train.json")
    replacements = {"data_root": "/data"}
    expected = CompactManifest.from_json(path, replacements)
    built = load_manifest(path, replacements)
    assert len(caches(tmp_path)) == 1
    cached = load_manifest(path, replacements)
    for manifest in (built, cached):
        assert list(manifest) == list(expected) == ["clip{0}", "b"]
        assert [manifest.entry(i) for i in range(2)] == [
            expected.entry(i) for i in range(2)
        ]
        assert manifest["b"]["wav"] == "/data/audio/é.flac"
        assert manifest["b"]["duration"] == 9.87654321
    assert isinstance(cached.ids.buffer, np.memmap)
    assert isinstance(cached.columns["labels"].indices, np.memmap)
    assert not cached.columns["duration"].values.flags.writeable
    # A loader worker started with spawn gets an equal copy.
    assert pickle.loads(pickle.dumps(cached)).entry(0) == expected.entry(0)


def test_an_edited_manifest_or_other_replacements_never_read_a_stale_cache(tmp_path):
    path = write(tmp_path / "train.json")
    first = load_manifest(path, {"data_root": "/a"})
    assert first["b"]["wav"] == "/a/audio/é.flac"
    other_root = load_manifest(path, {"data_root": "/b"})
    assert other_root["b"]["wav"] == "/b/audio/é.flac"
    edited = {**ENTRIES, "c": {**ENTRIES["b"], "weight": 7}}
    write(tmp_path / "train.json", edited)  # same name, maybe the same mtime
    fresh = load_manifest(path, {"data_root": "/a"})
    assert len(fresh) == 3 and fresh["c"]["weight"] == 7
    # The older caches of this manifest were removed; only the new one is left.
    assert caches(tmp_path) == [
        os.path.basename(cache_folder(path, {"data_root": "/a"}))
    ]


def test_a_damaged_cache_is_rebuilt(tmp_path):
    path = write(tmp_path / "train.json")
    load_manifest(path, ROOT)
    folder = cache_folder(path, ROOT)
    os.remove(os.path.join(folder, "ids.buffer.npy"))
    assert load_manifest(path, ROOT)["b"]["labels"] == []
    assert os.path.isfile(os.path.join(folder, "ids.buffer.npy"))


def test_a_cache_written_meanwhile_by_another_process_is_kept(tmp_path, monkeypatch):
    path = write(tmp_path / "train.json")
    folder = cache_folder(path, ROOT)
    real_rename = os.rename

    calls = []

    def another_process_first(src, dst):
        calls.append(dst)
        if len(calls) == 1:  # the other process renames its copy in first
            manifest_cache.write_compact(CompactManifest.from_json(path, ROOT), dst)
        real_rename(src, dst)  # for this process: fails, the other copy is there

    monkeypatch.setattr(manifest_cache.os, "rename", another_process_first)
    manifest = load_manifest(path, ROOT)
    monkeypatch.undo()
    assert manifest.entry(1)["weight"] == 3 and calls == [folder, folder]
    # One complete cache, no staging folder left behind.
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["train.json", os.path.basename(folder)]
    )


def test_a_read_only_folder_falls_back_to_the_json_with_a_warning(
    tmp_path, monkeypatch, caplog
):
    path = write(tmp_path / "train.json")

    def read_only(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(manifest_cache.tempfile, "mkdtemp", read_only)
    with caplog.at_level("WARNING"):
        manifest = load_manifest(path, ROOT)
    assert manifest.entry(0)["labels"] == ["/m/09x0r", "/m/04rlf"]
    assert "Cannot cache the manifest" in caplog.text and "train.json" in caplog.text
    assert caches(tmp_path) == []


def test_cache_false_writes_nothing(tmp_path):
    path = write(tmp_path / "train.json")
    assert len(load_manifest(path, ROOT, cache=False)) == 2
    assert caches(tmp_path) == []


def test_a_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "train.json"
    path.write_text('{"a": {"wav": ')
    for cache in (True, False):
        with pytest.raises(ValueError, match="train.json is not valid JSON"):
            load_manifest(str(path), ROOT, cache=cache)
    assert caches(tmp_path) == []
