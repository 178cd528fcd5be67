"""Data preparation for AudioSet (and for folders of unlabeled audio).

Reads the official segment CSVs (``balanced_train_segments.csv``,
``unbalanced_train_segments.csv``, ``eval_segments.csv``) and
``class_labels_indices.csv``, finds each clip's audio anywhere under the
audio folder (a file whose name starts with the YouTube id, optionally
prefixed with "Y"), and writes SpeechBrain JSON manifests::

    {ytid: {"wav": path, "duration": seconds, "labels": [mid, ...]}}

plus ``labels.json``, the ordered list of classes. SSAST/AST-style JSON data
files (``{"data": [{"wav": path, "labels": "mid1,mid2"}, ...]}``) are
accepted instead of the CSVs. Missing, unreadable or empty audio, unknown
labels and malformed rows are skipped and counted in
``prepare_summary.json``; nothing half-written is ever left behind. Paths are
absolute, with literal braces doubled for ``DynamicItemDataset.from_json``.
Long preparations log their progress (rows read, files probed: count, rate,
time left) every 30 s.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import csv
import json
import os
from bisect import bisect_left
from collections import namedtuple

from speechbrain.utils.logger import get_logger

from craft_modules.atomic_files import write_json_atomic
from craft_modules.data.audio import (
    AUDIO_EXTENSIONS,
    SKIP_REASONS,
    find_audio_files,
)
from craft_modules.data.preparation import (
    PreparationSummary,
    clear_prepared,
    is_prepared,
    log_progress,
    manifest_audio_path,
    mark_prepared,
    probe_all,
)

logger = get_logger(__name__)

SEGMENT_CSVS = {
    "balanced_train": "balanced_train_segments.csv",
    "unbalanced_train": "unbalanced_train_segments.csv",
    "eval": "eval_segments.csv",
}
MANIFEST_NAMES = {
    "balanced_train": "train",
    "unbalanced_train": "unbalanced_train",
    "eval": "eval",
}
FULL_TRAIN = "full_train"
LABEL_CSV = "class_labels_indices.csv"
LABELS_FILE = "labels.json"
SUMMARY_FILE = "prepare_summary.json"
OPTIONS_FILE = "prepare_options.json"
PREPARE_VERSION = 1

Clip = namedtuple("Clip", ["clip_id", "wav", "mids", "where"])
Clip.__doc__ = """One candidate clip: id, audio path (None if not found),
label MIDs, and where it was read (for messages)."""


def prepare_audioset(
    data_folder,
    save_folder,
    audio_folder="audio",
    splits=("balanced_train", "eval"),
    json_files=None,
    label_csv=None,
    num_workers=1,
    skip_prep=False,
):
    """Writes the AudioSet manifests and labels.json into `save_folder`.

    With the official CSVs, the manifests are ``train.json``
    (balanced_train), ``unbalanced_train.json``, ``eval.json``, and
    ``full_train.json`` (balanced + unbalanced) when both training splits
    are asked for. With `json_files`, each key gives one manifest named
    after it and the segment CSVs are not read. Preparation is skipped if a
    previous run with the same options completed.

    Arguments
    ---------
    data_folder : str
        Folder holding the official CSVs and the audio folder.
    save_folder : str
        Where the manifests, labels.json and prepare_summary.json go.
    audio_folder : str
        Audio location, relative to data_folder (or absolute). Searched at
        any depth for files named ``<YTID>*.{wav,flac,ogg,mp3}``.
    splits : tuple of str
        Official splits to prepare: "balanced_train", "unbalanced_train",
        "eval".
    json_files : dict, optional
        {manifest name: SSAST/AST-style JSON data file}; replaces the CSVs.
        Relative wav paths are looked up next to the JSON file, then in
        data_folder.
    label_csv : str, optional
        Class list; default ``<data_folder>/class_labels_indices.csv``.
    num_workers : int
        Threads used to check the audio files (helps on network disks).
    skip_prep : bool
        If True, do nothing.

    Returns
    -------
    dict
        {manifest name: path}, plus "labels" and "summary" paths; None when
        skip_prep is True.

    Raises
    ------
    FileNotFoundError
        If data_folder, a needed CSV or a JSON data file does not exist.

    Example
    -------
    >>> from craft_modules.testing.synth import make_audioset
    >>> root = str(getfixture("tmp_path") / "AudioSet")
    >>> _ = make_audioset(root, n_classes=3, n_balanced=3, n_eval=2, duration=0.2)
    >>> out = prepare_audioset(root, root + "/save")
    >>> sorted(out)
    ['eval', 'labels', 'summary', 'train']
    """
    if skip_prep:
        return None
    _require_path(data_folder, "AudioSet data folder")
    label_csv = label_csv or os.path.join(data_folder, LABEL_CSV)
    _require_path(label_csv, "AudioSet class list")
    sources = _list_sources(data_folder, splits, json_files)
    outputs = _output_paths(save_folder, sources, splits, json_files)
    options = {
        "version": PREPARE_VERSION,
        "data_folder": os.path.abspath(data_folder),
        "audio_folder": audio_folder,
        "splits": list(splits) if json_files is None else None,
        "json_files": sources if json_files is not None else None,
        "label_csv": os.path.abspath(label_csv),
    }
    options_file = os.path.join(save_folder, OPTIONS_FILE)
    if is_prepared(options_file, options, list(outputs.values())):
        logger.info("AudioSet manifests in %s are up to date, skipping", save_folder)
        return outputs
    clear_prepared(options_file)

    labels = read_class_labels(label_csv)
    known_mids = {label["mid"] for label in labels}
    summary = PreparationSummary("AudioSet")
    index = None
    if json_files is None:
        index = AudioIndex(_resolve(data_folder, audio_folder))
    manifests = {}
    for name, path in sources.items():
        if json_files is None:
            clips = read_segments_csv(path, index, summary, name)
        else:
            clips = read_json_data_file(path, data_folder, summary, name)
        manifests[name] = build_manifest(clips, known_mids, summary, name, num_workers)
    if json_files is None and {"train", "unbalanced_train"} <= set(manifests):
        manifests[FULL_TRAIN] = _merge_manifests(
            manifests["train"], manifests["unbalanced_train"]
        )
    for name, manifest in manifests.items():
        logger.info("Writing %s (%d clips)", outputs[name], len(manifest))
        write_json_atomic(manifest, outputs[name])
        summary.add_written(name, len(manifest))
    write_json_atomic(labels, outputs["labels"])
    summary.save(outputs["summary"])
    mark_prepared(options_file, options, summary)
    return outputs


def _merge_manifests(first, second):
    """Union of two manifests; for an id in both, `first` wins."""
    merged = dict(first)
    for clip_id, entry in second.items():
        merged.setdefault(clip_id, entry)
    return merged


def _require_path(path, what):
    """Raises FileNotFoundError naming `path` if it does not exist."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}")


