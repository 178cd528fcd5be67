"""The recipe YAMLs of one method stay one family.

SpeechBrain keeps one self-contained YAML per experiment (no inheritance, no
includes), so a value changed in one YAML and forgotten in its siblings would
go unnoticed. Here every recipe YAML but four family bases hangs off one base
YAML, and :data:`FAMILIES` pins the keys in which it may differ from it. A
sibling that differs in any other key fails (value drift: change both, or pin
the key if the difference is meant), and so does a pinned key in which the
two no longer differ (the table is stale: unpin it).

The YAMLs are compared as parsed data, nothing is instantiated: PyYAML's safe
loader keeps HyperPyYAML's tags as data (``!ref <a>`` is the string ``<a>``,
``!new:x.Y`` / ``!name:`` / ``!apply:`` nodes are the tag with the node's
value), and nested mappings are flattened to dotted keys (a tagged mapping
also gives its own key the tag: ``model`` ->
``!new:craft_modules.models.craft.CraftClassifier``, ``model.fusion`` ->
``<fusion>``). Comments and layout do not count. Values compare with their
types, so ``10`` and ``10.0`` differ. A pinned key also covers the keys under
it (``weight_averager`` pins ``weight_averager.start_epoch`` too).

The families and their bases (the method the README names first):

* AudioSet pretraining: ``AudioSet/craft.yaml`` (PSWaCL, the CRAFT paper's
  method and Section 4.2 settings); ``ssast``, ``swapt``, ``wapt`` and
  ``swacl`` change the method and, where the method has no spectrogram
  accuracy, the monitored validation key.
* CRAFT/AST fine-tuning: ``AudioSet/finetune_craft.yaml`` (SWaB, SSAST's
  AudioSet settings); ``finetune_ast``/``finetune_swast`` change the fusion;
  ``ESC50/craft.yaml`` is the same classifier with SSAST's ESC-50 settings
  (data, folds, schedule, augmentation) and is the base of ``ESC50/ast`` and
  ``ESC50/swast``.
* CLAR: ``ESC50/clar.yaml`` (the CLAR paper's ESC-50 setting, both losses);
  the raw-waveform encoder, the supervised and self-supervised modes, and
  ``AudioSet/finetune_clar.yaml`` (the AudioSet data settings).
* Diverse embeddings: ``FSD50K/diverse.yaml`` (the paper's dataset, joint
  training); the single-stream stage-1 YAMLs, the stage-2 combination and
  the ESC-50 and AudioSet versions (their datasets' settings).

:data:`SAME_IN_GROUP` adds the keys every recipe, or every recipe of one
dataset, must share (seed, precision, data layout, clip length...).
"""

import dataclasses
import glob
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"

#: The YAMLs every other YAML of their family is compared with.
BASES = (
    "AudioSet/craft.yaml",
    "AudioSet/finetune_craft.yaml",
    "ESC50/clar.yaml",
    "FSD50K/diverse.yaml",
)

#: The keys the AudioSet fine-tuning YAMLs have and the ESC-50 ones replace
#: by their folds (or lack: no weight averaging on ESC-50).
_ESC50_VS_AUDIOSET = (
    "audio_folder",
    "balanced_sampling",
    "ckpt_interval_minutes",
    "clip_duration",
    "experiment_folder",
    "fold",
    "folds",
    "group_regex",
    "layout",
    "loss",
    "metric",
    "n_classes",
    "n_folds",
    "number_of_epochs",
    "output_folder",
    "save_folder",
    "train_log",
    "train_splits",
)

