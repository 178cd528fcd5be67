"""Initialising a fine-tuning model from a pretraining checkpoint.

A :class:`craft_modules.models.craft.CraftPretrainer` and a
:class:`craft_modules.models.craft.CraftClassifier` share the parameter names of
their backbone (``encoder.*``, ``spec_embed.*``, ``msae.*``, ``wav_embed.*``),
so transfer is by name. Two things differ between the stages:

* the token grid: pretraining uses non-overlapping 16x16 patches (8 x 64 on
  10 s), fine-tuning a stride of 10 and maybe another clip length (12 x 101 on
  10 s, 12 x 50 on 5 s). The patch convolution keeps its weights (only its
  stride changes, which is not a parameter); the positional embedding is
  resized on the ``(freq, time)`` grid: centre crop along an axis that shrinks,
  bilinear interpolation along one that grows (SSAST's rule). SSAST's own
  frequency crop has a bug (it crops ``t_dim`` rows; ``ASTModel.__init__`` of YuanGongND/ssast,
  ``src/models/ast_models.py``)
  that crashes whenever the frequency axis shrinks; here it crops ``f_dim``.
  ``mode="bilinear"`` interpolates both axes instead.
* the heads: pretraining heads (masked-patch predictors, projection heads,
  mask embeddings) are dropped and the classifier's head and bottlenecks are
  new. Every key that is not transferred is listed in the returned
  :class:`LoadReport` and logged, so nothing is dropped silently.

A backbone module the model needs and the checkpoint lacks (``spec_embed``
of a WaPT run loaded into an AST or SWaB classifier, ``msae``/``wav_embed``
of an SSAST run loaded into SWaB) is an error naming the checkpoint and the
modules, unless the caller lists them in ``allow_missing`` (a recipe's
``--allow_missing=[spec_embed]``): they then keep their random
initialisation, as for the SSAST-SWaB row of Table 3 of the CRAFT paper.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import glob
import os
from dataclasses import dataclass, field

import torch
import yaml
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

#: Parameter prefixes that pretraining and fine-tuning models share.
BACKBONE_PREFIXES = ("encoder.", "spec_embed.", "msae.", "wav_embed.")


def resize_pos_embed(pos_embed, src_grid, dst_grid, n_class_tokens=2, mode="ssast"):
    """Resizes a positional embedding from one token grid to another.

    Arguments
    ---------
    pos_embed : torch.Tensor
        ``(1, n_class_tokens + f * t, D)``, frequency-major patch order.
    src_grid : tuple of int
        ``(f, t)`` of ``pos_embed``.
    dst_grid : tuple of int
        The wanted ``(f, t)``.
    n_class_tokens : int
        Leading class-token positions, copied unchanged.
    mode : str
        ``ssast``: centre crop along a shrinking axis, bilinear along a growing
        one (time first, then frequency); ``bilinear``: interpolate both axes.

    Returns
    -------
    torch.Tensor
        ``(1, n_class_tokens + f' * t', D)``.

    Example
    -------
    >>> pos = torch.randn(1, 2 + 8 * 64, 16)
    >>> resize_pos_embed(pos, (8, 64), (12, 50)).shape
    torch.Size([1, 602, 16])
    """
    if mode not in ("ssast", "bilinear"):
        raise ValueError(f"mode must be 'ssast' or 'bilinear', got {mode!r}")
    (src_f, src_t), (dst_f, dst_t) = tuple(src_grid), tuple(dst_grid)
    dim = pos_embed.shape[-1]
    if pos_embed.shape[1] != n_class_tokens + src_f * src_t:
        raise ValueError(
            f"positional embedding of {pos_embed.shape[1]} positions does not match "
            f"a {src_f}x{src_t} grid with {n_class_tokens} class tokens"
        )
    cls, grid = pos_embed[:, :n_class_tokens], pos_embed[:, n_class_tokens:]
    grid = grid.reshape(1, src_f, src_t, dim).permute(0, 3, 1, 2)
    grid = _resize_axis(grid, dst_t, axis=3, mode=mode)
    grid = _resize_axis(grid, dst_f, axis=2, mode=mode)
    grid = grid.permute(0, 2, 3, 1).reshape(1, dst_f * dst_t, dim)
    return torch.cat([cls, grid], dim=1)


def _resize_axis(grid, size, axis, mode):
    """Centre-crops or bilinearly resizes ``grid`` ``(1, D, F, T)`` along one axis."""
    current = grid.shape[axis]
    if current == size:
        return grid
    if mode == "ssast" and size < current:
        start = current // 2 - size // 2
        return grid.narrow(axis, start, size)
    out_size = list(grid.shape[2:])
    out_size[axis - 2] = size
    return torch.nn.functional.interpolate(
        grid.float(), size=tuple(out_size), mode="bilinear", align_corners=False
    ).to(grid.dtype)


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did with every key.

    Arguments
    ---------
    loaded : list
        Target keys copied from the checkpoint.
    resized : list
        Positional embeddings resized to the target grid.
    missing : list
        Backbone keys of the target with no counterpart in the checkpoint
        (they keep their random initialisation).
    initialised : list
        Target keys outside the backbone (heads, bottlenecks): always new.
    unexpected : list
        Checkpoint keys the target has no use for (pretraining heads...).
    """

    loaded: list = field(default_factory=list)
    resized: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    initialised: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)

    def __str__(self):
        lines = [f"loaded {len(self.loaded)} tensors from the checkpoint"]
        for name in ("resized", "missing", "initialised", "unexpected"):
            keys = getattr(self, name)
            if keys:
                lines.append(f"{name} ({len(keys)}): {', '.join(keys)}")
        return "\n".join(lines)


