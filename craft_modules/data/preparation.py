"""Helpers the data preparation scripts share.

Manifest paths (:func:`manifest_audio_path`), progress lines (:func:`log_progress`), the
summary of what was kept and skipped (:class:`PreparationSummary`) and the
"already prepared" markers (:func:`is_prepared` / :func:`mark_prepared` /
:func:`clear_prepared`).

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import json
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from speechbrain.utils.logger import get_logger

from craft_modules.atomic_files import write_json_atomic
from craft_modules.data.audio import AudioLoadError, probe_audio

logger = get_logger(__name__)


def manifest_audio_path(path):
    """Absolute path, with braces doubled, for a SpeechBrain JSON manifest.

    `DynamicItemDataset.from_json` runs `str.format_map` on every string
    value (for `{data_root}`-style replacements), so a literal brace in a
    file name must be written doubled to survive loading.

    Arguments
    ---------
    path : str
        An audio file path.

    Returns
    -------
    str
        The path to store in the manifest.

    Example
    -------
    >>> manifest_audio_path("/data/clip{1}.wav")
    '/data/clip{{1}}.wav'
    """
    return os.path.abspath(path).replace("{", "{{").replace("}", "}}")


#: Seconds between two progress lines of :func:`log_progress`.
PROGRESS_INTERVAL_S = 30.0


def log_progress(items, what, total=None, interval=None):
    """Yields `items`, logging the count, rate and time left every `interval` s.

    For long preparations (millions of rows or files): a line such as
    ``AudioSet unbalanced_train, files probed: 120000/2041789 (6.7%),
    4000/s, 8.0 min left`` every `interval` seconds, and a last line with
    the total and the time taken.

    Arguments
    ---------
    items : iterable
        What is being processed.
    what : str
        Names it in the log lines.
    total : int, optional
        Expected count (for the percentage and time left).
    interval : float, optional
        Seconds between lines; default :data:`PROGRESS_INTERVAL_S`.

    Yields
    ------
    object
        The items, unchanged.

    Example
    -------
    >>> list(log_progress(range(3), "demo rows", total=3))
    [0, 1, 2]
    """
    interval = PROGRESS_INTERVAL_S if interval is None else interval
    start = last = time.monotonic()
    count = 0
    for item in items:
        yield item
        count += 1
        now = time.monotonic()
        if now - last >= interval:
            last = now
            rate = count / max(now - start, 1e-9)
            if total:
                left = (total - count) / max(rate, 1e-9) / 60
                logger.info(
                    "%s: %d/%d (%.1f%%), %.0f/s, %.1f min left",
                    what,
                    count,
                    total,
                    100 * count / total,
                    rate,
                    left,
                )
            else:
                logger.info("%s: %d, %.0f/s", what, count, rate)
    logger.info("%s: %d in %.1f s", what, count, time.monotonic() - start)


class PreparationSummary:
    """Counts what a preparation script wrote and what it skipped, and why.

    Arguments
    ---------
    name : str
        Name shown in the log (e.g. "AudioSet").

    Example
    -------
    >>> summary = PreparationSummary("demo")
    >>> summary.add_written("train", 3)
    >>> summary.skip("train", "clip1", "missing_audio", "x.wav not found")
    >>> summary.to_dict()["skipped"]
    {'missing_audio': 1}
    >>> summary.n_skipped("missing_audio")
    1
    >>> summary.skip("train", "clip2", "needs_decoder", "x.m4a needs a decoder")
    >>> summary.to_dict()["hints"]["needs_decoder"]
    "these files need a decoder for their format: pip install 'craft-modules[formats]' ..."
    """

    def __init__(self, name):
        self.name = name
        self.written = {}
        self.skipped = Counter()
        self.skipped_items = []
        self.notes = Counter()
        self.hints = {}

    def add_written(self, split, count):
        """Records that `count` items were written to manifest `split`.

        Arguments
        ---------
        split : str
            Manifest name.
        count : int
            Number of items.
        """
        self.written[split] = self.written.get(split, 0) + count

    def skip(self, split, item_id, reason, detail=""):
        """Records one skipped item.

        Arguments
        ---------
        split : str
            Where the item came from.
        item_id : str
            Its id (or the CSV line number for a malformed row).
        reason : str
            A short tag, e.g. "missing_audio"; a reason with an entry in
            :data:`craft_modules.data.audio.SKIP_HINTS` (e.g.
            "needs_decoder") adds what fixes it to the summary's "hints".
        detail : str
            Free text, e.g. the file path or the error.
        """
        from craft_modules.data.audio import SKIP_HINTS

        if reason in SKIP_HINTS:
            self.hints[reason] = SKIP_HINTS[reason]
        self.skipped[reason] += 1
        self.skipped_items.append(
            {"split": split, "id": item_id, "reason": reason, "detail": detail}
        )

    def note(self, what, count=1):
        """Counts something that was fixed rather than skipped.

        Arguments
        ---------
        what : str
            A short tag, e.g. "unknown_labels_dropped".
        count : int
            How many.
        """
        self.notes[what] += count

    def n_skipped(self, reason=None):
        """Number of skipped items, for one reason or in total.

        Arguments
        ---------
        reason : str, optional
            The reason tag; None counts all.

        Returns
        -------
        int
            The count.
        """
        if reason is None:
            return sum(self.skipped.values())
        return self.skipped[reason]

    def to_dict(self):
        """Returns the summary as plain JSON-friendly data.

        Returns
        -------
        dict
            Keys "written", "skipped", "hints" (reason -> what fixes it),
            "notes", "skipped_items".
        """
        return {
            "written": dict(self.written),
            "skipped": dict(self.skipped),
            "hints": dict(self.hints),
            "notes": dict(self.notes),
            "skipped_items": list(self.skipped_items),
        }

    def save(self, path):
        """Writes the summary to `path` (atomically) and logs it.

        Arguments
        ---------
        path : str
            Destination JSON file.
        """
        write_json_atomic(self.to_dict(), path)
        logger.info(
            "%s preparation: written %s; skipped %s (%s); details in %s",
            self.name,
            dict(self.written),
            self.n_skipped(),
            dict(self.skipped) or "none",
            path,
        )
        for reason, hint in sorted(self.hints.items()):
            logger.warning(
                "%s preparation: %d skipped as %s: %s",
                self.name,
                self.skipped[reason],
                reason,
                hint,
            )
        for what, count in sorted(self.notes.items()):
            logger.info("%s preparation: %s: %d", self.name, what, count)


def is_prepared(options_file, options, outputs):
    """True if a previous preparation with the same options completed.

    The options are compared together with the name of the optional audio
    decoder available now (:func:`craft_modules.data.decoders.find_decoder`,
    recorded by :func:`mark_prepared`), so installing or removing one redoes
    a preparation that skipped ``.m4a``/``.webm`` files for lack of it.

    Arguments
    ---------
    options_file : str
        JSON file written by :func:`mark_prepared` at the end of a run.
    options : dict
        The options of the current run (JSON-serialisable).
    outputs : list of str
        Files the preparation must have produced.

    Returns
    -------
    bool
        False if any output is missing or the options differ.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> out = str(folder / "train.json")
    >>> write_json_atomic({}, out)
    >>> mark_prepared(str(folder / "opts.json"), {"a": 1})
    >>> is_prepared(str(folder / "opts.json"), {"a": 1}, [out])
    True
    >>> is_prepared(str(folder / "opts.json"), {"a": 2}, [out])
    False
    """
    if not all(os.path.isfile(out) for out in [options_file, *outputs]):
        return False
    try:
        with open(options_file, encoding="utf-8") as fin:
            saved = json.load(fin)
    except (OSError, ValueError):
        return False
    if not isinstance(saved, dict):
        return False
    waiting = saved.pop(WAITING_FOR_DECODER, False)
    if saved != json.loads(json.dumps(options)):
        return False
    # Files skipped for want of a decoder are read once one is installed.
    from craft_modules.data.decoders import find_decoder

    return not (waiting and find_decoder() is not None)


#: Key of the options record: the preparation skipped files that need a decoder.
WAITING_FOR_DECODER = "waiting_for_decoder"


def mark_prepared(options_file, options, summary=None):
    """Records the options of a completed preparation (see is_prepared).

    Arguments
    ---------
    options_file : str
        Destination JSON file.
    options : dict
        The run's options.
    summary : PreparationSummary, optional
        The preparation's summary: when it skipped files that need an audio
        decoder, the preparation is redone once a decoder is available.

    Example
    -------
    >>> path = getfixture("tmp_path") / "opts.json"
    >>> mark_prepared(str(path), {"splits": ["eval"]})
    >>> path.read_text().count("eval")
    1
    """
    record = dict(options)
    if summary is not None and summary.n_skipped("needs_decoder"):
        record[WAITING_FOR_DECODER] = True
    write_json_atomic(record, options_file)


def clear_prepared(options_file):
    """Removes the options record, so an interrupted run is redone.

    Arguments
    ---------
    options_file : str
        The file written by mark_prepared (may not exist).

    Example
    -------
    >>> path = getfixture("tmp_path") / "opts.json"
    >>> mark_prepared(str(path), {})
    >>> clear_prepared(str(path))
    >>> path.exists()
    False
    """
    if os.path.exists(options_file):
        os.remove(options_file)


def _try_probe(path):
    """(AudioProbe, None) for a usable file, else (None, AudioLoadError)."""
    try:
        return probe_audio(path), None
    except AudioLoadError as err:
        return None, err


def probe_all(paths, num_workers=1, what=None):
    """Probes many audio files, optionally with a thread pool, logging progress.

    Arguments
    ---------
    paths : list of str
        Audio files.
    num_workers : int
        Number of threads (1: no pool).
    what : str, optional
        Names the files in progress log lines (see :func:`log_progress`);
        None logs nothing.

    Returns
    -------
    list of tuple
        (AudioProbe or None, AudioLoadError or None) for each path, in order.

    Example
    -------
    >>> probe_all(["missing.wav"])[0][1].reason
    'missing'
    """
    if num_workers <= 1:
        return _collect(map(_try_probe, paths), what, len(paths))
    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        return _collect(pool.map(_try_probe, paths), what, len(paths))


def _collect(results, what, total):
    """The results as a list, logging progress when `what` names them."""
    if what is None:
        return list(results)
    return list(log_progress(results, what, total))
