"""The default recipe YAMLs resolve to the CRAFT paper's Section 4 settings.

Each YAML is instantiated with HyperPyYAML (nothing is trained). Only the
model's width and depth are overridden, to a one-block tiny model so that
building it is cheap: no value in the tables below depends on them; the
size itself (base, Appendix A.1) is read from the YAML text. Every row
names its source: the CRAFT paper's Section 4.1-4.2, and where the paper
defers to SSAST ("we largely adopted the training methodology outlined in
SSAST"), SSAST (Gong et al., AAAI 2022) and its recipes in YuanGongND/ssast
(src/pretrain/run_mask_patch.sh, src/traintest_mask.py,
src/finetune/audioset/run_as.sh, src/finetune/esc50/run_esc_patch.sh).
"""

from pathlib import Path

import pytest
import yaml
from hyperpyyaml import load_hyperpyyaml

from craft_modules.training.experiment import auto_clip_duration

ROOT = Path(__file__).resolve().parents[1]
HPARAMS = {
    "AudioSet": ROOT / "recipes" / "AudioSet" / "hparams",
    "ESC50": ROOT / "recipes" / "ESC50" / "hparams",
}
PRETRAINING = ["craft", "ssast", "swapt", "wapt", "swacl"]
AUDIOSET_FINETUNING = ["finetune_craft", "finetune_ast", "finetune_swast"]
ESC50_FINETUNING = ["craft", "ast", "swast"]

#: Pretraining: (what, how to read it from the loaded hparams, paper value).
PRETRAINING_TABLE = [
    # CRAFT paper, Section 4.2: "a batch size of 180".
    ("batch", lambda h: h["batch_size"], 180),
    # CRAFT paper, Section 4.2: Adam, "initial learning rate set to 5e-4".
    ("lr", lambda h: h["opt_class"].keywords["lr"], 5e-4),
    ("lr (schedule)", lambda h: h["lr_scheduler"].peak_lr, 5e-4),
    ("optimizer", lambda h: h["opt_class"].func.__name__, "Adam"),
    # SSAST traintest_mask.py: Adam betas (0.95, 0.999), weight decay 5e-7.
    ("betas", lambda h: list(h["opt_class"].keywords["betas"]), [0.95, 0.999]),
    ("weight decay", lambda h: h["opt_class"].keywords["weight_decay"], 5e-7),
    # CRAFT paper, Section 4.1: AudioSet's training set, full (2M) + balanced;
    # SSAST Section 3 pretrains on AudioSet-2M (LibriSpeech: an option here).
    ("data", lambda h: h["train_splits"], ["balanced_train", "unbalanced_train"]),
    ("extra folders", lambda h: h["unlabeled_folders"], []),
    # SSAST run_mask_patch.sh: epoch=10 passes, validation every epoch_iter
    # 4000 steps; traintest_mask.py: staircase warm-up over 1000 steps, every 50.
    ("epochs (passes)", lambda h: h["epoch_counter"].limit, 10),
    ("validation interval", lambda h: h["epoch_iter"], 4000),
    ("warm-up steps", lambda h: h["lr_scheduler"].warmup_steps, 1000),
    ("warm-up every", lambda h: h["lr_scheduler"].warmup_every, 50),
    # SSAST traintest_mask.py: ReduceLROnPlateau(factor 0.5, patience 2).
    ("plateau factor", lambda h: h["lr_scheduler"].factor, 0.5),
    ("plateau patience", lambda h: h["lr_scheduler"].patience, 2),
    # CRAFT paper, Section 4.2: "truncate or pad ... to 10 seconds", 128 mel
    # bins every 10 ms (SSAST: 1024 frames); 16 x 16 patches.
    ("clip seconds", lambda h: h["clip_duration"], 10.0),
    ("frames", lambda h: h["target_frames"], 1024),
    # SSAST run_mask_patch.sh: mask_patch=400 of the 512 patches.
    ("masked patches", lambda h: h["model"].mask_patch, 400),
    # SSAST traintest_mask.py (loss = nce + 10 * mse); CRAFT Eq. 4c's r_g.
    ("r_g", lambda h: h["model"].r_g, 10.0),
    # CRAFT paper, Section 4.2: "CL loss ratio as 1e-2" (r_cl, Eq. 4b).
    ("r_cl", lambda h: h["model"].r_cl, 0.01),
    # SSAST run_mask_patch.sh: no SpecAugment (freqm=timem=0), no mixup.
    ("no mixup", lambda h: h.get("mixup_prob", 0.0), 0.0),
]

