"""Every model knob a CRAFT/SSAST/AST recipe varies is a top-level YAML key that reaches the model.

The YAMLs are instantiated with HyperPyYAML and command-line style overrides
(as ``--msae_kernels=[51]`` gives them), nothing is trained.
"""

from pathlib import Path

import pytest
import torch
import yaml as pyyaml
from hyperpyyaml import load_hyperpyyaml

from craft_modules.models.craft import CraftPretrainer

HPARAMS = Path(__file__).parents[1] / "recipes"
PRETRAINING = [
    HPARAMS / "AudioSet" / "hparams" / f"{name}.yaml"
    for name in ("craft", "ssast", "swapt", "wapt", "swacl")
]
FINETUNING = [
    HPARAMS / "AudioSet" / "hparams" / f"finetune_{name}.yaml"
    for name in ("craft", "ast", "swast")
] + [
    HPARAMS / "ESC50" / "hparams" / f"{name}.yaml" for name in ("craft", "ast", "swast")
]
PRETRAINING_KNOBS = {
    "method",
    "mask_patch",
    "mask_ratio",
    "r_g",
    "r_w",
    "r_cl",
    "proj_dim",
    "swacl_spec",
    "swacl_temperature",
    "swacl_cosine",
    "swacl_symmetric",
    "msae_kernels",
    "msae_stride",
    "allow_missing",
}
FINETUNING_KNOBS = {
    "fusion",
    "n_bottlenecks",
    "fusion_layer",
    "msae_kernels",
    "msae_stride",
    "allow_missing",
}
TINY = {"model_size": "tiny", "depth": 1}


def _ids(path):
    return f"{path.parents[1].name}/{path.stem}"


def _top_level_keys(path):
    class _Loader(pyyaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    with open(path, encoding="utf-8") as fin:
        return set(pyyaml.load(fin, Loader=_Loader))


def build(path, tmp_path, **overrides):
    """The ``hparams`` of a recipe YAML with overrides (a tiny one-block encoder)."""
    overrides = {
        "data_folder": str(tmp_path),
        "output_folder": str(tmp_path),
        **TINY,
        **overrides,
    }
    with open(path, encoding="utf-8") as fin:
        return load_hyperpyyaml(fin, overrides)


@pytest.mark.parametrize("path", PRETRAINING + FINETUNING, ids=_ids)
def test_every_knob_is_a_top_level_key(path):
    knobs = PRETRAINING_KNOBS if path in PRETRAINING else FINETUNING_KNOBS
    assert knobs <= _top_level_keys(path)


def test_pretraining_knobs_reach_the_model(tmp_path):
    hparams = build(
        PRETRAINING[0],
        tmp_path,
        clip_duration=2.0,
        msae_kernels=[51],
        msae_stride=1,
        swacl_symmetric=True,
        swacl_cosine=True,
        swacl_temperature=0.1,
        swacl_spec="masked",
        proj_dim=128,
        mask_ratio=0.5,
        r_g=5.0,
        r_cl=0.1,
        allow_missing=["msae"],
    )
    model = hparams["model"]
    assert model.msae.kernel_sizes == [51] and model.msae.n_scales == 1
    assert model.msae.conv_stride == 1
    assert model.swacl_options == dict(temperature=0.1, cosine=True, symmetric=True)
    assert model.swacl_spec == "masked"
    assert model.spec_proj[-1].out_features == 128
    assert model.wav_proj[-1].out_features == 128
    assert model.spec_embed.num_patches == 128  # 2 s: 256 frames, 8 x 16 patches
    assert model.mask_patch == 64  # half of them
    assert (model.r_g, model.r_cl) == (5.0, 0.1)
    assert hparams["allow_missing"] == ["msae"]
    # The default masks SSAST's share, which fits a 2 s clip...
    assert build(PRETRAINING[0], tmp_path, clip_duration=2.0)["model"].mask_patch == 100
    # ... and mask_patch, when set, wins.
    assert build(PRETRAINING[0], tmp_path, mask_patch=20)["model"].mask_patch == 20


@pytest.mark.parametrize("path", PRETRAINING, ids=_ids)
def test_pretraining_defaults_are_ssast_masking_and_eq4a_swacl(path, tmp_path):
    hparams = build(path, tmp_path)
    model = hparams["model"]
    assert model.spec_embed is None or model.spec_embed.num_patches == 512
    assert model.mask_patch == 400  # SSAST: 400 of the 512 patches of 10 s
    assert model.swacl_spec == "clean"
    assert model.msae is None or model.msae.kernel_sizes == [11, 51, 101]
    assert hparams["allow_missing"] == []
    # The constructor's own default is the same.
    bare = CraftPretrainer(method="ssast", **TINY)
    assert bare.mask_patch == 400 and bare.swacl_spec == "clean"


@pytest.mark.parametrize("path", FINETUNING, ids=_ids)
def test_finetuning_knobs_reach_the_model(path, tmp_path):
    hparams = build(
        path,
        tmp_path,
        clip_duration=1.0,
        fusion="swab",
        msae_kernels=[51],
        msae_stride=1,
        n_bottlenecks=3,
        fusion_layer=0,
        n_classes=4,
        allow_missing=["spec_embed"],
    )
    model = hparams["model"]
    assert model.fusion == "swab" and model.fusion_layer == 0
    assert model.bottlenecks.shape[1] == 3
    assert model.msae.kernel_sizes == [51] and model.msae.conv_stride == 1
    assert hparams["allow_missing"] == ["spec_embed"]
    # Table 8's WaPT-AST: --fusion=wav builds the waveform stream alone.
    wav = build(path, tmp_path, clip_duration=1.0, fusion="wav", n_classes=4)["model"]
    assert wav.fusion == "wav" and wav.spec_embed is None and wav.fbank is None
    assert wav.spec_augment is None
    assert wav(torch.randn(2, 16000) * 0.1).shape == (2, 4)
