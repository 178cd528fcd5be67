"""craft-tag / craft-embed / craft-export behave like the tools people use (in-process)."""

import importlib.metadata
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from test_export import LABELS, tiny_classifier_run, tiny_pretraining_run

from craft_modules.inference import cli
from craft_modules.inference.cli import embed_main, export_main, tag_main
from craft_modules.inference.tagger import AudioTagger
from craft_modules.testing.synth import synth_clip


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    return tiny_classifier_run(tmp_path_factory.mktemp("cli_run"))


@pytest.fixture(scope="module")
def tagger(run_folder):
    return AudioTagger.from_run(str(run_folder))


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """Six files: 1 s clips, a 2.5 s one (3 windows) at 22.05 kHz, and 0.4 s."""
    folder = tmp_path_factory.mktemp("cli_audio")
    lengths = [1.0, 2.5, 1.0, 0.4, 1.0, 1.7]
    paths = []
    for i, seconds in enumerate(lengths):
        rate = 22050 if i == 1 else 16000
        path = folder / f"clip{i}.wav"
        sf.write(str(path), synth_clip([i % 3], rate, seconds, seed=i), rate)
        paths.append(str(path))
    return paths


def run_tag(capsys, *args):
    status = tag_main([*args, "--device", "cpu"])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_device_auto_is_the_default_and_follows_cuda(monkeypatch):
    parser = cli._parser("x", "")
    cli._common_arguments(parser)
    assert parser.parse_args(["a.wav", "--model", "m"]).device == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
    # With its index, as SpeechBrain's model loading parses it.
    assert cli.resolve_device("auto") == "cuda:2"
    assert cli.resolve_device("cuda") == "cuda:2"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.resolve_device("auto") == "cpu"
    assert cli.resolve_device("cuda:1") == "cuda:1"


def test_version_is_the_package_version(capsys, monkeypatch):
    for main in (tag_main, embed_main, export_main):
        with pytest.raises(SystemExit) as exit_info:
            main(["--version"])
        assert exit_info.value.code == 0
        assert capsys.readouterr().out.split()[-1] == cli.package_version()
    assert cli.package_version() == importlib.metadata.version("craft-modules")

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert cli.package_version() == "unknown (not installed)"


def test_batch_size_does_not_change_the_results(run_folder, audio, capsys):
    bad = audio[0] + ".missing.wav"
    files = [audio[0], bad, audio[1], audio[3]]
    runs = []
    for size in ("1", "4"):
        status, out, _ = run_tag(
            capsys, *files, "--model", str(run_folder), "--json", "--batch-size", size
        )
        assert status == 1
        runs.append(json.loads(out))
    one = runs[0]
    assert [r["file"] for r in one] == files and "error" in one[1]
    assert len(one[2]["windows"]) == 3
    for other in runs[1:]:
        for a, b in zip(one, other):
            assert a.keys() == b.keys()
            if "error" in a:
                continue
            assert [e["label"] for e in a["labels"]] == [
                e["label"] for e in b["labels"]
            ]
            np.testing.assert_allclose(
                [e["score"] for e in a["labels"]],
                [e["score"] for e in b["labels"]],
                atol=2e-6,
            )
    # Batches gather windows across files: 1 + 3 windows in one pass, 1 + 1 in one.
    tagger = AudioTagger.from_run(str(run_folder))
    calls = []
    tagger.mods.model.encoder.register_forward_hook(lambda *a: calls.append(1))
    tagger.tag_files(audio[:4], batch_size=4)
    assert len(calls) == 2


def test_progress_bar_goes_to_stderr_and_json_stays_clean(run_folder, audio, capsys):
    files = [audio[i] for i in (0, 2, 3, 4)]  # more than PROGRESS_MIN_FILES
    status, out, err = run_tag(capsys, *files, "--model", str(run_folder), "--json")
    assert status == 0 and len(json.loads(out)) == 4
    assert "4/4" in err and "4/4" not in out
    status, out, err = run_tag(
        capsys, *files, "--model", str(run_folder), "--json", "--quiet"
    )
    assert status == 0 and len(json.loads(out)) == 4 and "4/4" not in err
    status, out, err = run_tag(capsys, *audio[:2], "--model", str(run_folder))
    assert status == 0 and "2/2" not in err  # a few files: no bar


def test_exit_statuses(run_folder, audio, tmp_path, capsys):
    assert run_tag(capsys, audio[0], "--model", str(run_folder))[0] == 0
    status, out, _ = run_tag(capsys, audio[0], "nope.wav", "--model", str(run_folder))
    assert status == 1 and "nope.wav: ERROR" in out
    (tmp_path / "empty").mkdir()
    status, out, err = run_tag(capsys, audio[0], "--model", str(tmp_path / "empty"))
    assert status == 2 and out == "" and "not a recipe run" in err
    # An exported folder whose weights are damaged: 2, a message, no traceback.
    broken = tmp_path / "broken"
    assert export_main([str(run_folder), str(broken), "--quiet"]) == 0
    (broken / "model.ckpt").write_bytes(b"not a checkpoint")
    status, _, err = run_tag(capsys, audio[0], "--model", str(broken))
    assert status == 2 and "cannot load the model" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exit_info:  # usage error
        tag_main(["--model", str(run_folder)])
    assert exit_info.value.code == 2


