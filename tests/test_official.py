"""Official SSAST/AST checkpoints: synthetic state dicts with the official names and shapes."""

import pytest
import torch

from craft_modules.models.craft import CraftClassifier, CraftPretrainer
from craft_modules.weights.official import initialise_model, load_official

DIMS = {"tiny": 192, "base": 768}
BLOCK = {
    "norm1.weight": lambda d: (d,),
    "norm1.bias": lambda d: (d,),
    "attn.qkv.weight": lambda d: (3 * d, d),
    "attn.qkv.bias": lambda d: (3 * d,),
    "attn.proj.weight": lambda d: (d, d),
    "attn.proj.bias": lambda d: (d,),
    "norm2.weight": lambda d: (d,),
    "norm2.bias": lambda d: (d,),
    "mlp.fc1.weight": lambda d: (4 * d, d),
    "mlp.fc1.bias": lambda d: (4 * d,),
    "mlp.fc2.weight": lambda d: (d, 4 * d),
    "mlp.fc2.bias": lambda d: (d,),
}


def official_state(size, pretrain, depth=12, n_classes=527, grid=(12, 101)):
    """The key names and shapes of the released SSAST checkpoints, with DataParallel prefixes."""
    d = DIMS[size]
    gen = torch.Generator().manual_seed(0)
    shapes = {
        "v.cls_token": (1, 1, d),
        "v.dist_token": (1, 1, d),
        "v.patch_embed.proj.weight": (d, 1, 16, 16),
        "v.patch_embed.proj.bias": (d,),
        "v.norm.weight": (d,),
        "v.norm.bias": (d,),
        "v.head.weight": (1000, d),
        "v.head.bias": (1000,),
        "v.head_dist.weight": (1000, d),
        "v.head_dist.bias": (1000,),
    }
    for i in range(depth):
        shapes.update({f"v.blocks.{i}.{k}": f(d) for k, f in BLOCK.items()})
    if pretrain:
        shapes["v.pos_embed"] = (1, 2 + 8 * 64, d)
        shapes["mask_embed"] = (1, 1, d)
        for head in ("cpredlayer", "gpredlayer"):
            shapes.update(
                {
                    f"{head}.0.weight": (d, d),
                    f"{head}.0.bias": (d,),
                    f"{head}.2.weight": (256, d),
                    f"{head}.2.bias": (256,),
                }
            )
    else:
        shapes["v.pos_embed"] = (1, 2 + grid[0] * grid[1], d)
        shapes["mlp_head.0.weight"] = (d,)
        shapes["mlp_head.0.bias"] = (d,)
        shapes["mlp_head.1.weight"] = (n_classes, d)
        shapes["mlp_head.1.bias"] = (n_classes,)
    state = {
        "module." + k: torch.randn(shape, generator=gen) for k, shape in shapes.items()
    }
    if pretrain:
        state["module.p_input_fdim"] = torch.tensor(128)
        state["module.p_input_tdim"] = torch.tensor(1024)
    return state


def test_tiny_pretraining_checkpoint_into_an_ssast_pretrainer_uses_every_key():
    state = official_state("tiny", pretrain=True)
    assert len(state) == 166  # the official count
    model = CraftPretrainer(
        method="ssast", model_size="tiny", target_frames=1024, mask_patch=400
    )
    report = load_official(model, state)
    assert len(report.loaded) == 166 - 6 and not report.resized
    assert report.unexpected == sorted(
        [
            "v.head.weight",
            "v.head.bias",
            "v.head_dist.weight",
            "v.head_dist.bias",
            "p_input_fdim",
            "p_input_tdim",
        ]
    )
    ours = model.state_dict()
    for official, mine in [
        ("v.blocks.11.attn.qkv.weight", "encoder.blocks.11.attn.qkv.weight"),
        ("v.patch_embed.proj.weight", "spec_embed.proj.weight"),
        ("v.pos_embed", "spec_embed.pos_embed"),
        ("cpredlayer.2.weight", "cpredlayer.2.weight"),
        ("mask_embed", "mask_embed"),
    ]:
        assert torch.equal(ours[mine], state["module." + official])