def _resolve(folder, path):
    """`path` if absolute, else folder/path."""
    return path if os.path.isabs(path) else os.path.join(folder, path)


def _list_sources(data_folder, splits, json_files):
    """Returns {manifest name: absolute input file}, checking they exist."""
    if json_files is not None:
        sources = {}
        for name, path in json_files.items():
            _check_manifest_name(name)
            _require_path(path, f"JSON data file for '{name}'")
            sources[name] = os.path.abspath(path)
        return sources
    sources = {}
    for split in splits:
        if split not in SEGMENT_CSVS:
            raise ValueError(
                f"Unknown AudioSet split '{split}'; expected one of "
                f"{sorted(SEGMENT_CSVS)}"
            )
        path = os.path.join(data_folder, SEGMENT_CSVS[split])
        _require_path(path, f"AudioSet segments CSV for '{split}'")
        sources[MANIFEST_NAMES[split]] = os.path.abspath(path)
    return sources


def _check_manifest_name(name):
    """Raises ValueError for a manifest name that is not a plain file stem."""
    reserved = {"labels", "prepare_summary", "prepare_options"}
    if not name or os.sep in name or "/" in name or name in reserved:
        raise ValueError(f"Invalid manifest name '{name}' in json_files")


def _output_paths(save_folder, sources, splits, json_files):
    """Paths of every file a preparation writes."""
    outputs = {name: os.path.join(save_folder, f"{name}.json") for name in sources}
    if json_files is None and {"balanced_train", "unbalanced_train"} <= set(splits):
        outputs[FULL_TRAIN] = os.path.join(save_folder, f"{FULL_TRAIN}.json")
    outputs["labels"] = os.path.join(save_folder, LABELS_FILE)
    outputs["summary"] = os.path.join(save_folder, SUMMARY_FILE)
    return outputs


