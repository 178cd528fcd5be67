"""Tagging/embedding API, HEAR contract and console commands on a tiny trained run."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from craft_modules.data.audio import get_resampler
from craft_modules.inference import hear
from craft_modules.inference.tagger import AudioTagger, RunFolderError
from craft_modules.models.craft import CraftClassifier
from craft_modules.testing.synth import make_esc50, synth_clip

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def esc50_run(tmp_path_factory):
    """An ESC-50 run (tiny SWaB, 1 s clips) trained for one epoch on one fold."""
    data = tmp_path_factory.mktemp("data") / "ESC-50"
    make_esc50(
        str(data), n_classes=3, clips_per_class=5, sample_rate=44100, duration=1.0
    )
    out = tmp_path_factory.mktemp("runs") / "esc"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "recipes" / "ESC50" / "train.py"),
            "hparams/craft.yaml",
            f"--data_folder={data}",
            f"--output_folder={out}",
            "--n_classes=3",
            "--folds=[1]",
            "--number_of_epochs=1",
            "--batch_size=4",
            "--model_size=tiny",
            "--depth=1",
            "--num_workers=0",
            "--device=cpu",
            "--clip_duration=1.0",
            "--fusion_layer=0",
            "--n_bottlenecks=4",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    labels = json.loads((out / "data" / "labels.json").read_text())
    return out, labels, data


@pytest.fixture(scope="module")
def tagger(esc50_run):
    return AudioTagger.from_run(str(esc50_run[0]))


@pytest.fixture(scope="module")
def hear_model(esc50_run):
    return hear.load_model(str(esc50_run[0]))


def write(path, signal, rate):
    sf.write(str(path), np.asarray(signal, dtype=np.float32), rate)
    return str(path)


def test_tagging_a_file_returns_the_recipes_label_names(tagger, esc50_run, tmp_path):
    _, labels, _ = esc50_run
    assert tagger.labels == labels and tagger.hparams.checkpoint.startswith("best")
    path = write(tmp_path / "a.wav", synth_clip([0], 16000, 1.0, seed=3), 16000)
    (result,) = tagger.tag_files([path], top_k=2)
    assert result["file"] == path and result["duration"] == pytest.approx(1.0)
    assert len(result["labels"]) == 2 and "windows" not in result
    assert {e["label"] for e in result["labels"]} <= set(labels)
    scores = [e["score"] for e in result["labels"]]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0 + 1e-6
    # The same as the model on the clip itself (softmax of the logits).
    wav = torch.from_numpy(sf.read(path, dtype="float32")[0])
    with torch.no_grad():
        probs = torch.softmax(tagger.mods.model(wav[None], torch.ones(1)), dim=-1)[0]
    assert scores[0] == pytest.approx(float(probs.max()), abs=1e-5)


def test_long_file_is_tagged_window_by_window(tagger, tmp_path):
    path = write(tmp_path / "long.wav", 0.1 * np.random.randn(int(3.5 * 16000)), 16000)
    (result,) = tagger.tag_files([path], top_k=1)
    windows = result["windows"]
    starts = [w["start"] for w in windows]
    assert starts == sorted(starts) and starts[0] == 0.0
    assert windows[-1]["end"] == pytest.approx(3.5)
    assert all(a["end"] >= b["start"] for a, b in zip(windows, windows[1:]))  # no gap
    assert len(windows) == 4 and all(len(w["labels"]) == 1 for w in windows)


def test_stereo_8k_file_is_mixed_down_and_resampled(tagger, tmp_path):
    left = synth_clip([1], 8000, 1.5, seed=1)
    right = synth_clip([2], 8000, 1.5, seed=2)
    path = write(tmp_path / "stereo8k.wav", np.stack([left, right], axis=1), 8000)
    (result,) = tagger.tag_files([path], top_k=3)
    assert result["duration"] == pytest.approx(1.5)
    mono = get_resampler(8000, 16000)(torch.from_numpy((left + right) / 2).float())
    expected = tagger.tag_waveform(mono, 16000, top_k=3)
    for got, want in zip(result["labels"], expected["labels"]):
        assert got["label"] == want["label"]
        assert got["score"] == pytest.approx(want["score"], abs=1e-4)


def test_bad_files_are_reported_while_the_others_are_tagged(tagger, tmp_path):
    good = write(tmp_path / "good.wav", synth_clip([0], 16000, 1.0), 16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really a wave file" * 10)
    results = tagger.tag_files([str(tmp_path / "missing.wav"), str(corrupt), good])
    assert "missing.wav" in results[0]["error"] and "corrupt.wav" in results[1]["error"]
    assert results[2]["file"] == good and results[2]["labels"]


def test_run_folder_without_checkpoint_is_a_clear_error(esc50_run, tmp_path):
    fold = tmp_path / "fold_1"
    (fold / "save").mkdir(parents=True)
    shutil.copy(esc50_run[0] / "fold_1" / "hyperparams.yaml", fold)
    with pytest.raises(RunFolderError, match="no checkpoint"):
        AudioTagger.from_run(str(tmp_path))
    with pytest.raises(RunFolderError, match="not a recipe run"):
        AudioTagger.from_run(str(tmp_path / "fold_1" / "save"))


def _tiny_tagger(labels, multilabel):
    """An untrained tiny AST tagger of 0.5 s clips on the CPU."""
    model = CraftClassifier(
        len(labels), fusion="ast", model_size="tiny", depth=1, target_frames=48
    )
    return AudioTagger(
        modules={"model": model},
        hparams={
            "sample_rate": 16000,
            "clip_duration": 0.5,
            "labels": list(labels),
            "multilabel": multilabel,
        },
        run_opts={"device": "cpu"},
    )


def test_multilabel_summary_is_the_window_maximum():
    tagger = _tiny_tagger("abcd", multilabel=True)
    result = tagger.tag_waveform(torch.randn(16000), 16000, top_k=None)
    per_window = {
        e["label"]: max(
            s["score"]
            for w in result["windows"]
            for s in w["labels"]
            if s["label"] == e["label"]
        )
        for e in result["labels"]
    }
    for entry in result["labels"]:
        assert entry["score"] == pytest.approx(per_window[entry["label"]], abs=1e-6)


def test_embeddings_of_any_length(tagger):
    emb, spans, lens = tagger.window_embeddings(torch.randn(40000), 16000)
    assert emb.shape == (3, tagger.mods.model.mlp_head[0].normalized_shape[0])
    assert spans[-1, 1] == pytest.approx(2.5) and lens[-1] == pytest.approx(0.5)
    scene = tagger.scene_embedding(torch.randn(40000), 16000)
    assert scene.shape == emb.shape[1:]


@pytest.mark.parametrize("seconds", [1.07, 1.98, 4.0])
def test_hear_timestamp_embeddings_contract(hear_model, seconds):
    model = hear_model
    assert model.sample_rate == 16000
    assert isinstance(model.scene_embedding_size, int)
    assert isinstance(model.timestamp_embedding_size, int)
    n = int(round(seconds * model.sample_rate))
    audio = torch.rand(2, n) * 2 - 1
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    assert emb.dtype == torch.float32 and emb.dim() == 3 and ts.dim() == 2
    assert emb.shape[:2] == ts.shape and emb.shape[0] == 2
    assert emb.shape[2] == model.timestamp_embedding_size
    hops = torch.diff(ts, dim=1)
    assert float(hops.max() - hops.min()) <= 1.0 and float(hops.max()) <= 50.0
    duration_ms = 1000.0 * n / model.sample_rate
    assert float(ts[:, 0].max()) <= float(hops[0, 0])  # starts within one hop
    assert float(ts.max()) < duration_ms  # never past the end
    assert float(ts[:, -1].min()) >= duration_ms - float(hops[0, 0]) - 1e-3
    assert torch.isfinite(emb).all()
    # Embeddings follow the audio: different sounds give different rows.
    assert not torch.allclose(emb[0], emb[1])


def test_hear_scene_embeddings_contract(hear_model):
    model = hear_model
    emb = hear.get_scene_embeddings(torch.rand(4, int(2.74 * 16000)) * 2 - 1, model)
    assert emb.dtype == torch.float32
    assert emb.shape == (4, model.scene_embedding_size)


def test_craft_tag_command_prints_json_and_reports_bad_files(esc50_run, tmp_path):
    good = write(tmp_path / "good.wav", synth_clip([1], 22050, 2.5), 22050)
    command = BIN / "craft-tag"
    assert command.exists(), "craft-tag is not installed (pip install -e .)"
    proc = subprocess.run(
        [
            str(command),
            good,
            str(tmp_path / "nope.wav"),
            "--model",
            str(esc50_run[0]),
            "--top-k",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    assert [r["file"] for r in results] == [good, str(tmp_path / "nope.wav")]
    assert len(results[0]["labels"]) == 2 and len(results[0]["windows"]) == 3
    assert "not found" in results[1]["error"]
    table = subprocess.run(
        [str(command), good, "--model", str(esc50_run[0])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert table.returncode == 0 and "good.wav (2.50 s)" in table.stdout


def test_craft_embed_command_writes_npy_files(esc50_run, tagger, tmp_path):
    path = write(tmp_path / "clip.wav", synth_clip([2], 16000, 1.3), 16000)
    command = BIN / "craft-embed"
    assert command.exists(), "craft-embed is not installed (pip install -e .)"
    out = tmp_path / "emb"
    proc = subprocess.run(
        [
            str(command),
            path,
            "--model",
            str(esc50_run[0]),
            "--output-dir",
            str(out),
            "--timestamps",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    scene = np.load(out / "clip.npy")
    frames, times = (
        np.load(out / "clip.timestamps.npy"),
        np.load(out / "clip.times_ms.npy"),
    )
    expected = tagger.scene_embedding(
        torch.from_numpy(sf.read(path, dtype="float32")[0]), 16000
    )
    np.testing.assert_allclose(scene, expected.numpy(), atol=1e-5)
    assert frames.shape == (len(times), scene.shape[0]) and times[-1] < 1300
    manifest = json.loads((out / "embeddings.json").read_text())
    assert manifest["files"][0]["scene"] == "clip.npy" and manifest["n_failed"] == 0


def test_timestamp_embeddings_ignore_columns_of_padding(tagger):
    """Each 1 s window feeds 1.28 s to the model; its padding columns are not used."""
    wav = torch.randn(32000) * 0.1
    emb, ts = tagger.timestamp_embedding(wav, 16000, hop_ms=50)
    model = tagger.mods.model
    with torch.no_grad():
        first, centres = model.time_embeddings(wav[None, :16000], torch.ones(1))
        second, _ = model.time_embeddings(wav[None, 16000:], torch.ones(1))
    real = int((centres < 1.0).sum())  # columns centred on the window's audio
    t0, t1 = float(centres[real - 1]), 1.0 + float(centres[0])
    w = (1.05 - t0) / (t1 - t0)
    expected = (1 - w) * first[0, real - 1] + w * second[0, 0]
    k = int(torch.nonzero(ts == 1050.0)[0])
    assert torch.allclose(emb[k], expected, atol=1e-4)


def test_best_checkpoint_is_found_among_intra_epoch_ones(esc50_run, tmp_path):
    from speechbrain.utils.checkpoints import Checkpointer

    run = tmp_path / "run"
    shutil.copytree(esc50_run[0], run)
    best = AudioTagger.from_run(str(run)).mods.model.state_dict()
    model = AudioTagger.from_run(str(run)).mods.model
    with torch.no_grad():
        model.mlp_head[1].bias.add_(1.0)
    # An intra-epoch checkpoint, newer and without the metric.
    Checkpointer(str(run / "fold_1" / "save"), {"model": model}).save_checkpoint(
        meta={}
    )
    loaded = AudioTagger.from_run(str(run), checkpoint="best")
    assert loaded.hparams.checkpoint == "best checkpoint by accuracy"
    assert torch.equal(loaded.mods.model.mlp_head[1].bias, best["mlp_head.1.bias"])
    last = AudioTagger.from_run(str(run), checkpoint="last")
    assert torch.equal(last.mods.model.mlp_head[1].bias, best["mlp_head.1.bias"] + 1.0)


def test_craft_embed_refuses_files_that_would_overwrite_each_other(esc50_run, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    paths = [
        write(tmp_path / d / "dog.wav", synth_clip([0], 16000, 1.0), 16000)
        for d in "ab"
    ]
    proc = subprocess.run(
        [
            str(BIN / "craft-embed"),
            *paths,
            "--model",
            str(esc50_run[0]),
            "--output-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "dog" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_batched_embeddings_equal_one_signal_at_a_time(tagger):
    """HEAR batches go through the model together; each row must be its own signal's."""
    wavs = torch.randn(3, 40000) * 0.1
    emb, ts = tagger.timestamp_embeddings(wavs, 16000)
    scenes = tagger.scene_embeddings(wavs, 16000)
    for i in range(3):
        alone, alone_ts = tagger.timestamp_embedding(wavs[i], 16000)
        assert torch.equal(ts, alone_ts)
        assert torch.allclose(emb[i], alone, atol=1e-5)
        assert torch.allclose(
            scenes[i], tagger.scene_embedding(wavs[i], 16000), atol=1e-5
        )
    assert not torch.allclose(emb[0], emb[1])


