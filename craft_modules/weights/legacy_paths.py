"""Old ``!new:`` paths of run folders saved before the package was laid out by role.

Until December 2026 the package was flat (``craft_modules.models``,
``craft_modules.clar``, ``craft_modules.checkpointer``, ...). A run folder keeps
the ``hyperparams.yaml`` it was trained with, so its ``!new:`` / ``!name:``
tags still name the flat modules. :func:`upgrade_paths` rewrites them to the
current modules before the YAML is loaded, so such a run folder still loads.
Models used to load weights in their constructors (the diverse model's
``stream_checkpoints``, the neuralogram's ``checkpoint_path``);
:func:`drop_loading_arguments` removes those arguments, the run's own
checkpoint holding all of its weights.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import functools
import importlib.util
import io
import pkgutil
import re

import ruamel.yaml

# Flat module (before) -> module now.
MODULES = {
    "transformer": "nn.transformer",
    "embedding": "nn.embedding",
    "fusion": "nn.transformer",
    "masking": "nn.masking",
    "features": "features.fbank",
    "diverse_features": "features.diverse_streams",
    "models": "models.craft",
    "clar": "models.clar",
    "diverse": "models.diverse",
    "inputs": "models.inputs",
    "objectives": "losses",
    "augment": "augment.spectrogram",
    "waveform_augment": "augment.waveform",
    "dataio": "data.audio",
    "manifest": "data.manifest",
    "sampling": "data.samplers",
    "brain": "training.brains",
    "clar_brain": "training.clar_brain",
    "schedulers": "training.schedulers",
    "averaging": "training.averaging",
    "checkpointer": "training.checkpointer",
    "precision": "training.precision",
    "compile": "training.compile",
    "recipe": "training.experiment",
    # The flat ``training`` module is not mapped: its functions took the
    # recipe's hparams, so no YAML named them, and mapping it would rewrite
    # current paths such as ``craft_modules.training.loaders``.
    "checkpoint": "weights.transfer",
    "official": "weights.official",
    "inference": "inference.tagger",
    "hear": "inference.hear",
    "cli": "inference.cli",
}

# Names that left the module :data:`MODULES` maps their old module to
# (full old path -> full path now).
NAMES = {
    "craft_modules.clar.BasicBlock": "craft_modules.nn.resnet.BasicBlock",
    "craft_modules.clar.ClarFrontEnd": "craft_modules.features.clar_frontend.ClarFrontEnd",
    "craft_modules.clar.MultiHot": "craft_modules.data.labels.MultiHot",
    "craft_modules.clar.ResNet18_1D": "craft_modules.nn.resnet.ResNet18_1D",
    "craft_modules.clar.ResNet18_2D": "craft_modules.nn.resnet.ResNet18_2D",
    "craft_modules.clar.label_fraction_mask": "craft_modules.data.labels.label_fraction_mask",
    "craft_modules.clar.labelled_cross_entropy": "craft_modules.losses.labelled_cross_entropy",
    "craft_modules.clar.load_label_list": "craft_modules.data.labels.load_label_list",
    "craft_modules.clar.masked_patch_infonce": "craft_modules.losses.masked_patch_infonce",
    "craft_modules.clar.masked_patch_mse": "craft_modules.losses.masked_patch_mse",
    "craft_modules.clar.multi_hot_pipeline": "craft_modules.data.labels.multi_hot_pipeline",
    "craft_modules.clar.nt_xent_loss": "craft_modules.losses.nt_xent_loss",
    "craft_modules.clar.swacl_loss": "craft_modules.losses.swacl_loss",
    "craft_modules.dataio.MultiHot": "craft_modules.data.labels.MultiHot",
    "craft_modules.dataio.PROGRESS_INTERVAL_S": "craft_modules.data.preparation.PROGRESS_INTERVAL_S",
    "craft_modules.dataio.PreparationSummary": "craft_modules.data.preparation.PreparationSummary",
    "craft_modules.dataio.SkipBadCollate": "craft_modules.data.batching.SkipBadCollate",
    "craft_modules.dataio.clear_prepared": "craft_modules.data.preparation.clear_prepared",
    "craft_modules.dataio.collate_skip_bad": "craft_modules.data.batching.collate_skip_bad",
    "craft_modules.dataio.is_prepared": "craft_modules.data.preparation.is_prepared",
    "craft_modules.dataio.label_fraction_mask": "craft_modules.data.labels.label_fraction_mask",
    "craft_modules.dataio.load_label_list": "craft_modules.data.labels.load_label_list",
    "craft_modules.dataio.log_progress": "craft_modules.data.preparation.log_progress",
    "craft_modules.dataio.logger": "craft_modules.data.preparation.logger",
    "craft_modules.dataio.manifest_audio_path": "craft_modules.data.preparation.manifest_audio_path",
    "craft_modules.dataio.mark_prepared": "craft_modules.data.preparation.mark_prepared",
    "craft_modules.dataio.multi_hot_pipeline": "craft_modules.data.labels.multi_hot_pipeline",
    "craft_modules.dataio.write_json_atomic": "craft_modules.atomic_files.write_json_atomic",
}

_OLD = "|".join(sorted(MODULES, key=len, reverse=True))
_PATH = re.compile(r"\bcraft_modules\.(" + _OLD + r")\.([A-Za-z_]\w*)")


# A flat name that is now a package is followed, in current paths, by one of
# the package's modules: such a path is already current.
@functools.cache
def _submodules(package):
    """Module names inside ``craft_modules.<package>`` (empty if not a package)."""
    spec = importlib.util.find_spec(f"craft_modules.{package}")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    return frozenset(
        m.name for m in pkgutil.iter_modules(spec.submodule_search_locations)
    )


def upgrade_path(match):
    """The current path of one matched ``craft_modules.<old>.<name>``."""
    old, name = match.group(1), match.group(2)
    if name in _submodules(old):  # ``<old>`` is now a package: already current
        return match.group(0)
    path = f"craft_modules.{MODULES[old]}.{name}"
    return NAMES.get(f"craft_modules.{old}.{name}", path)


def upgrade_paths(text):
    """Rewrites the flat-layout paths of a YAML text to the current ones.

    Arguments
    ---------
    text : str
        A ``hyperparams.yaml``.

    Returns
    -------
    str
        The text with every old path replaced; current paths are unchanged.

    Example
    -------
    >>> upgrade_paths("model: !new:craft_modules.models.CraftClassifier")
    'model: !new:craft_modules.models.craft.CraftClassifier'
    >>> upgrade_paths("c: !new:craft_modules.checkpointer.AtomicCheckpointer")
    'c: !new:craft_modules.training.checkpointer.AtomicCheckpointer'
    >>> upgrade_paths("collate_fn: !new:craft_modules.dataio.SkipBadCollate")
    'collate_fn: !new:craft_modules.data.batching.SkipBadCollate'
    >>> upgrade_paths("opts: !name:craft_modules.training.loaders.train_loader_options")
    'opts: !name:craft_modules.training.loaders.train_loader_options'
    >>> upgrade_paths("model: !new:craft_modules.models.craft.CraftClassifier")
    'model: !new:craft_modules.models.craft.CraftClassifier'
    """
    return _PATH.sub(upgrade_path, text)


#: Constructor arguments that loaded files, by model class (last path part).
LOADING_ARGUMENTS = {"DiverseEmbeddingModel": ("stream_checkpoints",)}


def drop_loading_arguments(text):
    """Removes the constructor arguments that used to read weight files.

    Arguments
    ---------
    text : str
        A ``hyperparams.yaml`` (references resolved, as SpeechBrain saves it).

    Returns
    -------
    str
        The text without the diverse model's ``stream_checkpoints`` and the
        neuralogram's ``stream_options`` ``checkpoint_path``; unchanged when
        it has neither.

    Example
    -------
    >>> old = '''model: !new:craft_modules.models.diverse.DiverseEmbeddingModel
    ...   n_classes: 2
    ...   stream_checkpoints: {pitch: /runs/pitch/save}
    ...   stream_options: {neuralogram: {width: 4, checkpoint_path: /cnn.pt}}
    ... '''
    >>> print(drop_loading_arguments(old).strip())
    model: !new:craft_modules.models.diverse.DiverseEmbeddingModel
      n_classes: 2
      stream_options: {neuralogram: {width: 4}}
    """
    if "stream_checkpoints" not in text and "checkpoint_path" not in text:
        return text
    yaml = ruamel.yaml.YAML()
    tree = yaml.load(text)
    changed = False
    for node in _tagged_maps(tree):
        tag = node.tag.value or ""
        for argument in LOADING_ARGUMENTS.get(tag.rsplit(".", 1)[-1], ()):
            changed |= node.pop(argument, None) is not None or argument in node
        options = node.get("stream_options") if "Diverse" in tag else None
        if isinstance(options, dict) and isinstance(options.get("neuralogram"), dict):
            changed |= options["neuralogram"].pop("checkpoint_path", None) is not None
    if not changed:
        return text
    out = io.StringIO()
    yaml.dump(tree, out)
    return out.getvalue()


def _tagged_maps(node, seen=None):
    """Every mapping with a ``!new:`` tag in a ruamel tree (each once)."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, dict):
        if (getattr(getattr(node, "tag", None), "value", None) or "").startswith(
            "!new:"
        ):
            yield node
        for value in node.values():
            yield from _tagged_maps(value, seen)
    elif isinstance(node, list):
        for value in node:
            yield from _tagged_maps(value, seen)