def read_class_labels(path):
    """Reads class_labels_indices.csv into an ordered list of classes.

    Arguments
    ---------
    path : str
        CSV with header ``index,mid,display_name``.

    Returns
    -------
    list of dict
        {"index": int, "mid": str, "display_name": str}, sorted by index.

    Raises
    ------
    ValueError
        If a column is missing or the indices are not 0..N-1.

    Example
    -------
    >>> path = getfixture("tmp_path") / "classes.csv"
    >>> _ = path.write_text('index,mid,display_name\\n0,/m/09x0r,"Speech, talk"\\n')
    >>> read_class_labels(str(path))
    [{'index': 0, 'mid': '/m/09x0r', 'display_name': 'Speech, talk'}]
    """
    with open(path, newline="", encoding="utf-8-sig") as fin:
        reader = csv.DictReader(fin, skipinitialspace=True)
        missing = {"index", "mid", "display_name"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        try:
            labels = [
                {
                    "index": int(row["index"]),
                    "mid": row["mid"].strip(),
                    "display_name": row["display_name"].strip(),
                }
                for row in reader
            ]
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: malformed class row ({err})") from err
    labels.sort(key=lambda label: label["index"])
    if [label["index"] for label in labels] != list(range(len(labels))):
        raise ValueError(f"{path}: class indices must be 0..N-1 without gaps")
    return labels


class AudioIndex:
    """Finds a clip's audio file from its YouTube id, at any folder depth.

    The folder is walked once. A file matches a YTID if its name (without
    extension) starts with the YTID, or with "Y" + YTID (a common download
    naming). Among several matches the best is, in order: the exact name,
    a name carrying the segment start time (``<YTID>_30`` or
    ``<YTID>_30.000_40.000``), any other name, then the "Y" forms.

    Arguments
    ---------
    folder : str
        The audio folder (a missing folder gives an empty index).
    extensions : tuple of str
        Accepted audio extensions.

    Example
    -------
    >>> root = getfixture("tmp_path")
    >>> (root / "a" / "b").mkdir(parents=True)
    >>> _ = (root / "a" / "b" / "-abc_30.flac").write_bytes(b"")
    >>> index = AudioIndex(str(root))
    >>> os.path.basename(index.find("-abc", 30.0))
    '-abc_30.flac'
    >>> index.find("xyz") is None
    True
    """

    def __init__(self, folder, extensions=AUDIO_EXTENSIONS):
        if not os.path.isdir(folder):
            logger.warning("Audio folder %s does not exist", folder)
        files = find_audio_files(folder, extensions)
        self._index_files(files)
        logger.info("Found %d audio files under %s", len(files), folder)

    @classmethod
    def from_files(cls, files):
        """An index of the given audio files (no folder walk).

        Arguments
        ---------
        files : list of str
            Audio file paths.

        Returns
        -------
        AudioIndex
            The index.

        Example
        -------
        >>> AudioIndex.from_files(["/a/Yxyz.wav"]).find("xyz")
        '/a/Yxyz.wav'
        """
        index = cls.__new__(cls)
        index._index_files(files)
        return index

    def _index_files(self, files):
        """Sorts the files by name (without extension) for prefix lookups."""
        entries = sorted(
            (os.path.splitext(os.path.basename(path))[0], path) for path in files
        )
        self._stems = [stem for stem, _ in entries]
        self._paths = [path for _, path in entries]

    def __len__(self):
        """Number of indexed audio files."""
        return len(self._paths)

    def _with_prefix(self, prefix):
        """(stem, path) of every file whose stem starts with prefix."""
        matches = []
        position = bisect_left(self._stems, prefix)
        while position < len(self._stems) and self._stems[position].startswith(prefix):
            matches.append((self._stems[position], self._paths[position]))
            position += 1
        return matches

    def find(self, ytid, start=None):
        """Returns the best audio file for a clip, or None.

        Arguments
        ---------
        ytid : str
            YouTube id.
        start : float, optional
            Segment start in seconds, to choose among several files.

        Returns
        -------
        str or None
            The file path.
        """
        ranked = []
        for penalty, prefix in ((0, ytid), (10, "Y" + ytid)):
            for stem, path in self._with_prefix(prefix):
                rest = stem[len(prefix) :]
                ranked.append((penalty + _suffix_rank(rest, start), path))
        return min(ranked)[1] if ranked else None


def _suffix_rank(rest, start):
    """0: exact name, 1: name with the start time, 2: separator, 3: other."""
    if not rest:
        return 0
    if rest[0] not in "_-. ":
        return 3
    first_field = rest[1:].replace("-", "_").split("_")[0]
    try:
        if start is not None and float(first_field) == float(start):
            return 1
    except ValueError:
        pass
    return 2


def _parse_segment_row(fields):
    """(ytid, start, end, [mids]) from CSV fields, or None if malformed."""
    if len(fields) != 4 or not fields[0].strip():
        return None
    try:
        start, end = float(fields[1]), float(fields[2])
    except ValueError:
        return None
    mids = [mid.strip() for mid in fields[3].split(",") if mid.strip()]
    if not mids or end < start:
        return None
    return fields[0].strip(), start, end, mids


def read_segments_csv(path, index, summary, split):
    """Reads an official segments CSV into candidate clips.

    Comment lines (``#``) and blank lines are ignored; malformed rows are
    recorded in `summary` as "malformed_row".

    Arguments
    ---------
    path : str
        The CSV file.
    index : AudioIndex
        Where to look up each clip's audio.
    summary : PreparationSummary
        Collects the skipped rows.
    split : str
        Name used in the summary.

    Returns
    -------
    list of Clip
        One per well-formed row (wav is None when no file was found).

    Example
    -------
    >>> from craft_modules.data.preparation import PreparationSummary
    >>> path = getfixture("tmp_path") / "seg.csv"
    >>> _ = path.write_text('# c\\nabc, 0.000, 10.000, "/m/0a,/m/0b"\\nbad, 1\\n')
    >>> summary = PreparationSummary("doc")
    >>> index = AudioIndex(str(getfixture("tmp_path") / "none"))
    >>> read_segments_csv(str(path), index, summary, "train")
    [Clip(clip_id='abc', wav=None, mids=['/m/0a', '/m/0b'], where='seg.csv:2')]
    >>> summary.n_skipped("malformed_row")
    1
    """
    clips = []
    name = os.path.basename(path)
    with open(path, newline="", encoding="utf-8-sig") as fin:
        lines = log_progress(fin, f"AudioSet {split}, {name} lines read")
        for line_number, line in enumerate(lines, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = next(csv.reader([line], skipinitialspace=True))
            if fields[0].strip() == "YTID":  # a plain header line
                continue
            row = _parse_segment_row(fields)
            where = f"{name}:{line_number}"
            if row is None:
                summary.skip(split, where, "malformed_row", line.strip())
                continue
            ytid, start, _, mids = row
            clips.append(Clip(ytid, index.find(ytid, start), mids, where))
    return clips


def _json_entry_to_clip(entry, position, json_dir, data_folder):
    """Clip from one SSAST data-file entry, or None if malformed."""
    if not isinstance(entry, dict) or not isinstance(entry.get("wav"), str):
        return None
    labels = entry.get("labels", "")
    if isinstance(labels, str):
        labels = labels.split(",")
    mids = [str(mid).strip() for mid in labels if str(mid).strip()]
    if not mids:
        return None
    wav = entry["wav"]
    if not os.path.isabs(wav):
        candidates = [os.path.join(json_dir, wav), os.path.join(data_folder, wav)]
        wav = next((c for c in candidates if os.path.exists(c)), candidates[0])
    clip_id = entry.get("video_id") or os.path.splitext(os.path.basename(wav))[0]
    return Clip(str(clip_id), wav, mids, f"entry {position}")


def read_json_data_file(path, data_folder, summary, split):
    """Reads an SSAST/AST-style JSON data file into candidate clips.

    Arguments
    ---------
    path : str
        ``{"data": [{"wav": path, "labels": "mid1,mid2"}, ...]}``; the id is
        "video_id" if present, else the wav file name without extension.
    data_folder : str
        Second place to look for relative wav paths.
    summary : PreparationSummary
        Collects malformed entries.
    split : str
        Name used in the summary.

    Returns
    -------
    list of Clip
        One per well-formed entry.

    Raises
    ------
    ValueError
        If the file is not JSON with a "data" list.

    Example
    -------
    >>> from craft_modules.data.preparation import PreparationSummary
    >>> path = getfixture("tmp_path") / "train.json"
    >>> _ = path.write_text('{"data": [{"wav": "/a/x.wav", "labels": "/m/0a"}, {}]}')
    >>> summary = PreparationSummary("doc")
    >>> clips = read_json_data_file(str(path), "/data", summary, "train")
    >>> clips[0].clip_id, clips[0].mids, summary.n_skipped("malformed_row")
    ('x', ['/m/0a'], 1)
    """
    try:
        with open(path, encoding="utf-8") as fin:
            entries = json.load(fin)["data"]
        if not isinstance(entries, list):
            raise TypeError("'data' is not a list")
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path}: not an SSAST-style data file ({{'data': [...]}}): {err}"
        ) from err
    json_dir = os.path.dirname(os.path.abspath(path))
    clips = []
    for position, entry in enumerate(entries):
        clip = _json_entry_to_clip(entry, position, json_dir, data_folder)
        if clip is None:
            where = f"{os.path.basename(path)}: entry {position}"
            summary.skip(split, where, "malformed_row", str(entry)[:200])
        else:
            clips.append(clip)
    return clips


