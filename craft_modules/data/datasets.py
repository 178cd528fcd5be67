"""The recipes' datasets: clips read from a manifest, with or without targets.

:func:`audio_dataset` is the dataset of one manifest (``id`` and ``sig``:
each clip read, resampled and cut to a fixed duration);
:func:`labelled_datasets` builds one per split with a ``targets`` item
(one-hot or multi-hot, :mod:`craft_modules.data.labels`), and
:func:`multilabel_datasets` is its multi-hot case (AudioSet, FSD50K).

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

from craft_modules.data.audio import audio_pipeline
from craft_modules.data.labels import multi_hot_pipeline
from craft_modules.data.manifest import CompactDynamicItemDataset, CompactManifest
from craft_modules.data.manifest_cache import load_manifest

LABELLED_KEYS = ("id", "sig", "targets")


def audio_dataset(
    manifest,
    sample_rate,
    clip_duration,
    extra_items=(),
    output_keys=("id", "sig"),
    pad=True,
):
    """A dataset reading, resampling and cropping/padding each clip.

    The manifest is held as numpy arrays (:class:`CompactManifest`), so
    DataLoader workers share it instead of each copying millions of Python
    objects; items are the same as those of SpeechBrain's DynamicItemDataset.

    Arguments
    ---------
    manifest : str, dict or CompactManifest
        A JSON manifest path (loaded as ``DynamicItemDataset.from_json``
        does, through the on-disk cache of
        :func:`craft_modules.data.manifest_cache.load_manifest`), its loaded
        dict, or a compact manifest.
    sample_rate : int
        Target sample rate.
    clip_duration : float
        Clip length in seconds (crop or zero-pad).
    extra_items : list
        More dynamic items (e.g. targets).
    output_keys : list of str
        Keys of each item.
    pad : bool
        Zero-pad shorter clips to ``clip_duration`` (False: crop only; the
        batch's relative lengths then give each clip's true length).

    Returns
    -------
    CompactDynamicItemDataset
        The dataset; bad audio gives a ``None`` signal, dropped by the collate.
    """
    items = [audio_pipeline(sample_rate, clip_duration, pad=pad), *extra_items]
    if not isinstance(manifest, (dict, CompactManifest)):
        manifest = load_manifest(manifest)
    return CompactDynamicItemDataset(
        manifest, dynamic_items=items, output_keys=list(output_keys)
    )


def labelled_datasets(
    manifests,
    target_item,
    sample_rate,
    clip_duration,
    eval_clip_duration=None,
    pad=True,
):
    """Datasets yielding ``id``, ``sig`` and ``targets``, one per split.

    Clips of the ``train`` split are cut to ``clip_duration`` seconds, those
    of the other splits to ``eval_clip_duration`` when it is set (e.g. whole
    FSD50K clips for clip-level evaluation).

    Arguments
    ---------
    manifests : dict
        Split name -> manifest path, dict or :class:`CompactManifest`.
    target_item : DynamicItem
        Provides ``targets`` (e.g. :func:`craft_modules.data.labels.one_hot_pipeline`
        or :func:`craft_modules.data.labels.multi_hot_pipeline`).
    sample_rate : int
        Target sample rate.
    clip_duration : float
        Clip length of the training split, in seconds.
    eval_clip_duration : float, optional
        Clip length of the other splits (default ``clip_duration``).
    pad : bool
        Zero-pad shorter clips (False: the batch's relative lengths carry
        their true lengths).

    Returns
    -------
    dict
        Split name -> dataset.

    Example
    -------
    >>> from craft_modules.data.labels import one_hot_pipeline
    >>> manifests = {
    ...     "train": {"a": {"wav": "a.wav", "target": 1}},
    ...     "test": {"b": {"wav": "b.wav", "target": 0}, "c": {"wav": "c.wav", "target": 1}},
    ... }
    >>> datasets = labelled_datasets(manifests, one_hot_pipeline(2), 16000, 1.0)
    >>> sorted(datasets), len(datasets["train"]), len(datasets["test"])
    (['test', 'train'], 1, 2)
    """
    datasets = {}
    for name, manifest in manifests.items():
        duration = clip_duration
        if name != "train" and eval_clip_duration:
            duration = eval_clip_duration
        datasets[name] = audio_dataset(
            manifest, sample_rate, duration, [target_item], LABELLED_KEYS, pad=pad
        )
    return datasets


def multilabel_datasets(
    manifests,
    label_file,
    sample_rate,
    clip_duration,
    eval_clip_duration=None,
    pad=True,
):
    """:func:`labelled_datasets` with multi-hot targets from ``label_file``.

    Arguments
    ---------
    manifests : dict
        Split name -> manifest (each clip's ``labels`` lists its label ids).
    label_file : str
        The preparation's labels.json.
    sample_rate : int
        Target sample rate.
    clip_duration : float
        Clip length of the training split, in seconds.
    eval_clip_duration : float, optional
        Clip length of the other splits (default ``clip_duration``).
    pad : bool
        Zero-pad shorter clips.

    Returns
    -------
    dict
        Split name -> dataset.
    """
    return labelled_datasets(
        manifests,
        multi_hot_pipeline(label_file),
        sample_rate,
        clip_duration,
        eval_clip_duration,
        pad,
    )
