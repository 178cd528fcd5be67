"""craft-export: a run as a self-contained SpeechBrain model folder that from_hparams loads."""

import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from speechbrain.dataio.encoder import CategoricalEncoder
from test_inference_yaml import TINY, save_trained, start_run

from craft_modules.inference import export
from craft_modules.inference.cli import export_main
from craft_modules.inference.tagger import AudioTagger
from craft_modules.weights.run_folder import write_run_inference_yaml

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["dog", "rain", "sea waves"]


def tiny_classifier_run(root):
    """An ESC-50 run folder (tiny AST, 1 s clips) with two checkpoints, built in-process."""
    hparams, folder = start_run(
        "ESC50/hparams/craft.yaml", root, "esc", fusion="ast", **TINY
    )
    Path(folder, "labels.json").write_text(json.dumps(LABELS))
    save_trained(hparams, folder, metric_value=0.9)  # the best
    with torch.no_grad():
        hparams["model"].mlp_head[1].bias.add_(1.0)
    hparams["checkpointer"].save_checkpoint(meta={"accuracy": 0.1})  # the last
    write_run_inference_yaml(folder, hparams, hparams["checkpointer"])
    return Path(folder)


def tiny_pretraining_run(root):
    """A CRAFT pretraining run folder (tiny, 1 s clips) with one checkpoint."""
    hparams, folder = start_run(
        "AudioSet/hparams/craft.yaml",
        root,
        "pretrain",
        model_size="tiny",
        depth=1,
        clip_duration=1.0,
        mask_patch=20,
    )
    with torch.no_grad():
        for tensor in hparams["model"].state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.rand_like(tensor))
    hparams["checkpointer"].save_checkpoint(meta={})
    write_run_inference_yaml(folder, hparams, hparams["checkpointer"])
    return Path(folder)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    return tiny_classifier_run(tmp_path_factory.mktemp("export_run"))


@pytest.fixture(scope="module")
def pretraining_folder(tmp_path_factory):
    return tiny_pretraining_run(tmp_path_factory.mktemp("export_pretrain"))


def scores(tagger, wav):
    return tagger.classify_batch(wav, torch.ones(wav.shape[0]))[0]


def test_exported_folder_loads_with_from_hparams_anywhere(run_folder, tmp_path):
    out = tmp_path / "model"
    summary = export.export_model(str(run_folder), str(out))
    assert summary["files"] == sorted(
        ["hyperparams.yaml", "model.ckpt", "label_encoder.txt", "README.md"]
    )
    text = (out / "hyperparams.yaml").read_text()
    assert "speechbrain.utils.parameter_transfer.Pretrainer" in text
    for path in (str(run_folder), str(tmp_path), str(ROOT)):
        assert path not in text  # no absolute path: nothing outside the folder
    wav = torch.randn(2, 16000) * 0.1
    reference = AudioTagger.from_run(str(run_folder))
    # Moved elsewhere (the run and the export gone), it still loads.
    moved = tmp_path / "elsewhere" / "model"
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    loaded = AudioTagger.from_hparams(source=str(moved))
    torch.testing.assert_close(scores(loaded, wav), scores(reference, wav))
    assert loaded.labels == LABELS and loaded.sample_rate == 16000
    assert loaded.hparams.checkpoint == "best checkpoint by accuracy"
    long = torch.randn(40000) * 0.1
    assert loaded.tag_waveform(long, 16000) == reference.tag_waveform(long, 16000)
    # label_encoder.txt is SpeechBrain's CategoricalEncoder format, in output order.
    encoder = CategoricalEncoder()
    encoder.load(str(moved / "label_encoder.txt"))
    encoder.expect_len(3)
    assert encoder.decode_ndim([0, 1, 2]) == LABELS
    assert loaded.hparams.label_encoder.decode_ndim([2, 0]) == ["sea waves", "dog"]
    card = (moved / "README.md").read_text()
    assert all(label in card for label in LABELS) and "16000 Hz" in card


def test_export_takes_the_chosen_checkpoint(run_folder, tmp_path):
    for choice in ("best", "last"):
        export.export_model(str(run_folder), str(tmp_path / choice), checkpoint=choice)
        exported = torch.load(tmp_path / choice / "model.ckpt")
        state = AudioTagger.from_run(str(run_folder), checkpoint=choice)
        expected = state.mods.model.state_dict()
        assert all(torch.equal(exported[k], v) for k, v in expected.items())
    best, last = (torch.load(tmp_path / c / "model.ckpt") for c in ("best", "last"))
    assert torch.allclose(last["mlp_head.1.bias"], best["mlp_head.1.bias"] + 1.0)


def test_export_refuses_a_non_empty_folder_and_replaces_it_with_force(
    run_folder, tmp_path
):
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(export.ExportError, match="not empty.*--force"):
        export.export_model(str(run_folder), str(out))
    assert os.listdir(out) == ["notes.txt"]
    export.export_model(str(run_folder), str(out), force=True)
    assert "notes.txt" not in os.listdir(out) and (out / "model.ckpt").is_file()
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no temporary folder left
    empty = tmp_path / "empty"
    empty.mkdir()
    export.export_model(str(run_folder), str(empty))  # an empty folder is fine
    assert (empty / "hyperparams.yaml").is_file()


def test_a_failed_export_leaves_no_folder(run_folder, tmp_path, monkeypatch):
    def broken(*args):
        raise export.ExportError("simulated failure after writing")

    monkeypatch.setattr(export, "_check_exported", broken)
    with pytest.raises(export.ExportError, match="simulated"):
        export.export_model(str(run_folder), str(tmp_path / "model"))
    assert os.listdir(tmp_path) == []


def test_pretraining_run_exports_an_embedding_model(
    pretraining_folder, tmp_path, capsys
):
    out = tmp_path / "embedder"
    assert export_main([str(pretraining_folder), str(out)]) == 0
    assert "embedding model" in capsys.readouterr().out
    assert not (out / "label_encoder.txt").exists()
    assert "embedding_only: true" in (out / "hyperparams.yaml").read_text()
    assert "no labels" in (out / "README.md").read_text()
    loaded = AudioTagger.from_hparams(source=str(out))
    reference = AudioTagger.from_run(str(pretraining_folder))
    assert loaded.embedding_only and reference.embedding_only
    wav = torch.randn(1, 16000) * 0.1
    torch.testing.assert_close(loaded.encode_batch(wav), reference.encode_batch(wav))


def test_not_a_run_is_a_clear_error_with_exit_status_2(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    assert export_main([str(tmp_path / "notes"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "craft-export: error:" in err and "not a recipe run" in err
    assert not (tmp_path / "out").exists()
    # The console script declared in setup.cfg exits with the same status.
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    scripts = dict(
        line.split(" = ")
        for line in config["options.entry_points"]["console_scripts"].split("\n")
        if line
    )
    module, function = scripts["craft-export"].split(":")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.argv[0] = 'craft-export'; from {module} import {function}; "
            f"{function}()",
            str(tmp_path / "missing"),
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
