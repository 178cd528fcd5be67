"""The recipes' one loading step: every weight a model starts from, after it is built.

Models are constructed from their architecture arguments only; nothing in a
constructor reads a file. What a run starts from is given by top-level keys
of its YAML, which :func:`weight_sources` reads and :func:`initialise` loads:

* ``pretrained_path`` with ``init_from``: a pretraining or fine-tuning run
  of this project (:func:`craft_modules.weights.transfer.load_pretrained`)
  or an official SSAST/AST ``.pth``
  (:func:`craft_modules.weights.official.load_official`);
* ``stream_checkpoints`` (often through ``stage1_folder``): the stage-1 runs
  of the diverse model's streams
  (:func:`craft_modules.weights.streams.load_stream_checkpoints`);
* ``neuralogram_checkpoint``: a pretrained neuralogram CNN
  (:func:`craft_modules.weights.streams.load_neuralogram`).

A trained run holds all of its weights in its own checkpoint, so its
``inference.yaml`` names none of these
(:mod:`craft_modules.weights.run_folder`).

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

from speechbrain.utils.logger import get_logger

from craft_modules.weights.official import load_official
from craft_modules.weights.streams import load_diverse_weights
from craft_modules.weights.transfer import LoadReport, load_pretrained

logger = get_logger(__name__)

#: The top-level YAML keys that say where a run's initial weights come from.
SOURCE_KEYS = (
    "pretrained_path",
    "init_from",
    "stream_checkpoints",
    "neuralogram_checkpoint",
    "allow_missing",
)


def weight_sources(hparams):
    """The weight sources a recipe's hyperparameters name (see :data:`SOURCE_KEYS`).

    Arguments
    ---------
    hparams : dict
        The loaded YAML.

    Returns
    -------
    dict
        Keyword arguments of :func:`initialise` (absent keys are left out).

    Example
    -------
    >>> weight_sources({"pretrained_path": "", "init_from": "", "lr": 0.1})
    {'pretrained_path': '', 'init_from': ''}
    """
    return {key: hparams[key] for key in SOURCE_KEYS if key in hparams}


def initialise(
    model,
    pretrained_path="",
    init_from="",
    stream_checkpoints=None,
    neuralogram_checkpoint=None,
    allow_missing=(),
):
    """Loads a freshly built model's initial weights from every source given.

    Call it after building the model and before training: a resumed run's
    checkpoint is recovered later and overwrites these weights. Parameters
    frozen at construction stay frozen (loading copies values only).

    Arguments
    ---------
    model : torch.nn.Module
        The model.
    pretrained_path : str
        A run of this project (folder or file) or an official checkpoint
        file; empty: none.
    init_from : str
        ``""`` (a run of this project), ``ssast`` or ``ast`` (official files).
    stream_checkpoints : dict, optional
        ``{stream: run, save folder or model.ckpt}`` for a diverse model.
    neuralogram_checkpoint : str, optional
        A neuralogram CNN's ``state_dict`` file for a diverse model.
    allow_missing : list of str
        Modules the model needs that a run of this project may lack (kept
        random; see :func:`craft_modules.weights.transfer.load_pretrained`).

    Returns
    -------
    LoadReport or None
        What was loaded (the stream keys are listed under ``loaded``; empty
        when every stream given is one the model dropped); None when no
        source was given.

    Example
    -------
    >>> from craft_modules.models.diverse import DiverseEmbeddingModel
    >>> tiny = dict(n_classes=2, embed_dim=8, depth=1, num_heads=2)
    >>> stage1 = DiverseEmbeddingModel(streams=["timbre"], **tiny)
    >>> path = str(getfixture("tmp_path") / "model.ckpt")
    >>> torch.save(stage1.state_dict(), path)
    >>> stage2 = DiverseEmbeddingModel(streams=["timbre"], freeze_streams=True, **tiny)
    >>> report = initialise(stage2, stream_checkpoints={"timbre": path})
    >>> torch.equal(stage2.streams.timbre.pos_embed, stage1.streams.timbre.pos_embed)
    True
    >>> stage2.streams.timbre.pos_embed.requires_grad, initialise(stage2) is None
    (False, True)
    """
    report = None
    if pretrained_path:
        init_from = str(init_from or "").lower()
        if init_from in ("ssast", "ast"):
            report = load_official(model, pretrained_path)
        elif init_from:
            raise ValueError(
                f"init_from must be '', 'ssast' or 'ast', got {init_from!r}"
            )
        else:
            report = load_pretrained(
                model, pretrained_path, allow_missing=allow_missing or ()
            )
    if stream_checkpoints or neuralogram_checkpoint:
        if not hasattr(model, "streams"):
            raise ValueError(
                "stream_checkpoints and neuralogram_checkpoint apply to the diverse "
                f"model only, not to a {type(model).__name__}"
            )
        report = report or LoadReport()
        report.loaded.extend(
            load_diverse_weights(model, stream_checkpoints, neuralogram_checkpoint)
        )
    return report
