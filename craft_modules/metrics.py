"""Evaluation statistics of SSAST and helpers to compute them under DDP.

:func:`multilabel_metrics` follows the ``calculate_stats`` routine of the
official SSAST code (``src/utilities/stats.py`` of YuanGongND/ssast): per class, scikit-learn's
average precision and ROC AUC of the scores against the binary targets, their
means over classes (mAP, mAUC), ``d' = sqrt(2) * Phi^-1(mAUC)`` and the
accuracy of ``argmax(scores)`` against ``argmax(targets)``. Classes without
both a positive and a negative clip in the evaluation set have no defined AP
or AUC; they are skipped and counted instead of turning the means into NaN.

Under ``torch.distributed``, :class:`EvalShardSampler` gives each rank a
disjoint share of the evaluation set and :class:`PredictionCollector` gathers
the predictions of all ranks, so that every rank computes the statistics on
the whole set, each clip counted exactly once.
:func:`per_class_average_precision` gives each class's AP (NaN for the
classes skipped), whose mean over the scored classes is the mAP.
:func:`save_confusion_matrix` writes a confusion matrix as JSON and PNG.
:func:`save_predictions` and :func:`load_predictions` write and read the
per-clip scores of an evaluation (``eval_predictions.npz``), which
``recipes/AudioSet/ensemble.py`` averages over runs as SSAST/AST's ensembles
do (YuanGongND/ast ``egs/audioset/ensemble.py``).

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import math
import os

import numpy as np
import torch
from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.logger import get_logger

from craft_modules import distributed
from craft_modules.atomic_files import atomic_write, write_json_atomic

logger = get_logger(__name__)
_warned_no_matplotlib = False


def _to_numpy(values, name):
    """Converts a tensor, array or nested list to a float64/int numpy array."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        if values.dtype in (torch.bfloat16, torch.float16):
            values = values.float()
        return values.numpy()
    try:
        return np.asarray(values)
    except Exception as err:  # pragma: no cover - defensive
        raise ValueError(f"{name} must be a tensor or an array: {err}") from err


def _class_matrix(targets, n_classes):
    """Turns class indices (N,) into a one-hot matrix, keeps (N, C) as is."""
    if targets.ndim == 1:
        if not np.issubdtype(targets.dtype, np.integer):
            raise ValueError("targets of shape (N,) must be integer class indices")
        if targets.size and (targets.min() < 0 or targets.max() >= n_classes):
            raise ValueError(f"targets hold class indices outside [0, {n_classes})")
        onehot = np.zeros((targets.shape[0], n_classes), dtype=np.float64)
        onehot[np.arange(targets.shape[0]), targets] = 1.0
        return onehot
    return targets