def _keep_known_labels(clips, known_mids, summary, split):
    """Drops unknown MIDs, and the clips left with no label or a repeated id."""
    kept, seen = [], set()
    for clip in clips:
        if clip.clip_id in seen:
            summary.skip(split, clip.clip_id, "duplicate_id", clip.where)
            continue
        seen.add(clip.clip_id)
        mids = [mid for mid in clip.mids if mid in known_mids]
        unknown = [mid for mid in clip.mids if mid not in known_mids]
        if not mids:
            detail = f"{clip.where}: unknown label(s) {', '.join(unknown)}"
            summary.skip(split, clip.clip_id, "unknown_label", detail)
            continue
        if unknown:
            summary.note("unknown_labels_dropped", len(unknown))
        kept.append(clip._replace(mids=mids))
    return kept


def build_manifest(clips, known_mids, summary, split, num_workers=1):
    """Checks labels and audio of candidate clips and builds a manifest.

    Arguments
    ---------
    clips : list of Clip
        Candidates from read_segments_csv or read_json_data_file.
    known_mids : set of str
        MIDs of class_labels_indices.csv.
    summary : PreparationSummary
        Collects skipped clips and dropped labels.
    split : str
        Name used in the summary.
    num_workers : int
        Threads used to check the audio files.

    Returns
    -------
    dict
        {clip_id: {"wav": path, "duration": seconds, "labels": [mid, ...]}}.

    Example
    -------
    >>> from craft_modules.data.preparation import PreparationSummary
    >>> clips = [Clip("a", None, ["/m/0a"], "x.csv:4")]
    >>> summary = PreparationSummary("doc")
    >>> build_manifest(clips, {"/m/0a"}, summary, "train")
    {}
    >>> summary.to_dict()["skipped"]
    {'missing_audio': 1}
    """
    clips = _keep_known_labels(clips, known_mids, summary, split)
    with_audio = []
    for clip in clips:
        if clip.wav is None:
            detail = f"{clip.where}: no audio file named {clip.clip_id}*"
            summary.skip(split, clip.clip_id, "missing_audio", detail)
        else:
            with_audio.append(clip)
    manifest = {}
    paths = [clip.wav for clip in with_audio]
    results = probe_all(paths, num_workers, f"AudioSet {split}, audio files probed")
    for clip, (info, error) in zip(with_audio, results):
        if error is not None:
            summary.skip(split, clip.clip_id, SKIP_REASONS[error.reason], str(error))
            continue
        manifest[clip.clip_id] = {
            "wav": manifest_audio_path(clip.wav),
            "duration": round(info.duration, 4),
            "labels": clip.mids,
        }
    return manifest


