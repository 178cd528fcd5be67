"""Data preparation for FSD50K.

Reads the official release::

    FSD50K.dev_audio/<fname>.wav
    FSD50K.eval_audio/<fname>.wav
    FSD50K.ground_truth/dev.csv         fname,labels,mids,split (train / val)
    FSD50K.ground_truth/eval.csv        fname,labels,mids
    FSD50K.ground_truth/vocabulary.csv  index,label_name,mid (no header)

and writes SpeechBrain JSON manifests ``train.json`` (dev rows with split
"train"), ``valid.json`` (split "val") and ``eval.json``::

    {fname: {"wav": path, "duration": seconds, "labels": [mid, ...],
             "label_names": [name, ...]}}

where "labels" holds the AudioSet MIDs of the clip's labels (in the CSV's
order), the ids that ``labels.json`` and
:func:`craft_modules.data.labels.multi_hot_pipeline` use. ``labels.json`` is the
vocabulary as ``[{"index": i, "mid": mid, "display_name": label_name}]`` in
index order (the AudioSet format of ``load_label_list``). Files at any sample
rate are accepted (FSD50K is 44.1 kHz; clips are resampled when loaded).

A row with a label that is not in the vocabulary (or whose MIDs do not match
its label names) is skipped and reported with its CSV file and line; rows
with missing, unreadable or empty audio, malformed rows and repeated ids are
skipped too, all counted in ``prepare_summary.json``. Paths are absolute,
with literal braces doubled for ``DynamicItemDataset.from_json``.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import csv
import os
from collections import namedtuple

from speechbrain.utils.logger import get_logger

from craft_modules.atomic_files import write_json_atomic
from craft_modules.data.audio import (
    SKIP_REASONS,
    locate_audio,
)
from craft_modules.data.preparation import (
    PreparationSummary,
    clear_prepared,
    is_prepared,
    manifest_audio_path,
    mark_prepared,
    probe_all,
)

logger = get_logger(__name__)

DEV_AUDIO = "FSD50K.dev_audio"
EVAL_AUDIO = "FSD50K.eval_audio"
GROUND_TRUTH = "FSD50K.ground_truth"
DEV_CSV = "dev.csv"
EVAL_CSV = "eval.csv"
VOCABULARY_CSV = "vocabulary.csv"
MANIFESTS = {"train": "train.json", "valid": "valid.json", "eval": "eval.json"}
DEV_SPLITS = {"train": "train", "val": "valid"}
LABELS_FILE = "labels.json"
SUMMARY_FILE = "prepare_summary.json"
OPTIONS_FILE = "prepare_options.json"
PREPARE_VERSION = 1

Row = namedtuple("Row", ["clip_id", "wav", "mids", "names", "manifest", "where"])
Row.__doc__ = """One candidate clip: id, audio path, label MIDs and names, the
manifest it goes to, and where it was read ("dev.csv:12", for messages)."""


def prepare_fsd50k(data_folder, save_folder, num_workers=1, skip_prep=False):
    """Writes train.json, valid.json, eval.json, labels.json and prepare_summary.json.

    Skipped if a previous run on the same data_folder completed.

    Arguments
    ---------
    data_folder : str
        The FSD50K root, holding ``FSD50K.dev_audio``, ``FSD50K.eval_audio``
        and ``FSD50K.ground_truth``.
    save_folder : str
        Where the files go.
    num_workers : int
        Threads used to check the audio files (helps on network disks).
    skip_prep : bool
        If True, do nothing.

    Returns
    -------
    dict
        Paths: "train", "valid", "eval", "labels", "summary"; None when
        skip_prep is True.

    Raises
    ------
    FileNotFoundError
        If data_folder or one of the three ground-truth CSVs does not exist.
    ValueError
        If a CSV lacks a required column or vocabulary.csv is malformed.

    Example
    -------
    >>> from craft_modules.testing.synth_fsd50k import make_fsd50k
    >>> root = str(getfixture("tmp_path") / "FSD50K")
    >>> _ = make_fsd50k(root, n_classes=3, n_dev=4, n_eval=2, duration=0.2)
    >>> out = prepare_fsd50k(root, root + "/save")
    >>> import json, pathlib
    >>> [len(json.loads(pathlib.Path(out[k]).read_text())) for k in MANIFESTS]
    [3, 1, 2]
    """
    if skip_prep:
        return None
    if not os.path.isdir(data_folder):
        raise FileNotFoundError(f"FSD50K data folder not found: {data_folder}")
    csvs = {
        name: os.path.join(data_folder, GROUND_TRUTH, name)
        for name in (DEV_CSV, EVAL_CSV, VOCABULARY_CSV)
    }
    for path in csvs.values():
        if not os.path.isfile(path):
            raise FileNotFoundError(f"FSD50K ground-truth file not found: {path}")
    outputs = {
        name: os.path.join(save_folder, file) for name, file in MANIFESTS.items()
    }
    outputs["labels"] = os.path.join(save_folder, LABELS_FILE)
    outputs["summary"] = os.path.join(save_folder, SUMMARY_FILE)
    options = {
        "version": PREPARE_VERSION,
        "data_folder": os.path.abspath(data_folder),
        # A re-extracted or edited ground truth invalidates the manifests.
        "csv_stamps": {
            name: [os.path.getsize(path), os.path.getmtime(path)]
            for name, path in sorted(csvs.items())
        },
    }
    options_file = os.path.join(save_folder, OPTIONS_FILE)
    if is_prepared(options_file, options, list(outputs.values())):
        logger.info("FSD50K manifests in %s are up to date, skipping", save_folder)
        return outputs
    clear_prepared(options_file)

    vocabulary = read_vocabulary(csvs[VOCABULARY_CSV])
    summary = PreparationSummary("FSD50K")
    rows = read_ground_truth(
        csvs[DEV_CSV], os.path.join(data_folder, DEV_AUDIO), vocabulary, summary
    )
    rows += read_ground_truth(
        csvs[EVAL_CSV], os.path.join(data_folder, EVAL_AUDIO), vocabulary, summary
    )
    manifests = build_manifests(rows, summary, num_workers)
    for name in MANIFESTS:
        write_json_atomic(manifests[name], outputs[name])
        summary.add_written(name, len(manifests[name]))
    write_json_atomic(vocabulary, outputs["labels"])
    summary.save(outputs["summary"])
    absent = sum(
        summary.skipped[SKIP_REASONS[r]] for r in ("missing", "unreadable", "empty")
    )
    if absent:  # the complete dataset has every file: maybe still being unpacked
        logger.warning(
            "FSD50K: %d clips had missing or unreadable audio (see %s); the "
            "manifests will be rebuilt on the next run",
            absent,
            outputs["summary"],
        )
    else:
        mark_prepared(options_file, options, summary)
    return outputs


def read_vocabulary(path):
    """Reads vocabulary.csv (no header: ``index,label_name,mid``).

    Arguments
    ---------
    path : str
        The vocabulary file.

    Returns
    -------
    list of dict
        ``{"index": int, "mid": str, "display_name": str}`` sorted by index:
        the labels.json format of :func:`craft_modules.data.labels.load_label_list`.

    Raises
    ------
    ValueError
        If a line is malformed, the indices are not 0..N-1 or a name or MID
        repeats; the message names the file and line.

    Example
    -------
    >>> path = getfixture("tmp_path") / "vocabulary.csv"
    >>> _ = path.write_text("1,Bark,/m/05tny_\\n0,Accordion,/m/0mkg\\n")
    >>> [v["display_name"] for v in read_vocabulary(str(path))]
    ['Accordion', 'Bark']
    """
    vocabulary = []
    with open(path, newline="", encoding="utf-8-sig") as fin:
        for line_number, fields in enumerate(csv.reader(fin), start=1):
            if not fields or not "".join(fields).strip():
                continue
            try:
                if len(fields) != 3:
                    raise ValueError(f"expected 3 fields, got {len(fields)}")
                index, name, mid = int(fields[0]), fields[1].strip(), fields[2].strip()
                if not name or not mid:
                    raise ValueError("empty label name or MID")
            except ValueError as err:
                raise ValueError(
                    f"{path}:{line_number}: malformed vocabulary line {fields} "
                    f"(expected index,label_name,mid): {err}"
                ) from err
            vocabulary.append({"index": index, "mid": mid, "display_name": name})
    vocabulary.sort(key=lambda entry: entry["index"])
    if [entry["index"] for entry in vocabulary] != list(range(len(vocabulary))):
        raise ValueError(f"{path}: label indices must be 0..N-1 without gaps")
    for key in ("mid", "display_name"):
        values = [entry[key] for entry in vocabulary]
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise ValueError(f"{path}: repeated {key}(s) {repeated}")
    return vocabulary


def _split_list(field):
    """Comma-separated list field -> list of stripped, non-empty items."""
    return [item.strip() for item in (field or "").split(",") if item.strip()]


def _check_labels(names, mids, mid_of, where):
    """None if the labels are usable, else (reason, detail)."""
    unknown = [name for name in names if name not in mid_of]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        return "unknown_label", f"{where}: label(s) {listed} not in {VOCABULARY_CSV}"
    expected = [mid_of[name] for name in names]
    if mids is not None and mids != expected:
        return (
            "label_mismatch",
            f"{where}: mids {mids} do not match the vocabulary's {expected} for "
            f"labels {names}",
        )
    return None


def read_ground_truth(path, audio_folder, vocabulary, summary):
    """Reads dev.csv or eval.csv into candidate clips; bad rows go to `summary`.

    A dev.csv row goes to the "train" or "valid" manifest by its split
    column ("train" / "val"); an eval.csv row (no split column) to "eval".
    Rows with no fname or no label, or an unknown split, are
    "malformed_row"; a label name not in the vocabulary is
    "unknown_label"; MIDs that disagree with the vocabulary for the row's
    label names are "label_mismatch" (the mids column may be absent). Each
    detail names the file and line.

    Arguments
    ---------
    path : str
        The ground-truth CSV.
    audio_folder : str
        The folder holding ``<fname>.wav``.
    vocabulary : list of dict
        From :func:`read_vocabulary`.
    summary : PreparationSummary
        Collects the skipped rows.

    Returns
    -------
    list of Row
        One per usable row (audio not checked yet).

    Raises
    ------
    ValueError
        If the fname or labels column is missing.

    Example
    -------
    >>> from craft_modules.data.preparation import PreparationSummary
    >>> path = getfixture("tmp_path") / "eval.csv"
    >>> _ = path.write_text('fname,labels,mids\\n7,"Bark,Dog",\\n8,Meow,\\n')
    >>> vocab = [{"index": 0, "mid": "/m/b", "display_name": "Bark"},
    ...          {"index": 1, "mid": "/m/d", "display_name": "Dog"}]
    >>> summary = PreparationSummary("doc")
    >>> rows = read_ground_truth(str(path), "/audio", vocab, summary)
    >>> rows[0].clip_id, rows[0].mids, rows[0].manifest
    ('7', ['/m/b', '/m/d'], 'eval')
    >>> summary.skipped_items[0]["detail"]
    "eval.csv:3: label(s) 'Meow' not in vocabulary.csv"
    """
    name = os.path.basename(path)
    mid_of = {entry["display_name"]: entry["mid"] for entry in vocabulary}
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as fin:
        reader = csv.DictReader(fin)
        columns = set(reader.fieldnames or [])
        missing = {"fname", "labels"} - columns
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        has_split, has_mids = "split" in columns, "mids" in columns
        default_manifest = None if has_split else "eval"
        for row in reader:
            where = f"{name}:{reader.line_num}"
            clip_id = (row.get("fname") or "").strip()
            names = _split_list(row.get("labels"))
            mids = _split_list(row.get("mids")) if has_mids else None
            if mids == []:
                mids = None  # an empty mids field: check the names only
            manifest = default_manifest
            if has_split:
                manifest = DEV_SPLITS.get((row.get("split") or "").strip())
            if not clip_id or not names or manifest is None:
                summary.skip(
                    manifest or name,
                    clip_id or where,
                    "malformed_row",
                    f"{where}: {dict(row)}",
                )
                continue
            problem = _check_labels(names, mids, mid_of, where)
            if problem is not None:
                summary.skip(manifest, clip_id, *problem)
                continue
            wav = locate_audio(audio_folder, f"{clip_id}.wav")
            rows.append(
                Row(clip_id, wav, [mid_of[n] for n in names], names, manifest, where)
            )
    return rows


def _escape(text):
    """Doubles braces, which DynamicItemDataset.from_json would format."""
    return text.replace("{", "{{").replace("}", "}}")


def build_manifests(rows, summary, num_workers=1):
    """Checks each candidate's audio and builds the three manifests.

    Arguments
    ---------
    rows : list of Row
        From :func:`read_ground_truth`.
    summary : PreparationSummary
        Collects the skipped clips.
    num_workers : int
        Threads used to check the audio files.

    Returns
    -------
    dict
        ``{"train": manifest, "valid": manifest, "eval": manifest}``, each
        ``{fname: {"wav", "duration", "labels", "label_names"}}``.

    Example
    -------
    >>> from craft_modules.data.preparation import PreparationSummary
    >>> summary = PreparationSummary("doc")
    >>> row = Row("1", "/nowhere/1.wav", ["/m/a"], ["A"], "train", "dev.csv:2")
    >>> build_manifests([row], summary)["train"]
    {}
    >>> summary.to_dict()["skipped"]
    {'missing_audio': 1}
    """
    manifests = {name: {} for name in MANIFESTS}
    unique, seen = [], set()
    for row in rows:
        key = (row.manifest == "eval", row.clip_id)
        if key in seen:
            summary.skip(row.manifest, row.clip_id, "duplicate_id", row.where)
            continue
        seen.add(key)
        unique.append(row)
    paths = [row.wav for row in unique]
    results = probe_all(paths, num_workers, "FSD50K: audio files probed")
    for row, (info, error) in zip(unique, results):
        if error is not None:
            detail = f"{row.where}: {error}"
            summary.skip(row.manifest, row.clip_id, SKIP_REASONS[error.reason], detail)
            continue
        manifests[row.manifest][row.clip_id] = {
            "wav": manifest_audio_path(row.wav),
            "duration": round(info.duration, 4),
            "labels": [_escape(mid) for mid in row.mids],
            "label_names": [_escape(name) for name in row.names],
        }
    return manifests
