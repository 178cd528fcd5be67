"""Bad waveform batches give a ValueError naming the problem, in every model.

A model validates its input once, in its public forward; submodules (fbank,
MSAE, feature streams) trust their caller.
"""

import pytest
import torch

import craft_modules.models.inputs
from craft_modules.models.clar import ClarModel
from craft_modules.models.craft import CraftClassifier, CraftPretrainer
from craft_modules.models.diverse import DiverseEmbeddingModel

TINY = dict(model_size="tiny", depth=1, target_frames=48)


@pytest.fixture(scope="module")
def models():
    return [
        ClarModel("raw", n_classes=2, widths=[4, 4, 4, 4]),
        DiverseEmbeddingModel(
            2, streams=["timbre"], embed_dim=8, depth=1, num_heads=2, chunk_seconds=0.25
        ),
        CraftPretrainer(method="pswacl", mask_patch=8, **TINY),
        CraftClassifier(3, fusion="swab", n_bottlenecks=2, fusion_layer=0, **TINY),
    ]


@pytest.mark.parametrize(
    "wavs, lens, message",
    [
        (torch.zeros(8000), None, "shape"),
        (torch.zeros(2, 1, 8000), None, "shape"),
        (torch.zeros(2, 8000, dtype=torch.int16), None, "floating point"),
        (torch.zeros(2, 8000), torch.ones(3), "lens must have shape"),
        (torch.zeros(2, 8000), torch.tensor([1.0, 0.0]), "zero length"),
        (torch.zeros(2, 8000), torch.tensor([1.0, 1.5]), "relative lengths"),
        (torch.zeros(2, 0), None, "empty"),
        (
            torch.tensor([[0.0] * 7999 + [float("nan")], [0.0] * 8000]),
            None,
            "NaN or Inf",
        ),
        (torch.tensor([[0.0] * 8000, [float("inf")] * 8000]), None, r"clip\(s\) \[1\]"),
    ],
)
def test_bad_batches_raise_value_error(models, wavs, lens, message):
    for model in models:
        with pytest.raises(ValueError, match=message):
            model(wavs, lens)


def test_silent_clip_gives_finite_losses(models):
    losses = models[2](torch.zeros(2, 8000), torch.tensor([1.0, 0.5]))
    assert all(torch.isfinite(v) for v in losses.values())
    assert torch.isfinite(models[3](torch.zeros(2, 8000))).all()


@pytest.fixture
def check_calls(monkeypatch):
    """Counts the calls of check_waveform_batch, wherever the library imported it."""
    calls = []
    original = craft_modules.models.inputs.check_waveform_batch

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    for module in ("models.craft", "models.clar", "models.diverse", "features.fbank"):
        monkeypatch.setattr(f"craft_modules.{module}.check_waveform_batch", counting)
    return calls


@pytest.mark.parametrize("train", [True, False])
def test_each_model_checks_its_input_exactly_once(models, check_calls, train):
    for model in models:
        check_calls.clear()
        model.train(train)
        model(torch.randn(2, 8000) * 0.1, torch.tensor([1.0, 0.6]))
        assert len(check_calls) == 1, type(model).__name__


def test_each_public_entry_point_checks_exactly_once(models, check_calls):
    wavs, lens = torch.randn(2, 8000) * 0.1, torch.tensor([1.0, 0.6])
    entry_points = [(model.forward_features, model) for model in models]
    entry_points += [
        (models[1].chunk_logits, models[1]),
        (models[1].time_embeddings, models[1]),
        (models[3].time_embeddings, models[3]),
    ]
    for method, model in entry_points:
        model.eval()
        check_calls.clear()
        method(wavs, lens)
        assert len(check_calls) == 1, method.__qualname__
        with pytest.raises(ValueError, match="zero length"):
            method(wavs, torch.tensor([1.0, 0.0]))