#: ``sibling: (base, keys in which it may differ from its base)``; paths
#: are ``<dataset>/<file>`` under ``recipes/<dataset>/hparams/``.
FAMILIES = {
    # --- AudioSet pretraining ----------------------------------------------
    "AudioSet/ssast.yaml": ("AudioSet/craft.yaml", {"method"}),
    "AudioSet/swapt.yaml": ("AudioSet/craft.yaml", {"method"}),
    "AudioSet/wapt.yaml": ("AudioSet/craft.yaml", {"method", "monitor"}),
    "AudioSet/swacl.yaml": ("AudioSet/craft.yaml", {"method", "monitor"}),
    # --- CRAFT/AST fine-tuning ---------------------------------------------
    "AudioSet/finetune_ast.yaml": ("AudioSet/finetune_craft.yaml", {"fusion"}),
    "AudioSet/finetune_swast.yaml": ("AudioSet/finetune_craft.yaml", {"fusion"}),
    "ESC50/craft.yaml": (
        "AudioSet/finetune_craft.yaml",
        {
            *_ESC50_VS_AUDIOSET,
            "batch_size",
            "checkpointer.recoverables.averager",
            "freqm",
            "lr",
            "lr_schedule.decay",
            "lr_schedule.start",
            "lr_schedule.step",
            "model.norm_stats",
            "model.spec_augment",
            "noise_prob",  # SSAST's noise augmentation: ESC-50 only
            "norm_stats",
            "use_weight_averaging",
            "weight_averager",
            "weight_averaging_start",
        },
    ),
    "ESC50/ast.yaml": ("ESC50/craft.yaml", {"fusion", "output_folder"}),
    "ESC50/swast.yaml": ("ESC50/craft.yaml", {"fusion", "output_folder"}),
    # --- CLAR --------------------------------------------------------------
    "ESC50/clar_raw.yaml": ("ESC50/clar.yaml", {"encoder", "experiment"}),
    "ESC50/clar_supervised.yaml": (
        "ESC50/clar.yaml",
        {"clar_mode", "experiment", "proj_dim"},
    ),
    "ESC50/clar_selfsupervised.yaml": (
        "ESC50/clar.yaml",
        {"batch_size", "clar_mode", "experiment"},
    ),
    "AudioSet/finetune_clar.yaml": (
        "ESC50/clar.yaml",
        {*_ESC50_VS_AUDIOSET, "lr_schedule.start", "lr_schedule.step"},
    ),
    # --- diverse embeddings ------------------------------------------------
    "FSD50K/diverse_pitch.yaml": ("FSD50K/diverse.yaml", {"experiment", "streams"}),
    "FSD50K/diverse_timbre.yaml": ("FSD50K/diverse.yaml", {"experiment", "streams"}),
    "FSD50K/diverse_waveform.yaml": (
        "FSD50K/diverse.yaml",
        {"experiment", "streams"},
    ),
    "FSD50K/diverse_neuralogram.yaml": (
        "FSD50K/diverse.yaml",
        {"experiment", "streams"},
    ),
    "FSD50K/diverse_combine.yaml": (
        "FSD50K/diverse.yaml",
        {
            "experiment",
            "freeze_streams",
            "number_of_epochs",
            "stage1_folder",
            "stream_checkpoints",
        },
    ),
    "ESC50/diverse.yaml": (
        "FSD50K/diverse.yaml",
        {
            "ckpt_interval_minutes",
            "clip_duration",
            "drop_last",
            "eval_clip_duration",
            "experiment",
            "experiment_folder",
            "fold",
            "folds",
            "group_regex",
            "layout",
            "loss",
            "lr_schedule.decay",
            "lr_schedule.start",
            "lr_schedule.step",
            "max_grad_norm",
            "metric",
            "n_classes",
            "n_folds",
            "number_of_epochs",
            "opt_class.betas",
            "opt_class.weight_decay",
            "output_folder",
            "pad_clips",
            "prepare_workers",
            "save_folder",
            "train_log",
        },
    ),
    "AudioSet/finetune_diverse.yaml": (
        "FSD50K/diverse.yaml",
        {
            "audio_folder",
            "balanced_sampling",
            "checkpointer.recoverables.averager",
            "drop_last",
            "eval_clip_duration",
            "experiment",
            "lr_schedule.step",
            "max_grad_norm",
            "n_classes",
            "number_of_epochs",
            "opt_class.betas",
            "opt_class.weight_decay",
            "output_folder",
            "prepare_workers",
            "train_splits",
            "use_weight_averaging",
            "weight_averager",
            "weight_averaging_start",
        },
    ),
}