def prepare_unlabeled_folder(
    folder,
    save_folder,
    manifest_name="unlabeled",
    extensions=AUDIO_EXTENSIONS,
    min_duration=0.0,
    num_workers=1,
    skip_prep=False,
):
    """Writes a manifest of every readable audio file under `folder`.

    For pretraining on unlabeled audio. Ids are the file paths relative to
    `folder`, without extension. Missing, unreadable or empty files, and
    files shorter than `min_duration`, are skipped and counted in
    ``<manifest_name>_summary.json``.

    Arguments
    ---------
    folder : str
        Searched at any depth.
    save_folder : str
        Where ``<manifest_name>.json`` goes.
    manifest_name : str
        Manifest file name, without ".json".
    extensions : tuple of str
        Accepted audio extensions.
    min_duration : float
        Shorter files (seconds) are skipped.
    num_workers : int
        Threads used to check the audio files.
    skip_prep : bool
        If True, do nothing.

    Returns
    -------
    str
        Path of the manifest ``{id: {"wav": path, "duration": seconds}}``;
        None when skip_prep is True.

    Raises
    ------
    FileNotFoundError
        If `folder` does not exist.

    Example
    -------
    >>> import soundfile as sf, numpy as np
    >>> root = getfixture("tmp_path")
    >>> (root / "in" / "deep").mkdir(parents=True)
    >>> sf.write(str(root / "in" / "deep" / "a.wav"), np.zeros(800), 8000)
    >>> path = prepare_unlabeled_folder(str(root / "in"), str(root / "out"))
    >>> import pathlib
    >>> json.loads(pathlib.Path(path).read_text())
    {'deep/a': {'wav': '...a.wav', 'duration': 0.1}}
    """
    if skip_prep:
        return None
    _require_path(folder, "Audio folder")
    _check_manifest_name(manifest_name)
    manifest_path = os.path.join(save_folder, f"{manifest_name}.json")
    summary_path = os.path.join(save_folder, f"{manifest_name}_summary.json")
    options_file = os.path.join(save_folder, f"{manifest_name}_options.json")
    options = {
        "version": PREPARE_VERSION,
        "folder": os.path.abspath(folder),
        "extensions": [ext.lower() for ext in extensions],
        "min_duration": min_duration,
    }
    if is_prepared(options_file, options, [manifest_path, summary_path]):
        logger.info("%s is up to date, skipping", manifest_path)
        return manifest_path
    clear_prepared(options_file)
    summary = PreparationSummary(f"Unlabeled audio ({folder})")
    files = find_audio_files(folder, extensions)
    manifest = {}
    probes = probe_all(files, num_workers, f"{folder}: audio files probed")
    for path, (info, error) in zip(files, probes):
        clip_id = os.path.splitext(os.path.relpath(path, folder))[0]
        clip_id = clip_id.replace(os.sep, "/")
        if error is not None:
            summary.skip(manifest_name, clip_id, SKIP_REASONS[error.reason], str(error))
        elif info.duration < min_duration:
            detail = f"{path}: {info.duration:.3f} s < {min_duration} s"
            summary.skip(manifest_name, clip_id, "too_short", detail)
        else:
            manifest[clip_id] = {
                "wav": manifest_audio_path(path),
                "duration": round(info.duration, 4),
            }
    write_json_atomic(manifest, manifest_path)
    summary.add_written(manifest_name, len(manifest))
    summary.save(summary_path)
    mark_prepared(options_file, options, summary)
    return manifest_path