def test_pretraining_checkpoint_into_esc50_swab_classifier_resizes_and_reports():
    state = official_state("tiny", pretrain=True)
    model = CraftClassifier(
        50, fusion="swab", model_size="tiny", target_frames=512, n_bottlenecks=4
    )
    report = load_official(model, state)
    assert report.resized == ["spec_embed.pos_embed"]
    assert model.state_dict()["spec_embed.pos_embed"].shape == (1, 2 + 12 * 50, 192)
    # Pretraining heads are left out on purpose; the waveform stream is new.
    assert {"mask_embed", "cpredlayer.0.weight"} <= set(report.unexpected)
    assert any(k.startswith("wav_embed.") for k in report.initialised)
    assert "bottlenecks" in report.initialised
    # Every official ViT weight was used.
    n_vit = sum(1 for k in state if k.startswith("module.v.") and ".head" not in k)
    assert len(report.loaded) + len(report.resized) == n_vit


def test_base_fine_tuned_ast_checkpoint_loads_with_its_head():
    state = official_state("base", pretrain=False)
    model = CraftClassifier(527, fusion="ast", model_size="base", target_frames=1024)
    report = load_official(model, state)
    assert not report.resized and not report.initialised
    assert len(report.loaded) == len(state) - 4  # all but timm's two heads
    assert torch.equal(
        model.state_dict()["mlp_head.1.weight"], state["module.mlp_head.1.weight"]
    )
    # A new label set keeps the backbone and starts a new head.
    esc = CraftClassifier(50, fusion="ast", model_size="base", target_frames=512)
    report = load_official(esc, state)
    assert report.resized == ["spec_embed.pos_embed"]
    assert set(report.initialised) == {"mlp_head.1.weight", "mlp_head.1.bias"}


def test_wrong_shape_names_the_key():
    state = official_state("tiny", pretrain=True, depth=2)
    state["module.v.blocks.1.attn.qkv.weight"] = torch.zeros(10, 192)
    model = CraftPretrainer(
        method="ssast", model_size="tiny", depth=2, target_frames=1024, mask_patch=40
    )
    with pytest.raises(ValueError, match=r"v\.blocks\.1\.attn\.qkv\.weight"):
        load_official(model, state)


def test_missing_and_unknown_keys_are_listed():
    model = CraftClassifier(
        5, fusion="ast", model_size="tiny", depth=2, target_frames=128
    )
    state = official_state("tiny", pretrain=True, depth=2)
    del state["module.v.blocks.1.norm1.weight"]
    with pytest.raises(KeyError, match=r"encoder\.blocks\.1\.norm1\.weight"):
        load_official(model, state)
    state = official_state("tiny", pretrain=True, depth=2)
    state["module.v.extra_token"] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"v\.extra_token"):
        load_official(model, state)
    # A checkpoint deeper than the model: the extra blocks have no place.
    with pytest.raises(KeyError, match=r"v\.blocks\.2\."):
        load_official(model, official_state("tiny", pretrain=True, depth=3))


def test_fine_tuned_grid_that_cannot_be_inferred_asks_for_source_grid():
    state = official_state("tiny", pretrain=False, depth=1, grid=(7, 11))
    model = CraftClassifier(
        527, fusion="ast", model_size="tiny", depth=1, target_frames=128
    )
    with pytest.raises(ValueError, match="source_grid"):
        load_official(model, state)
    report = load_official(model, state, source_grid=(7, 11))
    assert report.resized == ["spec_embed.pos_embed"]


def test_init_from_switch_reads_a_file(tmp_path):
    path = tmp_path / "SSAST-Tiny-Patch-400.pth"
    torch.save(official_state("tiny", pretrain=True, depth=1), path)
    model = CraftClassifier(
        5, fusion="ast", model_size="tiny", depth=1, target_frames=128
    )
    assert initialise_model(model, "", "ssast") is None
    report = initialise_model(model, str(path), "ssast")
    assert "encoder.blocks.0.attn.qkv.weight" in report.loaded
    with pytest.raises(ValueError, match="init_from"):
        initialise_model(model, str(path), "beats")
