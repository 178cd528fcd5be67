"""HEAR 2021 API for a trained recipe run (``hear-validator craft_modules.inference.hear``).

``load_model(model_file_path)`` takes a recipe run folder (see
:class:`craft_modules.inference.tagger.AudioTagger`) and returns a
:class:`torch.nn.Module` with the attributes the API asks for:
``sample_rate`` (16000), ``scene_embedding_size`` and
``timestamp_embedding_size``. ``get_scene_embeddings`` and
``get_timestamp_embeddings`` take a batch ``(n_sounds, n_samples)`` of mono
float audio at that rate and return float32 tensors: one pooled vector per
sound, and embeddings on a regular 50 ms grid (``hop_ms`` option of
``load_model``) with timestamps in milliseconds from 0 to the last grid
point before the end of the audio.

With no path, ``load_model()`` builds an untrained model (a tiny SWaB CRAFT
classifier, or what ``model_options`` describe) so the API can be checked
without weights, as ``hear-validator`` does; it warns that its embeddings
are random.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import torch
from speechbrain.utils.logger import get_logger

from craft_modules.inference.tagger import AudioTagger

logger = get_logger(__name__)


class HearModel(torch.nn.Module):
    """A tagger exposed through the HEAR attributes.

    Arguments
    ---------
    tagger : AudioTagger
        The loaded model.
    hop_ms : float
        Timestamp hop in milliseconds (at most 50 for HEAR).
    """

    def __init__(self, tagger, hop_ms=50.0):
        super().__init__()
        if not 0 < hop_ms <= 50:
            raise ValueError(f"hop_ms must be in (0, 50] for HEAR, got {hop_ms}")
        self.tagger = tagger
        self.hop_ms = float(hop_ms)
        self.sample_rate = int(tagger.sample_rate)
        probe = torch.zeros(self.sample_rate // 2)
        self.scene_embedding_size = int(
            tagger.scene_embedding(probe, self.sample_rate).numel()
        )
        emb, _ = tagger.timestamp_embedding(probe, self.sample_rate, self.hop_ms)
        self.timestamp_embedding_size = int(emb.shape[-1])


def load_model(model_file_path="", device="cpu", hop_ms=50.0, **model_options):
    """Loads a recipe run folder as a HEAR model.

    Arguments
    ---------
    model_file_path : str
        Run folder of a recipe (an ESC-50 output folder uses its lowest
        fold; ``fold=N`` picks another) or a model folder written by
        ``craft-export``. Empty: an untrained model.
    device : str
        ``cpu`` or ``cuda``.
    hop_ms : float
        Timestamp hop in milliseconds.
    **model_options : dict
        ``fold``, ``checkpoint`` (see :meth:`AudioTagger.from_run`); without a
        path, arguments of :class:`craft_modules.models.craft.CraftClassifier`.

    Returns
    -------
    HearModel

    Example
    -------
    >>> model = load_model(model_size="tiny", depth=1)
    >>> model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size
    (16000, 384, 384)
    """
    if model_file_path:
        tagger = AudioTagger.from_folder(
            model_file_path, device=device, **model_options
        )
    else:
        from craft_modules.models.craft import CraftClassifier

        logger.warning(
            "No run folder given: the HEAR model is untrained (random embeddings)"
        )
        options = {
            "n_classes": 1,
            "fusion": "swab",
            "model_size": "tiny",
            "target_frames": 1024,
            "n_bottlenecks": 4,
            "fusion_layer": 0,
        }
        options.update(model_options)
        clip = options["target_frames"] / 100.0 + 0.015
        tagger = AudioTagger(
            modules={"model": CraftClassifier(**options)},
            hparams={
                "sample_rate": 16000,
                "clip_duration": clip,
                "labels": [f"class_{i}" for i in range(options["n_classes"])],
                "multilabel": True,
            },
            run_opts={"device": device},
        )
    return HearModel(tagger, hop_ms)


def _check_audio(audio, model):
    audio = torch.as_tensor(audio)
    if audio.dim() != 2:
        raise ValueError(
            f"audio must be (n_sounds, n_samples), got shape {tuple(audio.shape)}"
        )
    if audio.shape[1] == 0:
        raise ValueError("audio has no samples")
    return audio.float()


def get_scene_embeddings(audio, model):
    """One embedding per sound.

    Arguments
    ---------
    audio : torch.Tensor
        ``(n_sounds, n_samples)`` at ``model.sample_rate``.
    model : HearModel
        From :func:`load_model`.

    Returns
    -------
    torch.Tensor
        ``(n_sounds, model.scene_embedding_size)`` float32.
    """
    audio = _check_audio(audio, model)
    return model.tagger.scene_embeddings(audio, model.sample_rate).float()


def get_timestamp_embeddings(audio, model):
    """Embeddings on a regular grid, with their timestamps in milliseconds.

    Arguments
    ---------
    audio : torch.Tensor
        ``(n_sounds, n_samples)`` at ``model.sample_rate``.
    model : HearModel
        From :func:`load_model`.

    Returns
    -------
    torch.Tensor
        ``(n_sounds, n_timestamps, model.timestamp_embedding_size)`` float32.
    torch.Tensor
        ``(n_sounds, n_timestamps)`` timestamps in milliseconds.
    """
    audio = _check_audio(audio, model)
    embeddings, timestamps = model.tagger.timestamp_embeddings(
        audio, model.sample_rate, model.hop_ms
    )
    return embeddings, timestamps.expand(audio.shape[0], -1).contiguous()