UnlabeledFolder = namedtuple("UnlabeledFolder", ["path", "weight"])
UnlabeledFolder.__doc__ = """One folder of unlabeled audio added to pretraining, and the
sampling weight of each of its clips (1.0: as likely as an AudioSet clip)."""


def unlabeled_folders(spec):
    """The ``unlabeled_folders`` hyperparameter as a list of :class:`UnlabeledFolder`.

    Each item is a path (weight 1.0) or a mapping ``{path: ..., weight: ...}``;
    a single path string is one folder. On the command line::

        --unlabeled_folders=[/data/LibriSpeech]
        --unlabeled_folders="[{path: /data/LibriSpeech, weight: 0.5}, /data/extra]"

    Arguments
    ---------
    spec : str, list or None
        The hyperparameter; empty or None: no folder.

    Returns
    -------
    list of UnlabeledFolder

    Example
    -------
    >>> unlabeled_folders(["/a", {"path": "/b", "weight": 2}])
    [UnlabeledFolder(path='/a', weight=1.0), UnlabeledFolder(path='/b', weight=2.0)]
    >>> unlabeled_folders("")
    []
    """
    if not spec:
        return []
    if isinstance(spec, (str, dict)):
        spec = [spec]
    folders = []
    for item in spec:
        if isinstance(item, str):
            path, weight = item, 1.0
        elif isinstance(item, dict) and "path" in item:
            unknown = set(item) - {"path", "weight"}
            if unknown:
                raise ValueError(
                    f"unlabeled_folders item {item} has unknown keys {sorted(unknown)}"
                    "; expected 'path' and 'weight'"
                )
            path, weight = item["path"], item.get("weight", 1.0)
        else:
            raise ValueError(
                f"unlabeled_folders items are paths or {{path: ..., weight: ...}}, "
                f"got {item!r}"
            )
        weight = float(weight)
        if not 0.0 <= weight < float("inf"):
            raise ValueError(
                f"the weight of {path} must be finite and >= 0, got {weight}"
            )
        folders.append(UnlabeledFolder(str(path), weight))
    return folders