def _checkpoint_meta(folder):
    """The CKPT.yaml metadata of a SpeechBrain checkpoint folder (None if absent)."""
    meta_file = os.path.join(folder, "CKPT.yaml")
    if not os.path.isfile(meta_file):
        return None  # an interrupted or unfinished save
    with open(meta_file, encoding="utf-8") as fin:
        return yaml.safe_load(fin) or {}


def find_checkpoint_file(path, name="model", max_key=None):
    """Finds the saved weights of ``name`` from a file, a checkpoint folder or a run folder.

    Accepts a ``.ckpt``/``.pt``/``.pth`` file; a SpeechBrain checkpoint folder
    (``CKPT+...`` holding ``<name>.ckpt``); a save folder holding ``CKPT+*``
    folders; or a recipe output folder with a ``save`` sub-folder. Among
    several complete checkpoints (with a ``CKPT.yaml``) the most recent is
    used, or with ``max_key`` the one with the highest value of the first of
    its keys that the checkpoints record (e.g. ``("mAP", "accuracy")``: the
    best of a fine-tuning run rather than its last epoch).

    Arguments
    ---------
    path : str
        Where to look.
    name : str
        Recoverable name (the key of the module in the recipe's checkpointer).
    max_key : str or tuple of str, optional
        Metadata key(s) to maximise.

    Returns
    -------
    str
        Path of the weights file.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> for i, acc in enumerate([0.7, 0.5]):
    ...     ckpt = tmp / "save" / f"CKPT+2026-01-01+00-00-0{i}+00"
    ...     os.makedirs(ckpt)
    ...     torch.save({}, ckpt / "model.ckpt")
    ...     _ = (ckpt / "CKPT.yaml").write_text(f"accuracy: {acc}")
    >>> find_checkpoint_file(str(tmp)).endswith("0-01+00/model.ckpt")
    True
    >>> find_checkpoint_file(str(tmp), max_key="accuracy").endswith("0-00+00/model.ckpt")
    True
    """
    path = str(path)
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    candidate = os.path.join(path, f"{name}.ckpt")
    if os.path.isfile(candidate):
        return candidate
    keys = (max_key,) if isinstance(max_key, str) else tuple(max_key or ())
    for folder in (path, os.path.join(path, "save")):
        found = []
        for weights in glob.glob(os.path.join(folder, "CKPT+*", f"{name}.ckpt")):
            meta = _checkpoint_meta(os.path.dirname(weights))
            if meta is not None:
                found.append((os.path.getmtime(weights), weights, meta))
        if not found:
            continue
        for key in keys:
            scored = [(m[key], t, w) for t, w, m in found if key in m]
            if scored:
                return max(scored)[2]
        return max(found)[1]
    raise FileNotFoundError(
        f"no '{name}.ckpt' in {path!r}, its CKPT+* folders or its save/ folder"
    )


def strip_module_prefix(state):
    """Removes the ``module.`` prefix DataParallel/DDP put on every key.

    Example
    -------
    >>> list(strip_module_prefix({"module.a": 1, "b": 2}))
    ['a', 'b']
    """
    return {
        k[len("module.") :] if k.startswith("module.") else k: v
        for k, v in state.items()
    }


