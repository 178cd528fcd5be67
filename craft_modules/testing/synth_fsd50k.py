"""A synthetic multi-label dataset in the official FSD50K layout, for tests.

:func:`make_fsd50k` writes::

    FSD50K.dev_audio/<fname>.wav
    FSD50K.eval_audio/<fname>.wav
    FSD50K.ground_truth/dev.csv         fname,labels,mids,split
    FSD50K.ground_truth/eval.csv        fname,labels,mids
    FSD50K.ground_truth/vocabulary.csv  index,label_name,mid (no header)

with the clips of :func:`craft_modules.testing.synth.synth_clip` (one event per
label plus background noise), so that ``recipes/FSD50K/fsd50k_prepare.py``
and the recipes run on it. Bad rows can be injected into the dev set. The
same seed always gives bit-identical files.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import csv
import os

import numpy as np

from craft_modules.testing.synth import (
    _check_n_classes,
    _draw_label_sets,
    _make_ontology,
    _write_garbage,
    _write_wav,
    class_names,
    synth_clip,
)

DEV_AUDIO = "FSD50K.dev_audio"
EVAL_AUDIO = "FSD50K.eval_audio"
GROUND_TRUTH = "FSD50K.ground_truth"
UNKNOWN_LABEL = "Not_a_vocabulary_label"


def _fsd_name(name):
    """FSD50K-style label name: capitalised, words joined by underscores."""
    return name[:1].upper() + name[1:]


def _write_rows(path, header, rows):
    """Writes a CSV (every field quoted when needed, as in the release)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fout:
        writer = csv.writer(fout)
        if header:
            writer.writerow(header)
        writer.writerows(rows)


def _durations(rng, count, duration):
    """One duration per clip: fixed, or uniform in a (min, max) range."""
    if np.isscalar(duration):
        return [float(duration)] * count
    low, high = (float(value) for value in duration)
    return [round(float(rng.uniform(low, high)), 3) for _ in range(count)]


