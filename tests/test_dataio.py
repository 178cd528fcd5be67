"""Tests for craft_modules.data.audio: audio loading, robust collate, helpers.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import copy
import json
import logging
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from craft_modules.atomic_files import write_json_atomic
from craft_modules.data.audio import (
    AudioLoadError,
    audio_pipeline,
    find_audio_files,
    get_resampler,
    load_audio,
    probe_audio,
)
from craft_modules.data.batching import SkipBadCollate
from craft_modules.data.labels import MultiHot, multi_hot_pipeline
from craft_modules.data.preparation import (
    PreparationSummary,
    clear_prepared,
    is_prepared,
    mark_prepared,
)


def _sine(freq, sample_rate, seconds, amplitude=0.5):
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def _write(path, data, sample_rate, subtype=None):
    sf.write(str(path), data, sample_rate, subtype=subtype)
    return str(path)


def _peak_frequency(wav, sample_rate):
    spectrum = np.abs(np.fft.rfft(wav.numpy() * np.hanning(len(wav))))
    return np.fft.rfftfreq(len(wav), 1.0 / sample_rate)[np.argmax(spectrum)]


def test_stereo_44k_becomes_mono_16k(tmp_path):
    left = _sine(440, 44100, 1.5)
    stereo = np.stack([left, 0.5 * left], axis=1)
    path = _write(tmp_path / "stereo.wav", stereo, 44100, "FLOAT")
    wav = load_audio(path, sample_rate=16000)
    assert wav.dim() == 1 and wav.dtype == torch.float32
    assert wav.shape[0] == 24000
    # mean of the channels: amplitude 0.75 * 0.5 (away from resampling edges)
    assert abs(wav[1000:-1000].abs().max().item() - 0.375) < 0.01


@pytest.mark.parametrize("orig_rate,freq", [(44100, 1000.0), (22050, 3000.0)])
def test_resampled_sine_keeps_its_frequency(tmp_path, orig_rate, freq):
    path = _write(tmp_path / "sine.wav", _sine(freq, orig_rate, 1.0), orig_rate)
    wav = load_audio(path, sample_rate=16000)
    assert wav.shape[0] == 16000
    assert abs(_peak_frequency(wav, 16000) - freq) <= 1.0


def test_same_rate_is_not_changed(tmp_path):
    data = _sine(500, 16000, 0.5)
    path = _write(tmp_path / "x.wav", data, 16000, "FLOAT")
    assert torch.allclose(load_audio(path, 16000), torch.from_numpy(data).float())


def test_crop_pad_and_offset(tmp_path):
    data = np.linspace(-0.5, 0.5, 16000)
    path = _write(tmp_path / "ramp.wav", data, 16000, "FLOAT")
    full = torch.from_numpy(data).float()
    cropped = load_audio(path, 16000, duration=0.5)
    assert cropped.shape[0] == 8000
    assert torch.allclose(cropped, full[:8000])
    padded = load_audio(path, 16000, duration=2.0)
    assert padded.shape[0] == 32000
    assert torch.allclose(padded[:16000], full)
    assert padded[16000:].abs().sum() == 0
    shifted = load_audio(path, 16000, duration=0.5, offset=0.25)
    assert torch.allclose(shifted, full[4000:12000])
    # exact length also after resampling an odd duration
    path_44k = _write(tmp_path / "r44.wav", _sine(300, 44100, 1.0), 44100)
    assert load_audio(path_44k, 16000, duration=0.3333).shape[0] == 5333


def test_resamplers_are_cached():
    assert get_resampler(44100, 16000) is get_resampler(44100, 16000)
    assert get_resampler(44100, 16000) is not get_resampler(22050, 16000)


def _bad_files(tmp_path):
    """(description, path, reason) for every kind of bad file."""
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(0).bytes(3000))
    zero_bytes = tmp_path / "zero.wav"
    zero_bytes.write_bytes(b"")
    no_samples = _write(tmp_path / "nosamples.wav", np.zeros(0), 16000)
    nan = _sine(100, 16000, 0.1)
    nan[10] = np.nan
    inf = _sine(100, 16000, 0.1)
    inf[20] = np.inf
    return [
        ("missing", str(tmp_path / "missing.wav"), "missing"),
        ("garbage", str(garbage), "unreadable"),
        ("zero bytes", str(zero_bytes), "empty"),
        ("no samples", no_samples, "empty"),
        ("nan", _write(tmp_path / "nan.wav", nan, 16000, "FLOAT"), "non_finite"),
        ("inf", _write(tmp_path / "inf.wav", inf, 16000, "FLOAT"), "non_finite"),
    ]


def test_every_bad_file_raises_audio_load_error_naming_it(tmp_path):
    for what, path, reason in _bad_files(tmp_path):
        with pytest.raises(AudioLoadError) as info:
            load_audio(path, 16000, duration=1.0)
        assert path in str(info.value), what
        assert info.value.reason == reason, what
        assert isinstance(info.value, ValueError)


def test_offset_past_the_end_is_an_error(tmp_path):
    path = _write(tmp_path / "short.wav", _sine(100, 16000, 0.1), 16000)
    with pytest.raises(AudioLoadError, match="no audio samples"):
        load_audio(path, 16000, offset=5.0)


def test_probe_audio(tmp_path):
    path = _write(tmp_path / "p.flac", _sine(100, 22050, 0.5), 22050)
    info = probe_audio(path)
    assert (info.sample_rate, info.frames, info.channels) == (22050, 11025, 1)
    assert info.duration == pytest.approx(0.5)
    for _, bad_path, reason in _bad_files(tmp_path):
        if reason == "non_finite":
            continue  # probing does not decode whole files
        with pytest.raises(AudioLoadError) as err:
            probe_audio(bad_path)
        assert err.value.reason == reason and bad_path in str(err.value)


def test_find_audio_files_walks_nested_folders(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ["a/b/x.wav", "a/y.FLAC", "z.mp3", "a/b/notes.txt", "k.ogg"]:
        (tmp_path / name).write_bytes(b"")
    found = [os.path.relpath(p, tmp_path) for p in find_audio_files(str(tmp_path))]
    assert found == sorted(["a/b/x.wav", "a/y.FLAC", "z.mp3", "k.ogg"])


def _dataset(tmp_path, n_good=2, n_bad=2, skip_bad=True):
    data = {}
    for i in range(n_good):
        length = 0.25 * (i + 1)
        path = _write(tmp_path / f"good{i}.wav", _sine(200, 44100, length), 44100)
        data[f"good{i}"] = {"wav": path}
    for i in range(n_bad):
        data[f"bad{i}"] = {"wav": str(tmp_path / f"bad{i}.wav")}
    return DynamicItemDataset(
        data,
        dynamic_items=[audio_pipeline(16000, skip_bad=skip_bad)],
        output_keys=["id", "sig"],
    )


def test_pipeline_and_collate_drop_bad_items(tmp_path, caplog):
    dataset = _dataset(tmp_path)
    collate = SkipBadCollate()
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, collate_fn=collate)
    with caplog.at_level(logging.WARNING):
        batches = list(loader)
    assert len(batches) == 1
    batch = batches[0]
    assert batch.id == ["good0", "good1"]
    wavs, lens = batch.sig
    assert wavs.shape == (2, 8000)
    assert torch.allclose(lens, torch.tensor([0.5, 1.0]))
    assert collate.n_skipped == 2
    assert "bad0.wav" in caplog.text and "bad1" in caplog.text
    collate.reset()
    assert collate.n_skipped == 0


def test_all_bad_batch_gives_none(tmp_path):
    dataset = _dataset(tmp_path, n_good=0, n_bad=3)
    collate = SkipBadCollate()
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=collate)
    assert list(loader) == [None]
    assert collate.n_skipped == 3


def test_skip_bad_false_raises(tmp_path):
    dataset = _dataset(tmp_path, n_good=0, n_bad=1, skip_bad=False)
    with pytest.raises(AudioLoadError, match="bad0.wav"):
        dataset[0]


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_collate_counter_is_shared_with_workers(tmp_path, start_method):
    dataset = _dataset(tmp_path, n_good=2, n_bad=4)
    collate = SkipBadCollate()
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=2,
        num_workers=2 if start_method == "fork" else 1,
        collate_fn=collate,
        multiprocessing_context=start_method,
    )
    ids = [i for batch in loader if batch is not None for i in batch.id]
    assert ids == ["good0", "good1"]
    assert collate.n_skipped == 4


def test_collate_copy_keeps_count_but_not_counter():
    collate = SkipBadCollate()
    collate([{"id": "a", "sig": None}, {"id": "b", "sig": torch.ones(2)}])
    clone = copy.deepcopy(collate)
    assert clone.n_skipped == 1
    clone([{"id": "c", "sig": None}])
    assert (clone.n_skipped, collate.n_skipped) == (2, 1)


def test_multi_hot(tmp_path):
    labels = [{"index": i, "mid": f"/m/0{i}", "display_name": str(i)} for i in range(4)]
    path = tmp_path / "labels.json"
    write_json_atomic(labels, str(path))
    item = multi_hot_pipeline(str(path))
    assert item(["/m/03", "/m/01"]).tolist() == [0.0, 1.0, 0.0, 1.0]
    with pytest.raises(KeyError):
        MultiHot(labels)(["/m/unknown"])


def test_write_json_atomic_leaves_no_temp_file(tmp_path):
    path = tmp_path / "out" / "manifest.json"
    write_json_atomic({"a": {"wav": "x"}}, str(path))
    write_json_atomic({"b": 1}, str(path))
    assert json.loads(path.read_text()) == {"b": 1}
    assert os.listdir(path.parent) == ["manifest.json"]
    # a failing write keeps the old content and cleans up its temp file
    with pytest.raises(TypeError):
        write_json_atomic({"c": object()}, str(path))
    assert json.loads(path.read_text()) == {"b": 1}
    assert os.listdir(path.parent) == ["manifest.json"]


def test_written_files_follow_the_umask(tmp_path):
    path = tmp_path / "m.json"
    write_json_atomic({}, str(path))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_prepared_markers(tmp_path):
    out = tmp_path / "train.json"
    marker = str(tmp_path / "options.json")
    assert not is_prepared(marker, {"a": 1}, [str(out)])
    write_json_atomic({}, str(out))
    mark_prepared(marker, {"a": 1, "b": ("x", "y")})
    assert is_prepared(marker, {"a": 1, "b": ("x", "y")}, [str(out)])
    assert not is_prepared(marker, {"a": 2, "b": ("x", "y")}, [str(out)])
    out.unlink()
    assert not is_prepared(marker, {"a": 1, "b": ("x", "y")}, [str(out)])
    clear_prepared(marker)
    assert not os.path.exists(marker)


def test_preparation_summary_saves_counts(tmp_path):
    summary = PreparationSummary("test")
    summary.add_written("train", 5)
    summary.skip("train", "x", "missing_audio", "x.wav")
    summary.skip("eval", "y", "missing_audio", "y.wav")
    summary.skip("eval", "line 3", "malformed_row", "bad")
    summary.note("unknown_labels_dropped", 2)
    summary.save(str(tmp_path / "summary.json"))
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["written"] == {"train": 5}
    assert saved["skipped"] == {"missing_audio": 2, "malformed_row": 1}
    assert saved["notes"] == {"unknown_labels_dropped": 2}
    assert [item["id"] for item in saved["skipped_items"]] == ["x", "y", "line 3"]


def test_crop_only_datasets_keep_true_lengths_in_the_batch(tmp_path):
    """pad=False: the batch's relative lengths say how long each clip really is."""
    from craft_modules.data.datasets import audio_dataset

    manifest = {}
    for name, seconds in [("long", 3.0), ("short", 0.5), ("full", 1.0)]:
        path = tmp_path / f"{name}.wav"
        sf.write(str(path), np.full(int(seconds * 8000), 0.1, dtype=np.float32), 8000)
        manifest[name] = {"wav": str(path)}
    cropped = audio_dataset(manifest, 16000, 1.0, pad=False)
    batch = SkipBadCollate()([cropped[i] for i in range(3)])
    wavs, lens = batch.sig
    assert wavs.shape == (3, 16000)
    assert lens.tolist() == pytest.approx([1.0, 0.5, 1.0])
    padded = audio_dataset(manifest, 16000, 1.0)
    assert SkipBadCollate()([padded[i] for i in range(3)]).sig[1].tolist() == [1, 1, 1]
