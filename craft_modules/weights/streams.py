"""Loading the diverse model's streams: stage-1 runs and a pretrained neuralogram CNN.

The paper trains each feature stream on its own, then freezes the streams
and trains a linear head on their concatenation (Verma, arXiv 2309.08751,
Sec. 2). The stage-2 model is built from its architecture arguments only
(:class:`craft_modules.models.diverse.DiverseEmbeddingModel`); its streams'
weights come from the stage-1 runs through :func:`load_stream_checkpoints`.
A :class:`craft_modules.features.diverse_streams.Neuralogram` is likewise
built empty and its CNN loaded with :func:`load_neuralogram`. Loading copies
values into the existing parameters, so a stream frozen at construction
(``freeze_streams``) stays frozen.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import os

from speechbrain.utils.logger import get_logger

from craft_modules.features.diverse_streams import STREAMS
from craft_modules.weights.transfer import find_checkpoint_file, load_state_dict_file

logger = get_logger(__name__)

#: A single-stream run's best checkpoint is chosen by these (first recorded).
STAGE1_METRICS = ("mAP", "accuracy")


def load_stream_state(path, name):
    """Reads one stream's weights from a checkpoint of a DiverseEmbeddingModel.

    The format is a ``state_dict()`` of a
    :class:`craft_modules.models.diverse.DiverseEmbeddingModel` (e.g.
    SpeechBrain's ``model.ckpt`` of a single-stream run, or
    ``torch.save(model.state_dict(), path)``), possibly under a
    "state_dict" key or with DDP's ``module.`` prefix: the keys
    ``streams.<name>.*`` are taken, the rest (other streams, the head) are
    ignored.

    Arguments
    ---------
    path : str
        The checkpoint file, or a run, ``save`` or ``CKPT+`` folder (its
        best ``model.ckpt`` by mAP or accuracy, else the newest, see
        :func:`craft_modules.weights.transfer.find_checkpoint_file`).
    name : str
        The stream whose weights are wanted.

    Returns
    -------
    dict
        The stream's state dict, keys without the ``streams.<name>.`` prefix.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not a state dict or has no ``streams.<name>.`` keys.

    Example
    -------
    >>> path = str(getfixture("tmp_path") / "model.ckpt")
    >>> torch.save({"streams.pitch.proj.bias": torch.zeros(2), "head.bias": 1}, path)
    >>> load_stream_state(path, "pitch")
    {'proj.bias': tensor([0., 0.])}
    """
    path = os.fspath(path)
    try:  # a file, or a run / save / CKPT+ folder: its best model.ckpt
        path = find_checkpoint_file(path, max_key=STAGE1_METRICS)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"checkpoint for stream '{name}' not found: {path} ({err})"
        ) from err
    state = load_state_dict_file(path)  # also drops DDP's "module." prefixes
    prefix = f"streams.{name}."
    sub = {
        key[len(prefix) :]: value
        for key, value in state.items()
        if key.startswith(prefix)
    }
    if not sub:
        found = sorted(
            {key.split(".")[1] for key in state if key.startswith("streams.")}
        )
        raise ValueError(
            f"checkpoint {path} has no weights for stream '{name}' (no "
            f"'{prefix}*' keys; streams found: {found or 'none'})"
        )
    return sub


def load_stream_checkpoints(model, stream_checkpoints):
    """Loads stream weights of a diverse model from single-stream (or any) checkpoints.

    Arguments
    ---------
    model : DiverseEmbeddingModel
        The model whose ``streams`` are loaded (strictly, stream by stream).
    stream_checkpoints : dict or None
        ``{stream name: path}``; see :func:`load_stream_state`. A None or
        empty path leaves that stream as it is; entries for streams the
        model does not use are ignored (ablations such as
        ``--streams=[pitch]``).

    Returns
    -------
    list of str
        The model keys that were loaded (``streams.<name>.*``).

    Raises
    ------
    ValueError
        If a name is not a known stream, or a checkpoint does not hold
        matching weights for it.
    FileNotFoundError
        If a file does not exist.

    Example
    -------
    >>> from craft_modules.models.diverse import DiverseEmbeddingModel
    >>> tiny = dict(n_classes=2, embed_dim=8, depth=1, num_heads=2)
    >>> single = DiverseEmbeddingModel(streams=["timbre"], **tiny)
    >>> path = str(getfixture("tmp_path") / "model.ckpt")
    >>> torch.save(single.state_dict(), path)
    >>> both = DiverseEmbeddingModel(streams=["timbre", "waveform"], **tiny)
    >>> keys = load_stream_checkpoints(both, {"timbre": path, "pitch": None})
    >>> keys[0], torch.equal(both.streams.timbre.proj.weight, single.streams.timbre.proj.weight)
    ('streams.timbre.pos_embed', True)
    """
    loaded = []
    for name, path in dict(stream_checkpoints or {}).items():
        if path is None or path == "":
            continue  # a YAML template may leave a stream unset
        if name not in STREAMS:
            raise ValueError(
                f"stream_checkpoints names unknown stream '{name}': choose from "
                f"{sorted(STREAMS)}"
            )
        if name not in model.streams:
            continue  # a stream dropped for an ablation (like stream_options)
        state = load_stream_state(path, name)
        try:
            model.streams[name].load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(
                f"checkpoint {path} does not match stream '{name}' of this "
                f"model (embed_dim, depth, feature options?): {err}"
            ) from err
        loaded.extend(f"streams.{name}.{key}" for key in state)
        logger.info("Stream '%s' loaded from %s", name, path)
    return loaded


def load_neuralogram(neuralogram, path):
    """Loads a Neuralogram's weights (its CNN and mel front end) from a local file, strictly.

    Arguments
    ---------
    neuralogram : Neuralogram
        The module to load.
    path : str
        File saved with ``torch.save(neuralogram.state_dict(), path)`` (or a
        dict with that under "state_dict").

    Returns
    -------
    list of str
        The loaded keys.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not a state dict of this architecture (missing,
        unexpected or mis-shaped keys).

    Example
    -------
    >>> from craft_modules.features.diverse_streams import Neuralogram
    >>> path = str(getfixture("tmp_path") / "neuralogram.pt")
    >>> torch.save(Neuralogram(width=4, embedding_dim=8).state_dict(), path)
    >>> len(load_neuralogram(Neuralogram(width=4, embedding_dim=8), path)) > 0
    True
    """
    state = load_state_dict_file(path)
    try:
        neuralogram.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"Neuralogram checkpoint {path} does not match this architecture "
            f"(n_mels, width, embedding_dim...): {err}"
        ) from err
    return list(state)


def load_diverse_weights(model, stream_checkpoints=None, neuralogram_checkpoint=None):
    """The diverse model's weight sources: a neuralogram CNN, then stage-1 streams.

    The order is the one the paper's stages imply: a pretrained neuralogram
    CNN first, then the stage-1 checkpoints, which hold whole streams (a
    neuralogram stream's CNN included) and so win.

    Arguments
    ---------
    model : DiverseEmbeddingModel
        The model.
    stream_checkpoints : dict, optional
        See :func:`load_stream_checkpoints`.
    neuralogram_checkpoint : str, optional
        See :func:`load_neuralogram`; ignored when the model has no
        neuralogram stream.

    Returns
    -------
    list of str
        The model keys that were loaded.
    """
    loaded = []
    if neuralogram_checkpoint and "neuralogram" in model.streams:
        keys = load_neuralogram(
            model.streams["neuralogram"].feature, neuralogram_checkpoint
        )
        loaded.extend(f"streams.neuralogram.feature.{key}" for key in keys)
        logger.info("Neuralogram CNN loaded from %s", neuralogram_checkpoint)
    loaded.extend(load_stream_checkpoints(model, stream_checkpoints))
    return loaded
