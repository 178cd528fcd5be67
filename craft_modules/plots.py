"""Figures of a run: training curves (``curves.png``) and per-class AP (``per_class_ap.png``).

* :func:`plot_step_curves`: pretraining, against the optimizer step, from
  the step records of :class:`craft_modules.training.step_log.StepLog`: the
  total loss, its components (``nce_*``, ``mse_*``, ``swacl``...), the
  accuracies (``acc_*``, ``swacl_acc``), training as lines and validation
  as markers, and the learning rate.
* :func:`plot_epoch_curves`: fine-tuning, against the epoch, from
  ``ClassifierBrain.history``: training and validation loss, the validation
  metric (best epoch marked) and the learning rate.
* :func:`plot_fold_curves`: the ESC-50 summary: each fold's training loss
  and validation accuracy, their mean, and the epoch SSAST's score reads.
* :func:`plot_per_class_ap`: a multi-label evaluation's AP per class,
  sorted; beyond 40 classes the best and worst 20 and the distribution of
  all of them.

Only the main process writes, and every PNG is written atomically (a
temporary file in the same folder, then ``os.replace``), so a run killed
while plotting leaves the previous figure, never a broken one. The figures
need matplotlib (the ``plot`` extra, ``pip install 'craft-modules[plot]'``);
without it nothing is written and one warning is logged.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import functools
import math

from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.logger import get_logger

from craft_modules.atomic_files import atomic_write

logger = get_logger(__name__)
_warned_no_matplotlib = False

#: Keys of a step record that are not plotted as values.
RECORD_META = ("stage", "step", "epoch", "lr", "steps", "skipped_clips")
#: Classes shown at each end of a per-class AP plot beyond ``2 * TOP_CLASSES``.
TOP_CLASSES = 20
#: The longest class name shown in full; longer ones are shortened.
MAX_NAME = 36


def _figure_class():
    """matplotlib's ``Figure`` class, or None (with one warning) without matplotlib."""
    global _warned_no_matplotlib
    try:
        import matplotlib  # noqa: F401  (fails first when matplotlib is absent)
        from matplotlib.figure import Figure
    except ImportError:
        if not _warned_no_matplotlib:
            logger.warning(
                "matplotlib is not installed: no training curves or per-class AP "
                "plots are written; pip install 'craft-modules[plot]' for them"
            )
            _warned_no_matplotlib = True
        return None
    return Figure


def save_figure(fig, path):
    """Writes a matplotlib figure as a PNG at ``path``, atomically.

    Arguments
    ---------
    fig : matplotlib.figure.Figure
        The figure.
    path : str
        Destination; its folder is created if needed.

    Example
    -------
    >>> from matplotlib.figure import Figure
    >>> path = getfixture("tmp_path") / "x.png"
    >>> save_figure(Figure(figsize=(1, 1)), str(path))
    >>> path.read_bytes()[:4], sorted(p.name for p in path.parent.iterdir())
    (b'\\x89PNG', ['x.png'])
    """
    with atomic_write(path, "wb") as fout:
        fig.savefig(fout, format="png", dpi=100)


def _finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value)


def _series(records, key):
    """``(xs, ys)`` of the records holding a finite ``key`` (x: ``step`` or ``epoch``)."""
    xs, ys = [], []
    for record in records:
        value = record.get(key)
        if _finite(value):
            xs.append(record.get("step", record.get("epoch")))
            ys.append(float(value))
    return xs, ys


def _is_accuracy(key):
    return "acc" in key


def _render(path, panels, x_label, title, integer_x=False):
    """Draws stacked panels sharing the x axis and saves them; False without matplotlib.

    Each panel is ``(y_label, [(label, xs, ys, style), ...])``; ``style``
    holds matplotlib ``plot`` keywords. Empty panels are left out.
    """
    panels = [
        (label, lines) for label, lines in panels if any(line[1] for line in lines)
    ]
    if not panels or not if_main_process():
        return False
    Figure = _figure_class()
    if Figure is None:
        return False
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10.0, 1.0 + 2.4 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (y_label, lines) in zip(axes, panels):
        positive = []
        for label, xs, ys, style in lines:
            if xs:
                ax.plot(xs, ys, label=label, **style)
                positive.extend(ys)
        values = [v for v in positive if v > 0]
        if (
            values
            and len(values) == len(positive)
            and max(values) > 20 * min(values)
            and y_label not in ("accuracy", "learning rate")
        ):
            ax.set_yscale("log")
        if y_label == "learning rate":  # from 0, in powers of ten
            ax.set_ylim(0.0, 1.1 * max(positive + [1e-12]))
            ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        ax.set_ylabel(y_label)
        ax.grid(True, alpha=0.3)
        if len(lines) > 1:  # beside the axes, never over the curves
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1].set_xlabel(x_label)
    if integer_x:
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
    return True


