"""Using a trained recipe run: tagging and embeddings for files or waveforms.

:class:`AudioTagger` loads a run folder written by a recipe
(``recipes/ESC50/train.py``, ``recipes/AudioSet/train.py`` ...): its
``inference.yaml`` (:mod:`craft_modules.weights.run_folder`, written by every
training run) rebuilds the model and gives the label names, its ``save/``
folder the weights (the weight average when the run used one, else the best
checkpoint by the run's metric). :meth:`AudioTagger.from_hparams` loads
``inference.yaml`` the SpeechBrain way (its ``pretrainer``), and so a model
folder written by ``craft-export`` (:mod:`craft_modules.inference.export`:
``hyperparams.yaml``, ``model.ckpt``, ``label_encoder.txt``);
:meth:`AudioTagger.from_run` also lets one choose the checkpoint, and loads
run folders older than ``inference.yaml`` from their ``hyperparams.yaml``;
:meth:`AudioTagger.from_folder` takes either kind of folder. It follows
SpeechBrain's inference interfaces
(:class:`speechbrain.inference.interfaces.Pretrained`: ``classify_batch``,
``classify_file``, ``encode_batch``) and adds what tagging needs:

* audio of any length, sample rate and channel count (files are mixed down
  and resampled); audio longer than the model's clip is cut into windows of
  one clip length (``window_hop`` apart), each tagged with its start and end
  time, plus a clip-level summary: the mean of the window scores for a
  single-label (softmax) model, their maximum for a multi-label (sigmoid)
  one, where an event anywhere in the file should count;
* scene embeddings (one vector per file: the windows' pooled embeddings,
  weighted by how much real audio each holds) and timestamp embeddings on a
  regular grid (``hop_ms``, 50 ms by default, the HEAR limit): the model's
  own time resolution (:meth:`CraftClassifier.time_embeddings`, 100 ms for
  stride-10 patches) linearly interpolated to the grid, with timestamps from
  0 up to, never past, the end of the audio; :meth:`AudioTagger.embeddings`
  gives both from one forward pass;
* many files at once (:meth:`AudioTagger.iter_tag_files`,
  :meth:`AudioTagger.iter_embed_files`): the windows of consecutive files
  share forward passes of ``batch_size`` windows, with the same results as
  one file at a time.

Usage::

    tagger = AudioTagger.from_run("results/ESC50/craft/1986")
    tagger.tag_files(["dog.wav"], top_k=3)
    # [{'file': 'dog.wav', 'duration': 5.0, 'labels': [{'label': 'dog', 'score': 0.91}, ...]}]

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import glob
import math
import os
import re

import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.fetching import FetchConfig
from speechbrain.utils.logger import get_logger

from craft_modules.data.audio import AudioLoadError, get_resampler, load_audio
from craft_modules.models.inputs import check_waveform_batch
from craft_modules.weights.legacy_paths import drop_loading_arguments, upgrade_paths
from craft_modules.weights.run_folder import (
    INFERENCE_YAML,
    PRETRAINING_LABELS,
    label_names,
)

logger = get_logger(__name__)

#: Top-level YAML entries a tagger must not build (they write files or reseed).
TRAINING_ONLY_KEYS = ("checkpointer", "train_logger", "__set_seed", "epoch_counter")


class RunFolderError(FileNotFoundError):
    """A run folder lacks what inference needs; the message says what."""


def is_model_folder(path):
    """Whether ``path`` is a model folder written by ``craft-export``.

    Such a folder holds ``hyperparams.yaml`` and ``model.ckpt`` and, unlike
    a run folder, no ``save/`` checkpoint folder
    (:mod:`craft_modules.inference.export`).

    Arguments
    ---------
    path : str
        A folder.

    Returns
    -------
    bool

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / "hyperparams.yaml").write_text("a: 1")
    >>> is_model_folder(folder)
    False
    >>> _ = (folder / "model.ckpt").write_bytes(b"")
    >>> is_model_folder(folder)
    True
    """
    path = os.fspath(path)
    return (
        os.path.isfile(os.path.join(path, "hyperparams.yaml"))
        and os.path.isfile(os.path.join(path, "model.ckpt"))
        and not os.path.isdir(os.path.join(path, "save"))
    )


def find_run_folder(path, fold=None):
    """The experiment folder (``hyperparams.yaml`` + ``save/``) of a run.

    Accepts the experiment folder itself or an ESC-50 output folder holding
    ``fold_N`` sub-folders (``fold`` picks one, else the lowest is used).

    Arguments
    ---------
    path : str
        Run folder.
    fold : int, optional
        Fold of a multi-fold run.

    Returns
    -------
    str

    Example
    -------
    >>> root = getfixture("tmp_path")
    >>> for f in (2, 1):
    ...     os.makedirs(root / f"fold_{f}" / "save")
    ...     _ = (root / f"fold_{f}" / "hyperparams.yaml").write_text("a: 1")
    >>> os.path.basename(find_run_folder(str(root)))
    'fold_1'
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise RunFolderError(f"run folder {path!r} does not exist")
    if fold is None and os.path.isfile(os.path.join(path, "hyperparams.yaml")):
        return path
    folds = sorted(
        (int(m.group(1)), os.path.join(path, name))
        for name in os.listdir(path)
        if (m := re.fullmatch(r"fold_(\d+)", name))
        and os.path.isfile(os.path.join(path, name, "hyperparams.yaml"))
    )
    if fold is not None:
        chosen = [p for f, p in folds if f == int(fold)]
        if not chosen:
            raise RunFolderError(f"{path!r} has no fold_{fold} with a hyperparams.yaml")
        return chosen[0]
    if folds:
        if len(folds) > 1:
            logger.info(
                "%s holds %d folds; using fold_%d", path, len(folds), folds[0][0]
            )
        return folds[0][1]
    raise RunFolderError(
        f"{path!r} is not a recipe run: no hyperparams.yaml (nor fold_N/hyperparams.yaml)"
    )