def test_run_folder_saved_with_the_flat_module_paths_still_loads(
    esc50_run, tagger, tmp_path
):
    from craft_modules.weights.legacy_paths import MODULES

    run = tmp_path / "old_run"
    shutil.copytree(esc50_run[0], run)
    # Runs of that time wrote no inference.yaml: hyperparams.yaml is the route.
    (run / "fold_1" / "inference.yaml").unlink()
    (run / "data" / "labels.json").rename(run / "fold_1" / "labels.json")
    saved = run / "fold_1" / "hyperparams.yaml"
    text = saved.read_text()
    flat = text
    for old, new in sorted(MODULES.items(), key=lambda item: -len(item[1])):
        flat = flat.replace(f"craft_modules.{new}.", f"craft_modules.{old}.")
    assert "craft_modules.checkpointer.AtomicCheckpointer" in flat
    assert "craft_modules.models.CraftClassifier" in flat
    saved.write_text(flat)
    old = AudioTagger.from_run(str(run))
    assert type(old.mods.model) is CraftClassifier
    assert old.labels == tagger.labels  # from labels.json, found in the run folder
    signal = torch.randn(1, 16000)
    with torch.no_grad():
        assert torch.equal(
            old.mods.model(signal, torch.ones(1)),
            tagger.mods.model(signal, torch.ones(1)),
        )


