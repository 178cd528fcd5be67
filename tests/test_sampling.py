"""Balanced sampling: AST's label-frequency weights equalise class draws."""

from collections import Counter

import pytest
import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.epoch_loop import EpochCounter

from craft_modules.data.samplers import (
    StepEpochSampler,
    balanced_sampler,
    label_balancing_weights,
)
from craft_modules.training.brains import CraftBrain


def imbalanced_manifest(n_common=90, n_rare=10):
    manifest = {f"c{i}": {"labels": ["common"]} for i in range(n_common)}
    manifest.update({f"r{i}": {"labels": ["rare"]} for i in range(n_rare)})
    return manifest


def test_weights_follow_ast_formula_in_manifest_order():
    manifest = {
        "a": {"labels": ["x", "y"]},
        "b": {"labels": "x"},  # comma-separated strings are accepted too
        "c": {"labels": ["x"]},
    }
    weights = label_balancing_weights(manifest)
    wx, wy = 1000 / (3 + 0.01), 1000 / (1 + 0.01)
    assert torch.allclose(weights, torch.tensor([wx + wy, wx, wx], dtype=torch.double))


def test_rare_and_common_classes_are_drawn_equally_often():
    manifest = imbalanced_manifest()
    ids = list(manifest)
    sampler = balanced_sampler(manifest, seed=3)
    draws = Counter()
    for epoch in range(20):
        sampler.set_epoch(epoch)
        draws.update(manifest[ids[i]]["labels"][0] for i in sampler)
    total = sum(draws.values())
    assert total == 20 * len(manifest)
    # Uniform shuffling would give the rare class 10 %; balanced gives ~50 %.
    assert 0.45 < draws["rare"] / total < 0.55


def test_sampler_is_reproducible_per_epoch_and_differs_across_epochs():
    sampler = balanced_sampler(imbalanced_manifest(), seed=7)
    sampler.set_epoch(2)
    first = list(sampler)
    sampler.set_epoch(3)
    other = list(sampler)
    sampler.set_epoch(2)
    assert list(sampler) == first and other != first


def test_clip_without_labels_is_named():
    with pytest.raises(KeyError, match="'b'"):
        label_balancing_weights({"a": {"labels": ["x"]}, "b": {"wav": "b.wav"}})


def test_empty_manifest_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        balanced_sampler({})


class _RecordingBrain(CraftBrain):
    """Records the ids of the clips each training epoch sees."""

    def compute_forward(self, batch, stage):
        if stage == sb.Stage.TRAIN:
            self.seen.setdefault(self.epoch, []).extend(batch.id)
        return self.modules.model(torch.as_tensor(batch.x, dtype=torch.float32))

    def compute_objectives(self, predictions, batch, stage):
        return predictions.pow(2).mean()

    def on_stage_start(self, stage, epoch=None):
        self.epoch = epoch


@pytest.mark.parametrize("kind", ["step_epochs", "balanced"])
def test_recipe_samplers_get_their_epoch_in_a_single_process(kind, tmp_path):
    """SpeechBrain alone would never call set_epoch on them: every epoch the same."""
    n = 20
    data = {
        f"c{i}": {"x": [float(i)], "labels": ["a" if i < 15 else "b"]} for i in range(n)
    }
    dataset = DynamicItemDataset(data, output_keys=["id", "x"])
    if kind == "step_epochs":
        sampler = StepEpochSampler(n, num_samples=5, seed=1)
    else:
        sampler = balanced_sampler(data, seed=1)
    brain = _RecordingBrain(
        modules={"model": torch.nn.Linear(1, 1)},
        opt_class=lambda params: torch.optim.SGD(params, lr=0.01),
        run_opts={"device": "cpu"},
    )
    brain.seen = {}
    brain.fit(
        EpochCounter(3),
        dataset,
        train_loader_kwargs={"batch_size": 5, "sampler": sampler},
    )
    epochs = [brain.seen[e] for e in (1, 2, 3)]
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]
    if kind == "step_epochs":  # four 5-clip intervals make one pass
        assert len(set(epochs[0] + epochs[1] + epochs[2])) == 15
