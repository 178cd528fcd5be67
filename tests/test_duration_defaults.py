"""Duration-dependent defaults follow the clip; SSAST's numbers at SSAST's lengths.

SpecAugment's time mask is ``timem_ratio`` (0.1875) of the input frames
unless ``timem`` is given, and pretraining masks ``mask_ratio`` (0.78125) of
the patch grid unless ``mask_patch`` is given. At SSAST's clip lengths these
are exactly SSAST's constants (YuanGongND/ssast src/finetune/audioset/run_as.sh:
freqm 48, timem 192 of 1024 frames; src/finetune/esc50/run_esc_patch.sh:
24 and 96 of 512; src/pretrain/run_mask_patch.sh: 400 of 512 patches).
"""

from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from craft_modules.augment.spectrogram import SpecAugment
from craft_modules.models.craft import CraftPretrainer
from craft_modules.nn.masking import cluster_mask_ids

ROOT = Path(__file__).resolve().parents[1]
HPARAMS = ROOT / "recipes"
ONE_BLOCK = {"model_size": "tiny", "depth": 1}
CLASSIFIER = {"n_classes": 50, "fusion_layer": 0}


def _load(path, tmp_path, **overrides):
    with open(HPARAMS / path, encoding="utf-8") as fin:
        return load_hyperpyyaml(
            fin,
            {
                "data_folder": str(tmp_path),
                "output_folder": str(tmp_path / "out"),
                **ONE_BLOCK,
                **overrides,
            },
        )


def _spec_augment(hparams):
    return next(m for m in hparams["model"].modules() if isinstance(m, SpecAugment))


@pytest.mark.parametrize(
    "path, seconds, frames, freqm, timem",
    [
        ("AudioSet/hparams/finetune_ast.yaml", 10.0, 1024, 48, 192),  # run_as.sh
        ("ESC50/hparams/ast.yaml", 5.0, 512, 24, 96),  # run_esc_patch.sh
        ("ESC50/hparams/ast.yaml", 1.0, 128, 24, 24),  # 0.1875 of a 1 s clip
        ("ESC50/hparams/ast.yaml", 2.0, 256, 24, 48),
    ],
)
def test_spec_augment_widths_follow_the_clip(
    path, seconds, frames, freqm, timem, tmp_path
):
    hparams = _load(path, tmp_path, clip_duration=seconds, **CLASSIFIER)
    assert hparams["target_frames"] == frames
    augment = _spec_augment(hparams)
    assert (augment.freqm, augment.timem) == (freqm, timem)


def test_an_absolute_timem_overrides_the_ratio(tmp_path):
    hparams = _load(
        "ESC50/hparams/craft.yaml", tmp_path, clip_duration=1.0, timem=96, **CLASSIFIER
    )
    assert _spec_augment(hparams).timem == 96
    assert SpecAugment(timem=0, timem_ratio=0.5, target_frames=100).timem == 0
    with pytest.raises(ValueError, match="timem_ratio must be in"):
        SpecAugment(timem_ratio=1.5, target_frames=100)


@pytest.mark.parametrize(
    "seconds, frames, patches, masked", [(10.0, 1024, 512, 400), (2.0, 256, 128, 100)]
)
def test_pretraining_masks_its_share_of_the_grid(
    seconds, frames, patches, masked, tmp_path
):
    hparams = _load("AudioSet/hparams/craft.yaml", tmp_path, clip_duration=seconds)
    model = hparams["model"]
    assert hparams["target_frames"] == frames
    assert model.spec_embed.num_patches == patches
    assert model.mask_patch == masked


def test_cluster_masking_fits_a_2_s_clip():
    """SSAST's cluster masking draws 100 of 128 patches on a 2 s clip; the losses are finite."""
    torch.manual_seed(0)
    model = CraftPretrainer(
        method="ssast", model_size="tiny", depth=1, target_frames=256
    )
    assert model.cluster and model.mask_patch == 100
    losses = model(torch.randn(2, 32000) * 0.1, torch.ones(2))
    assert torch.isfinite(losses["loss"])
    ids = cluster_mask_ids(8, 8, 16, model.mask_patch)  # the 8 x 16 grid of 2 s
    assert ids.shape == (8, 100)
    assert all(len(set(row.tolist())) == 100 for row in ids)
    assert int(ids.min()) >= 0 and int(ids.max()) < 128