def test_run_loads_from_its_inference_yaml_the_speechbrain_way(
    esc50_run, tagger, tmp_path
):
    """Every run writes inference.yaml: from_hparams gives from_run's model and labels."""
    fold = esc50_run[0] / "fold_1"
    text = (fold / "inference.yaml").read_text()
    assert "speechbrain.utils.parameter_transfer.Pretrainer" in text
    assert str(esc50_run[2]) not in text  # no data (or pretrained) path
    loaded = AudioTagger.from_hparams(source=str(fold))
    assert loaded.labels == tagger.labels == esc50_run[1]
    assert loaded.hparams.checkpoint == tagger.hparams.checkpoint
    assert loaded.hparams.multilabel is False and loaded.sample_rate == 16000
    mine, theirs = loaded.mods.model.state_dict(), tagger.mods.model.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    wav = torch.from_numpy(synth_clip([1], 16000, 1.0, seed=5))
    assert loaded.tag_waveform(wav, 16000) == tagger.tag_waveform(wav, 16000)
    # from_run reads inference.yaml first: its labels win over the data folder's.
    run = tmp_path / "relabelled"
    shutil.copytree(esc50_run[0], run)
    path = run / "fold_1" / "inference.yaml"
    path.write_text(text.replace(json.dumps(esc50_run[1]), json.dumps(["x", "y", "z"])))
    assert AudioTagger.from_run(str(run)).labels == ["x", "y", "z"]


def test_batch_calls_reject_bad_input_on_the_host_as_a_gpu_would_need(monkeypatch):
    # On a GPU the model asserts its input on the device (a failed assertion
    # leaves CUDA unusable); classify_batch / encode_batch check it first.
    monkeypatch.setattr(
        "craft_modules.models.inputs._values_checked_on_host", lambda wavs: False
    )
    tagger = _tiny_tagger("abc", multilabel=False)
    wavs = torch.randn(2, 8000) * 0.1
    scores, _, _, labels = tagger.classify_batch(wavs, torch.tensor([1.0, 0.5]))
    assert scores.shape == (2, 3) and len(labels) == 2
    assert tagger.encode_batch(wavs).shape[0] == 2
    nan = wavs.clone()
    nan[1, 7] = float("nan")
    for call in (tagger.classify_batch, tagger.encode_batch):
        with pytest.raises(ValueError, match="NaN|finite"):
            call(nan)
        with pytest.raises(ValueError, match="zero length"):
            call(wavs, torch.tensor([1.0, 0.0]))
        with pytest.raises(ValueError, match="relative lengths"):
            call(wavs, torch.tensor([1.0, 1.5]))