def never_fails(plot):
    """Makes a plot function log its errors and return False instead of raising.

    A figure is a by-product of a run: a drawing error (an odd value, a
    matplotlib version) must never stop training or lose a checkpoint.

    Arguments
    ---------
    plot : callable
        A function writing a figure, returning True when written.

    Returns
    -------
    callable
        The same function, guarded.

    Example
    -------
    >>> @never_fails
    ... def broken(path):
    ...     raise ValueError("no")
    >>> broken("x.png")
    False
    """

    @functools.wraps(plot)
    def guarded(*args, **kwargs):
        try:
            return plot(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 (any drawing error)
            logger.warning(
                "could not draw %s: %s: %s", plot.__name__, type(err).__name__, err
            )
            return False

    return guarded


@never_fails
def plot_step_curves(records, path, monitor=None, title=None):
    """Writes a pretraining run's curves against the optimizer step.

    Arguments
    ---------
    records : list of dict
        Step records (``StepLog.records``): ``stage`` (``train`` every
        ``log_interval`` steps, ``valid`` at each validation), ``step``,
        ``lr`` and the named losses.
    path : str
        The PNG, e.g. ``<output_folder>/curves.png``.
    monitor : str, optional
        The validated key driving the schedule, named in its legend.
    title : str, optional
        The figure's title.

    Returns
    -------
    bool
        Whether the figure was written (not without matplotlib, records or
        on another process than the main one).

    Example
    -------
    >>> records = [
    ...     {"stage": "train", "step": s, "lr": 1e-4, "loss": 9 / s, "nce": 8 / s, "acc": s / 9}
    ...     for s in (1, 2, 3)
    ... ] + [{"stage": "valid", "step": 3, "loss": 3.2, "nce": 2.9, "acc": 0.3}]
    >>> plot_step_curves(records, str(getfixture("tmp_path") / "curves.png"), monitor="acc")
    True
    """
    train = [r for r in records if r.get("stage", "train") == "train"]
    valid = [r for r in records if r.get("stage") == "valid"]
    keys = []
    for record in train + valid:
        keys.extend(
            k
            for k, v in record.items()
            if k not in RECORD_META and k not in keys and _finite(v)
        )
    panels = {"loss": [], "loss components": [], "accuracy": []}
    for key in keys:
        panel = (
            "loss"
            if key == "loss"
            else ("accuracy" if _is_accuracy(key) else "loss components")
        )
        name = f"{key} (monitored)" if key == monitor else key
        style = {"color": f"C{len(panels[panel]) // 2 % 10}"}
        panels[panel].append(
            (f"train {name}", *_series(train, key), {**style, "linewidth": 1.2})
        )
        panels[panel].append(
            (
                f"valid {name}",
                *_series(valid, key),
                {**style, "marker": "o", "linestyle": "--", "markersize": 4},
            )
        )
    lr = [("lr", *_series(train, "lr"), {"color": "k", "linewidth": 1.0})]
    return _render(
        path,
        [*panels.items(), ("learning rate", lr)],
        "optimizer step",
        title or "Pretraining: running means per log_interval (lines), validation (o)",
    )


@never_fails
def plot_epoch_curves(history, path, metrics=("accuracy",), title=None):
    """Writes a fine-tuning run's curves against the epoch.

    Arguments
    ---------
    history : list of dict
        ``ClassifierBrain.history``: per epoch ``epoch``, the validation
        metrics and ``loss``, and ``train_loss`` (plus any ``train_*`` loss
        part, e.g. CLAR's ``train_nt_xent``) and ``lr``.
    path : str
        The PNG, e.g. ``<experiment_folder>/curves.png``.
    metrics : sequence of str
        The validation metrics to draw; the first one's best epoch is
        marked (the checkpoint selection's metric).
    title : str, optional
        The figure's title.

    Returns
    -------
    bool
        Whether the figure was written.

    Example
    -------
    >>> history = [
    ...     {"epoch": e, "loss": 1 / e, "train_loss": 2 / e, "accuracy": e / 4, "lr": 1e-4}
    ...     for e in (1, 2, 3)
    ... ]
    >>> plot_epoch_curves(history, str(getfixture("tmp_path") / "curves.png"))
    True
    """
    history = sorted(history, key=lambda h: h["epoch"])
    marker = {"marker": "o", "markersize": 4}
    losses = [
        ("train loss", *_series(history, "train_loss"), {"color": "C0", **marker}),
        (
            "valid loss",
            *_series(history, "loss"),
            {"color": "C1", "linestyle": "--", **marker},
        ),
    ]
    parts = sorted(
        {
            k
            for h in history
            for k in h
            if k.startswith("train_") and k not in ("train_loss", "train_skipped_clips")
        }
    )
    for index, key in enumerate(parts):
        losses.append(
            (
                key.replace("_", " ", 1),
                *_series(history, key),
                {"color": f"C{index + 2}", "linewidth": 0.8, **marker},
            )
        )
    scores = []
    for index, key in enumerate(metrics):
        xs, ys = _series(history, key)
        scores.append((f"valid {key}", xs, ys, {"color": f"C{index}", **marker}))
    xs, ys = _series(history, metrics[0])
    if ys:
        best = max(range(len(ys)), key=lambda i: ys[i])
        scores.append(
            (
                f"best {metrics[0]}: {ys[best]:.3f} (epoch {xs[best]})",
                [xs[best]],
                [ys[best]],
                {"color": "C3", "marker": "*", "markersize": 12, "linestyle": ""},
            )
        )
    lr = [("lr", *_series(history, "lr"), {"color": "k", **marker})]
    return _render(
        path,
        [("loss", losses), (" / ".join(metrics), scores), ("learning rate", lr)],
        "epoch",
        title or "Fine-tuning: training and validation per epoch",
        integer_x=True,
    )


@never_fails
def plot_fold_curves(histories, path, metric="accuracy", best_epoch=None, title=None):
    """Writes the cross-validation summary: every fold's curves and their mean.

    Arguments
    ---------
    histories : dict
        Fold -> ``ClassifierBrain.history`` of the fold's run.
    path : str
        The PNG, e.g. ``<output_folder>/curves.png``.
    metric : str
        The validation metric (ESC-50: ``accuracy``).
    best_epoch : int, optional
        The epoch the score is read at (SSAST's best mean epoch), marked.
    title : str, optional
        The figure's title.

    Returns
    -------
    bool
        Whether the figure was written.

    Example
    -------
    >>> histories = {
    ...     f: [{"epoch": e, "train_loss": 2 / e, "accuracy": e / (4 + f)} for e in (1, 2)]
    ...     for f in (1, 2)
    ... }
    >>> plot_fold_curves(histories, str(getfixture("tmp_path") / "curves.png"), best_epoch=2)
    True
    """
    thin = {"linewidth": 0.9, "alpha": 0.6, "marker": ".", "markersize": 4}
    losses, scores, by_epoch = [], [], {}
    for index, (fold, history) in enumerate(sorted(histories.items())):
        history = sorted(history, key=lambda h: h["epoch"])
        style = {"color": f"C{index}", **thin}
        losses.append((f"fold {fold}", *_series(history, "train_loss"), style))
        xs, ys = _series(history, metric)
        scores.append((f"fold {fold}", xs, ys, style))
        for x, y in zip(xs, ys):
            by_epoch.setdefault(x, []).append(y)
    epochs = sorted(e for e, v in by_epoch.items() if len(v) == len(histories))
    mean = [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]
    scores.append(
        (
            f"mean of {len(histories)} folds",
            epochs,
            mean,
            {"color": "k", "linewidth": 2},
        )
    )
    if best_epoch in epochs:
        value = mean[epochs.index(best_epoch)]
        scores.append(
            (
                f"score: {value:.3f} (epoch {best_epoch})",
                [best_epoch],
                [value],
                {"color": "C3", "marker": "*", "markersize": 12, "linestyle": ""},
            )
        )
    return _render(
        path,
        [("training loss", losses), (f"validation {metric}", scores)],
        "epoch",
        title or f"Cross-validation: {len(histories)} folds",
        integer_x=True,
    )


def _short(name):
    """``name``, or its start and end around an ellipsis beyond ``MAX_NAME`` characters."""
    name = str(name)
    if len(name) <= MAX_NAME:
        return name
    tail = MAX_NAME // 3
    return name[: MAX_NAME - tail - 1] + "\u2026" + name[-tail:]


def _bars(ax, items, x_max=1.0):
    """Horizontal bars of ``(name, AP)`` items, the first at the top, values printed."""
    names = [_short(name) for name, _ in items]
    values = [value for _, value in items]
    positions = list(range(len(items)))[::-1]
    ax.barh(positions, values, color="C0", height=0.7)
    ax.set_yticks(positions)
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xlim(0.0, x_max * 1.12)
    for y, value in zip(positions, values):
        ax.text(value + 0.01, y, f"{value:.2f}", va="center", fontsize=6)
    ax.grid(True, axis="x", alpha=0.3)


@never_fails
def plot_per_class_ap(per_class_ap, path, unscored=(), title=None, top=TOP_CLASSES):
    """Writes a multi-label evaluation's average precision per class.

    Up to ``2 * top`` classes: one bar per class, sorted by AP. Beyond: the
    ``top`` best and ``top`` worst classes, and a histogram of every
    scored class's AP with the mAP marked.

    Arguments
    ---------
    per_class_ap : dict
        Class name -> AP, for the scored classes (those with positive and
        negative clips in the evaluation set).
    path : str
        The PNG, e.g. ``<output_folder>/per_class_ap.png``.
    unscored : sequence of str
        The classes without an AP, counted in the title.
    title : str, optional
        Replaces the title (which names the mAP and the class counts).
    top : int
        Classes at each end beyond ``2 * top`` classes.

    Returns
    -------
    bool
        Whether the figure was written (not without matplotlib, scored
        classes or on another process than the main one).

    Example
    -------
    >>> aps = {f"class {k}": k / 60 for k in range(60)}
    >>> plot_per_class_ap(aps, str(getfixture("tmp_path") / "ap.png"), unscored=["rare"])
    True
    """
    if not per_class_ap or not if_main_process():
        return False
    Figure = _figure_class()
    if Figure is None:
        return False
    items = sorted(per_class_ap.items(), key=lambda item: (-item[1], item[0]))
    m_ap = sum(per_class_ap.values()) / len(per_class_ap)
    heading = title or (
        f"Per-class AP: mAP {m_ap:.3f} over {len(items)} classes"
        + (
            f"; {len(unscored)} not scored (no positive or no negative clip)"
            if unscored
            else ""
        )
    )
    if len(items) <= 2 * top:
        fig = Figure(figsize=(8.0, 1.2 + 0.22 * len(items)), layout="constrained")
        ax = fig.subplots()
        _bars(ax, items)
        ax.axvline(m_ap, color="C3", linestyle="--", linewidth=1, label="mAP")
        ax.legend(fontsize=7, loc="lower right")
        ax.set_xlabel("average precision")
    else:
        fig = Figure(figsize=(12.0, 1.5 + 0.22 * top * 2), layout="constrained")
        grid = fig.add_gridspec(2, 2, width_ratios=[1.0, 1.0])
        best = fig.add_subplot(grid[0, 0])
        worst = fig.add_subplot(grid[1, 0])
        spread = fig.add_subplot(grid[:, 1])
        _bars(best, items[:top])
        best.set_title(f"best {top}", fontsize=9)
        _bars(worst, items[-top:])
        worst.set_title(f"worst {top}", fontsize=9)
        worst.set_xlabel("average precision")
        spread.hist([v for _, v in items], bins=20, range=(0.0, 1.0), color="C0")
        spread.axvline(m_ap, color="C3", linestyle="--", label=f"mAP {m_ap:.3f}")
        spread.set_xlabel("average precision")
        spread.set_ylabel("classes")
        spread.set_title(f"all {len(items)} scored classes", fontsize=9)
        spread.legend(fontsize=8)
        spread.grid(True, alpha=0.3)
    fig.suptitle(heading, fontsize=10)
    save_figure(fig, path)
    return True
