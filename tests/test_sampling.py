"""Balanced sampling: AST's label-frequency weights equalise class draws."""

from collections import Counter

import pytest
import torch

from craft_modules.sampling import balanced_sampler, label_balancing_weights


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
