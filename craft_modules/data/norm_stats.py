"""Fbank normalisation statistics of a dataset of one's own, computed once and saved.

SSAST and AST normalise their log-mel input with the mean and standard
deviation of the dataset's padded fbanks (AST's ``get_norm_stats.py``;
:data:`craft_modules.features.fbank.NORM_STATS` holds the published ones).
For other data, :func:`manifest_norm_stats` computes them with
:func:`craft_modules.features.fbank.compute_norm_stats` over the clips of
a manifest, cut or padded to the recipe's clip length as in training, and
:func:`cached_norm_stats` saves them as ``{"mean", "std", "n_clips"}`` JSON
so later runs reuse them.

At most :data:`MAX_CLIPS` clips are read (drawn with the seed): two
scalars averaged over a thousand clips are already stable to a few parts in
a thousand, and a large dataset is not decoded once more for them.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import json
import os
import random

import torch
from speechbrain.utils.logger import get_logger

from craft_modules.atomic_files import write_json_atomic
from craft_modules.data.audio import AudioLoadError, load_audio
from craft_modules.features.fbank import KaldiFbank, compute_norm_stats

logger = get_logger(__name__)

#: The most clips :func:`manifest_norm_stats` reads.
MAX_CLIPS = 1000


def manifest_norm_stats(
    manifest,
    target_frames,
    clip_duration,
    sample_rate=16000,
    max_clips=MAX_CLIPS,
    seed=0,
    batch_size=32,
):
    """``(mean, std)`` of the padded log-mel fbanks of a manifest's clips.

    Arguments
    ---------
    manifest : dict
        ``{id: {"wav": path, "duration": seconds, ...}}`` (braces undoubled,
        as :func:`speechbrain.dataio.dataio.load_data_json` gives them).
    target_frames : int
        The model's input frames.
    clip_duration : float
        Seconds read per clip (the recipe's ``clip_duration``).
    sample_rate : int
        The model's sample rate.
    max_clips : int
        At most this many clips, drawn with ``seed``.
    seed : int
        Seed of the draw.
    batch_size : int
        Clips per fbank batch.

    Returns
    -------
    tuple
        ``(mean, std, n_clips)``.

    Raises
    ------
    ValueError
        If no clip could be read.

    Example
    -------
    >>> import soundfile as sf, numpy as np
    >>> path = str(getfixture("tmp_path") / "a.wav")
    >>> sf.write(path, np.random.default_rng(0).normal(0, 0.1, 8000), 16000)
    >>> mean, std, n = manifest_norm_stats({"a": {"wav": path, "duration": 0.5}}, 128, 1.0)
    >>> n, std > 0
    (1, True)
    """
    ids = sorted(manifest)
    random.Random(seed).shuffle(ids)
    ids = ids[: int(max_clips)]
    fbank = KaldiFbank(target_frames, sample_rate=sample_rate)
    read = []

    def batches():
        wavs, lens = [], []
        for clip_id in ids:
            entry = manifest[clip_id]
            try:
                wav = load_audio(entry["wav"], sample_rate, duration=clip_duration)
            except AudioLoadError as err:
                logger.warning(
                    "Normalisation statistics: %s skipped (%s)", clip_id, err
                )
                continue
            read.append(clip_id)
            wavs.append(wav)
            lens.append(min(1.0, float(entry["duration"]) / clip_duration))
            if len(wavs) == batch_size or len(read) == len(ids):
                yield torch.stack(wavs), torch.tensor(lens)
                wavs, lens = [], []
        if wavs:
            yield torch.stack(wavs), torch.tensor(lens)

    try:
        mean, std = compute_norm_stats(batches(), fbank)
    except ValueError as err:
        raise ValueError(
            f"no readable clip to compute normalisation statistics from ({err})"
        ) from err
    return mean, std, len(read)


def cached_norm_stats(path, compute, inputs=None):
    """Statistics saved at ``path``; computed by ``compute()`` and saved the first time.

    Arguments
    ---------
    path : str
        The JSON file (``{"mean", "std", "n_clips"}``).
    compute : callable
        Returns ``(mean, std, n_clips)``; called only when ``path`` is absent
        or was computed from other ``inputs``.
    inputs : dict, optional
        What the statistics depend on (clip length, sample rate, seed, the
        clips), saved with them: a file saved from other inputs is recomputed.

    Returns
    -------
    dict
        ``{"mean": float, "std": float}``, as :func:`craft_modules.features.fbank.norm_stats` takes it.

    Example
    -------
    >>> path = str(getfixture("tmp_path") / "norm_stats.json")
    >>> cached_norm_stats(path, lambda: (-5.0, 4.0, 10))
    {'mean': -5.0, 'std': 4.0}
    >>> cached_norm_stats(path, lambda: 1 / 0)  # read back, not recomputed
    {'mean': -5.0, 'std': 4.0}
    >>> cached_norm_stats(path, lambda: (-6.0, 3.0, 10), inputs={"clip": 2.0})
    {'mean': -6.0, 'std': 3.0}
    """
    saved = None
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as fin:
            saved = json.load(fin)
        if saved.get("inputs") != json.loads(json.dumps(inputs)):
            logger.info("Normalisation statistics in %s are of other inputs", path)
            saved = None
        else:
            logger.info("Normalisation statistics read from %s", path)
    if saved is None:
        mean, std, n_clips = compute()
        saved = {"mean": float(mean), "std": float(std), "n_clips": int(n_clips)}
        saved["inputs"] = inputs
        write_json_atomic(saved, path)
        logger.info(
            "Normalisation statistics of %d clips: mean %.4f, std %.4f (saved in %s)",
            n_clips,
            mean,
            std,
            path,
        )
    return {"mean": float(saved["mean"]), "std": float(saved["std"])}