def multilabel_metrics(scores, targets):
    """Computes SSAST's evaluation statistics: mAP, mAUC, d-prime and accuracy.

    Arguments
    ---------
    scores : torch.Tensor or numpy.ndarray
        Scores of shape ``(N, C)``, e.g. sigmoid outputs (SSAST evaluates on
        sigmoid outputs even when trained with cross-entropy).
    targets : torch.Tensor or numpy.ndarray
        Multi-hot or one-hot targets ``(N, C)``, possibly soft (mixup); they
        are binarised with ``> 0.5`` for AP and AUC. Integer class indices of
        shape ``(N,)`` are accepted too and one-hot encoded.

    Returns
    -------
    dict
        Plain Python floats: ``mAP`` and ``mAUC`` (means over the scored
        classes), ``d_prime`` (``sqrt(2) * norm.ppf(mAUC)``, infinite when
        mAUC is 1), ``accuracy`` (``argmax(targets) == argmax(scores)``) and
        ``n_classes_scored`` (classes with both positives and negatives; the
        others are skipped). When no class can be scored, mAP is 0, mAUC 0.5
        and d-prime 0 (chance), with a warning.

    Example
    -------
    >>> scores = torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.8, 0.1], [0.7, 0.4, 0.2]])
    >>> targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    >>> stats = multilabel_metrics(scores, targets)
    >>> stats["mAP"], stats["accuracy"], stats["n_classes_scored"]
    (1.0, 1.0, 2.0)
    """
    from scipy.stats import norm
    from sklearn.metrics import average_precision_score, roc_auc_score

    scores = _to_numpy(scores, "scores").astype(np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must have shape (N, C), got {scores.shape}")
    targets = _class_matrix(_to_numpy(targets, "targets"), scores.shape[1])
    targets = targets.astype(np.float64)
    if targets.shape != scores.shape:
        raise ValueError(
            f"targets {targets.shape} and scores {scores.shape} differ in shape"
        )
    if scores.shape[0] == 0:
        raise ValueError("cannot compute metrics on an empty evaluation set")

    binary = (targets > 0.5).astype(np.int64)
    aps, aucs = [], []
    for k in np.flatnonzero(scored_classes(binary)):
        aps.append(average_precision_score(binary[:, k], scores[:, k]))
        aucs.append(roc_auc_score(binary[:, k], scores[:, k]))

    if aps:
        m_ap = float(np.mean(aps))
        m_auc = float(np.mean(aucs))
        d_prime = float(math.sqrt(2.0) * norm.ppf(m_auc))
    else:
        logger.warning(
            "No class has both positive and negative clips in the evaluation "
            "set; reporting chance-level mAP/mAUC."
        )
        m_ap, m_auc, d_prime = 0.0, 0.5, 0.0
    acc = float(np.mean(np.argmax(targets, axis=1) == np.argmax(scores, axis=1)))
    return {
        "mAP": m_ap,
        "mAUC": m_auc,
        "d_prime": d_prime,
        "accuracy": acc,
        "n_classes_scored": float(len(aps)),
    }


def scored_classes(binary):
    """Which classes have an AP and an AUC: both positive and negative clips.

    Arguments
    ---------
    binary : numpy.ndarray
        Binary targets ``(N, C)``.

    Returns
    -------
    numpy.ndarray
        Booleans ``(C,)``.

    Example
    -------
    >>> scored_classes(np.array([[1, 0, 1], [0, 0, 1]])).tolist()
    [True, False, False]
    """
    positives = binary.sum(axis=0)
    return (positives > 0) & (positives < binary.shape[0])


def per_class_average_precision(scores, targets):
    """Each class's average precision, as :func:`multilabel_metrics` averages it.

    scikit-learn's ``average_precision_score`` of a class's scores against
    its binarised targets (``> 0.5``), as SSAST's ``calculate_stats``; a
    class without both positive and negative clips in the set has no AP
    (NaN here), and is left out of the mAP.

    Arguments
    ---------
    scores : torch.Tensor or numpy.ndarray
        Scores ``(N, C)``.
    targets : torch.Tensor or numpy.ndarray
        Multi-hot or one-hot targets ``(N, C)``, possibly soft.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` float64: the APs, NaN for the classes not scored; their
        ``nanmean`` is the mAP.

    Example
    -------
    >>> scores = np.array([[0.9, 0.2, 0.1], [0.4, 0.6, 0.3], [0.7, 0.1, 0.2]])
    >>> targets = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0]])
    >>> per_class_average_precision(scores, targets).round(3).tolist()
    [1.0, 0.833, nan]
    """
    from sklearn.metrics import average_precision_score

    scores = _to_numpy(scores, "scores").astype(np.float64)
    targets = _to_numpy(targets, "targets").astype(np.float64)
    if scores.ndim != 2 or targets.shape != scores.shape:
        raise ValueError(
            f"scores {scores.shape} and targets {targets.shape} must both be (N, C)"
        )
    binary = (targets > 0.5).astype(np.int64)
    aps = np.full(scores.shape[1], np.nan)
    for k in np.flatnonzero(scored_classes(binary)):
        aps[k] = average_precision_score(binary[:, k], scores[:, k])
    return aps


def accuracy(scores, targets):
    """Single-label accuracy of ``argmax(scores)``.

    Arguments
    ---------
    scores : torch.Tensor or numpy.ndarray
        Scores or logits of shape ``(N, C)``.
    targets : torch.Tensor or numpy.ndarray
        Class indices ``(N,)`` or one-hot (possibly soft) targets ``(N, C)``,
        reduced with argmax.

    Returns
    -------
    float
        The fraction of clips whose highest score is the target class.

    Example
    -------
    >>> accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
    0.5
    """
    scores = _to_numpy(scores, "scores")
    targets = _to_numpy(targets, "targets")
    if scores.ndim != 2:
        raise ValueError(f"scores must have shape (N, C), got {scores.shape}")
    if targets.ndim == 2:
        targets = np.argmax(targets, axis=1)
    if targets.shape[0] != scores.shape[0]:
        raise ValueError(
            f"{targets.shape[0]} targets for {scores.shape[0]} rows of scores"
        )
    if scores.shape[0] == 0:
        raise ValueError("cannot compute accuracy on an empty evaluation set")
    return float(np.mean(np.argmax(scores, axis=1) == targets))


def _distributed_world():
    """Returns ``(rank, world_size)`` of the default process group, or ``(0, 1)``."""
    return distributed.rank(), distributed.world_size()


class PredictionCollector:
    """Accumulates per-clip predictions and gathers them over all DDP ranks.

    Scores and targets are detached and moved to the CPU on :meth:`append`.
    :meth:`gather` returns the predictions of the whole evaluation set, each
    clip id exactly once (the first occurrence is kept, so duplicates from a
    padding sampler are dropped), sorted by id, on every rank.

    Example
    -------
    >>> collector = PredictionCollector()
    >>> collector.append(["b", "a"], torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([1, 0]))
    >>> collector.append(["a"], torch.tensor([[0.5, 0.5]]), torch.tensor([0]))
    >>> ids, scores, targets = collector.gather()
    >>> ids, scores.tolist(), targets.tolist()
    (['a', 'b'], [[1.0, 0.0], [0.0, 1.0]], [0, 1])
    >>> len(collector)
    3
    """

    def __init__(self):
        self.reset()

    def reset(self):
        """Forgets all appended predictions.

        Returns
        -------
        None

        Example
        -------
        >>> collector = PredictionCollector()
        >>> collector.append(["a"], torch.zeros(1, 2), torch.zeros(1, 2))
        >>> collector.reset()
        >>> len(collector)
        0
        """
        self.ids = []
        self.scores = []
        self.targets = []

    def __len__(self):
        """Number of appended predictions, duplicates included."""
        return len(self.ids)

    def append(self, ids, scores, targets):
        """Stores the predictions of one batch.

        Arguments
        ---------
        ids : list of str
            Clip ids of the batch.
        scores : torch.Tensor
            Scores ``(B, C)``.
        targets : torch.Tensor
            Targets ``(B, C)`` or class indices ``(B,)``.

        Returns
        -------
        None

        Example
        -------
        >>> collector = PredictionCollector()
        >>> collector.append(["x", "y"], torch.rand(2, 3), torch.tensor([0, 2]))
        >>> len(collector)
        2
        """
        ids = [str(i) for i in ids]
        scores = torch.as_tensor(scores).detach().cpu()
        targets = torch.as_tensor(targets).detach().cpu()
        if scores.shape[0] != len(ids) or targets.shape[0] != len(ids):
            raise ValueError(
                f"{len(ids)} ids for {scores.shape[0]} scores and "
                f"{targets.shape[0]} targets"
            )
        self.ids.extend(ids)
        self.scores.append(scores)
        self.targets.append(targets)

    def _local(self):
        """Returns this rank's ``(ids, scores, targets)``, tensors concatenated."""
        if not self.ids:
            return [], None, None
        return list(self.ids), torch.cat(self.scores), torch.cat(self.targets)

    def gather(self):
        """Returns the predictions of all ranks, de-duplicated and sorted by id.

        Under an initialised ``torch.distributed`` with more than one process,
        this is a collective call: every rank must call it.

        Returns
        -------
        ids : list of str
            Unique clip ids, sorted.
        scores : torch.Tensor
            Scores ``(N, C)`` in the order of ``ids``.
        targets : torch.Tensor
            Targets ``(N, C)`` or ``(N,)`` in the order of ``ids``.

        Example
        -------
        >>> collector = PredictionCollector()
        >>> collector.append(["b", "a", "b"], torch.eye(3), torch.arange(3))
        >>> ids, scores, targets = collector.gather()
        >>> ids, targets.tolist()
        (['a', 'b'], [1, 0])
        """
        parts = distributed.all_gather_objects(self._local())
        parts = [part for part in parts if part[0]]
        if not parts:
            return [], torch.empty(0), torch.empty(0)
        all_ids = [clip_id for part in parts for clip_id in part[0]]
        all_scores = torch.cat([part[1] for part in parts])
        all_targets = torch.cat([part[2] for part in parts])
        first = {}
        for position, clip_id in enumerate(all_ids):
            first.setdefault(clip_id, position)
        ids = sorted(first)
        order = torch.tensor([first[clip_id] for clip_id in ids], dtype=torch.long)
        return ids, all_scores[order], all_targets[order]


#: The arrays of an ``eval_predictions.npz``.
PREDICTION_KEYS = ("ids", "scores", "targets")


def save_predictions(path, ids, scores, targets):
    """Writes an evaluation's per-clip predictions to ``path`` (``.npz``), atomically.

    Only the main process writes (every rank holds the gathered predictions).
    The arrays go to a temporary file in the same folder, which then replaces
    ``path``, so a reader never sees half a file.

    Arguments
    ---------
    path : str
        Destination, e.g. ``<output_folder>/eval_predictions.npz``.
    ids : list of str
        Clip ids ``(N,)``.
    scores : torch.Tensor or numpy.ndarray
        Scores ``(N, C)`` (the sigmoid outputs ``ClassifierBrain`` collects).
    targets : torch.Tensor or numpy.ndarray
        Targets ``(N, C)`` (or class indices ``(N,)``).

    Example
    -------
    >>> path = str(getfixture("tmp_path") / "eval_predictions.npz")
    >>> save_predictions(path, ["a", "b"], torch.tensor([[0.75], [0.25]]), torch.tensor([[1.0], [0.0]]))
    >>> ids, scores, targets = load_predictions(path)
    >>> ids, scores.tolist(), targets.tolist()
    (['a', 'b'], [[0.75], [0.25]], [[1.0], [0.0]])
    """
    if not if_main_process():
        return
    ids = np.asarray([str(i) for i in ids], dtype=str)
    scores = _to_numpy(scores, "scores").astype(np.float32)
    targets = _to_numpy(targets, "targets")
    if targets.dtype.kind == "f":
        targets = targets.astype(np.float32)
    if scores.shape[0] != len(ids) or targets.shape[0] != len(ids):
        raise ValueError(
            f"{len(ids)} ids for {scores.shape[0]} scores and "
            f"{targets.shape[0]} targets"
        )
    with atomic_write(path, "wb") as fout:
        np.savez_compressed(fout, ids=ids, scores=scores, targets=targets)


def load_predictions(path):
    """Reads the predictions :func:`save_predictions` wrote.

    Arguments
    ---------
    path : str
        An ``eval_predictions.npz``.

    Returns
    -------
    ids : list of str
        Clip ids.
    scores : numpy.ndarray
        Scores ``(N, C)``.
    targets : numpy.ndarray
        Targets, as saved.

    Example
    -------
    >>> load_predictions("missing.npz")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no predictions file missing.npz
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no predictions file {path}")
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in PREDICTION_KEYS if key not in data]
        if missing:
            raise ValueError(f"{path} lacks the arrays {missing}")
        ids, scores, targets = (data[key] for key in PREDICTION_KEYS)
    if scores.ndim != 2 or len(scores) != len(ids) or len(targets) != len(ids):
        raise ValueError(
            f"{path}: {len(ids)} ids for scores {scores.shape} and targets "
            f"{targets.shape}"
        )
    return [str(i) for i in ids], scores, targets


class EvalShardSampler(torch.utils.data.Sampler):
    """Splits an evaluation set into disjoint per-rank shards, without padding.

    Rank ``r`` of ``w`` processes gets indices ``r, r + w, r + 2w, ...``, so
    the shards partition the set (unlike ``DistributedSampler``, which pads
    with duplicates). Without ``torch.distributed`` it yields every index.

    Arguments
    ---------
    dataset_len_or_dataset : int or Sized
        The dataset, or its length.
    rank : int, optional
        This process's rank; by default from ``torch.distributed``.
    world_size : int, optional
        Number of processes; by default from ``torch.distributed``.

    Example
    -------
    >>> list(EvalShardSampler(5))
    [0, 1, 2, 3, 4]
    >>> list(EvalShardSampler(5, rank=1, world_size=2))
    [1, 3]
    """

    def __init__(self, dataset_len_or_dataset, rank=None, world_size=None):
        if isinstance(dataset_len_or_dataset, int):
            length = dataset_len_or_dataset
        else:
            length = len(dataset_len_or_dataset)
        if length < 0:
            raise ValueError(f"dataset_len_or_dataset must be >= 0, got {length}")
        dist_rank, dist_world = _distributed_world()
        self.rank = dist_rank if rank is None else int(rank)
        self.world_size = dist_world if world_size is None else int(world_size)
        if self.world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {self.world_size}")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, {self.world_size}), got {rank}")
        self.length = length

    def __iter__(self):
        """Yields this rank's indices."""
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self):
        """Number of indices of this rank."""
        return len(range(self.rank, self.length, self.world_size))


