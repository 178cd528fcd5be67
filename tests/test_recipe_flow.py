"""The recipes show their flow: the Brain, fit and evaluate in the script, one model per fold.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import ast
import json
from pathlib import Path

import pytest
import torch

from craft_modules.testing.scripts import load_script
from craft_modules.training.brains import ClassifierBrain
from craft_modules.training.experiment import read_plain_hparams

ROOT = Path(__file__).resolve().parents[1]
ESC50_YAML = ROOT / "recipes" / "ESC50" / "hparams" / "ast.yaml"
# Script -> the Brain methods it calls itself.
RECIPES = {
    "recipes/ESC50/train.py": {"fit"},
    "recipes/AudioSet/train.py": {"fit", "evaluate"},
    "recipes/FSD50K/train.py": {"fit", "evaluate"},
    "recipes/AudioSet/pretrain.py": {"fit"},
}


def called_methods(path):
    """``(object name, method)`` of every ``name.method(...)`` call in a script."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return {
        (node.func.value.id, node.func.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
    }


def called_names(path):
    """Names of the functions a script calls by name."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }


@pytest.mark.parametrize("script", sorted(RECIPES))
def test_each_recipe_builds_its_brain_and_calls_fit_itself(script):
    calls = called_methods(script)
    assert {("brain", method) for method in RECIPES[script]} <= calls
    names = called_names(script)
    assert {"brain_class", "PretrainBrain"} & names, "the Brain is built in the script"
    assert {"run_on_main", "start_experiment"} <= names


def test_plain_hparams_are_read_without_building_the_model(monkeypatch):
    from craft_modules.models.craft import CraftClassifier

    def refuse(*args, **kwargs):
        raise AssertionError("the model was built")

    monkeypatch.setattr(CraftClassifier, "__init__", refuse)
    values = read_plain_hparams(
        str(ESC50_YAML),
        "data_folder: /data/ESC-50\noutput_folder: /runs/x\nfolds: [2, 4]\nn_classes: 3",
        ["folds", "n_classes", "prepare_folder", "data_folder"],
    )
    assert values == {
        "folds": [2, 4],
        "n_classes": 3,
        "prepare_folder": "/runs/x/data",
        "data_folder": "/data/ESC-50",
    }


def test_plain_hparams_refuse_unknown_keys_and_placeholders():
    with pytest.raises(KeyError, match="not_a_key"):
        read_plain_hparams(str(ESC50_YAML), "data_folder: /d\nnot_a_key: 3", ["folds"])
    with pytest.raises(ValueError, match="data_folder"):
        read_plain_hparams(str(ESC50_YAML), "", ["folds"])
    with pytest.raises(ValueError, match="model in .* is not a plain value"):
        read_plain_hparams(str(ESC50_YAML), "data_folder: /d", ["model"])


def tiny_classifier_brain(folder):
    return ClassifierBrain(
        modules={"model": torch.nn.Linear(2, 3)},
        hparams={"loss": "ce", "output_folder": str(folder)},
        run_opts={"device": "cpu"},
    )


def test_the_brain_keeps_its_history_and_a_resumed_brain_reads_it_back(tmp_path):
    brain = tiny_classifier_brain(tmp_path)
    assert brain.history == [] and brain.weight_averaged is False
    predictions = (["a", "b"], torch.eye(3)[[2, 0]], torch.eye(3)[[2, 1]])
    brain._record_epoch(2, {"accuracy": 0.5}, predictions)
    brain._record_epoch(1, {"accuracy": 0.25}, predictions)
    brain._record_epoch(2, {"accuracy": 1.0}, predictions)  # epoch 2 trained again
    assert [(h["epoch"], h["accuracy"]) for h in brain.history] == [(1, 0.25), (2, 1.0)]
    assert brain.history[0]["predictions"] == {"a": 2, "b": 0}
    assert brain.history[0]["targets"] == {"a": 2, "b": 1}
    saved = json.loads((tmp_path / "epoch_metrics.json").read_text())
    assert saved == brain.history

    resumed = tiny_classifier_brain(tmp_path)
    assert resumed.history == []
    resumed.on_fit_start()  # where a killed run recovers its checkpoint
    assert resumed.history == brain.history


def load_house_metrics():
    return load_script("benchmarks/house_metrics.py")


def test_esc50_batch_goes_from_the_script_to_the_brain_and_the_model_is_built_once(
    monkeypatch, tmp_path
):
    from craft_modules.models.craft import CraftClassifier

    built = []
    original = CraftClassifier.__init__

    def counting(self, *args, **kwargs):
        built.append(kwargs.get("fusion"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(CraftClassifier, "__init__", counting)
    trace = load_house_metrics().trace_first_batch(ROOT, str(tmp_path))
    assert trace["route"]["files"] == [
        "recipes/ESC50/train.py",
        "craft_modules/training/brains.py",
    ]
    assert trace["route"]["functions"][-1]["function"] == "CraftBrain.fit_batch"
    # Up to the first batch of the one fold: a single model, the fold's.
    assert len(built) == 1