def _strip_training_entries(text):
    """Removes top-level YAML blocks of :data:`TRAINING_ONLY_KEYS`.

    A block that defines a YAML anchor (``&id``) is kept: later entries may
    refer to it.
    """
    blocks, current = [], []
    for line in text.splitlines(keepends=True):
        if re.match(r"^[^\s#][^:]*:", line) and current:
            blocks.append(current)
            current = []
        current.append(line)
    if current:
        blocks.append(current)
    kept = []
    for block in blocks:
        key = block[0].split(":", 1)[0].strip()
        if key in TRAINING_ONLY_KEYS and "&" not in "".join(block):
            continue
        kept.append("".join(block))
    return "".join(kept)


def load_run_hparams(run_folder):
    """Rebuilds a run's hyperparameters (model included) from its hyperparams.yaml.

    The route of run folders without an ``inference.yaml`` (trained before
    runs wrote one): module paths of the flat layout are upgraded and
    constructor arguments that used to load weights (the diverse model's
    ``stream_checkpoints``, a neuralogram's ``checkpoint_path``) are dropped,
    the run's own checkpoint holding every weight.

    Arguments
    ---------
    run_folder : str
        Experiment folder.

    Returns
    -------
    dict
    """
    path = os.path.join(run_folder, "hyperparams.yaml")
    with open(path, encoding="utf-8") as fin:
        text = drop_loading_arguments(
            upgrade_paths(_strip_training_entries(fin.read()))
        )
    try:
        hparams = load_hyperpyyaml(text)
    except Exception as err:
        raise ValueError(f"cannot rebuild the model from {path}: {err}") from err
    if "model" not in hparams:
        raise ValueError(f"{path} has no 'model' entry")
    return hparams


def embedding_model_from_pretrainer(pretrainer):
    """A :class:`CraftClassifier` carrying a pretraining model's backbone, for embeddings.

    The classifier has the pretrainer's encoder, feature settings, token grid
    (non-overlapping pretraining patches) and streams: ``ast`` for SSAST,
    ``swast`` (both streams through the shared encoder, independently) for
    the methods with a waveform stream. Its head is untrained: use it for
    embeddings (scene, timestamp, HEAR), not tags.

    Arguments
    ---------
    pretrainer : CraftPretrainer
        A pretraining model with its weights loaded.

    Returns
    -------
    CraftClassifier

    Example
    -------
    >>> from craft_modules.models.craft import CraftPretrainer
    >>> pre = CraftPretrainer(method="pswacl", model_size="tiny", depth=1,
    ...                       target_frames=64, mask_patch=4)
    >>> clf = embedding_model_from_pretrainer(pre)
    >>> features = clf.forward_features(torch.randn(2, 8000))
    >>> clf.fusion, clf.forward_head(features, pre_logits=True).shape
    ('swast', torch.Size([2, 384]))
    """
    from craft_modules.models.craft import CraftClassifier
    from craft_modules.weights.transfer import load_pretrained

    model = CraftClassifier(**embedding_model_arguments(pretrainer))
    report = load_pretrained(model, pretrainer.state_dict())
    if report.missing or report.resized:
        raise ValueError(f"the pretraining backbone did not transfer exactly: {report}")
    return model.eval()


def embedding_model_arguments(pretrainer):
    """The :class:`CraftClassifier` arguments of :func:`embedding_model_from_pretrainer`.

    Plain values (numbers, strings, lists), so an exported model folder's
    ``hyperparams.yaml`` can rebuild the embedding model
    (:mod:`craft_modules.inference.export`).

    Arguments
    ---------
    pretrainer : CraftPretrainer
        A pretraining model.

    Returns
    -------
    dict

    Example
    -------
    >>> from craft_modules.models.craft import CraftPretrainer
    >>> pre = CraftPretrainer(method="ssast", model_size="tiny", depth=1,
    ...                       target_frames=64, mask_patch=4)
    >>> args = embedding_model_arguments(pre)
    >>> args["n_classes"], args["fusion"], args["depth"], args["target_frames"]
    (1, 'ast', 1, 64)
    """
    if pretrainer.spec_embed is None:
        raise ValueError(
            f"a {pretrainer.method} pretraining run has no spectrogram stream to embed "
            "with; fine-tune it first"
        )
    encoder, fbank, grid = pretrainer.encoder, pretrainer.fbank, pretrainer.spec_embed
    options = dict(
        model_size="base",
        embed_dim=encoder.embed_dim,
        depth=encoder.depth,
        num_heads=encoder.num_heads,
        target_frames=fbank.target_frames,
        n_mels=fbank.n_mels,
        mean=fbank.mean,
        std=fbank.std,
        fshape=grid.fshape,
        tshape=grid.tshape,
        fstride=grid.fstride,
        tstride=grid.tstride,
    )
    if pretrainer.msae is not None:
        options.update(
            msae_kernels=list(pretrainer.msae.kernel_sizes),
            msae_activation=pretrainer.msae.activation,
            msae_stride=pretrainer.msae.conv_stride,
        )
    fusion = "ast" if pretrainer.wav_embed is None else "swast"
    return {"n_classes": 1, "fusion": fusion, **_plain_values(options)}


def _plain_values(options):
    """Tensors and tuples of ``options`` as floats and lists (YAML-friendly)."""
    plain = {}
    for key, value in options.items():
        if isinstance(value, torch.Tensor):
            value = value.tolist()
        elif isinstance(value, tuple):
            value = list(value)
        plain[key] = value
    return plain


