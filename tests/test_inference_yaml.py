"""A run's inference.yaml rebuilds its model exactly, without the files the run started from."""

import os
import shutil
from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml, resolve_references

from craft_modules.inference.tagger import AudioTagger
from craft_modules.weights import initialise, weight_sources
from craft_modules.weights.run_folder import (
    INFERENCE_YAML,
    checkpoint_to_use,
    load_model_weights,
    write_run_inference_yaml,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = {"model_size": "tiny", "depth": 1, "clip_duration": 1.0, "n_classes": 3}
TINY_DIVERSE = {"embed_dim": 16, "num_heads": 2, "n_classes": 3, "clip_duration": 1.0}


def start_run(recipe_yaml, tmp_path, name, **overrides):
    """What a recipe does before training: load the YAML, save hyperparams.yaml."""
    overrides = {"data_folder": str(tmp_path / "data"), **overrides}
    overrides.setdefault("output_folder", str(tmp_path / name))
    path = ROOT / "recipes" / recipe_yaml
    with open(path, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    folder = hparams.get("experiment_folder") or hparams["output_folder"]
    os.makedirs(folder, exist_ok=True)
    with open(path, encoding="utf-8") as fin:  # as sb.create_experiment_directory
        resolved = resolve_references(fin, overrides).getvalue()
    Path(folder, "hyperparams.yaml").write_text(resolved, encoding="utf-8")
    return hparams, folder


def save_trained(hparams, folder, metric_value=0.5):
    """Moves every weight away from its initialisation, saves a checkpoint, writes inference.yaml."""
    with torch.no_grad():
        for tensor in hparams["model"].state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.rand_like(tensor))
    hparams["checkpointer"].save_checkpoint(meta={hparams["metric"]: metric_value})
    path = write_run_inference_yaml(folder, hparams, hparams["checkpointer"])
    assert path == os.path.join(os.path.abspath(folder), INFERENCE_YAML)
    return path


def assert_round_trip(hparams, folder):
    """inference.yaml alone gives a model of the same structure; its pretrainer the same weights."""
    original = hparams["model"].state_dict()
    with open(os.path.join(folder, INFERENCE_YAML), encoding="utf-8") as fin:
        rebuilt = load_hyperpyyaml(fin, {"run_folder": os.path.abspath(folder)})
    model = rebuilt["model"]
    assert type(model) is type(hparams["model"])
    structure = {k: (v.shape, v.dtype) for k, v in model.state_dict().items()}
    assert structure == {k: (v.shape, v.dtype) for k, v in original.items()}
    assert not all(torch.equal(model.state_dict()[k], v) for k, v in original.items())
    pretrainer = rebuilt["pretrainer"]
    pretrainer.collect_files(default_source=folder)
    pretrainer.load_collected()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in original.items())
    assert rebuilt["labels"] and len(rebuilt["labels"]) == hparams["n_classes"]
    return rebuilt


@pytest.mark.parametrize("fusion", ["ast", "swast", "swab"])
def test_craft_classifier_round_trips(fusion, tmp_path):
    hparams, folder = start_run(
        "ESC50/hparams/craft.yaml",
        tmp_path,
        "esc",
        fusion=fusion,
        fusion_layer=0,
        n_bottlenecks=4,
        **TINY,
    )
    save_trained(hparams, folder)
    rebuilt = assert_round_trip(hparams, folder)
    assert rebuilt["model"].fusion == fusion
    assert rebuilt["sample_rate"] == 16000 and rebuilt["clip_duration"] == 1.0
    assert rebuilt["multilabel"] is False and rebuilt["metric"] == "accuracy"
    assert rebuilt["checkpoint"] == "best checkpoint by accuracy"


@pytest.mark.parametrize("encoder", ["spectrogram", "raw"])
def test_clar_model_round_trips(encoder, tmp_path):
    hparams, folder = start_run(
        "ESC50/hparams/clar.yaml",
        tmp_path,
        "clar",
        encoder=encoder,
        widths=[8, 8, 16, 16],
        n_classes=3,
        clip_duration=1.0,
    )
    save_trained(hparams, folder)
    assert assert_round_trip(hparams, folder)["model"].encoder_type == encoder


