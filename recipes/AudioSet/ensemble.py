#!/usr/bin/env python3
"""Ensemble of fine-tuned AudioSet runs: their evaluation scores averaged.

The CRAFT paper's Table 1 reports, besides single runs, an ensemble of
multiple runs on the full AudioSet (46.1 mAP). It follows SSAST/AST, whose
ensemble averages the sigmoid scores that several fine-tuned models give each
evaluation clip and scores that mean (YuanGongND/ast
``egs/audioset/ensemble.py``). Here the models are not run again: each
fine-tuning run (``train.py``) saved its final evaluation's scores to
``<output_folder>/eval_predictions.npz``, and this script averages those.

The runs must cover the same evaluation clips with the same targets; clips
are aligned by id, not by position. A run whose clips or targets differ from
the first run's is an error naming that run and the first mismatching id.
Every run and the ensemble are scored with
:func:`craft_modules.metrics.multilabel_metrics` (SSAST's
``calculate_stats``: mAP, mAUC, d-prime).

``<output_folder>/ensemble_results.json`` holds ``runs`` (the predictions
files, in the order given), ``per_run`` (each run's ``mAP``, ``mAUC``,
``d_prime``), ``ensemble`` (the same for the averaged scores) and
``n_clips``. ``--output_folder`` defaults to the folder that holds the first
run folder (``results/AudioSet/finetune/swab`` for the runs
``results/AudioSet/finetune/swab/<seed>``). A one-line summary is printed.

Usage:
    python recipes/AudioSet/ensemble.py results/AudioSet/finetune/swab/1986 \
        results/AudioSet/finetune/swab/1987 results/AudioSet/finetune/swab/1988 \
        [--output_folder=results/AudioSet/ensemble]

    Each argument is a run folder (its ``eval_predictions.npz`` is read) or
    an ``.npz`` file.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import argparse
import os
import sys

import numpy as np

from craft_modules.atomic_files import write_json_atomic
from craft_modules.metrics import load_predictions, multilabel_metrics

PREDICTIONS_FILE = "eval_predictions.npz"
RESULTS_FILE = "ensemble_results.json"
METRICS = ("mAP", "mAUC", "d_prime")


def predictions_path(run):
    """The predictions file of a run folder, or ``run`` itself when it is a file.

    Arguments
    ---------
    run : str
        A run folder (``train.py``'s ``output_folder``) or an ``.npz`` file.

    Returns
    -------
    str
        The path of the ``.npz`` file.

    Example
    -------
    >>> predictions_path("results/run/eval_predictions.npz")
    'results/run/eval_predictions.npz'
    >>> predictions_path("results/run")
    'results/run/eval_predictions.npz'
    """
    if run.endswith(".npz") or os.path.isfile(run):
        return run
    return os.path.join(run, PREDICTIONS_FILE)


def default_output_folder(run):
    """The folder holding the first run folder (where the ensemble is written).

    Arguments
    ---------
    run : str
        The first run folder or ``.npz`` file given.

    Returns
    -------
    str
        The parent folder of the run folder.

    Example
    -------
    >>> default_output_folder("results/swab/1986")
    'results/swab'
    >>> default_output_folder("results/swab/1986/eval_predictions.npz")
    'results/swab'
    """
    run_folder = os.path.dirname(os.path.normpath(predictions_path(run)))
    return os.path.dirname(run_folder) or "."


def aligned_scores(reference, other, name):
    """The scores of ``other`` in the clip order of ``reference``.

    Arguments
    ---------
    reference : tuple
        ``(ids, scores, targets)`` of the first run.
    other : tuple
        ``(ids, scores, targets)`` of another run.
    name : str
        The other run, for the error messages.

    Returns
    -------
    numpy.ndarray
        ``other``'s scores, row ``i`` for clip ``reference[0][i]``.

    Raises
    ------
    ValueError
        When the runs differ in their clips (the first id, in sorted order,
        that one of them lacks is named), their classes or the targets of a
        clip (the first such id is named).

    Example
    -------
    >>> first = (["a", "b"], np.array([[0.1], [0.9]]), np.array([[0.0], [1.0]]))
    >>> second = (["b", "a"], np.array([[0.8], [0.2]]), np.array([[1.0], [0.0]]))
    >>> aligned_scores(first, second, "run2").tolist()
    [[0.2], [0.8]]
    >>> aligned_scores(first, (["a"], np.zeros((1, 1)), np.zeros((1, 1))), "run3")
    Traceback (most recent call last):
    ...
    ValueError: run3 does not cover the same clips as the first run: clip 'b' is missing from run3
    """
    ref_ids, ref_scores, ref_targets = reference
    ids, scores, targets = other
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in sorted(ids) if ids.count(i) > 1)
        raise ValueError(f"{name} holds clip {duplicate!r} more than once")
    if set(ids) != set(ref_ids):
        missing = sorted(set(ref_ids) - set(ids))
        extra = sorted(set(ids) - set(ref_ids))
        first = min(missing[:1] + extra[:1])
        where = "missing from" if missing and first == missing[0] else "only in"
        raise ValueError(
            f"{name} does not cover the same clips as the first run: "
            f"clip {first!r} is {where} {name}"
        )
    if scores.shape[1] != ref_scores.shape[1]:
        raise ValueError(
            f"{name} has {scores.shape[1]} classes, the first run {ref_scores.shape[1]}"
        )
    position = {clip_id: i for i, clip_id in enumerate(ids)}
    order = np.array([position[clip_id] for clip_id in ref_ids], dtype=np.int64)
    targets = targets[order]
    if targets.shape != ref_targets.shape:
        raise ValueError(
            f"{name} has targets of shape {targets.shape}, the first run "
            f"{ref_targets.shape}"
        )
    differs = np.flatnonzero(
        (targets != ref_targets).reshape(len(ref_ids), -1).any(axis=1)
    )
    if differs.size:
        raise ValueError(
            f"{name} has other targets than the first run for clip "
            f"{ref_ids[differs[0]]!r}"
        )
    return scores[order]


def ensemble(runs):
    """Scores each run and the mean of their scores.

    Arguments
    ---------
    runs : list of str
        Run folders or ``.npz`` files (at least one).

    Returns
    -------
    dict
        ``runs``, ``per_run``, ``ensemble`` and ``n_clips`` (what
        ``ensemble_results.json`` holds).
    """
    if not runs:
        raise ValueError("give at least one run folder or predictions file")
    paths = [predictions_path(run) for run in runs]
    reference = load_predictions(paths[0])
    ref_ids, _, ref_targets = reference
    per_run, total = [], None
    for index, path in enumerate(paths):
        predictions = load_predictions(path) if index else reference
        scores = aligned_scores(reference, predictions, path).astype(np.float64)
        total = scores if total is None else total + scores
        metrics = multilabel_metrics(scores, ref_targets)
        per_run.append({"run": path, **{key: metrics[key] for key in METRICS}})
    metrics = multilabel_metrics(total / len(paths), ref_targets)
    return {
        "runs": paths,
        "per_run": per_run,
        "ensemble": {key: metrics[key] for key in METRICS},
        "n_clips": len(ref_ids),
    }


def main(argv=None):
    """Reads the runs, writes ``ensemble_results.json``, prints a summary.

    Arguments
    ---------
    argv : list of str
        The command line without the script (``sys.argv[1:]`` by default).

    Returns
    -------
    dict
        What was written.
    """
    parser = argparse.ArgumentParser(
        description="Averages the evaluation scores of fine-tuned AudioSet runs."
    )
    parser.add_argument(
        "runs", nargs="+", help="run folders (with eval_predictions.npz) or .npz files"
    )
    parser.add_argument(
        "--output_folder",
        default=None,
        help="where ensemble_results.json goes (default: the first run's parent folder)",
    )
    args = parser.parse_args(argv)
    results = ensemble(args.runs)
    folder = args.output_folder or default_output_folder(args.runs[0])
    path = os.path.join(folder, RESULTS_FILE)
    write_json_atomic(results, path)
    single = [run["mAP"] for run in results["per_run"]]
    best = results["ensemble"]
    print(
        f"Ensemble of {len(single)} runs on {results['n_clips']} clips: "
        f"mAP {best['mAP']:.4f}, mAUC {best['mAUC']:.4f}, d' {best['d_prime']:.3f} "
        f"(single runs mAP {min(single):.4f}..{max(single):.4f}); written to {path}"
    )
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