def _class_indices(values, name):
    """Reduces (N, C) scores/one-hot to indices; checks (N,) integer indices."""
    values = _to_numpy(values, name)
    if values.ndim == 2:
        values = np.argmax(values, axis=1)
    if values.ndim != 1:
        raise ValueError(f"{name} must be class indices (N,) or (N, C)")
    return values.astype(np.int64)


def save_confusion_matrix(targets, predictions, labels, path_png):
    """Computes a confusion matrix and writes it as a PNG plot and a JSON file.

    The plot needs matplotlib (the ``plot`` extra: ``pip install
    craft-modules[plot]``); without it the JSON is still written and the PNG
    is skipped, with one warning per process.

    Arguments
    ---------
    targets : torch.Tensor or numpy.ndarray or list
        True class indices ``(N,)``, or one-hot targets ``(N, C)``.
    predictions : torch.Tensor or numpy.ndarray or list
        Predicted class indices ``(N,)``, or scores ``(N, C)`` (argmax).
    labels : list of str or int
        Class names, one per class index; an int gives that many classes
        named by their index.
    path_png : str
        Where to write the plot; the matrix goes to the same path with a
        ``.json`` suffix (``{"labels": [...], "matrix": [[...]]}``).

    Returns
    -------
    list of list of int
        The matrix: row = true class, column = predicted class.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save_confusion_matrix([0, 1, 1], [0, 1, 0], ["dog", "cat"], os.path.join(tmp, "cm.png"))
    [[1, 0], [1, 1]]
    """
    from sklearn.metrics import confusion_matrix

    if isinstance(labels, int):
        labels = [str(k) for k in range(labels)]
    labels = [str(name) for name in labels]
    n_classes = len(labels)
    targets = _class_indices(targets, "targets")
    predictions = _class_indices(predictions, "predictions")
    if targets.shape != predictions.shape:
        raise ValueError(
            f"{targets.shape[0]} targets for {predictions.shape[0]} predictions"
        )
    for name, values in (("targets", targets), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= n_classes):
            raise ValueError(f"{name} hold class indices outside [0, {n_classes})")
    matrix = confusion_matrix(targets, predictions, labels=list(range(n_classes)))
    matrix = [[int(v) for v in row] for row in matrix]

    directory = os.path.dirname(os.path.abspath(path_png))
    os.makedirs(directory, exist_ok=True)
    stem = os.path.splitext(path_png)[0]
    write_json_atomic({"labels": labels, "matrix": matrix}, stem + ".json", indent=1)
    try:
        import matplotlib
    except ImportError:
        global _warned_no_matplotlib
        if not _warned_no_matplotlib:
            logger.warning(
                "matplotlib is not installed: confusion matrices are written as "
                "JSON only (%s.json); pip install 'craft-modules[plot]' for the PNG",
                stem,
            )
            _warned_no_matplotlib = True
        return matrix
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fontsize = 10 if n_classes <= 10 else (7 if n_classes <= 30 else 4)
    side = min(4.0 + 0.25 * n_classes, 40.0)
    fig = Figure(figsize=(side, side))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(np.asarray(matrix), cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = list(range(n_classes))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels(labels, rotation=90, fontsize=fontsize)
    ax.set_yticklabels(labels, fontsize=fontsize)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    if n_classes <= 20:
        peak = max(max(row) for row in matrix) if matrix else 0
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                color = "white" if peak and count > peak / 2 else "black"
                ax.text(
                    j, i, str(count), ha="center", va="center", color=color, fontsize=8
                )
    fig.tight_layout()
    from craft_modules.plots import save_figure

    save_figure(fig, path_png)
    logger.info("Confusion matrix written to %s and %s.json", path_png, stem)
    return matrix