def load_inference_hparams(run_folder):
    """Builds a run's ``inference.yaml`` (the model, untrained, and its settings).

    Arguments
    ---------
    run_folder : str
        Experiment folder holding ``inference.yaml``.

    Returns
    -------
    dict
        ``model``, ``labels``, ``sample_rate``, ``clip_duration``,
        ``multilabel``, ``metric``, ``weight_averaging``, ... (the
        ``pretrainer`` is built, not run).
    """
    path = os.path.join(run_folder, INFERENCE_YAML)
    with open(path, encoding="utf-8") as fin:
        try:
            return load_hyperpyyaml(fin, {"run_folder": os.path.abspath(run_folder)})
        except Exception as err:
            raise ValueError(f"cannot rebuild the model from {path}: {err}") from err


def _pretraining_embedder(model, settings):
    """A pretraining run's model turned into an embedding model, with its settings."""
    settings = {
        **settings,
        "labels": list(PRETRAINING_LABELS),
        "multilabel": True,
        "embedding_only": True,
    }
    settings["checkpoint"] = (
        settings.get("checkpoint", "") + ", pretraining backbone (embeddings only)"
    )
    return embedding_model_from_pretrainer(model), settings


def _choose_checkpoint(save_folder, recoverables, choice, metric, averager):
    """Recovers ``recoverables`` from the chosen checkpoint; returns a description."""
    checkpointer = Checkpointer(save_folder, recoverables=recoverables)
    checkpoints = checkpointer.list_checkpoints()
    if not checkpoints:
        raise RunFolderError(f"no checkpoint in {save_folder!r} (CKPT+* folders)")
    if choice in ("auto", "averaged") and averager is not None:
        checkpointer.recover_if_possible()  # the average lives in the newest one
        if averager.count:
            return f"average of {averager.count} epochs"
        if choice == "averaged":
            raise RunFolderError(f"{save_folder!r} holds no weight average")
    if choice == "averaged":
        raise RunFolderError("the run did not use weight averaging")
    if choice not in ("auto", "best", "last"):
        raise ValueError(
            f"checkpoint must be auto, best, last or averaged, got {choice!r}"
        )
    # Intra-epoch checkpoints carry no metric; the best is among the others.
    has_metric = bool(metric) and any(metric in c.meta for c in checkpoints)
    if choice == "best" and not has_metric:
        raise RunFolderError(
            f"no checkpoint in {save_folder!r} records {metric!r}: use checkpoint='last'"
        )
    if choice == "last" or not has_metric:
        checkpointer.recover_if_possible()
        return "most recent checkpoint"
    checkpointer.recover_if_possible(max_key=metric)
    return f"best checkpoint by {metric}"