def test_tag_and_embed_accept_exported_folders(
    run_folder, tagger, audio, tmp_path, capsys
):
    exported = tmp_path / "model"
    assert export_main([str(run_folder), str(exported)]) == 0
    capsys.readouterr()
    from_run = run_tag(capsys, *audio[:3], "--model", str(run_folder), "--json")
    from_export = run_tag(capsys, *audio[:3], "--model", str(exported), "--json")
    assert from_run[0] == from_export[0] == 0
    assert json.loads(from_run[1]) == json.loads(from_export[1])
    assert json.loads(from_export[1])[0]["labels"][0]["label"] in LABELS
    status, _, err = run_tag(
        capsys, audio[0], "--model", str(exported), "--checkpoint", "last"
    )
    assert status == 2 and "run folders only" in err
    out = tmp_path / "emb"
    assert (
        embed_main([audio[0], "--model", str(exported), "--output-dir", str(out)]) == 0
    )
    wav = tagger.load_audio(audio[0])  # the run folder's own tagger
    np.testing.assert_allclose(
        np.load(out / "clip0.npy"), tagger.scene_embedding(wav, 16000), atol=1e-5
    )


def test_an_embedding_model_embeds_but_does_not_tag(audio, tmp_path, capsys):
    pretraining = tiny_pretraining_run(tmp_path)
    status, _, err = run_tag(capsys, audio[0], "--model", str(pretraining))
    assert status == 2 and "embedding model" in err and "craft-embed" in err
    out = tmp_path / "emb"
    argv = [audio[0], "--model", str(pretraining), "--output-dir", str(out)]
    assert embed_main([*argv, "--device", "cpu"]) == 0
    manifest = json.loads((out / "embeddings.json").read_text())
    assert manifest["embedding_only"] is True and manifest["files"][0]["scene_dim"] > 0
    run_tagger = AudioTagger.from_run(str(pretraining))
    wav = run_tagger.load_audio(audio[0])
    np.testing.assert_allclose(
        np.load(out / manifest["files"][0]["scene"]),
        run_tagger.scene_embedding(wav, 16000),
        atol=1e-5,
    )


def test_embed_writes_one_manifest(run_folder, tagger, audio, tmp_path, capsys):
    out = tmp_path / "emb"
    files = [audio[1], str(tmp_path / "missing.wav"), audio[3]]
    argv = [*files, "--model", str(run_folder), "--output-dir", str(out)]
    status = embed_main([*argv, "--timestamps", "--hop-ms", "40", "--device", "cpu"])
    assert status == 1 and "missing.wav: ERROR" in capsys.readouterr().err
    manifest = json.loads((out / "embeddings.json").read_text())
    assert manifest["n_files"] == 3 and manifest["n_failed"] == 1
    assert manifest["hop_ms"] == 40.0 and manifest["sample_rate"] == 16000
    first, missing, short = manifest["files"]
    assert "missing.wav" in missing["error"] and "scene" not in missing
    assert first["duration"] == pytest.approx(2.5) and short["duration"] == 0.4
    assert first["scene"] == "clip1.npy" and first["hop_ms"] == 40.0
    wav = tagger.load_audio(audio[1])
    scene = np.load(out / first["scene"])
    frames, times = np.load(out / first["timestamps"]), np.load(out / first["times_ms"])
    assert scene.shape == (first["scene_dim"],)
    assert frames.shape == (first["n_timestamps"], first["timestamp_dim"])
    np.testing.assert_allclose(scene, tagger.scene_embedding(wav, 16000), atol=1e-5)
    alone, alone_ms = tagger.timestamp_embedding(wav, 16000, hop_ms=40)
    np.testing.assert_allclose(frames, alone, atol=1e-5)
    np.testing.assert_array_equal(times, alone_ms)
    assert times[1] == 40.0 and times[-1] < 2500


def test_scene_and_timestamp_embeddings_come_from_one_forward_pass(tagger):
    calls = []
    hook = tagger.mods.model.encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        wav = torch.randn(24000) * 0.1  # two windows: one window batch
        scene, frames, times = tagger.embeddings(wav, 16000)
        assert len(calls) == 1
        separate_scene = tagger.scene_embedding(wav, 16000)
        separate_frames, separate_times = tagger.timestamp_embedding(wav, 16000)
        assert len(calls) == 3  # the separate methods: one pass each
    finally:
        hook.remove()
    torch.testing.assert_close(scene, separate_scene)
    torch.testing.assert_close(frames, separate_frames)
    torch.testing.assert_close(times, separate_times)
    batch = torch.randn(3, 20000) * 0.1
    scenes, batch_frames, _ = tagger.embeddings(batch, 16000)
    torch.testing.assert_close(scenes, tagger.scene_embeddings(batch, 16000))
    torch.testing.assert_close(
        batch_frames, tagger.timestamp_embeddings(batch, 16000)[0]
    )
