"""DDP (``find_unused_parameters=False``) needs a gradient for every parameter.

Every model a recipe YAML builds, and SWaB at fusion layers 0, 4 and the
encoder's depth (Table 5d, whose last row is SWAST), gives each of its
parameters a gradient in one training step.
"""

from pathlib import Path

import pytest
import torch
import yaml as pyyaml
from hyperpyyaml import load_hyperpyyaml

from craft_modules.models.clar import clar_losses
from craft_modules.models.craft import CraftClassifier

RECIPES = Path(__file__).parents[1] / "recipes"
YAMLS = sorted(RECIPES.glob("*/hparams/*.yaml"))
SMALL = {
    "model_size": "tiny",
    "depth": 2,
    "clip_duration": 1.28,
    "mask_patch": 10,
    "widths": [4, 4, 8, 8],
    "embed_dim": 16,
    "num_heads": 2,
    "n_classes": 3,
    "fusion_layer": 1,
}


def _top_level_keys(path):
    class _Loader(pyyaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    with open(path, encoding="utf-8") as fin:
        return set(pyyaml.load(fin, Loader=_Loader))


def _unused(model):
    return [
        n for n, p in model.named_parameters() if p.requires_grad and p.grad is None
    ]


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: f"{p.parents[1].name}/{p.stem}")
def test_every_yaml_model_gives_every_parameter_a_gradient(path, tmp_path):
    keys = _top_level_keys(path)
    overrides = {k: v for k, v in SMALL.items() if k in keys}
    overrides.update(
        {k: str(tmp_path) for k in ("data_folder", "output_folder") if k in keys}
    )
    if "stream_checkpoints" in keys:  # stage 2 of the diverse recipe, from scratch
        overrides["stream_checkpoints"] = None
    with open(path, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    model = hparams["model"].train()
    torch.manual_seed(0)
    wavs, lens = torch.randn(4, 20480) * 0.1, torch.tensor([1.0, 0.9, 1.0, 0.8])
    if "clar_mode" in hparams:
        targets = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 1]), 3).float()
        loss = clar_losses(model, wavs, lens, targets, mode=hparams["clar_mode"])[
            "loss"
        ]
    else:
        out = model(wavs, lens)
        loss = out["loss"] if isinstance(out, dict) else out.logsumexp(-1).mean()
    loss.backward()
    assert not _unused(model)


@pytest.mark.parametrize("fusion_layer", [0, 4, 12])
def test_swab_at_any_fusion_layer_gives_every_parameter_a_gradient(fusion_layer):
    model = CraftClassifier(
        3,
        fusion="swab",
        model_size="tiny",
        target_frames=128,
        n_bottlenecks=4,
        fusion_layer=fusion_layer,
    )
    model(torch.randn(2, 12800) * 0.1).sum().backward()
    assert not _unused(model)
    assert (model.bottlenecks is None) == (fusion_layer == 12)


def test_swab_fused_at_the_depth_is_swast_exactly():
    torch.manual_seed(0)
    swab = CraftClassifier(
        3, fusion="swab", model_size="tiny", depth=2, target_frames=128, fusion_layer=2
    )
    swast = CraftClassifier(
        3, fusion="swast", model_size="tiny", depth=2, target_frames=128
    )
    swast.load_state_dict(swab.state_dict())
    wavs = torch.randn(2, 12800) * 0.1
    assert torch.equal(swab.eval()(wavs), swast.eval()(wavs))
