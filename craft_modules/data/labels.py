"""Labels: the label list of a preparation, multi-hot and one-hot targets, labelled subsets.

The preparation scripts write ``labels.json`` (the label names in output
order); :func:`load_label_list` reads it (:func:`checked_labels` also checks
it against the YAML's number of classes), :func:`multi_hot_pipeline` and
:func:`one_hot_pipeline` turn a manifest's labels into targets, and
:func:`label_fraction_mask` draws the labelled subset of CLAR's
label-fraction experiments.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import json
import math

import torch
from speechbrain.utils.data_pipeline import provides, takes


def load_label_list(path):
    """Reads the labels.json written by the preparation scripts.

    Arguments
    ---------
    path : str
        A JSON list of {"index", "mid", "display_name"} dicts (AudioSet) or
        of category names (ESC-50).

    Returns
    -------
    list
        The list, in index order.

    Example
    -------
    >>> from craft_modules.atomic_files import write_json_atomic
    >>> path = str(getfixture("tmp_path") / "labels.json")
    >>> write_json_atomic([{"index": 0, "mid": "/m/0a", "display_name": "A"}], path)
    >>> load_label_list(path)[0]["mid"]
    '/m/0a'
    """
    with open(path, encoding="utf-8") as fin:
        return json.load(fin)


def checked_labels(label_file, n_classes):
    """Reads labels.json and checks it against the YAML's ``n_classes``.

    Arguments
    ---------
    label_file : str
        The labels.json of the preparation.
    n_classes : int or str
        The number of classes the model is built with, or ``auto`` (the
        number of labels: the recipe passes ``len(labels)`` on).

    Returns
    -------
    list
        The labels.

    Example
    -------
    >>> from craft_modules.atomic_files import write_json_atomic
    >>> path = str(getfixture("tmp_path") / "labels.json")
    >>> write_json_atomic(["dog", "rain"], path)
    >>> checked_labels(path, 2)
    ['dog', 'rain']
    >>> len(checked_labels(path, "auto"))
    2
    >>> checked_labels(path, 50)
    Traceback (most recent call last):
        ...
    ValueError: n_classes=50 but ... lists 2 classes (drop --n_classes or set --n_classes=2)
    """
    labels = load_label_list(label_file)
    if str(n_classes).lower() != "auto" and int(n_classes) != len(labels):
        raise ValueError(
            f"n_classes={n_classes} but {label_file} lists {len(labels)} classes "
            f"(drop --n_classes or set --n_classes={len(labels)})"
        )
    return labels


class MultiHot:
    """Callable mapping a list of label ids (MIDs) to a multi-hot vector.

    Arguments
    ---------
    labels : list
        Label ids in index order, or the dicts of labels.json (their "mid"
        key is used).

    Example
    -------
    >>> encode = MultiHot(["/m/a", "/m/b", "/m/c"])
    >>> encode(["/m/c", "/m/a"]).tolist()
    [1.0, 0.0, 1.0]
    """

    def __init__(self, labels):
        ids = [lab["mid"] if isinstance(lab, dict) else lab for lab in labels]
        self.index = {label_id: i for i, label_id in enumerate(ids)}

    def __call__(self, labels):
        """Encodes `labels`; unknown ids raise KeyError.

        Arguments
        ---------
        labels : list of str
            The clip's label ids.

        Returns
        -------
        torch.Tensor
            Float multi-hot vector of length len(index).
        """
        target = torch.zeros(len(self.index))
        for label in labels:
            target[self.index[label]] = 1.0
        return target


def multi_hot_pipeline(label_file, input_key="labels", output_key="targets"):
    """Makes the dynamic item that turns a clip's MID list into a vector.

    Arguments
    ---------
    label_file : str
        labels.json written by prepare_audioset.
    input_key : str
        Manifest key holding the list of MIDs.
    output_key : str
        Name of the provided multi-hot tensor.

    Returns
    -------
    speechbrain.utils.data_pipeline.DynamicItem
        Add it to a DynamicItemDataset with `add_dynamic_item`.

    Example
    -------
    >>> from craft_modules.atomic_files import write_json_atomic
    >>> path = str(getfixture("tmp_path") / "labels.json")
    >>> write_json_atomic(
    ...     [{"index": i, "mid": m, "display_name": m} for i, m in enumerate("xyz")],
    ...     path,
    ... )
    >>> item = multi_hot_pipeline(path)
    >>> item(["z"]).tolist()
    [0.0, 0.0, 1.0]
    """
    encoder = MultiHot(load_label_list(label_file))
    return takes(input_key)(provides(output_key)(encoder))


def one_hot_pipeline(n_classes, input_key="target", output_key="targets"):
    """Dynamic item turning a class index into a float one-hot vector.

    Arguments
    ---------
    n_classes : int
        Number of classes.
    input_key : str
        Manifest key holding the index.
    output_key : str
        Provided key.

    Returns
    -------
    DynamicItem
        The pipeline item.

    Example
    -------
    >>> one_hot_pipeline(3)(2).tolist()
    [0.0, 0.0, 1.0]
    """

    @takes(input_key)
    @provides(output_key)
    def encode(target):
        target = int(target)
        if not 0 <= target < n_classes:
            raise ValueError(f"class index {target} outside [0, {n_classes})")
        vector = torch.zeros(n_classes)
        vector[target] = 1.0
        return vector

    return encode


def label_fraction_mask(ids, fraction, seed=0):
    """Chooses the labelled subset of a training set for a label fraction.

    The ids are sorted, permuted with a ``torch.Generator`` seeded with
    ``seed`` and the first ``max(1, floor(fraction * N + 0.5))`` are kept, so
    the choice depends only on the set of ids, the fraction and the seed (not
    on their order), and for one seed a smaller fraction keeps a subset of a
    larger one.

    Arguments
    ---------
    ids : iterable of str
        Unique ids of the training items.
    fraction : float
        Share of labelled items, in (0, 1] (CLAR's ``perc``).
    seed : int
        Seed of the draw.

    Returns
    -------
    set
        The labelled ids.

    Example
    -------
    >>> ids = [f"clip{i}" for i in range(10)]
    >>> labelled = label_fraction_mask(ids, 0.3, seed=1)
    >>> len(labelled), labelled == label_fraction_mask(ids[::-1], 0.3, seed=1)
    (3, True)
    >>> label_fraction_mask(ids, 0.0)
    Traceback (most recent call last):
        ...
    ValueError: label_fraction must be in (0, 1], got 0.0
    """
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"label_fraction must be in (0, 1], got {fraction}")
    ids = list(ids)
    unique = sorted(set(ids))
    if len(unique) != len(ids):
        raise ValueError(f"ids must be unique: {len(ids) - len(unique)} duplicates")
    if not unique:
        return set()
    keep = max(1, int(math.floor(float(fraction) * len(unique) + 0.5)))
    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(unique), generator=generator)[:keep].tolist()
    return {unique[i] for i in order}