def test_diverse_stage2_round_trips_without_its_stage1_runs(tmp_path):
    stage1 = {}
    for stream in ("pitch", "timbre"):
        hparams, folder = start_run(
            f"FSD50K/hparams/diverse_{stream}.yaml",
            tmp_path,
            f"diverse_{stream}/1986",
            **TINY_DIVERSE,
        )
        save_trained(hparams, folder)
        stage1[stream] = hparams["model"].streams[stream].state_dict()
    hparams, folder = start_run(
        "FSD50K/hparams/diverse_combine.yaml",
        tmp_path,
        "combine",
        stage1_folder=str(tmp_path),
        streams=["pitch", "timbre"],
        **TINY_DIVERSE,
    )
    model = hparams["model"]
    report = initialise(model, **weight_sources(hparams))  # what fit_classifier does
    assert {k.split(".")[1] for k in report.loaded} == {"pitch", "timbre"}
    for stream, state in stage1.items():
        for key, value in state.items():
            assert torch.equal(model.streams[stream].state_dict()[key], value), key
    assert not any(p.requires_grad for p in model.streams.parameters())
    path = save_trained(hparams, folder, metric_value=0.3)
    text = Path(path).read_text()
    assert (
        str(tmp_path / "diverse_pitch") not in text and "stream_checkpoints" not in text
    )
    for stream in stage1:
        shutil.rmtree(tmp_path / f"diverse_{stream}")
    rebuilt = assert_round_trip(hparams, folder)
    assert rebuilt["model"].freeze_streams and rebuilt["multilabel"] is True
    assert rebuilt["model"].stream_names == ["pitch", "timbre"]
    # The SpeechBrain way, from the run folder alone; nothing is written into it.
    before = sorted(os.listdir(folder))
    tagger = AudioTagger.from_hparams(source=folder)
    assert sorted(os.listdir(folder)) == before
    state = tagger.mods.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert tagger.hparams.run_folder == os.path.abspath(folder)


def test_a_moved_run_loads_its_own_checkpoint(tmp_path):
    hparams, folder = start_run(
        "ESC50/hparams/craft.yaml", tmp_path, "esc", fusion="ast", **TINY
    )
    save_trained(hparams, folder)
    moved = tmp_path / "moved"
    shutil.copytree(folder, moved)
    weights, _ = checkpoint_to_use(str(moved / "save"), "accuracy")
    state = torch.load(weights)
    state["mlp_head.1.bias"] += 1.0
    torch.save(state, weights)
    tagger = AudioTagger.from_hparams(source=str(moved))
    assert torch.equal(tagger.mods.model.mlp_head[1].bias, state["mlp_head.1.bias"])
    assert AudioTagger.from_run(str(moved)).hparams.checkpoint == (
        "best checkpoint by accuracy"
    )


def test_inference_yaml_is_rewritten_to_name_the_best_checkpoint(tmp_path):
    hparams, folder = start_run(
        "ESC50/hparams/craft.yaml", tmp_path, "esc", fusion="ast", **TINY
    )
    checkpointer = hparams["checkpointer"]
    first = checkpointer.save_checkpoint(meta={"accuracy": 0.8})
    write_run_inference_yaml(folder, hparams, checkpointer)
    assert first.path.name in Path(folder, INFERENCE_YAML).read_text()
    better = checkpointer.save_checkpoint(meta={"accuracy": 0.9})
    checkpointer.save_checkpoint(meta={"accuracy": 0.1})  # newer, worse
    write_run_inference_yaml(folder, hparams, checkpointer)
    text = Path(folder, INFERENCE_YAML).read_text()
    assert better.path.name in text and first.path.name not in text
    assert not list(Path(folder).glob(".inference.*"))  # no temporary file left


def test_missing_inference_yaml_and_mismatched_weights_are_clear_errors(tmp_path):
    from craft_modules.inference.tagger import RunFolderError

    (tmp_path / "run").mkdir()
    with pytest.raises(RunFolderError, match="from_run"):
        AudioTagger.from_hparams(source=str(tmp_path / "run"))
    with pytest.raises(RunFolderError, match="does not exist"):
        AudioTagger.from_hparams(source=str(tmp_path / "nowhere"))
    path = tmp_path / "model.ckpt"
    torch.save(torch.nn.Linear(2, 3).state_dict(), path)
    with pytest.raises(ValueError, match="does not match the model"):
        load_model_weights(torch.nn.Linear(2, 4), str(path))


def test_a_pretraining_run_loads_as_an_embedder_without_its_pretrainer(tmp_path):
    hparams, folder = start_run(
        "AudioSet/hparams/craft.yaml",
        tmp_path,
        "pretrain",
        model_size="tiny",
        depth=1,
        clip_duration=1.0,
    )
    hparams["checkpointer"].save_checkpoint(meta={"acc_spec": 0.1})
    write_run_inference_yaml(folder, hparams, hparams["checkpointer"])
    tagger = AudioTagger.from_hparams(source=folder)
    assert tagger.hparams.embedding_only is True
    assert type(tagger.mods.model).__name__ == "CraftClassifier"
    # The pretrainer (heads and all) is not kept beside the embedder.
    kept = {
        key
        for key, value in vars(tagger.hparams).items()
        if isinstance(value, torch.nn.Module) or key in ("modules", "pretrainer")
    }
    assert kept == set()
    held = sum(p.numel() for p in tagger.mods.parameters())
    assert held < sum(p.numel() for p in hparams["model"].parameters())
