"""Bad waveform batches give a ValueError naming the problem, in every model."""

import pytest
import torch

from craft_modules.features import KaldiFbank
from craft_modules.models import CraftClassifier, CraftPretrainer

TINY = dict(model_size="tiny", depth=1, target_frames=48)


@pytest.fixture(scope="module")
def models():
    return [
        KaldiFbank(target_frames=48),
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
    losses = models[1](torch.zeros(2, 8000), torch.tensor([1.0, 0.5]))
    assert all(torch.isfinite(v) for v in losses.values())
    assert torch.isfinite(models[2](torch.zeros(2, 8000))).all()
