"""A trained run as a self-contained SpeechBrain model folder (``craft-export``).

:func:`export_model` turns a recipe's run folder into the folder layout of
SpeechBrain's pretrained models (for instance ``speechbrain/urbansound8k_ecapa``
on the Hugging Face hub), which
:meth:`speechbrain.inference.interfaces.Pretrained.from_hparams` loads:

* ``hyperparams.yaml``: the model's constructor (``model: !new:...``), what
  inference needs (``sample_rate``, ``clip_duration``, ``labels``,
  ``multilabel``, ``embedding_only``), ``modules`` and a ``pretrainer``
  (:class:`speechbrain.utils.parameter_transfer.Pretrainer`) that names no
  path: its ``model`` loadable is read from ``<source>/model.ckpt``, the
  Pretrainer's default, so the folder loads from wherever it lies (a local
  folder, or a model hub repository holding these files);
* ``model.ckpt``: the chosen weights (the run's weight average, its best or
  last checkpoint, as :meth:`AudioTagger.from_run` chooses them) as one
  state dict;
* ``label_encoder.txt``: the label names in
  :class:`speechbrain.dataio.encoder.CategoricalEncoder`'s format (the
  ``label_encoder`` entry of ``hyperparams.yaml`` holds the same encoder);
* ``README.md``: a model card (labels, sample rate, clip length, model,
  how to load it).

Nothing in it names a file outside the folder. A pretraining run exports
its backbone as an embedding model (scene and timestamp embeddings, no
labels, no ``label_encoder.txt``), and says so in ``hyperparams.yaml``
(``embedding_only: true``) and the model card.

The folder is written under a temporary name next to ``out_dir``, loaded
back and compared with the run's weights, and only then renamed to
``out_dir``: a failed export leaves nothing behind.

Usage::

    craft-export results/ESC50/craft/1986 models/esc50-craft
    AudioTagger.from_hparams(source="models/esc50-craft")

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import io
import os
import shutil
import tempfile

import ruamel.yaml
import torch
from speechbrain.dataio.encoder import CategoricalEncoder

from craft_modules.inference.tagger import (
    AudioTagger,
    embedding_model_arguments,
    load_inference_hparams,
    load_run_hparams,
)
from craft_modules.weights.legacy_paths import drop_loading_arguments
from craft_modules.weights.run_folder import INFERENCE_YAML, model_entry

#: The files of an exported model folder.
HPARAMS_FILE = "hyperparams.yaml"
MODEL_FILE = "model.ckpt"
LABEL_ENCODER_FILE = "label_encoder.txt"
MODEL_CARD = "README.md"


class ExportError(ValueError):
    """An export that cannot be done as asked; the message says why."""


def label_encoder_from_names(labels):
    """A CategoricalEncoder mapping ``labels[i]`` to ``i``.

    Arguments
    ---------
    labels : list of str
        Label names in the model's output order (unique).

    Returns
    -------
    speechbrain.dataio.encoder.CategoricalEncoder

    Example
    -------
    >>> encoder = label_encoder_from_names(["dog", "rain"])
    >>> encoder.encode_label("rain"), encoder.decode_ndim([0, 1])
    (1, ['dog', 'rain'])
    """
    encoder = CategoricalEncoder()
    for label in labels:
        if label in encoder.lab2ind:
            raise ExportError(
                f"label {label!r} appears twice: label names must be unique"
            )
        encoder.add_label(label)
    encoder.expect_len(len(labels))
    return encoder


def _yaml_dump(tree):
    out = io.StringIO()
    ruamel.yaml.YAML().dump(tree, out)
    return out.getvalue()


def _model_yaml(run_folder, model):
    """The ``model: !new:...`` entry rebuilding the model an export holds.

    A classifier's entry is the run's own (``inference.yaml``, else its
    ``hyperparams.yaml`` without weight-loading arguments); a pretraining
    run's is the embedding classifier built from its backbone.
    """
    if hasattr(model, "mask_patch"):  # a pretraining run: its embedding model
        arguments = ruamel.yaml.comments.CommentedMap(embedding_model_arguments(model))
        arguments.yaml_set_ctag(
            ruamel.yaml.Tag(suffix="!new:craft_modules.models.craft.CraftClassifier")
        )
        return _yaml_dump({"model": arguments})
    path = os.path.join(run_folder, INFERENCE_YAML)
    if not os.path.isfile(path):
        path = os.path.join(run_folder, "hyperparams.yaml")
    with open(path, encoding="utf-8") as fin:
        text = fin.read()
    if path.endswith("hyperparams.yaml"):
        text = drop_loading_arguments(text)
    return model_entry(text)


def _run_model(run_folder):
    """The run's model as its YAML builds it (untrained): the architecture."""
    if os.path.isfile(os.path.join(run_folder, INFERENCE_YAML)):
        return load_inference_hparams(run_folder)["model"]
    return load_run_hparams(run_folder)["model"]