def load_state_dict_file(path):
    """Loads a state dict on CPU, removing DataParallel/DDP ``module.`` prefixes.

    Arguments
    ---------
    path : str
        A ``torch.save`` file holding a state dict (or ``{"state_dict": ...}``).

    Returns
    -------
    dict
        The state dict.

    Example
    -------
    >>> tmp = getfixture("tmp_path") / "w.pt"
    >>> torch.save({"module.a": torch.zeros(1)}, tmp)
    >>> list(load_state_dict_file(tmp))
    ['a']
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"checkpoint {path} could not be read: {err}") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(
            f"checkpoint {path} holds a {type(state).__name__}, not a state dict"
        )
    return strip_module_prefix(state)


def missing_modules(keys):
    """The module prefixes of missing keys, in order: ``encoder.blocks.3``, ``spec_embed``...

    A key of the model's own backbone modules (``spec_embed.proj.weight``) is
    named by its module (``spec_embed``); a key of the encoder by its block
    (``encoder.blocks.3``) or its other submodule (``encoder.norm``), so a
    checkpoint of a shallower encoder names the blocks it lacks.

    Example
    -------
    >>> missing_modules(["spec_embed.proj.weight", "spec_embed.pos_embed", "encoder.blocks.3.mlp.fc1.bias"])
    ['spec_embed', 'encoder.blocks.3']
    """
    names = []
    for key in keys:
        parts = key.split(".")
        if parts[0] != "encoder":
            depth = 1
        elif parts[1:2] == ["blocks"]:
            depth = 3
        else:
            depth = 2
        name = ".".join(parts[: max(1, min(depth, len(parts) - 1))])
        if name not in names:
            names.append(name)
    return names


def _allowed(key, allow_missing):
    return any(key == p or key.startswith(p + ".") for p in allow_missing)


def load_pretrained(model, source, pos_mode="ssast", strict=False, allow_missing=()):
    """Initialises a classifier's backbone from a pretraining checkpoint.

    Arguments
    ---------
    model : torch.nn.Module
        The target (e.g. a :class:`craft_modules.models.craft.CraftClassifier`).
    source : str or dict
        A state dict, or a path understood by :func:`find_checkpoint_file`.
    pos_mode : str
        Positional embedding resizing (see :func:`resize_pos_embed`).
    strict : bool
        Raise if any backbone key of the target is missing from the
        checkpoint, even one ``allow_missing`` covers.
    allow_missing : list of str
        Module prefixes (``spec_embed``, ``msae``, ``wav_embed``,
        ``encoder.blocks.11``...) the checkpoint may lack: their keys keep
        their initialisation and are reported (e.g. the waveform stream when
        fine-tuning SWaB from an SSAST run: ``["msae", "wav_embed"]``). Any
        other missing backbone key is an error naming its module.

    Returns
    -------
    LoadReport
        What was loaded, resized, missing, initialised and unused.

    Example
    -------
    >>> from craft_modules.models.craft import CraftPretrainer, CraftClassifier
    >>> pre = CraftPretrainer(method="ssast", model_size="tiny", depth=1, target_frames=64, mask_patch=10)
    >>> clf = CraftClassifier(3, fusion="ast", model_size="tiny", depth=1, target_frames=48)
    >>> report = load_pretrained(clf, pre.state_dict())
    >>> report.resized
    ['spec_embed.pos_embed']
    >>> swast = CraftClassifier(3, fusion="swast", model_size="tiny", depth=1, target_frames=48)
    >>> load_pretrained(swast, pre.state_dict())
    Traceback (most recent call last):
    ...
    ValueError: the checkpoint (a state dict) lacks modules this model needs: msae, wav_embed. To keep them randomly initialised, opt in with --allow_missing=[msae,wav_embed] (allow_missing=["msae", "wav_embed"])
    >>> load_pretrained(swast, pre.state_dict(), allow_missing=["msae", "wav_embed"]).missing[0]
    'msae.convs.0.weight'
    """
    allow_missing = [str(p).strip().rstrip(".") for p in (allow_missing or ())]
    name = "the checkpoint (a state dict)"
    if not isinstance(source, dict):
        path = find_checkpoint_file(source)
        name = f"checkpoint {path}"
        source = load_state_dict_file(path)
    source = strip_module_prefix(source)
    target = model.state_dict()
    report = LoadReport()
    updates = {}
    for key, value in target.items():
        if not key.startswith(BACKBONE_PREFIXES):
            report.initialised.append(key)
        elif key.endswith(".grid"):
            continue  # the target keeps its own grid
        elif key not in source:
            report.missing.append(key)
        elif key.endswith("pos_embed") and source[key].shape != value.shape:
            prefix = key[: -len("pos_embed")]
            src_grid = source.get(prefix + "grid")
            if src_grid is None:
                raise ValueError(
                    f"cannot resize {key}: the checkpoint has no {prefix}grid"
                )
            updates[key] = resize_pos_embed(
                source[key],
                src_grid.tolist(),
                target[prefix + "grid"].tolist(),
                mode=pos_mode,
            )
            report.resized.append(key)
        elif source[key].shape != value.shape:
            raise ValueError(
                f"shape mismatch for {key}: checkpoint {tuple(source[key].shape)}, "
                f"model {tuple(value.shape)} (different model size or MSAE scales?)"
            )
        else:
            updates[key] = source[key]
            report.loaded.append(key)
    report.unexpected = sorted(k for k in source if k not in target)
    if strict and report.missing:
        raise ValueError(f"checkpoint lacks backbone keys: {', '.join(report.missing)}")
    refused = missing_modules(
        k for k in report.missing if not _allowed(k, allow_missing)
    )
    if refused:
        quoted = ", ".join(f'"{m}"' for m in refused)
        raise ValueError(
            f"{name} lacks modules this model needs: {', '.join(refused)}. To keep "
            f"them randomly initialised, opt in with --allow_missing=[{','.join(refused)}] "
            f"(allow_missing=[{quoted}])"
        )
    model.load_state_dict(updates, strict=False)
    logger.info("Pretrained weights: %s", report)
    if report.missing:
        logger.warning(
            "Backbone keys not in the checkpoint (kept random): %s",
            ", ".join(report.missing),
        )
    return report