def prepare_unlabeled_folders(folders, save_folder, num_workers=1):
    """:func:`prepare_unlabeled_folder` for each folder: ``unlabeled_<i>.json``.

    Arguments
    ---------
    folders : list of UnlabeledFolder or str
        The folders, in order.
    save_folder : str
        Where the manifests go.
    num_workers : int
        Threads used to check the audio files.

    Returns
    -------
    list of str
        The manifest paths, in the folders' order.
    """
    return [
        prepare_unlabeled_folder(
            getattr(folder, "path", folder),
            save_folder,
            manifest_name=f"unlabeled_{index}",
            num_workers=num_workers,
        )
        for index, folder in enumerate(folders)
    ]


def training_manifest(outputs, train_splits):
    """The training manifest of a preparation of ``train_splits``.

    ``full_train`` when balanced and unbalanced were both prepared, else the
    one training split.

    Arguments
    ---------
    outputs : dict
        What :func:`prepare_audioset` returned (manifest name -> path).
    train_splits : list of str
        The training splits asked for (for the error message).

    Returns
    -------
    str
        The path of the training manifest.

    Example
    -------
    >>> training_manifest({"train": "t.json", "eval": "e.json"}, ["balanced_train"])
    't.json'
    """
    for name in ("full_train", "train", "unbalanced_train"):
        if name in outputs:
            return outputs[name]
    raise ValueError(f"train_splits={list(train_splits)} names no training split")