def hyperparams_text(tagger, model_yaml):
    """The ``hyperparams.yaml`` of an exported model folder.

    Arguments
    ---------
    tagger : AudioTagger
        The loaded run.
    model_yaml : str
        Its ``model: !new:...`` entry.

    Returns
    -------
    str
    """
    embedding_only = tagger.embedding_only
    labels = [] if embedding_only else tagger.labels
    settings = {
        "sample_rate": tagger.sample_rate,
        "clip_duration": float(tagger.hparams.clip_duration),
        "multilabel": bool(tagger.hparams.multilabel),
        "embedding_only": embedding_only,
        "labels": labels,
        "checkpoint": str(tagger.hparams.checkpoint),
    }
    header = [
        "# CRAFT for SpeechBrain: an inference model folder (written by craft-export).",
        "#   from craft_modules.inference.tagger import AudioTagger",
        '#   tagger = AudioTagger.from_hparams(source="<this folder>")',
        "# Every file it reads is in this folder: model.ckpt holds the weights.",
    ]
    if embedding_only:
        header.append(
            "# An embedding model (a pretraining run's backbone): scene and "
            "timestamp embeddings, no labels."
        )
    flow = ruamel.yaml.YAML()
    flow.default_flow_style = None
    out = io.StringIO()
    flow.dump(settings, out)
    lines = header + [out.getvalue().rstrip("\n"), "", model_yaml.rstrip("\n"), ""]
    if not embedding_only:
        lines += [
            "# The same encoder as label_encoder.txt (CategoricalEncoder format).",
            "label_encoder: !apply:craft_modules.inference.export.label_encoder_from_names",
            "    - !ref <labels>",
            "",
        ]
    lines += [
        "modules:",
        "    model: !ref <model>",
        "",
        "# No paths: the Pretrainer reads <source>/model.ckpt, where from_hparams",
        "# found this file (a local folder or a model hub repository).",
        "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer",
        "    loadables:",
        "        model: !ref <model>",
        "    custom_hooks:",
        "        model: !name:craft_modules.weights.run_folder.load_model_weights",
        "",
    ]
    return "\n".join(lines)


def model_card(tagger, model_yaml, name):
    """The ``README.md`` of an exported model folder.

    Arguments
    ---------
    tagger : AudioTagger
        The loaded run.
    model_yaml : str
        Its ``model: !new:...`` entry.
    name : str
        The folder's name.

    Returns
    -------
    str
    """
    model = tagger.mods.model
    n_params = sum(p.numel() for p in model.parameters())
    task = "feature-extraction" if tagger.embedding_only else "audio-classification"
    lines = [
        "---",
        "library_name: speechbrain",
        f"pipeline_tag: {task}",
        "tags: [audio, speechbrain, craft]",
        "---",
        "",
        f"# {name}",
        "",
    ]
    if tagger.embedding_only:
        lines += [
            "An **embedding model**: the backbone of a CRAFT for SpeechBrain "
            "pretraining run. It gives scene embeddings (one vector per file) "
            "and timestamp embeddings; it has **no labels** (its head is "
            "untrained; fine-tune it to tag audio).",
        ]
    else:
        kind = "multi-label (sigmoid)" if tagger.hparams.multilabel else "softmax"
        lines += [
            f"An audio tagger trained with CRAFT for SpeechBrain: {len(tagger.labels)} "
            f"labels, {kind} scores.",
        ]
    lines += [
        "",
        f"- Model: `{type(model).__module__}.{type(model).__name__}`, "
        f"{n_params / 1e6:.2f} M parameters",
        f"- Weights: {tagger.hparams.checkpoint} of the training run",
        f"- Input: mono audio at {tagger.sample_rate} Hz, clips of "
        f"{float(tagger.hparams.clip_duration):g} s (longer files are tagged "
        "window by window; files of any rate and channel count are mixed down "
        "and resampled)",
    ]
    if not tagger.embedding_only:
        lines.append(
            f"- Labels (output order, also in `{LABEL_ENCODER_FILE}`): "
            + ", ".join(f"`{label}`" for label in tagger.labels)
        )
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        "pip install craft-modules  # CRAFT for SpeechBrain",
    ]
    if tagger.embedding_only:
        lines.append(
            f"craft-embed audio.wav --model {name} --output-dir emb --timestamps"
        )
    else:
        lines.append(f"craft-tag audio.wav --model {name} --top-k 5")
    lines += [
        "```",
        "",
        "```python",
        "from craft_modules.inference.tagger import AudioTagger",
        "",
        f'tagger = AudioTagger.from_hparams(source="{name}")',
    ]
    if not tagger.embedding_only:
        lines.append('tagger.tag_files(["audio.wav"], top_k=5)')
    lines += [
        "scene, frames, times_ms = tagger.embeddings(wav, sample_rate)",
        "```",
        "",
        "## Files",
        "",
        f"- `{HPARAMS_FILE}`: the model and its settings, with a SpeechBrain "
        f"`Pretrainer` that loads `{MODEL_FILE}` from the folder",
        f"- `{MODEL_FILE}`: the weights (a state dict)",
    ]
    if not tagger.embedding_only:
        lines.append(
            f"- `{LABEL_ENCODER_FILE}`: the labels "
            "(`speechbrain.dataio.encoder.CategoricalEncoder.load`)"
        )
    lines += ["", "## Architecture", "", "```yaml", model_yaml.rstrip("\n"), "```", ""]
    return "\n".join(lines)


