"""Old ``!new:`` paths of run folders saved before the package was laid out by role.

Until December 2026 the package was flat (``craft_modules.models``,
``craft_modules.clar``, ``craft_modules.checkpointer``, ...). A run folder keeps
the ``hyperparams.yaml`` it was trained with, so its ``!new:`` / ``!name:``
tags still name the flat modules. :func:`upgrade_paths` rewrites them to the
current modules before the YAML is loaded, so such a run folder still loads.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import re

# Flat module (before) -> module now.
MODULES = {
    "transformer": "nn.transformer",
    "embedding": "nn.embedding",
    "fusion": "nn.fusion",
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
    "training": "training.steps",
    "checkpoint": "weights.transfer",
    "official": "weights.official",
    "inference": "inference.tagger",
    "hear": "inference.hear",
    "cli": "inference.cli",
}

# Names that left the module :data:`MODULES` maps their old module to
# (full old path -> full path now).
NAMES = {}

_OLD = "|".join(sorted(MODULES, key=len, reverse=True))
_PATH = re.compile(r"\bcraft_modules\.(" + _OLD + r")\.([A-Za-z_]\w*)")
# A flat name that is now a package is followed, in current paths, by one of
# the package's modules: such a path is already current.
_CURRENT = {value.split(".")[1] for value in MODULES.values() if "." in value}


def upgrade_path(match):
    """The current path of one matched ``craft_modules.<old>.<name>``."""
    old, name = match.group(1), match.group(2)
    if name in _CURRENT and MODULES[old].split(".")[0] == old:
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
    >>> upgrade_paths("model: !new:craft_modules.models.craft.CraftClassifier")
    'model: !new:craft_modules.models.craft.CraftClassifier'
    """
    return _PATH.sub(upgrade_path, text)
