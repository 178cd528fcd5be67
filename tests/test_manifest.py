"""Compact manifests: the same items as SpeechBrain's dict-based dataset, held in arrays.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import gc
import json
import pickle
import random

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from craft_modules.atomic_files import write_json_atomic
from craft_modules.data.audio import audio_pipeline
from craft_modules.data.datasets import audio_dataset
from craft_modules.data.labels import multi_hot_pipeline, one_hot_pipeline
from craft_modules.data.manifest import (
    CompactDynamicItemDataset,
    CompactManifest,
    JSONArray,
    NumberArray,
    StringArray,
    StringListArray,
)
from craft_modules.data.preparation import manifest_audio_path
from craft_modules.data.samplers import balanced_sampler, label_balancing_weights

MIDS = [f"/m/{i:03d}" for i in range(7)]


def _audio_files(folder, n=3):
    paths = []
    for i in range(n):
        path = folder / f"clip{i}.flac"
        sf.write(str(path), np.full(800 + 400 * i, 0.1 * (i + 1)), 16000)
        paths.append(str(path))
    return paths


def _audioset_manifest(paths, n=12, seed=0):
    rng = random.Random(seed)
    return {
        f"Y{i:04d}-x": {
            "wav": paths[i % len(paths)],
            "duration": round(rng.uniform(0.05, 10.0), 4),
            "labels": rng.sample(MIDS, rng.randint(1, 4)),
        }
        for i in range(n)
    }


def _label_file(tmp_path):
    path = str(tmp_path / "labels.json")
    write_json_atomic([{"index": i, "mid": m} for i, m in enumerate(MIDS)], path)
    return path


def _assert_same_items(compact, reference):
    assert len(compact) == len(reference)
    for index in range(len(reference)):
        got, want = compact[index], reference[index]
        assert list(got) == list(want)
        for key, value in want.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(got[key], value), (index, key)
            else:
                assert got[key] == value and type(got[key]) is type(value), (
                    index,
                    key,
                )


def test_audioset_items_equal_the_dict_datasets(tmp_path):
    manifest = _audioset_manifest(_audio_files(tmp_path))
    label_file = _label_file(tmp_path)
    keys = ["id", "sig", "targets", "wav", "duration", "labels"]
    reference = DynamicItemDataset(
        manifest,
        dynamic_items=[audio_pipeline(16000, 0.1), multi_hot_pipeline(label_file)],
        output_keys=keys,
    )
    compact = audio_dataset(
        manifest, 16000, 0.1, [multi_hot_pipeline(label_file)], keys
    )
    assert isinstance(compact, CompactDynamicItemDataset)
    assert compact[0]["targets"].sum() >= 1  # the labels reach the target item
    _assert_same_items(compact, reference)


def test_esc50_items_with_int_fields_equal_the_dict_datasets(tmp_path):
    paths = _audio_files(tmp_path)
    manifest = {
        f"1-{i}-A-{i % 3}": {
            "wav": paths[i % 3],
            "duration": 5.0,
            "fold": 1 + i % 5,
            "target": i % 3,
            "category": ["dog", "rain", "wind"][i % 3],
        }
        for i in range(10)
    }
    keys = ["id", "sig", "targets", "fold", "target", "category", "duration"]
    reference = DynamicItemDataset(
        manifest,
        dynamic_items=[audio_pipeline(16000, 0.05), one_hot_pipeline(3)],
        output_keys=keys,
    )
    compact = audio_dataset(manifest, 16000, 0.05, [one_hot_pipeline(3)], keys)
    assert compact.data.columns["fold"].values.dtype == np.int64
    _assert_same_items(compact, reference)


def test_json_manifest_is_formatted_like_speechbrains_from_json(tmp_path):
    paths = _audio_files(tmp_path)
    braced = tmp_path / "odd{1}.flac"
    sf.write(str(braced), np.full(800, 0.3), 16000)
    manifest = _audioset_manifest(paths, n=4)
    manifest["braced"] = {
        "wav": manifest_audio_path(str(braced)),
        "duration": 0.05,
        "labels": ["/m/{{x}}"],
    }
    path = str(tmp_path / "train.json")
    write_json_atomic(manifest, path)
    keys = ["id", "sig", "wav", "labels"]
    reference = DynamicItemDataset.from_json(
        path, dynamic_items=[audio_pipeline(16000, 0.05)], output_keys=keys
    )
    compact = audio_dataset(path, 16000, 0.05, output_keys=keys)
    assert compact[4]["wav"] == str(braced) and compact[4]["labels"] == ["/m/{x}"]
    assert compact[4]["sig"] is not None
    _assert_same_items(compact, reference)


def _reachable_objects(root):
    """Python objects reachable from `root` (numpy arrays count as one each)."""
    seen, stack = set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        if not isinstance(obj, np.ndarray):
            stack.extend(gc.get_referents(obj))
    return len(seen)


def test_compact_manifest_holds_no_per_clip_python_objects(tmp_path):
    paths = _audio_files(tmp_path)
    small = CompactManifest(_audioset_manifest(paths, n=10))
    large = CompactManifest(_audioset_manifest(paths, n=2000, seed=1))
    # The object count does not grow with the number of clips ...
    assert _reachable_objects(large) == _reachable_objects(small)
    # ... and the arrays hold about 50 bytes per clip (ids, paths, labels).
    assert large.nbytes < 2000 * 80
    dataset = CompactDynamicItemDataset(large, [audio_pipeline(16000, 0.05)])
    assert _reachable_objects(dataset) < 400


def test_column_types_and_exact_values():
    ids = ["a", "b", "c"]
    manifest = CompactManifest(
        {
            "a": {"d": 10.0, "x": 0.1, "n": 3, "ok": True, "mix": 1, "tags": []},
            "b": {
                "d": 2.5,
                "x": 9.9876,
                "n": -2,
                "ok": False,
                "mix": 2.5,
                "tags": ["t"],
            },
            "c": {
                "d": 0.0,
                "x": 1e-9,
                "n": 2**40,
                "ok": True,
                "mix": None,
                "tags": ["u", "t"],
            },
        }
    )
    columns = manifest.columns
    assert columns["d"].values.dtype == np.float32  # exact in float32
    assert columns["x"].values.dtype == np.float64  # 0.1 is not
    assert isinstance(columns["n"], NumberArray) and isinstance(
        columns["mix"], JSONArray
    )
    assert isinstance(columns["tags"], StringListArray)
    assert [manifest.entry(i)["x"] for i in range(3)] == [0.1, 9.9876, 1e-9]
    assert manifest["c"] == {
        "d": 0.0,
        "x": 1e-9,
        "n": 2**40,
        "ok": True,
        "mix": None,
        "tags": ["u", "t"],
    }
    assert [manifest.clip_id(i) for i in range(3)] == ids
    with pytest.raises(ValueError, match="'bad'.*'t'"):
        JSONArray([(1, 2)], "t", ["bad"])  # a tuple would come back as a list


def test_string_arrays_keep_unicode_and_a_common_prefix():
    texts = ["/data/é/ä.flac", "/data/é/b.flac", "/data/z.flac"]
    array = StringArray(texts)
    assert list(array) == texts and array.prefix == "/data/"
    assert array[-1] == texts[-1] and array[0:3:2] == [texts[0], texts[2]]
    with pytest.raises(IndexError):
        array[3]


def test_lookup_by_id_and_speechbrain_dataset_methods():
    data = {f"c{i:02d}": {"labels": ["a"] * (i % 3 + 1), "n": i} for i in range(20)}
    manifest = CompactManifest(data)
    assert list(manifest.items()) == list(data.items())
    assert manifest._sorted is None  # reading in order needs no id lookup table
    assert list(manifest.values()) == list(data.values())
    assert manifest.position("c07") == 7 and "c07" in manifest and "zz" not in manifest
    with pytest.raises(KeyError):
        manifest["c99"]
    dataset = CompactDynamicItemDataset(manifest, output_keys=["id", "n"])
    assert list(dataset.data_ids) == list(data)
    subset = dataset.filtered_sorted(
        key_min_value={"n": 15}, sort_key="n", reverse=True
    )
    assert [item["id"] for item in subset] == ["c19", "c18", "c17", "c16", "c15"]
    shuffled = dataset.batch_shuffle(4)
    assert sorted(item["id"] for item in shuffled) == sorted(data)


def test_inconsistent_empty_and_reserved_manifests_are_errors():
    with pytest.raises(ValueError, match="'b' has fields \\['wav'\\]"):
        CompactManifest({"a": {"wav": "x", "labels": []}, "b": {"wav": "y"}})
    with pytest.raises(ValueError, match="empty"):
        CompactManifest({})
    with pytest.raises(ValueError, match="reserved"):
        CompactDynamicItemDataset({"a": {"id": "x"}})


def test_pickled_dataset_and_loader_workers_give_the_same_items(tmp_path):
    manifest = _audioset_manifest(_audio_files(tmp_path), n=8)
    dataset = audio_dataset(manifest, 16000, 0.05, output_keys=["id", "sig", "labels"])
    copy = pickle.loads(pickle.dumps(dataset))  # what spawned workers get
    _assert_same_items(copy, dataset)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=2, multiprocessing_context="fork"
    )
    _assert_same_items(list(loader), dataset)


def _random_labels(n, seed):
    rng = random.Random(seed)
    return {
        f"c{i}": {"labels": rng.choices(MIDS, k=rng.randint(0, 5))} for i in range(n)
    }


def test_compact_balancing_weights_are_identical_to_the_dicts():
    manifest = _random_labels(500, seed=2)
    compact = CompactManifest(manifest)
    expected = label_balancing_weights(manifest)
    assert torch.equal(label_balancing_weights(compact), expected)
    no_labels = torch.tensor([not entry["labels"] for entry in manifest.values()])
    assert no_labels.any() and (expected[no_labels] == 0).all()
    assert (expected[~no_labels] > 0).all()
    sampler, reference = (
        balanced_sampler(compact, seed=5),
        balanced_sampler(manifest, seed=5),
    )
    sampler.set_epoch(3)
    reference.set_epoch(3)
    assert list(sampler) == list(reference)


def test_compact_balancing_accepts_comma_separated_labels_and_names_missing_ones():
    manifest = {"a": {"labels": "x, y"}, "b": {"labels": "x"}}
    assert torch.equal(
        label_balancing_weights(CompactManifest(manifest)),
        label_balancing_weights(manifest),
    )
    with pytest.raises(KeyError, match="'a' has no 'labels'"):
        label_balancing_weights(CompactManifest({"a": {"wav": "a.wav"}}))


def test_json_round_trip_of_a_prepared_manifest(tmp_path):
    path = tmp_path / "m.json"
    manifest = _audioset_manifest(["/x/a.flac"], n=5)
    path.write_text(json.dumps(manifest))
    assert dict(CompactManifest.from_json(str(path)).items()) == manifest