def _check_target(out_dir, run_folder, force):
    """Refuses an ``out_dir`` that is a file, holds files (unless ``force``) or the run."""
    if not os.path.exists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise ExportError(f"{out_dir!r} exists and is not a folder")
    if not os.listdir(out_dir):
        return
    if not force:
        raise ExportError(
            f"{out_dir!r} is not empty: choose another folder or replace it with --force"
        )
    run = os.path.realpath(run_folder)
    if os.path.commonpath([run, os.path.realpath(out_dir)]) == os.path.realpath(
        out_dir
    ):
        raise ExportError(f"{out_dir!r} holds the run folder itself: not replacing it")


def _write_files(folder, tagger, model_yaml, name):
    """Writes the model folder's files into ``folder``."""
    state = {
        k: v.detach().cpu().clone() for k, v in tagger.mods.model.state_dict().items()
    }
    torch.save(state, os.path.join(folder, MODEL_FILE))
    if not tagger.embedding_only:
        label_encoder_from_names(tagger.labels).save(
            os.path.join(folder, LABEL_ENCODER_FILE)
        )
    files = {
        HPARAMS_FILE: hyperparams_text(tagger, model_yaml),
        MODEL_CARD: model_card(tagger, model_yaml, name),
    }
    for filename, text in files.items():
        with open(os.path.join(folder, filename), "w", encoding="utf-8") as fout:
            fout.write(text)
    return state


def _check_exported(folder, tagger, state):
    """Loads the written folder back: the same weights, labels and settings."""
    loaded = AudioTagger.from_hparams(source=folder)
    mine = loaded.mods.model.state_dict()
    if mine.keys() != state.keys() or not all(
        torch.equal(mine[k].cpu(), v) for k, v in state.items()
    ):
        raise ExportError("the exported folder does not rebuild the run's weights")
    if loaded.labels != tagger.labels or loaded.sample_rate != tagger.sample_rate:
        raise ExportError("the exported folder does not rebuild the run's settings")
    if not tagger.embedding_only:
        encoder = CategoricalEncoder()
        encoder.load(os.path.join(folder, LABEL_ENCODER_FILE))
        encoder.expect_len(len(tagger.labels))
        if encoder.decode_ndim(list(range(len(encoder)))) != tagger.labels:
            raise ExportError(f"{LABEL_ENCODER_FILE} does not give the run's labels")


def export_model(run_folder, out_dir, fold=None, checkpoint="auto", force=False):
    """Writes a run as a self-contained SpeechBrain model folder (see the module docstring).

    Arguments
    ---------
    run_folder : str
        A recipe's output folder (or one ``fold_N``).
    out_dir : str
        The model folder to write; it must not exist or be empty, unless
        ``force`` (then it is replaced).
    fold : int, optional
        Fold of an ESC-50 run (default: the lowest).
    checkpoint : str
        ``auto``, ``best``, ``last`` or ``averaged`` (see
        :meth:`AudioTagger.from_run`).
    force : bool
        Replace a non-empty ``out_dir``.

    Returns
    -------
    dict
        ``folder`` (the path written), ``labels`` (empty for an embedding
        model), ``embedding_only``, ``checkpoint`` (which weights) and
        ``files``.

    Raises
    ------
    RunFolderError
        If ``run_folder`` is not a run with a checkpoint.
    ExportError
        If ``out_dir`` cannot be written as asked, or the written folder
        does not load back the run's model.
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    tagger = AudioTagger.from_run(run_folder, checkpoint=checkpoint, fold=fold)
    experiment = tagger.hparams.run_folder
    _check_target(out_dir, experiment, force)
    model_yaml = _model_yaml(experiment, _run_model(experiment))
    parent, name = os.path.split(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{name}.export-")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp's folder is private
        state = _write_files(staging, tagger, model_yaml, name)
        _check_exported(staging, tagger, state)
        _replace_folder(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {
        "folder": out_dir,
        "labels": [] if tagger.embedding_only else tagger.labels,
        "embedding_only": tagger.embedding_only,
        "checkpoint": str(tagger.hparams.checkpoint),
        "files": sorted(os.listdir(out_dir)),
    }


def _replace_folder(staging, out_dir):
    """Renames ``staging`` to ``out_dir``, replacing an existing folder."""
    if not (os.path.isdir(out_dir) and os.listdir(out_dir)):
        os.replace(staging, out_dir)  # an empty folder is replaced atomically
        return
    old = staging + ".old"
    os.rename(out_dir, old)
    try:
        os.rename(staging, out_dir)
    except BaseException:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)