class AudioTagger(Pretrained):
    """Tags audio and extracts embeddings with a trained recipe model.

    Arguments
    ---------
    modules : dict
        ``{"model": classifier}``; the model takes ``(wavs, lens)`` and
        has ``forward_features(wavs, lens)`` and ``forward_head(features,
        pre_logits=True)`` (the pooled embedding).
    hparams : dict
        ``sample_rate``, ``clip_duration``, ``labels`` (names), ``multilabel``
        (sigmoid scores, else softmax), optional ``window_hop`` (seconds,
        default one clip) and ``window_batch_size``.
    run_opts : dict, optional
        SpeechBrain run options (``device`` ...).

    Example
    -------
    >>> from craft_modules.models.craft import CraftClassifier
    >>> model = CraftClassifier(3, fusion="ast", model_size="tiny", depth=1, target_frames=100)
    >>> tagger = AudioTagger(
    ...     modules={"model": model},
    ...     hparams={"sample_rate": 16000, "clip_duration": 1.0,
    ...              "labels": ["a", "b", "c"], "multilabel": False},
    ...     run_opts={"device": "cpu"})
    >>> result = tagger.tag_waveform(torch.randn(2 * 44100), 44100, top_k=2)
    >>> len(result["labels"]), [w["start"] for w in result["windows"]]
    (2, [0.0, 1.0])
    """

    MODULES_NEEDED = ["model"]
    HPARAMS_NEEDED = ["sample_rate", "clip_duration", "labels", "multilabel"]

    @classmethod
    def from_run(
        cls, run_folder, device="cpu", checkpoint="auto", fold=None, **hparams
    ):
        """Loads a recipe run folder, choosing its checkpoint.

        The model and the label names come from the run's ``inference.yaml``
        (see :mod:`craft_modules.weights.run_folder`); a run folder older
        than that file is rebuilt from its ``hyperparams.yaml`` (module paths
        of the flat layout upgraded, see
        :mod:`craft_modules.weights.legacy_paths`). The weights are those of
        the checkpoint ``checkpoint`` names; with ``auto`` the same as
        :meth:`from_hparams`.

        Arguments
        ---------
        run_folder : str
            Output folder of a recipe (or one ``fold_N``).
        device : str
            ``cpu`` or ``cuda[:N]``.
        checkpoint : str
            ``auto`` (the weight average if the run made one, else the best
            checkpoint), ``best``, ``last`` or ``averaged``.
        fold : int, optional
            Fold of an ESC-50 run (default: the lowest).
        **hparams : dict
            Overrides, e.g. ``window_hop``.

        Returns
        -------
        AudioTagger
        """
        folder = find_run_folder(run_folder, fold)
        save_folder = os.path.join(folder, "save")
        if not glob.glob(os.path.join(save_folder, "CKPT+*")):
            raise RunFolderError(
                f"run folder {folder!r} has no checkpoint in {save_folder!r}"
            )
        if os.path.isfile(os.path.join(folder, INFERENCE_YAML)):
            run = load_inference_hparams(folder)
            averager = None
            if run.get("weight_averaging"):
                from craft_modules.training.averaging import WeightAverager

                averager = WeightAverager()
        else:  # a run folder older than inference.yaml
            run = load_run_hparams(folder)
            averager = (
                run.get("weight_averager") if run.get("use_weight_averaging") else None
            )
        model = run["model"]
        recoverables = {"model": model}
        if averager is not None:
            recoverables["averager"] = averager
        source = _choose_checkpoint(
            save_folder, recoverables, checkpoint, run.get("metric"), averager
        )
        if averager is not None and source.startswith("average"):
            averager.apply_to(model)
        pretraining = hasattr(model, "mask_patch")  # embeddings only
        if "labels" in run or pretraining:
            labels, multilabel = list(run.get("labels", [])), run.get("multilabel")
        else:
            labels = label_names(folder, run)
            multilabel = run.get("loss", "ce") == "bce"
        settings = {
            "sample_rate": int(run.get("sample_rate", 16000)),
            "clip_duration": float(run["clip_duration"]),
            "labels": labels,
            "multilabel": bool(multilabel),
            "run_folder": folder,
            "checkpoint": source,
        }
        if pretraining:
            model, settings = _pretraining_embedder(model, settings)
        cls._check_outputs(folder, model, settings["labels"])
        settings.update(hparams)
        logger.info("Loaded %s (%s)", folder, settings["checkpoint"])
        return cls(
            modules={"model": model}, hparams=settings, run_opts={"device": device}
        )

    @classmethod
    def from_hparams(
        cls,
        source,
        hparams_file=None,
        savedir=None,
        device="cpu",
        overrides=None,
        **kwargs,
    ):
        """Loads a run folder or an exported model folder the SpeechBrain way.

        :meth:`speechbrain.inference.interfaces.Pretrained.from_hparams`
        builds the model from the folder's file and its ``pretrainer`` loads
        the weights: for a run folder, its ``inference.yaml`` and the
        checkpoint the run chose (see :mod:`craft_modules.weights.run_folder`);
        for a folder written by ``craft-export``, its ``hyperparams.yaml``
        and ``model.ckpt`` (see :mod:`craft_modules.inference.export`).
        Only local folders are read (nothing is downloaded), and with the
        default ``savedir=None`` nothing is written: the files are used
        where they are.

        Arguments
        ---------
        source : str
            A run's experiment folder (with ``inference.yaml`` and
            ``save/``) or an exported model folder.
        hparams_file : str, optional
            The file in ``source`` to load (default: ``inference.yaml`` if
            there is one, else ``hyperparams.yaml`` of an exported folder).
        savedir : str, optional
            Where SpeechBrain should link the files (None: nowhere).
        device : str
            ``cpu`` or ``cuda[:N]`` (unless ``run_opts`` is given).
        overrides : dict, optional
            Overrides of the file's keys (a run folder's ``run_folder`` is
            set to ``source``).
        **kwargs : dict
            More arguments of SpeechBrain's ``from_hparams`` (``run_opts`` ...).

        Returns
        -------
        AudioTagger
        """
        folder = os.fspath(source)
        if not os.path.isdir(folder):
            raise RunFolderError(f"model folder {folder!r} does not exist")
        if hparams_file is None:
            hparams_file = INFERENCE_YAML
            if not os.path.isfile(os.path.join(folder, INFERENCE_YAML)):
                if is_model_folder(folder):
                    hparams_file = "hyperparams.yaml"
        if not os.path.isfile(os.path.join(folder, hparams_file)):
            raise RunFolderError(
                f"{folder!r} has no {hparams_file}: neither a run folder nor a "
                "craft-export model folder (runs trained before inference.yaml "
                "was written load with AudioTagger.from_run)"
            )
        overrides = dict(overrides or {})
        if hparams_file == INFERENCE_YAML:
            overrides.setdefault("run_folder", os.path.abspath(folder))
        kwargs.setdefault("run_opts", {"device": device})
        kwargs.setdefault("fetch_config", FetchConfig(allow_network=False))
        tagger = super().from_hparams(
            source=folder,
            hparams_file=hparams_file,
            savedir=savedir,
            overrides=overrides,
            **kwargs,
        )
        model = tagger.mods.model
        if hasattr(model, "mask_patch"):  # a pretraining run: embeddings only
            # Only the plain settings: the YAML's model, modules and pretrainer
            # would keep the whole pretrainer (its heads too) on the device.
            settings = {
                key: value
                for key, value in vars(tagger.hparams).items()
                if key not in ("model", "modules", "pretrainer")
                and not isinstance(value, torch.nn.Module)
            }
            model, settings = _pretraining_embedder(model, settings)
            del tagger
            return cls(
                modules={"model": model}, hparams=settings, run_opts=kwargs["run_opts"]
            )
        if getattr(tagger.hparams, "embedding_only", False):
            # An exported embedding model: the pretraining runs' placeholder label.
            tagger.hparams.labels = list(PRETRAINING_LABELS)
            tagger.hparams.multilabel = True
        cls._check_outputs(folder, model, tagger.labels)
        return tagger

    @classmethod
    def from_folder(cls, folder, device="cpu", checkpoint="auto", fold=None):
        """Loads a run folder (:meth:`from_run`) or an exported model folder.

        Arguments
        ---------
        folder : str
            A recipe's output folder (or one ``fold_N``), or a folder
            written by ``craft-export``.
        device : str
            ``cpu`` or ``cuda[:N]``.
        checkpoint : str
            Which weights of a run (see :meth:`from_run`); an exported
            folder holds one set, so only ``auto`` applies to it.
        fold : int, optional
            Fold of an ESC-50 run (not for an exported folder).

        Returns
        -------
        AudioTagger
        """
        if not is_model_folder(folder):
            return cls.from_run(folder, device=device, checkpoint=checkpoint, fold=fold)
        if checkpoint != "auto" or fold is not None:
            raise ValueError(
                f"{folder!r} is an exported model folder with one set of weights: "
                "--checkpoint and --fold apply to run folders only"
            )
        return cls.from_hparams(source=folder, device=device)

    @staticmethod
    def _check_outputs(folder, model, labels):
        """The model's output count must match the label names."""
        n_out = getattr(model, "n_classes", len(labels))
        if len(labels) != n_out:
            raise ValueError(
                f"{folder}: the model has {n_out} outputs but {len(labels)} label names"
            )

    # --- properties ---------------------------------------------------------
    @property
    def labels(self):
        """Label names in output order."""
        return list(self.hparams.labels)

    @property
    def embedding_only(self):
        """True for a pretraining run's model: embeddings, no labels to tag with."""
        return bool(getattr(self.hparams, "embedding_only", False))

    @property
    def sample_rate(self):
        """Sample rate the model expects."""
        return int(self.hparams.sample_rate)

    @property
    def clip_samples(self):
        """Samples of one model input (one window)."""
        return int(round(self.hparams.clip_duration * self.sample_rate))

    @property
    def model_device(self):
        """Where the model's weights are (they may have moved since loading)."""
        for tensor in self.mods.model.parameters():
            return tensor.device
        return torch.device(self.device)

    # --- audio ----------------------------------------------------------------
    def load_audio(self, path, savedir=None):
        """Reads a file as a mono float32 signal at the model's sample rate.

        Arguments
        ---------
        path : str
            Audio file.
        savedir : None
            Unused (kept for SpeechBrain's signature).

        Returns
        -------
        torch.Tensor
        """
        return load_audio(path, self.sample_rate)

    def _prepare(self, wav, sample_rate):
        """One signal, 1-D or ``(channels, samples)`` (mixed down), at the model's rate."""
        wav = torch.as_tensor(wav).detach()
        if wav.dim() == 2:  # (channels, samples) or (samples, channels)
            wav = wav.mean(dim=0 if wav.shape[0] <= wav.shape[1] else 1)
        if wav.dim() != 1:
            raise ValueError(f"expected a 1-D waveform, got shape {tuple(wav.shape)}")
        return self._prepare_batch(wav[None], sample_rate)[0]

    def _prepare_batch(self, wavs, sample_rate):
        """A ``(batch, samples)`` batch of equal-length signals, on CPU, float32, resampled."""
        wavs = torch.as_tensor(wavs).detach().to("cpu", torch.float32)
        if wavs.dim() != 2 or wavs.shape[-1] == 0:
            raise ValueError(
                f"expected non-empty (batch, samples) audio, got shape {tuple(wavs.shape)}"
            )
        if not torch.isfinite(wavs).all():
            raise ValueError("the waveform contains NaN or Inf samples")
        if int(sample_rate) != self.sample_rate:
            wavs = get_resampler(int(sample_rate), self.sample_rate)(wavs)
        return wavs

    def windows(self, wavs):
        """Cuts signals into model inputs (one strided view, no copy per window).

        Arguments
        ---------
        wavs : torch.Tensor
            ``(samples,)`` or ``(batch, samples)`` at the model's sample rate.

        Returns
        -------
        torch.Tensor
            ``([batch,] n_windows, clip_samples)``, the last window zero-padded.
        torch.Tensor
            ``(n_windows,)`` relative lengths (real audio share of each).
        torch.Tensor
            ``(n_windows,)`` start times in seconds.
        """
        size = self.clip_samples
        hop_s = getattr(self.hparams, "window_hop", None)
        hop = int(round(hop_s * self.sample_rate)) if hop_s else size
        if hop < 1:
            raise ValueError(f"window_hop must be positive, got {hop_s}")
        n = wavs.shape[-1]
        count = 1 if n <= size else 1 + math.ceil((n - size) / hop)
        padded = torch.nn.functional.pad(wavs, (0, (count - 1) * hop + size - n))
        starts = torch.arange(count) * hop
        lens = (n - starts).clamp(max=size) / size
        return padded.unfold(-1, size, hop), lens, starts.double() / self.sample_rate

    @property
    def batch_size(self):
        """Windows per forward pass unless a method is given one (``window_batch_size``)."""
        return int(getattr(self.hparams, "window_batch_size", 16))

    def _run(self, chunks, lens, embed=False, columns=False, batch_size=None):
        """The model on window batches of ``batch_size``, one forward pass each.

        Returns the logits ``(n, n_classes)``; with ``embed``, the pooled
        embeddings ``(n, dim)``; with ``columns`` as well, ``(pooled,
        columns, centres)``: the time embeddings ``(n, t, dim)`` of the same
        forward pass (:meth:`CraftClassifier.time_embeddings_from_features`;
        one column, the pooled embedding at the clip's centre, for models
        without time embeddings) and their centres ``(t,)`` in seconds.
        """
        model = self.mods.model
        size = int(batch_size or self.batch_size)
        if size < 1:
            raise ValueError(f"batch_size must be at least 1, got {size}")
        timed = columns and hasattr(model, "time_embeddings_from_features")
        outputs, time_columns, centres = [], [], None
        with torch.no_grad():
            for i in range(0, chunks.shape[0], size):
                wavs = chunks[i : i + size].to(self.model_device)
                wav_lens = lens[i : i + size].to(self.model_device)
                if not (embed or columns):
                    outputs.append(model(wavs, wav_lens).float().cpu())
                    continue
                features = model.forward_features(wavs, wav_lens)
                out = model.forward_head(features, pre_logits=True)
                outputs.append(out.float().cpu())
                if timed:
                    cols, centres = model.time_embeddings_from_features(features)
                    time_columns.append(cols.float().cpu())
        pooled = torch.cat(outputs)
        if not columns:
            return pooled
        if not timed:
            centre = self.hparams.clip_duration / 2
            return pooled, pooled[:, None], torch.tensor([centre], dtype=torch.float64)
        return pooled, torch.cat(time_columns), centres.double().cpu()

    def _scores(self, logits):
        if self.hparams.multilabel:
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=-1)

    # --- SpeechBrain-style interface ------------------------------------------
    def classify_batch(self, wavs, wav_lens=None):
        """Scores of a batch of clip-length waveforms at the model's rate.

        Arguments
        ---------
        wavs : torch.Tensor
            ``(batch, samples)``.
        wav_lens : torch.Tensor, optional
            Relative lengths.

        Returns
        -------
        tuple
            ``(scores, best_score, best_index, best_label)`` as in
            SpeechBrain's ``EncoderClassifier.classify_batch``.
        """
        wavs, wav_lens = self._checked_batch(wavs, wav_lens)
        scores = self._scores(self._run(wavs, wav_lens))
        best, index = scores.max(dim=-1)
        return scores, best, index, [self.labels[i] for i in index.tolist()]

    def classify_file(self, path):
        """``classify_batch`` on a file's clip-level summary (see :meth:`tag_waveform`)."""
        result = self.tag_waveform(self.load_audio(path), self.sample_rate, top_k=None)
        scores = torch.tensor([[entry["score"] for entry in result["scores"]]])
        best, index = scores.max(dim=-1)
        return scores, best, index, [self.labels[index.item()]]

    def encode_batch(self, wavs, wav_lens=None):
        """Pooled embeddings ``(batch, dim)`` of clip-length waveforms."""
        wavs, wav_lens = self._checked_batch(wavs, wav_lens)
        return self._run(wavs, wav_lens, embed=True)

    @staticmethod
    def _checked_batch(wavs, wav_lens):
        """The batch of :meth:`classify_batch` / :meth:`encode_batch`, checked on the host.

        On a GPU the model's own value check is a device-side assertion,
        after which CUDA is unusable in the process; checked here first, bad
        input (NaN samples, relative lengths of 0 or above 1) is a
        ``ValueError`` naming the clips, on any device.
        """
        wavs = torch.as_tensor(wavs).detach().to("cpu", torch.float32)
        if wav_lens is not None:
            wav_lens = torch.as_tensor(wav_lens).detach().cpu()
        return wavs, check_waveform_batch(wavs, wav_lens, on_host=True)

    def forward(self, wavs, wav_lens=None):
        """Runs ``classify_batch``."""
        return self.classify_batch(wavs, wav_lens)

    # --- many files, batched across files ---------------------------------------
    def _loaded(self, paths):
        """``(path, signal)`` per file; the signal is the load error for a bad file."""
        for path in paths:
            try:
                yield str(path), self.load_audio(path)
            except AudioLoadError as err:
                logger.warning("%s", err)
                yield str(path), err

    def _windowed(self, signals, batch_size, **options):
        """Runs the model on the windows of consecutive signals, ``batch_size`` per pass.

        Windows of several files share a forward pass, so short files are
        batched; a file's windows are all scored before it is yielded.

        Arguments
        ---------
        signals : iterable
            ``(key, signal)``: a 1-D signal at the model's rate, or an
            exception (passed through, in order).
        batch_size : int
            Windows per forward pass.
        **options : dict
            ``embed`` / ``columns`` options of :meth:`_run`.

        Yields
        ------
        tuple
            ``(key, signal, (chunks, lens, starts), outputs)``, where
            ``outputs`` is :meth:`_run`'s result for the signal's windows
            (None for an exception).
        """
        pending, n_windows = [], 0
        for key, signal in signals:
            windows = None
            if not isinstance(signal, BaseException):
                windows = self.windows(signal)
                n_windows += windows[0].shape[0]
            pending.append((key, signal, windows))
            if n_windows >= batch_size:
                yield from self._flush(pending, batch_size, options)
                pending, n_windows = [], 0
        yield from self._flush(pending, batch_size, options)

    def _flush(self, pending, batch_size, options):
        """:meth:`_windowed`'s forward passes over the pending signals."""
        ready = [windows for _, _, windows in pending if windows is not None]
        split = iter(())
        if ready:
            sizes = [chunks.shape[0] for chunks, _, _ in ready]
            if len(ready) == 1:  # a long file alone: its strided windows, no copy
                chunks, lens, _ = ready[0]
            else:
                chunks = torch.cat([chunks for chunks, _, _ in ready])
                lens = torch.cat([lens for _, lens, _ in ready])
            out = self._run(chunks, lens, batch_size=batch_size, **options)
            if isinstance(out, tuple):  # (pooled, columns, centres)
                split = (
                    (pooled, cols, out[2])
                    for pooled, cols in zip(out[0].split(sizes), out[1].split(sizes))
                )
            else:
                split = iter(out.split(sizes))
        for key, signal, windows in pending:
            yield key, signal, windows, None if windows is None else next(split)

    # --- tagging --------------------------------------------------------------
    def _top(self, scores, top_k):
        order = torch.argsort(scores, descending=True)
        if top_k:
            order = order[: int(top_k)]
        return [
            {"label": self.labels[i], "score": round(float(scores[i]), 6)}
            for i in order.tolist()
        ]

    def _summarise(self, scores, lens, starts, duration, top_k):
        """A tagging result from the scores ``(n_windows, n_classes)`` of one signal."""
        if self.hparams.multilabel:
            summary = scores.max(dim=0).values
        else:
            weights = lens / lens.sum()
            summary = (scores * weights[:, None]).sum(dim=0)
        result = {
            "duration": round(duration, 4),
            "labels": self._top(summary, top_k),
            "scores": [
                {"label": name, "score": round(float(s), 6)}
                for name, s in zip(self.labels, summary)
            ],
        }
        if scores.shape[0] > 1:
            ends = torch.clamp(starts + self.hparams.clip_duration, max=duration)
            result["windows"] = [
                {
                    "start": round(float(s), 4),
                    "end": round(float(e), 4),
                    "labels": self._top(window_scores, top_k),
                }
                for s, e, window_scores in zip(starts, ends, scores)
            ]
        return result

    def tag_waveform(self, wav, sample_rate, top_k=5):
        """Tags one waveform of any length.

        Arguments
        ---------
        wav : torch.Tensor
            1-D signal (or ``(channels, samples)``, mixed down).
        sample_rate : int
            Its sample rate (resampled to the model's).
        top_k : int or None
            Labels to keep (None: all).

        Returns
        -------
        dict
            ``duration`` (s), ``labels`` (top-k ``{"label", "score"}`` of the
            clip-level summary), ``scores`` (every label, model order) and,
            for audio longer than one clip, ``windows``: ``{"start", "end",
            "labels"}`` per window.
        """
        wav = self._prepare(wav, sample_rate)
        chunks, lens, starts = self.windows(wav)
        scores = self._scores(self._run(chunks, lens))
        return self._summarise(
            scores, lens, starts, wav.numel() / self.sample_rate, top_k
        )

    def iter_tag_files(self, paths, top_k=5, batch_size=None):
        """Tags files, yielding each result as soon as its windows are scored.

        Windows of consecutive files share forward passes (``batch_size``
        windows each, default ``window_batch_size``); the results do not
        depend on it.

        Arguments
        ---------
        paths : iterable of str
            Audio files (any rate or channel count the loader reads).
        top_k : int or None
            Labels per file and window.
        batch_size : int, optional
            Windows (clips) per forward pass.

        Yields
        ------
        dict
            One per file, in order: ``{"file", "duration", "labels",
            ["windows"]}`` or ``{"file", "error"}``.
        """
        size = int(batch_size or self.batch_size)
        for path, wav, windows, logits in self._windowed(self._loaded(paths), size):
            if windows is None:
                yield {"file": path, "error": str(wav)}
                continue
            _, lens, starts = windows
            duration = wav.numel() / self.sample_rate
            result = self._summarise(
                self._scores(logits), lens, starts, duration, top_k
            )
            result.pop("scores")
            yield {"file": path, **result}

    def tag_files(self, paths, top_k=5, batch_size=None):
        """Tags files; a file that cannot be read gets an ``error`` entry.

        Arguments
        ---------
        paths : list of str
            Audio files (any rate or channel count soundfile reads).
        top_k : int or None
            Labels per file and window.
        batch_size : int, optional
            Windows (clips) per forward pass, gathered across files.

        Returns
        -------
        list of dict
            One per file, in order: ``{"file", "duration", "labels",
            ["windows"]}`` or ``{"file", "error"}``.
        """
        return list(self.iter_tag_files(paths, top_k, batch_size))

    # --- embeddings -------------------------------------------------------------
    def window_embeddings(self, wav, sample_rate):
        """Pooled embedding of each window with its start and end times.

        Returns
        -------
        torch.Tensor
            ``(n_windows, dim)``.
        torch.Tensor
            ``(n_windows, 2)`` start and end in seconds.
        torch.Tensor
            ``(n_windows,)`` real-audio share of each window.
        """
        wav = self._prepare(wav, sample_rate)
        chunks, lens, starts = self.windows(wav)
        emb = self._run(chunks, lens, embed=True)
        duration = wav.numel() / self.sample_rate
        ends = torch.clamp(starts + self.hparams.clip_duration, max=duration)
        return emb, torch.stack([starts, ends], dim=1), lens

    def scene_embedding(self, wav, sample_rate):
        """One vector for a waveform of any length (window embeddings, weighted mean)."""
        return self.scene_embeddings(
            self._prepare(wav, sample_rate)[None], self.sample_rate
        )[0]

    @staticmethod
    def _scene(pooled, lens):
        """Signal vectors ``(batch, dim)`` from window embeddings ``(batch, n_windows, dim)``."""
        weights = (lens / lens.sum())[None, :, None]
        return (pooled * weights).sum(dim=1)

    def scene_embeddings(self, wavs, sample_rate):
        """One vector per signal of an equal-length ``(batch, samples)`` batch.

        Every window of every signal goes through the model in the same
        window batches; a signal's vector is the mean of its windows'
        pooled embeddings weighted by their real-audio share.

        Returns
        -------
        torch.Tensor
            ``(batch, dim)`` float32.
        """
        wavs = self._prepare_batch(wavs, sample_rate)
        chunks, lens, _ = self.windows(wavs)
        batch, count = chunks.shape[:2]
        emb = self._run(
            chunks.reshape(batch * count, -1), lens.repeat(batch), embed=True
        )
        return self._scene(emb.reshape(batch, count, -1), lens)

    def _on_grid(self, columns, centres, lens, starts, n_samples, hop_ms):
        """Time embeddings ``(batch, n_windows, t, dim)`` on the ``hop_ms`` grid.

        The model's time steps are placed at their centre times, those
        centred on padding are dropped, and the rest are linearly
        interpolated to ``0, hop, 2 hop, ...`` up to the last grid point
        before the end of the audio.
        """
        if not hop_ms > 0:
            raise ValueError(f"hop_ms must be positive, got {hop_ms}")
        batch, count, steps, dim = columns.shape
        duration = n_samples / self.sample_rate
        emb = columns.reshape(batch, count * steps, dim)
        # Keep the columns centred on real audio of their window (the model's
        # input may be longer than the clip: SSAST pads 998 frames to 1024).
        real = centres[None, :] < (lens.double() * self.hparams.clip_duration)[:, None]
        times = (starts[:, None] + centres[None, :]).reshape(-1)
        valid = real.reshape(-1) & (times < duration)
        valid[0] = True  # at least one column, even for very short audio
        order = torch.argsort(times[valid], stable=True)
        times, emb = times[valid][order], emb[:, valid][:, order]
        n_steps = max(1, math.ceil(duration * 1000.0 / hop_ms - 1e-9))
        grid_ms = torch.arange(n_steps, dtype=torch.float64) * hop_ms
        return _interpolate(times * 1000.0, emb, grid_ms).float(), grid_ms.float()

    def timestamp_embedding(self, wav, sample_rate, hop_ms=50.0):
        """Embeddings on a regular time grid for one waveform of any length.

        Returns
        -------
        torch.Tensor
            ``(n_timestamps, dim)`` float32.
        torch.Tensor
            ``(n_timestamps,)`` timestamps in milliseconds.
        """
        wav = self._prepare(wav, sample_rate)
        emb, grid_ms = self.timestamp_embeddings(wav[None], self.sample_rate, hop_ms)
        return emb[0], grid_ms

    def timestamp_embeddings(self, wavs, sample_rate, hop_ms=50.0):
        """Embeddings on a regular time grid for an equal-length batch.

        The model's own time steps (:meth:`CraftClassifier.time_embeddings`,
        or one per window for models without it) are placed at their centre
        times, those centred on padding are dropped, and the rest are
        linearly interpolated to ``0, hop, 2 hop, ...`` up to the last grid
        point before the end of the audio.

        Arguments
        ---------
        wavs : torch.Tensor
            ``(batch, samples)``.
        sample_rate : int
            Their sample rate.
        hop_ms : float
            Grid step in milliseconds.

        Returns
        -------
        torch.Tensor
            ``(batch, n_timestamps, dim)`` float32.
        torch.Tensor
            ``(n_timestamps,)`` timestamps in milliseconds (the same for
            every signal of the batch).
        """
        _, emb, grid_ms = self.embeddings(wavs, sample_rate, hop_ms)
        return emb, grid_ms

    def embeddings(self, wavs, sample_rate, hop_ms=50.0):
        """Scene and timestamp embeddings from one forward pass per window batch.

        Equal to :meth:`scene_embeddings` and :meth:`timestamp_embeddings`,
        which would run the model twice.

        Arguments
        ---------
        wavs : torch.Tensor
            ``(samples,)`` or an equal-length ``(batch, samples)`` batch.
        sample_rate : int
            Their sample rate.
        hop_ms : float
            Timestamp grid step in milliseconds.

        Returns
        -------
        torch.Tensor
            ``([batch,] dim)`` scene embeddings.
        torch.Tensor
            ``([batch,] n_timestamps, dim)`` timestamp embeddings.
        torch.Tensor
            ``(n_timestamps,)`` timestamps in milliseconds.

        Example
        -------
        >>> from craft_modules.models.craft import CraftClassifier
        >>> model = CraftClassifier(2, fusion="ast", model_size="tiny", depth=1, target_frames=100)
        >>> tagger = AudioTagger(modules={"model": model}, hparams={
        ...     "sample_rate": 16000, "clip_duration": 1.0, "labels": ["a", "b"],
        ...     "multilabel": False}, run_opts={"device": "cpu"})
        >>> scene, frames, times_ms = tagger.embeddings(torch.randn(24000), 16000)
        >>> scene.shape, frames.shape, times_ms[:3].tolist()
        (torch.Size([192]), torch.Size([30, 192]), [0.0, 50.0, 100.0])
        """
        wavs = torch.as_tensor(wavs)
        if wavs.dim() == 1:
            wav = self._prepare(wavs, sample_rate)
            scene, emb, grid_ms = self.embeddings(wav[None], self.sample_rate, hop_ms)
            return scene[0], emb[0], grid_ms
        wavs = self._prepare_batch(wavs, sample_rate)
        chunks, lens, starts = self.windows(wavs)
        batch, count = chunks.shape[:2]
        pooled, columns, centres = self._run(
            chunks.reshape(batch * count, -1), lens.repeat(batch), columns=True
        )
        scene = self._scene(pooled.reshape(batch, count, -1), lens)
        columns = columns.reshape(batch, count, *columns.shape[1:])
        emb, grid_ms = self._on_grid(
            columns, centres, lens, starts, wavs.shape[-1], hop_ms
        )
        return scene, emb, grid_ms

    def iter_embed_files(self, paths, hop_ms=50.0, timestamps=True, batch_size=None):
        """Embeds files, windows of consecutive files sharing forward passes.

        One forward pass per window gives both the scene and the timestamp
        embeddings (as :meth:`embeddings`).

        Arguments
        ---------
        paths : iterable of str
            Audio files.
        hop_ms : float
            Timestamp grid step in milliseconds.
        timestamps : bool
            Also the timestamp embeddings.
        batch_size : int, optional
            Windows (clips) per forward pass.

        Yields
        ------
        dict
            Per file, in order: ``{"file", "duration", "scene"}`` (a
            ``(dim,)`` tensor) with ``"timestamps"`` ``(n, dim)`` and
            ``"times_ms"`` ``(n,)``, or ``{"file", "error"}``.
        """
        size = int(batch_size or self.batch_size)
        options = {"columns": True} if timestamps else {"embed": True}
        for path, wav, windows, out in self._windowed(
            self._loaded(paths), size, **options
        ):
            if windows is None:
                yield {"file": path, "error": str(wav)}
                continue
            _, lens, starts = windows
            result = {
                "file": path,
                "duration": round(wav.numel() / self.sample_rate, 4),
            }
            pooled = out[0] if timestamps else out
            result["scene"] = self._scene(pooled[None], lens)[0]
            if timestamps:
                emb, grid_ms = self._on_grid(
                    out[1][None], out[2], lens, starts, wav.numel(), hop_ms
                )
                result["timestamps"], result["times_ms"] = emb[0], grid_ms
            yield result


def _interpolate(times, values, grid):
    """Piecewise-linear interpolation of ``values[..., k, :]`` (at ``times``) on ``grid``, clamped."""
    if times.numel() == 1:
        return values[..., :1, :].expand(*values.shape[:-2], grid.numel(), -1).double()
    idx = torch.searchsorted(times, grid).clamp(1, times.numel() - 1)
    t0, t1 = times[idx - 1], times[idx]
    w = ((grid - t0) / (t1 - t0).clamp_min(1e-9)).clamp(0.0, 1.0)[:, None]
    return values[..., idx - 1, :].double() * (1 - w) + values[..., idx, :].double() * w