#: ``glob under recipes/: keys with one value in every YAML it matches``.
SAME_IN_GROUP = {
    "*/hparams/*.yaml": (
        "seed",
        "__set_seed",
        "data_folder",
        "pretrained_path",
        "init_from",
        "prepare_folder",
        "sample_rate",
        "num_workers",
        "precision",
        "compile",
        "modules.model",
        "opt_class",
        "opt_class.lr",
        "epoch_counter",
        "epoch_counter.limit",
        "checkpointer",
        "checkpointer.checkpoints_dir",
        "checkpointer.recoverables.model",
        "checkpointer.recoverables.counter",
        "train_logger",
        "train_logger.save_file",
    ),
    "AudioSet/hparams/*.yaml": (
        "audio_folder",
        "clip_duration",
        "drop_last",
        "save_folder",
        "train_log",
        "ckpt_interval_minutes",
    ),
    # Pretraining reads the full set (the paper's Section 4.1-4.2), fine-tuning
    # the balanced set (AS-20K): train_splits is shared within each.
    "AudioSet/hparams/finetune_*.yaml": (
        "train_splits",
        "n_classes",
        "balanced_sampling",
        "loss",
        "metric",
        "keep_checkpoints",
    ),
    "ESC50/hparams/*.yaml": (
        "layout",
        "n_folds",
        "group_regex",
        "folds",
        "fold",
        "experiment_folder",
        "save_folder",
        "train_log",
        "clip_duration",
        "n_classes",
        "loss",
        "metric",
        "drop_last",
        "keep_checkpoints",
        "ckpt_interval_minutes",
    ),
    "FSD50K/hparams/*.yaml": (
        "n_classes",
        "clip_duration",
        "eval_clip_duration",
        "pad_clips",
        "prepare_workers",
        "loss",
        "metric",
        "drop_last",
        "save_folder",
        "train_log",
        "ckpt_interval_minutes",
    ),
}


@dataclasses.dataclass(frozen=True)
class Tagged:
    """A HyperPyYAML tagged node kept as data: its tag and its node's value."""

    tag: str
    value: object

    def __repr__(self):
        return self.tag if self.value in ("", None) else f"{self.tag} {self.value!r}"


class _Absent:
    """The value of a key a YAML does not have."""

    def __repr__(self):
        return "(absent)"


ABSENT = _Absent()


class TagsAsData(yaml.SafeLoader):
    """PyYAML's safe loader that builds nothing: tags become :class:`Tagged`."""


