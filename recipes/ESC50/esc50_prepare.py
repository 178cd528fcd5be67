"""Data preparation for ESC-50.

Reads ``meta/esc50.csv`` and the clips in ``audio/`` of the official
release and writes one SpeechBrain JSON manifest, ``esc50.json``::

    {id: {"wav": path, "duration": s, "fold": int, "target": int,
          "category": str}}

where the id is the file name without extension; the training script picks
its folds from it. ``labels.json`` lists the category names by target.
Files at any sample rate are accepted (ESC-50 is 44.1 kHz; clips are
resampled when loaded). Missing or corrupt audio and malformed rows are
skipped and counted in ``prepare_summary.json``.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import csv
import os

from speechbrain.utils.logger import get_logger

from craft_modules.atomic_files import write_json_atomic
from craft_modules.data.audio import (
    SKIP_REASONS,
    AudioLoadError,
    locate_audio,
    probe_audio,
)
from craft_modules.data.preparation import (
    PreparationSummary,
    clear_prepared,
    is_prepared,
    manifest_audio_path,
    mark_prepared,
)

logger = get_logger(__name__)

META_CSV = os.path.join("meta", "esc50.csv")
AUDIO_FOLDER = "audio"
MANIFEST_FILE = "esc50.json"
LABELS_FILE = "labels.json"
SUMMARY_FILE = "prepare_summary.json"
OPTIONS_FILE = "prepare_options.json"
PREPARE_VERSION = 1
REQUIRED_COLUMNS = ("filename", "fold", "target", "category")


def prepare_esc50(data_folder, save_folder, skip_prep=False):
    """Writes esc50.json, labels.json and prepare_summary.json.

    Skipped if a previous run on the same data_folder completed.

    Arguments
    ---------
    data_folder : str
        The ESC-50 folder, holding ``meta/esc50.csv`` and ``audio/``.
    save_folder : str
        Where the files go.
    skip_prep : bool
        If True, do nothing.

    Returns
    -------
    dict
        Paths: "manifest", "labels", "summary"; None when skip_prep is True.

    Raises
    ------
    FileNotFoundError
        If data_folder or meta/esc50.csv does not exist.

    Example
    -------
    >>> from craft_modules.testing.synth import make_esc50
    >>> root = str(getfixture("tmp_path") / "ESC-50")
    >>> _ = make_esc50(root, n_classes=2, clips_per_class=5, duration=0.2)
    >>> out = prepare_esc50(root, root + "/save")
    >>> import json, pathlib
    >>> manifest = json.loads(pathlib.Path(out["manifest"]).read_text())
    >>> len(manifest), manifest["1-100000-A-0"]["fold"]
    (10, 1)
    """
    if skip_prep:
        return None
    if not os.path.isdir(data_folder):
        raise FileNotFoundError(f"ESC-50 data folder not found: {data_folder}")
    meta_csv = os.path.join(data_folder, META_CSV)
    if not os.path.isfile(meta_csv):
        raise FileNotFoundError(f"ESC-50 metadata not found: {meta_csv}")
    outputs = {
        "manifest": os.path.join(save_folder, MANIFEST_FILE),
        "labels": os.path.join(save_folder, LABELS_FILE),
        "summary": os.path.join(save_folder, SUMMARY_FILE),
    }
    options = {"version": PREPARE_VERSION, "data_folder": os.path.abspath(data_folder)}
    options_file = os.path.join(save_folder, OPTIONS_FILE)
    if is_prepared(options_file, options, list(outputs.values())):
        logger.info("ESC-50 manifest in %s is up to date, skipping", save_folder)
        return outputs
    clear_prepared(options_file)

    summary = PreparationSummary("ESC-50")
    rows = read_esc50_csv(meta_csv, summary)
    manifest = build_esc50_manifest(
        rows, os.path.join(data_folder, AUDIO_FOLDER), summary
    )
    write_json_atomic(manifest, outputs["manifest"])
    write_json_atomic(labels_by_target(manifest), outputs["labels"])
    summary.add_written("esc50", len(manifest))
    summary.save(outputs["summary"])
    mark_prepared(options_file, options, summary)
    return outputs


def _parse_esc50_row(row):
    """(clip_id, filename, fold, target, category) or None if malformed."""
    try:
        filename = row["filename"].strip()
        category = row["category"].strip()
        fold, target = int(row["fold"]), int(row["target"])
    except (AttributeError, TypeError, ValueError):
        return None
    if not filename or not category or fold < 1 or target < 0:
        return None
    return os.path.splitext(filename)[0], filename, fold, target, category


def read_esc50_csv(path, summary):
    """Reads meta/esc50.csv; malformed rows go to `summary`.

    Arguments
    ---------
    path : str
        The metadata CSV.
    summary : PreparationSummary
        Collects the malformed rows.

    Returns
    -------
    list of tuple
        (clip_id, filename, fold, target, category) per well-formed row.

    Raises
    ------
    ValueError
        If a required column is missing.

    Example
    -------
    >>> from craft_modules.data.preparation import PreparationSummary
    >>> path = getfixture("tmp_path") / "esc50.csv"
    >>> _ = path.write_text(
    ...     "filename,fold,target,category\\n1-1-A-0.wav,1,0,dog\\nx.wav,one,0,dog\\n"
    ... )
    >>> summary = PreparationSummary("doc")
    >>> read_esc50_csv(str(path), summary)
    [('1-1-A-0', '1-1-A-0.wav', 1, 0, 'dog')]
    >>> summary.n_skipped("malformed_row")
    1
    """
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as fin:
        reader = csv.DictReader(fin)
        missing = set(REQUIRED_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        for line_number, row in enumerate(reader, start=2):
            parsed = _parse_esc50_row(row)
            if parsed is None:
                where = f"esc50.csv:{line_number}"
                summary.skip("esc50", where, "malformed_row", str(row))
            else:
                rows.append(parsed)
    return rows


def build_esc50_manifest(rows, audio_folder, summary):
    """Checks each clip's audio and builds the manifest.

    A row whose target already has another category name is malformed; a
    repeated id is a duplicate; both are skipped like unusable audio.

    Arguments
    ---------
    rows : list of tuple
        From read_esc50_csv.
    audio_folder : str
        The folder holding the clips.
    summary : PreparationSummary
        Collects the skipped clips.

    Returns
    -------
    dict
        {id: {"wav", "duration", "fold", "target", "category"}}.

    Example
    -------
    >>> from craft_modules.data.preparation import PreparationSummary
    >>> summary = PreparationSummary("doc")
    >>> build_esc50_manifest([("a", "a.wav", 1, 0, "dog")], "/nowhere", summary)
    {}
    >>> summary.to_dict()["skipped"]
    {'missing_audio': 1}
    """
    manifest, category_of = {}, {}
    for clip_id, filename, fold, target, category in rows:
        if clip_id in manifest:
            summary.skip("esc50", clip_id, "duplicate_id", filename)
            continue
        if category_of.setdefault(target, category) != category:
            detail = (
                f"target {target} is '{category_of[target]}', row says '{category}'"
            )
            summary.skip("esc50", clip_id, "malformed_row", detail)
            continue
        try:
            info = probe_audio(locate_audio(audio_folder, filename))
        except AudioLoadError as err:
            summary.skip("esc50", clip_id, SKIP_REASONS[err.reason], str(err))
            continue
        manifest[clip_id] = {
            "wav": manifest_audio_path(info.path),
            "duration": round(info.duration, 4),
            "fold": fold,
            "target": target,
            "category": category,
        }
    return manifest


def labels_by_target(manifest):
    """Category names ordered by target (list index == target).

    Arguments
    ---------
    manifest : dict
        From build_esc50_manifest.

    Returns
    -------
    list of str
        Names; a target with no clip left gets None (and a warning).

    Example
    -------
    >>> labels_by_target({"a": {"target": 1, "category": "rain"}})
    [None, 'rain']
    """
    names = {entry["target"]: entry["category"] for entry in manifest.values()}
    n_targets = max(names) + 1 if names else 0
    missing = [t for t in range(n_targets) if t not in names]
    if missing:
        logger.warning("ESC-50: no usable clip for target(s) %s", missing)
    return [names.get(target) for target in range(n_targets)]