def make_fsd50k(
    root,
    n_classes=6,
    n_dev=12,
    n_eval=6,
    n_val=None,
    duration=1.0,
    sample_rate=16000,
    max_labels=2,
    seed=0,
    n_missing=0,
    n_corrupt=0,
    n_unknown_label=0,
    n_malformed=0,
):
    """Writes a synthetic dataset in the official FSD50K layout.

    The dev rows are split into "train" and "val" (the last ``n_val`` rows
    before the bad ones are "val"). Bad rows, all in the dev set with split
    "train", are its last rows in this order: rows whose audio is not
    written (``n_missing``), rows whose audio file is random bytes
    (``n_corrupt``) and rows with an extra label that is not in the
    vocabulary (``n_unknown_label``, named :data:`UNKNOWN_LABEL`, with a
    made-up MID). ``n_malformed`` rows with an empty label list are
    appended to dev.csv.

    Arguments
    ---------
    root : str
        Output folder (the FSD50K root).
    n_classes : int
        Vocabulary size (at most the number of synthetic classes).
    n_dev : int
        Rows of dev.csv, bad rows included (malformed ones excluded).
    n_eval : int
        Rows of eval.csv.
    n_val : int, optional
        Dev rows with split "val"; default a quarter of the good dev rows.
    duration : float or tuple of float
        Clip length in seconds, or a ``(min, max)`` range drawn per clip.
    sample_rate : int
        Sample rate of the wav files (FSD50K itself is 44.1 kHz).
    max_labels : int
        Maximum number of labels (and sound events) per clip.
    seed : int
        Seed; the same seed gives bit-identical files.
    n_missing : int
        Dev rows whose audio file is not written.
    n_corrupt : int
        Dev rows whose audio file is random bytes.
    n_unknown_label : int
        Dev rows with an extra label that is not in the vocabulary.
    n_malformed : int
        Malformed rows (no label) appended to dev.csv.

    Returns
    -------
    dict
        "vocabulary": [(index, label_name, mid)]; "dev" and "eval": lists of
        row dicts (fname, labels, mids, split, classes, duration, path, line:
        the row's line number in its CSV, header = line 1); "bad": {kind:
        [fname]}.

    Example
    -------
    >>> root = getfixture("tmp_path") / "FSD50K"
    >>> info = make_fsd50k(str(root), n_classes=3, n_dev=4, n_eval=2, duration=0.2)
    >>> [row["split"] for row in info["dev"]]
    ['train', 'train', 'train', 'val']
    >>> (root / "FSD50K.ground_truth" / "dev.csv").read_text().splitlines()[0]
    'fname,labels,mids,split'
    """
    _check_n_classes(n_classes)
    n_bad = n_missing + n_corrupt + n_unknown_label
    if n_bad > n_dev:
        raise ValueError(f"{n_bad} bad rows asked but n_dev={n_dev}")
    n_good = n_dev - n_bad
    n_val = max(1, n_good // 4) if n_val is None and n_good > 1 else (n_val or 0)
    if n_val > n_good:
        raise ValueError(f"n_val={n_val} but only {n_good} good dev rows")
    rng = np.random.default_rng([seed, 50])
    names = [_fsd_name(name) for name in class_names(n_classes)]
    vocabulary = [
        (index, names[index], mid) for index, mid, _ in _make_ontology(rng, n_classes)
    ]
    fnames = rng.choice(np.arange(1000, 500000), n_dev + n_eval, replace=False)
    info = {"vocabulary": vocabulary, "dev": [], "eval": [], "bad": {}}
    for split, count, offset in (("dev", n_dev, 0), ("eval", n_eval, n_dev)):
        label_sets = _draw_label_sets(rng, count, n_classes, max_labels)
        durations = _durations(rng, count, duration)
        for i in range(count):
            classes = label_sets[i]
            info[split].append(
                {
                    "fname": str(int(fnames[offset + i])),
                    "classes": classes,
                    "labels": [vocabulary[c][1] for c in classes],
                    "mids": [vocabulary[c][2] for c in classes],
                    "split": None,
                    "duration": durations[i],
                    "seed": [seed, 51, offset + i],
                    "line": i + 2,
                }
            )
    for i, row in enumerate(info["dev"]):
        row["split"] = "val" if n_good - n_val <= i < n_good else "train"
    position = n_dev
    for kind, count in (
        ("missing", n_missing),
        ("corrupt", n_corrupt),
        ("unknown_label", n_unknown_label),
    ):
        info["bad"][kind] = []
        for _ in range(count):
            position -= 1
            row = info["dev"][position]
            row["bad"] = kind
            info["bad"][kind].append(row["fname"])
            if kind == "unknown_label":
                row["labels"] = [*row["labels"], UNKNOWN_LABEL]
                row["mids"] = [*row["mids"], "/m/0unknown"]
    for split, folder in (("dev", DEV_AUDIO), ("eval", EVAL_AUDIO)):
        for row in info[split]:
            path = os.path.join(root, folder, f"{row['fname']}.wav")
            kind = row.get("bad")
            row["path"] = None if kind == "missing" else path
            if kind == "missing":
                continue
            if kind == "corrupt":
                _write_garbage(rng, path)
                continue
            signal = synth_clip(
                row["classes"], sample_rate, row["duration"], row["seed"]
            )
            _write_wav(path, signal, sample_rate)
    dev_rows = [
        [row["fname"], ",".join(row["labels"]), ",".join(row["mids"]), row["split"]]
        for row in info["dev"]
    ]
    info["bad"]["malformed"] = []
    for i in range(n_malformed):
        fname = str(900000 + i)
        dev_rows.append([fname, "", "", "train"])
        info["bad"]["malformed"].append(fname)
    truth = os.path.join(root, GROUND_TRUTH)
    _write_rows(
        os.path.join(truth, "dev.csv"), ["fname", "labels", "mids", "split"], dev_rows
    )
    _write_rows(
        os.path.join(truth, "eval.csv"),
        ["fname", "labels", "mids"],
        [
            [row["fname"], ",".join(row["labels"]), ",".join(row["mids"])]
            for row in info["eval"]
        ],
    )
    _write_rows(os.path.join(truth, "vocabulary.csv"), None, vocabulary)
    return info