def _tagged(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if node.tag == "!ref":
            return value
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return Tagged(node.tag, value)


TagsAsData.add_multi_constructor("!", _tagged)


def flatten(data, prefix=""):
    """Nested mappings as one ``{dotted.key: value}`` dict (tags at their own key)."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Tagged) and isinstance(value.value, dict):
            flat[name] = value.tag
            flat.update(flatten(value.value, name + "."))
        elif isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def load_flat(path):
    """A YAML file parsed without instantiating anything, flattened."""
    with open(path, encoding="utf-8") as fin:
        return flatten(yaml.load(fin, Loader=TagsAsData) or {})


def same(a, b):
    """Equality that also compares types (``1``, ``1.0`` and ``True`` differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, Tagged):
        return a.tag == b.tag and same(a.value, b.value)
    return a == b


def differences(base, sibling):
    """``{key: (base value, sibling value)}`` for each key in which they differ."""
    keys = sorted(base.keys() | sibling.keys())
    pairs = {k: (base.get(k, ABSENT), sibling.get(k, ABSENT)) for k in keys}
    return {k: (a, b) for k, (a, b) in pairs.items() if not same(a, b)}


def _covers(pinned, key):
    return key == pinned or key.startswith(pinned + ".")


def family_problems(base_path, sibling_path, allowed, root=ROOT):
    """What breaks the pinned table for one sibling, one line per problem.

    Arguments
    ---------
    base_path, sibling_path : Path
        The family's base YAML and the sibling.
    allowed : set of str
        The keys (and the keys under them) in which the sibling may differ.
    root : Path
        The files are named relative to it.

    Returns
    -------
    list of str
        Value drift (a difference in a key not allowed) and stale entries
        (an allowed key in which the two no longer differ), naming the file,
        the key and both values.
    """
    base_name = base_path.relative_to(root)
    name = sibling_path.relative_to(root)
    base, sibling = load_flat(base_path), load_flat(sibling_path)
    diffs = differences(base, sibling)
    problems = [
        f"{name}: {key} = {theirs!r} but {base_name} has {ours!r} "
        "(change both, or pin the key in FAMILIES if the difference is meant)"
        for key, (ours, theirs) in diffs.items()
        if not any(_covers(pinned, key) for pinned in allowed)
    ]
    for pinned in sorted(allowed):
        if not any(_covers(pinned, key) for key in diffs):
            problems.append(
                f"{name}: {pinned} is pinned as differing from {base_name}, but "
                f"both have {base.get(pinned, ABSENT)!r}: unpin it in FAMILIES"
            )
    return problems


def _path(entry):
    dataset, file = entry.split("/")
    return RECIPES / dataset / "hparams" / file


def test_every_recipe_yaml_is_a_base_or_a_pinned_sibling():
    on_disk = {
        f"{p.parents[1].name}/{p.name}" for p in RECIPES.glob("*/hparams/*.yaml")
    }
    assert on_disk == set(BASES) | set(FAMILIES), (
        "recipe YAMLs not in FAMILIES/BASES: "
        f"{sorted(on_disk - set(BASES) - set(FAMILIES))}; listed but missing: "
        f"{sorted(set(BASES) | set(FAMILIES) - on_disk)}"
    )
    assert not set(BASES) & set(FAMILIES)
    for sibling in FAMILIES:  # every chain of bases ends at a family base
        seen = [sibling]
        while seen[-1] in FAMILIES:
            seen.append(FAMILIES[seen[-1]][0])
            assert len(seen) <= len(FAMILIES) + 1, f"cycle: {seen}"
        assert seen[-1] in BASES, f"{' -> '.join(seen)} ends outside BASES"


@pytest.mark.parametrize("sibling", sorted(FAMILIES))
def test_sibling_differs_from_its_base_only_in_its_pinned_keys(sibling):
    base, allowed = FAMILIES[sibling]
    problems = family_problems(_path(base), _path(sibling), allowed)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("pattern", sorted(SAME_IN_GROUP))
def test_keys_shared_by_a_group_have_one_value(pattern):
    files = sorted(glob.glob(str(RECIPES / pattern)))
    assert len(files) > 1, pattern
    first, reference = Path(files[0]).relative_to(ROOT), load_flat(files[0])
    missing = [k for k in SAME_IN_GROUP[pattern] if k not in reference]
    assert not missing, f"{first} has no {missing} (listed for {pattern})"
    problems = []
    for file in files[1:]:
        flat = load_flat(file)
        for key in SAME_IN_GROUP[pattern]:
            ours, theirs = reference[key], flat.get(key, ABSENT)
            if not same(ours, theirs):
                problems.append(
                    f"{Path(file).relative_to(ROOT)}: {key} = {theirs!r} but "
                    f"{first} has {ours!r} (every {pattern} shares it)"
                )
    assert not problems, "\n".join(problems)


def test_value_drift_and_stale_pins_are_reported_and_comments_ignored(tmp_path):
    base_file = _path("ESC50/craft.yaml")
    text = base_file.read_text(encoding="utf-8")
    (tmp_path / "recipes").mkdir()
    base = tmp_path / "recipes" / "base.yaml"
    base.write_text(text, encoding="utf-8")
    edited = text.replace("lr: 0.0001\n", "lr: 0.0002\n", 1)
    edited = edited.replace("    tstride: 10\n", "    tstride: 12\n", 1)
    edited = edited.replace("# ESC-50 five-fold", "# a reworded comment", 1)
    assert edited.count("0.0002") == 1 and "tstride: 12" in edited
    assert "# a reworded comment" in edited
    sibling = tmp_path / "recipes" / "sibling.yaml"
    sibling.write_text(edited, encoding="utf-8")

    flat = load_flat(base)  # tags are kept as strings, nothing is built
    assert flat["model"] == "!new:craft_modules.models.craft.CraftClassifier"
    assert flat["model.n_classes"] == "<n_classes>"
    assert flat["data_folder"] == Tagged("!PLACEHOLDER", "")
    assert set(differences(flat, load_flat(sibling))) == {"lr", "model.tstride"}

    drift = family_problems(base, sibling, set(), root=tmp_path)
    stale = family_problems(base, sibling, {"lr", "model.tstride", "fusion"}, tmp_path)
    covered = family_problems(base, sibling, {"lr", "model"}, root=tmp_path)
    assert len(drift) == 2
    expected = "recipes/sibling.yaml: lr = 0.0002 but recipes/base.yaml has 0.0001"
    assert drift[0].startswith(expected)
    assert drift[1].startswith("recipes/sibling.yaml: model.tstride = 12 but")
    assert len(stale) == 1 and "fusion is pinned as differing" in stale[0]
    assert "'swab'" in stale[0]
    assert covered == []  # "model" covers model.tstride
