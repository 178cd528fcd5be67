"""Data preparation for a folder of class folders: ``DATA/<class_name>/*.wav``.

A dataset of one's own, with nothing but audio files sorted into one folder
per class (at any depth inside it; wav, flac, ogg, mp3: see
:data:`craft_modules.data.audio.AUDIO_EXTENSIONS`), prepared like ESC-50
(``recipes/ESC50/esc50_prepare.py``) so that the ESC-50 recipe trains on
it with ``--layout=folders``. It writes:

* ``folders.json``, a SpeechBrain JSON manifest,
  ``{id: {"wav", "duration", "fold", "target", "category"}}``, where the id
  is the file's path under ``DATA`` without extension (``dog/clip01``) and
  the folds are drawn from the seed (:func:`craft_modules.data.folds.assign_folds`:
  stratified by class, grouped by ``group_regex`` when given);
* ``labels.json``, the class names by target: the class folders with
  readable audio, sorted;
* ``prepare_summary.json``: the clips written, and every skipped file or
  class folder with its reason (missing, unreadable or empty audio as in
  :func:`craft_modules.data.audio.probe_audio`; ``empty_class_folder`` for
  a class folder without readable audio, also logged as a warning).

A dataset with fewer than two classes is an error. The preparation is
skipped when a previous run with the same options completed.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import os

from speechbrain.utils.logger import get_logger

from craft_modules.atomic_files import write_json_atomic
from craft_modules.data.audio import (
    AUDIO_EXTENSIONS,
    SKIP_REASONS,
    AudioLoadError,
    find_audio_files,
    probe_audio,
)
from craft_modules.data.folds import assign_folds, source_groups
from craft_modules.data.preparation import (
    PreparationSummary,
    clear_prepared,
    is_prepared,
    manifest_audio_path,
    mark_prepared,
)

logger = get_logger(__name__)

MANIFEST_FILE = "folders.json"
LABELS_FILE = "labels.json"
SUMMARY_FILE = "prepare_summary.json"
OPTIONS_FILE = "prepare_options.json"
PREPARE_VERSION = 1


def prepare_class_folders(
    data_folder,
    save_folder,
    n_folds=5,
    seed=1986,
    group_regex=None,
    extensions=AUDIO_EXTENSIONS,
    skip_prep=False,
):
    """Writes folders.json, labels.json and prepare_summary.json for ``DATA/<class>/``.

    Arguments
    ---------
    data_folder : str
        The folder holding one folder per class.
    save_folder : str
        Where the files go.
    n_folds : int
        Number of folds.
    seed : int
        Seed of the fold assignment.
    group_regex : str, optional
        Regex on the file names giving each clip's source (see
        :func:`craft_modules.data.folds.source_groups`); a source's clips
        share one fold.
    extensions : tuple of str
        Audio file extensions read.
    skip_prep : bool
        If True, do nothing.

    Returns
    -------
    dict
        Paths: "manifest", "labels", "summary"; None when skip_prep is True.

    Raises
    ------
    FileNotFoundError
        If data_folder does not exist.
    ValueError
        If fewer than two class folders hold readable audio, or group_regex
        matches no file name.

    Example
    -------
    >>> from craft_modules.testing.synth import make_formant_folders
    >>> tmp = getfixture("tmp_path")
    >>> root = str(tmp / "vowels")
    >>> _ = make_formant_folders(root, clips_per_class=4, n_speakers=4, duration=0.2)
    >>> out = prepare_class_folders(root, str(tmp / "save"), n_folds=2, seed=0)
    >>> import json, pathlib
    >>> manifest = json.loads(pathlib.Path(out["manifest"]).read_text())
    >>> len(manifest), manifest["uh/spk0_0"]["target"], manifest["uh/spk0_0"]["category"]
    (8, 1, 'uh')
    >>> json.loads(pathlib.Path(out["labels"]).read_text())
    ['ah', 'uh']
    """
    if skip_prep:
        return None
    if not os.path.isdir(data_folder):
        raise FileNotFoundError(f"data folder not found: {data_folder}")
    outputs = {
        "manifest": os.path.join(save_folder, MANIFEST_FILE),
        "labels": os.path.join(save_folder, LABELS_FILE),
        "summary": os.path.join(save_folder, SUMMARY_FILE),
    }
    options = {
        "version": PREPARE_VERSION,
        "layout": "folders",
        "data_folder": os.path.abspath(data_folder),
        "n_folds": int(n_folds),
        "seed": int(seed),
        "group_regex": group_regex,
        "extensions": sorted(extensions),
    }
    options_file = os.path.join(save_folder, OPTIONS_FILE)
    if is_prepared(options_file, options, list(outputs.values())):
        logger.info("Class-folder manifest in %s is up to date, skipping", save_folder)
        return outputs
    clear_prepared(options_file)

    summary = PreparationSummary("class folders")
    clips = scan_class_folders(data_folder, summary, extensions)
    labels = sorted({category for _, category, _ in clips})
    if len(labels) < 2:
        found = f"only {labels[0]!r}" if labels else "none"
        raise ValueError(
            f"{data_folder}: a classifier needs at least two class folders with "
            f"readable audio, found {found} (expected <data_folder>/<class_name>/*.wav)"
        )
    target_of = {name: target for target, name in enumerate(labels)}
    targets = [target_of[category] for _, category, _ in clips]
    groups = None
    if group_regex:
        names = [os.path.basename(info.path) for _, _, info in clips]
        groups = source_groups(names, group_regex)
    folds = assign_folds(targets, n_folds, seed, groups)
    manifest = {
        clip_id: {
            "wav": manifest_audio_path(info.path),
            "duration": round(info.duration, 4),
            "fold": fold,
            "target": target,
            "category": category,
        }
        for (clip_id, category, info), target, fold in zip(clips, targets, folds)
    }
    write_json_atomic(manifest, outputs["manifest"])
    write_json_atomic(labels, outputs["labels"])
    summary.add_written("folders", len(manifest))
    summary.save(outputs["summary"])
    mark_prepared(options_file, options, summary)
    return outputs


def scan_class_folders(data_folder, summary, extensions=AUDIO_EXTENSIONS):
    """Probes every audio file of every class folder; skipped files go to ``summary``.

    Hidden folders (``.name``) are not classes. A class folder without any
    readable audio file is skipped with a warning naming it and recorded as
    ``empty_class_folder``.

    Arguments
    ---------
    data_folder : str
        The folder of class folders.
    summary : PreparationSummary
        Collects the skipped files and folders.
    extensions : tuple of str
        Audio file extensions read.

    Returns
    -------
    list of tuple
        ``(clip_id, class_name, AudioProbe)`` per readable file, sorted by id.

    Example
    -------
    >>> from craft_modules.data.preparation import PreparationSummary
    >>> root = getfixture("tmp_path")
    >>> (root / "rain").mkdir()
    >>> _ = (root / "rain" / "broken.wav").write_bytes(b"not audio")
    >>> summary = PreparationSummary("doc")
    >>> scan_class_folders(str(root), summary)
    []
    >>> summary.to_dict()["skipped"]
    {'unreadable_audio': 1, 'empty_class_folder': 1}
    """
    classes = sorted(
        name
        for name in os.listdir(data_folder)
        if not name.startswith(".") and os.path.isdir(os.path.join(data_folder, name))
    )
    clips = []
    for name in classes:
        folder = os.path.join(data_folder, name)
        files = find_audio_files(folder, extensions)
        readable = []
        for path in files:
            relative = os.path.relpath(path, data_folder)
            clip_id = os.path.splitext(relative)[0].replace(os.sep, "/")
            try:
                readable.append((clip_id, name, probe_audio(path)))
            except AudioLoadError as err:
                summary.skip("folders", clip_id, SKIP_REASONS[err.reason], str(err))
        if not readable:
            detail = f"{folder}: no readable audio ({len(files)} audio file(s))"
            logger.warning("Class folder %r skipped: %s", name, detail)
            summary.skip("folders", name, "empty_class_folder", detail)
        clips.extend(readable)
    seen, unique = set(), []
    for clip in sorted(clips, key=lambda c: (c[0], c[2].path)):
        if clip[0] in seen:  # dog/a.wav and dog/a.flac
            summary.skip("folders", clip[0], "duplicate_id", clip[2].path)
            continue
        seen.add(clip[0])
        unique.append(clip)
    return unique