#: Fine-tuning, per dataset: (what, reader, AudioSet value, ESC-50 value).
FINETUNING_TABLE = [
    # CRAFT paper, Section 4.2: "learning rate of 5e-5 and 1e-4, total
    # epoches of 25 and 50, for AudioSet and ESC50".
    ("lr", lambda h: h["opt_class"].keywords["lr"], 5e-5, 1e-4),
    ("epochs", lambda h: h["epoch_counter"].limit, 25, 50),
    # SSAST run_as.sh (batch 12) and run_esc_patch.sh (batch 48): the CRAFT
    # paper follows "the same training setting as" SSAST downstream.
    ("batch", lambda h: h["batch_size"], 12, 48),
    # CRAFT paper, Section 4.2: SpecAugment; widths from SSAST run_as.sh
    # (freqm 48, timem 192) and run_esc_patch.sh (24, 96).
    ("freqm", lambda h: _spec_augment(h).freqm, 48, 24),
    ("timem", lambda h: _spec_augment(h).timem, 192, 96),
    # CRAFT paper, Section 4.2: mixup is used; its rate is not given, so
    # SSAST's run_as.sh rate 0.5 for both (SSAST's ESC-50 uses 0), Beta(10, 10)
    # from SSAST dataloader.py.
    ("mixup prob", lambda h: h["mixup_prob"], 0.5, 0.5),
    ("mixup alpha", lambda h: h["mixup_alpha"], 10.0, 10.0),
    # SSAST: 10 x 10 fine-tuning strides (run_as.sh, run_esc_patch.sh).
    ("stride", lambda h: h["model"].spec_embed.proj.stride, (10, 10), (10, 10)),
    # SSAST run_as.sh 10 s clips (1024 frames); ESC-50 5 s clips (512).
    ("clip seconds", lambda h: h["clip_duration"], 10.0, 5.0),
    ("frames", lambda h: h["target_frames"], 1024, 512),
]

#: What ESC50/train.py resolves ``n_classes: auto`` and ``clip_duration: auto``
#: to on the official ESC-50 (50 classes, 2000 clips of 5.0 s).
ESC50_FROM_DATA = {"n_classes": 50, "clip_duration": auto_clip_duration([5.0] * 2000)}


def _spec_augment(hparams):
    """The model's SpecAugment (alone, or first in a chain with the noise)."""
    return next(
        m for m in hparams["model"].spec_augment.modules() if hasattr(m, "freqm")
    )


TINY = {"model_size": "tiny", "depth": 1}


def _load(dataset, name, tmp_path, **overrides):
    path = HPARAMS[dataset] / f"{name}.yaml"
    overrides = {
        "data_folder": str(tmp_path),
        "output_folder": str(tmp_path / "out"),
        **(ESC50_FROM_DATA if dataset == "ESC50" else {}),
        **TINY,
        **overrides,
    }
    with open(path, encoding="utf-8") as fin:
        return load_hyperpyyaml(fin, overrides)


def _raw(dataset, name):
    with open(HPARAMS[dataset] / f"{name}.yaml", encoding="utf-8") as fin:
        return yaml.load(fin, Loader=_TagsAsData)


class _TagsAsData(yaml.SafeLoader):
    """PyYAML's safe loader keeping HyperPyYAML's tags as plain data."""


_TagsAsData.add_multi_constructor(
    "!",
    lambda loader, suffix, node: (
        loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None
    ),
)


def _mismatches(hparams, table, column=2):
    rows = []
    for row in table:
        what, read, expected = row[0], row[1], row[column]
        value = read(hparams)
        if isinstance(expected, float) or isinstance(value, float):
            same = value == pytest.approx(expected, rel=1e-9)
        else:
            same = value == expected
        if not same:
            rows.append(f"{what}: {value!r}, the paper's is {expected!r}")
    return rows


@pytest.mark.parametrize("name", PRETRAINING)
def test_pretraining_yaml_is_the_papers_setting(name, tmp_path):
    hparams = _load("AudioSet", name, tmp_path)
    assert not _mismatches(hparams, PRETRAINING_TABLE)
    assert _raw("AudioSet", name)["model_size"] == "base"  # Appendix A.1


@pytest.mark.parametrize(
    "dataset, name, column",
    [("AudioSet", n, 2) for n in AUDIOSET_FINETUNING]
    + [("ESC50", n, 3) for n in ESC50_FINETUNING],
)
def test_finetuning_yaml_is_the_papers_setting(dataset, name, column, tmp_path):
    hparams = _load(dataset, name, tmp_path, fusion_layer=0)
    assert not _mismatches(hparams, FINETUNING_TABLE, column)
    raw = _raw(dataset, name)
    assert raw["model_size"] == "base"
    if raw["fusion"] == "swab":  # CRAFT paper, Table 5c-5d: 64 tokens from layer 4
        assert (raw["n_bottlenecks"], raw["fusion_layer"]) == (64, 4)


def test_the_table_catches_a_changed_value(tmp_path):
    """A YAML moved off the paper's values fails the comparison, row by row."""
    hparams = _load(
        "AudioSet", "craft", tmp_path, lr=1e-4, train_splits=["balanced_train"]
    )
    problems = _mismatches(hparams, PRETRAINING_TABLE)
    assert [p.split(":")[0] for p in problems] == ["lr", "lr (schedule)", "data"]
    esc = _load("ESC50", "ast", tmp_path, fusion_layer=0, mixup_prob=0.0)
    assert [p.split(":")[0] for p in _mismatches(esc, FINETUNING_TABLE, 3)] == [
        "mixup prob"
    ]
