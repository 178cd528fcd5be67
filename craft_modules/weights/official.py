"""Importing the official SSAST and AST checkpoints.

The official files (``SSAST-Base-Patch-400.pth``, ``audioset_10_10_0.4593.pth``,
a fine-tuned ``best_audio_model.pth`` ...) are ``DataParallel`` state dicts of
the official ``ASTModel``: keys start with ``module.v.`` (the timm ViT),
pretraining checkpoints add ``p_input_fdim`` / ``p_input_tdim`` (the input
size the positional embedding was trained for), ``mask_embed``,
``cpredlayer.*`` and ``gpredlayer.*``; fine-tuned ones add ``mlp_head.*``
(the released checkpoints of YuanGongND/ssast). Their names map one to one onto this
project's spectrogram stream:

=============================  ===============================
official                       craft_modules
=============================  ===============================
``v.cls_token``                ``spec_embed.cls_token``
``v.dist_token``               ``spec_embed.dist_token``
``v.pos_embed``                ``spec_embed.pos_embed`` (resized)
``v.patch_embed.proj.*``       ``spec_embed.proj.*``
``v.blocks.N.*``               ``encoder.blocks.N.*``
``v.norm.*``                   ``encoder.norm.*``
``mask_embed``, ``[cg]predlayer.*``  same names (pretraining models)
``mlp_head.*``                 same names (classifiers)
``v.head*``, ``p_input_*``     not weights (timm's unused ImageNet heads; grid)
=============================  ===============================

The positional embedding is resized from the checkpoint's token grid to the
model's (see :func:`craft_modules.weights.transfer.resize_pos_embed`). The source
grid of a pretraining checkpoint comes from ``p_input_fdim/tdim`` and its
patch shape (SSAST pretrains without overlap, stride = patch shape), which
also avoids SSAST's own trap of overwriting the fine-tuning input size with
the stored one (ssast#17). A fine-tuned checkpoint stores no grid: 16x16
patches at stride 10 on 128 mel bins have 12 frequency rows (``t`` follows
from the embedding's length) and frame patches (128x2) one; anything else
needs ``source_grid``.

Loading is strict: a key of the checkpoint that is not an official SSAST/AST
key, an official key the model has no place for, a spectrogram-stream key of
the model that the checkpoint lacks, or a shape that differs (other than the
positional embedding) is an error listing the keys. Two things are reported,
not errors: a classification head of another size (fine-tuning on a new
label set starts a new head) and the model's waveform-stream keys (SWAST and
SWaB add a waveform stream the official models do not have).

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import re

from speechbrain.utils.logger import get_logger

from craft_modules.weights.transfer import (
    LoadReport,
    load_state_dict_file,
    resize_pos_embed,
    strip_module_prefix,
)

logger = get_logger(__name__)

#: Official prefix -> this project's prefix, applied in order.
KEY_MAP = (
    ("v.patch_embed.proj.", "spec_embed.proj."),
    ("v.cls_token", "spec_embed.cls_token"),
    ("v.dist_token", "spec_embed.dist_token"),
    ("v.pos_embed", "spec_embed.pos_embed"),
    ("v.blocks.", "encoder.blocks."),
    ("v.norm.", "encoder.norm."),
    ("mask_embed", "mask_embed"),
    ("cpredlayer.", "cpredlayer."),
    ("gpredlayer.", "gpredlayer."),
    ("mlp_head.", "mlp_head."),
)

#: Official keys that hold no weights of the model.
NOT_WEIGHTS = re.compile(r"^(v\.head(_dist)?\.(weight|bias)|p_input_[ft]dim)$")

#: Target keys the official models never have (waveform stream, SWaCL heads, SWaB bottlenecks).
NEW_IN_CRAFT = (
    "wav_embed.",
    "msae.",
    "wav_mask_embed",
    "wav_cpredlayer.",
    "wav_gpredlayer.",
    "wav_proj",
    "spec_proj",
    "bottlenecks",
)

#: Official keys that only pretraining models use.
PRETRAINING_HEADS = ("mask_embed", "cpredlayer.", "gpredlayer.")


def official_to_craft_key(key):
    """This project's name of an official SSAST/AST key (None if not a weight).

    Arguments
    ---------
    key : str
        Official key, with or without the ``module.`` prefix.

    Returns
    -------
    str or None
        The mapped key, or None for ``v.head*`` / ``p_input_*``.

    Raises
    ------
    KeyError
        If the key is not an official SSAST/AST key.

    Example
    -------
    >>> official_to_craft_key("module.v.blocks.3.attn.qkv.weight")
    'encoder.blocks.3.attn.qkv.weight'
    >>> official_to_craft_key("module.p_input_tdim") is None
    True
    """
    if key.startswith("module."):
        key = key[len("module.") :]
    if NOT_WEIGHTS.match(key):
        return None
    for official, ours in KEY_MAP:
        if key.startswith(official):
            return ours + key[len(official) :]
    raise KeyError(key)


def official_grid(state, source_grid=None):
    """Token grid ``(f, t)`` of an official checkpoint's positional embedding.

    Arguments
    ---------
    state : dict
        Official state dict without ``module.`` prefixes.
    source_grid : tuple of int, optional
        Given explicitly (checked against the embedding's length).

    Returns
    -------
    tuple of int

    Example
    -------
    >>> state = {"v.pos_embed": torch.zeros(1, 2 + 8 * 64, 4),
    ...          "v.patch_embed.proj.weight": torch.zeros(4, 1, 16, 16),
    ...          "p_input_fdim": torch.tensor(128), "p_input_tdim": torch.tensor(1024)}
    >>> official_grid(state)
    (8, 64)
    >>> official_grid({"v.pos_embed": torch.zeros(1, 2 + 12 * 101, 4),
    ...                "v.patch_embed.proj.weight": torch.zeros(4, 1, 16, 16)})
    (12, 101)
    """
    if "v.pos_embed" not in state or "v.patch_embed.proj.weight" not in state:
        raise KeyError(
            "not an official SSAST/AST checkpoint: it lacks v.pos_embed or "
            "v.patch_embed.proj.weight"
        )
    n_tokens = state["v.pos_embed"].shape[1] - 2
    if source_grid is not None:
        grid = tuple(int(x) for x in source_grid)
    elif "p_input_fdim" in state and "p_input_tdim" in state:
        fshape, tshape = state["v.patch_embed.proj.weight"].shape[2:]
        grid = (
            (int(state["p_input_fdim"]) - fshape) // fshape + 1,
            (int(state["p_input_tdim"]) - tshape) // tshape + 1,
        )
    else:
        fshape = state["v.patch_embed.proj.weight"].shape[2]
        rows = 1 if fshape == 128 else 12
        if n_tokens % rows:
            raise ValueError(
                f"cannot infer the token grid of a checkpoint with {n_tokens} patch "
                f"positions and {fshape}-bin patches; pass source_grid=(f, t)"
            )
        grid = (rows, n_tokens // rows)
    if grid[0] * grid[1] != n_tokens:
        raise ValueError(
            f"source grid {grid} does not match the checkpoint's {n_tokens} "
            "positional embeddings"
        )
    return grid


def load_official(model, source, source_grid=None, pos_mode="ssast"):
    """Loads an official SSAST/AST checkpoint into a model of this project.

    Arguments
    ---------
    model : torch.nn.Module
        A :class:`craft_modules.models.craft.CraftClassifier` (any fusion) or
        :class:`craft_modules.models.craft.CraftPretrainer` with the checkpoint's
        model size and patch shape.
    source : str or dict
        Path of the ``.pth`` file, or its state dict.
    source_grid : tuple of int, optional
        ``(f, t)`` of the checkpoint, for fine-tuned checkpoints whose grid
        cannot be inferred (see :func:`official_grid`).
    pos_mode : str
        Positional embedding resizing (see
        :func:`craft_modules.weights.transfer.resize_pos_embed`).

    Returns
    -------
    LoadReport
        ``loaded``, ``resized``; ``initialised`` lists the model's keys the
        official model has no counterpart for (waveform stream, a head of
        another size); ``unexpected`` the official keys left unused by design
        (timm heads, pretraining heads when loading into a classifier).

    Example
    -------
    >>> from craft_modules.models.craft import CraftClassifier
    >>> donor = CraftClassifier(5, fusion="ast", model_size="tiny", depth=1, target_frames=128)
    >>> official = {"module.v." + k.replace("spec_embed.proj", "patch_embed.proj")
    ...             .replace("spec_embed.", "").replace("encoder.", ""): v
    ...             for k, v in donor.state_dict().items()
    ...             if k.startswith(("spec_embed", "encoder")) and not k.endswith("grid")}
    >>> clf = CraftClassifier(3, fusion="ast", model_size="tiny", depth=1, target_frames=64)
    >>> report = load_official(clf, official)
    >>> report.resized, len(report.loaded)
    (['spec_embed.pos_embed'], 18)
    """
    if not isinstance(source, dict):
        source = load_state_dict_file(str(source))
    state = strip_module_prefix(source)
    target = model.state_dict()
    unknown, no_place, mapped, report = [], [], {}, LoadReport()
    for key, value in state.items():
        try:
            ours = official_to_craft_key(key)
        except KeyError:
            unknown.append(key)
            continue
        if ours is None:
            report.unexpected.append(key)
        elif ours in target:
            mapped[ours] = (key, value)
        elif key.startswith(PRETRAINING_HEADS) and "mlp_head.0.weight" in target:
            report.unexpected.append(key)  # pretraining heads, classifier target
        elif key.startswith("mlp_head.") and "mlp_head.0.weight" not in target:
            report.unexpected.append(key)  # a fine-tuned head, pretraining target
        else:
            no_place.append(key)
    if unknown:
        raise KeyError(
            "keys that are not official SSAST/AST keys: " + ", ".join(sorted(unknown))
        )
    if no_place:
        raise KeyError(
            "official keys this model has no place for (other depth or method?): "
            + ", ".join(sorted(no_place))
        )
    grid = official_grid(state, source_grid)
    updates, missing, mismatched = {}, [], []
    for key, value in target.items():
        if key.endswith(".grid"):
            continue
        if key not in mapped:
            if key.startswith(NEW_IN_CRAFT):
                report.initialised.append(key)
            elif key.startswith("mlp_head.") or key.startswith(PRETRAINING_HEADS):
                report.initialised.append(key)  # head absent from this checkpoint
            else:
                missing.append(key)
            continue
        official_key, tensor = mapped[key]
        if key == "spec_embed.pos_embed" and tensor.shape != value.shape:
            updates[key] = resize_pos_embed(
                tensor, grid, target["spec_embed.grid"].tolist(), mode=pos_mode
            )
            report.resized.append(key)
        elif tensor.shape != value.shape:
            if key.startswith("mlp_head."):
                report.initialised.append(key)  # a new label set: new head
            else:
                mismatched.append(
                    f"{official_key} {tuple(tensor.shape)} vs {key} {tuple(value.shape)}"
                )
        else:
            updates[key] = tensor.to(value.dtype)
            report.loaded.append(key)
    if missing:
        raise KeyError(
            "model keys missing from the official checkpoint: " + ", ".join(missing)
        )
    if mismatched:
        raise ValueError(
            "shape mismatch (other model size or patch shape?): "
            + "; ".join(mismatched)
        )
    model.load_state_dict(updates, strict=False)
    report.unexpected.sort()
    logger.info("Official checkpoint: %s", report)
    return report


def is_official_state_dict(state):
    """Whether a state dict looks like an official SSAST/AST one (``v.*`` keys).

    Arguments
    ---------
    state : dict
        A state dict.

    Returns
    -------
    bool

    Example
    -------
    >>> is_official_state_dict({"module.v.pos_embed": torch.zeros(1)})
    True
    >>> is_official_state_dict({"encoder.norm.weight": torch.zeros(1)})
    False
    """
    return any(k.split("module.", 1)[-1].startswith("v.") for k in state)


def initialise_model(model, path, init_from="", allow_missing=(), **streams):
    """The recipes' ``pretrained_path`` / ``init_from`` switch (see :func:`initialise`).

    Arguments
    ---------
    model : torch.nn.Module
        The model to initialise.
    path : str
        ``pretrained_path``: a run of this project (folder or file) or an
        official checkpoint file.
    init_from : str
        ``""`` (a pretraining or fine-tuning run of this project), ``ssast``
        or ``ast`` (official checkpoint files).
    allow_missing : list of str
        Modules a run of this project may lack (see
        :func:`craft_modules.weights.transfer.load_pretrained`); official
        checkpoints have their own rules (:func:`load_official`).
    **streams : dict
        ``stream_checkpoints`` / ``neuralogram_checkpoint`` of a diverse model.

    Returns
    -------
    LoadReport or None
        None when no source is given.
    """
    from craft_modules.weights.loading import initialise

    return initialise(model, path, init_from, allow_missing=allow_missing, **streams)
