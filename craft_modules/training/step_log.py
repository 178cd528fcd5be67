"""The step records of a pretraining run: ``train_steps.jsonl``, resumable.

:class:`StepLog` holds one record per ``log_interval`` optimizer steps (the
running losses since the previous record, ``stage: train``) and one per
validation (``stage: valid``), each with its optimizer ``step``, ``epoch``
and learning rate, in memory and, line by line, in a JSON-lines file of
the run folder, from which :func:`craft_modules.plots.plot_step_curves`
draws the run's curves. A resumed run keeps the records up to its
checkpoint's step and appends after them (:meth:`StepLog.resume`), so a
killed and resumed run has each step's record once.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import json
import os

from speechbrain.utils.logger import get_logger

from craft_modules.atomic_files import atomic_write

logger = get_logger(__name__)

#: The file name of the step records in a run folder.
STEP_LOG_FILE = "train_steps.jsonl"


class StepLog:
    """Step records in memory and in a JSON-lines file.

    Arguments
    ---------
    path : str or None
        The ``train_steps.jsonl`` to append to (its folder is created when
        needed); None keeps the records in memory only (e.g. on the other
        processes under DDP).

    Example
    -------
    >>> path = str(getfixture("tmp_path") / "train_steps.jsonl")
    >>> log = StepLog(path)
    >>> for step in (100, 200, 300):
    ...     log.append({"stage": "train", "step": step, "loss": 1.0 / step})
    >>> resumed = StepLog(path)  # a rerun resuming from the checkpoint of step 200
    >>> resumed.resume(200)
    >>> resumed.append({"stage": "train", "step": 300, "loss": 0.5})
    >>> [(r["step"], r["loss"]) for r in StepLog.read(path)]
    [(100, 0.01), (200, 0.005), (300, 0.5)]
    """

    def __init__(self, path=None):
        self.path = os.fspath(path) if path is not None else None
        self.records = []

    @staticmethod
    def read(path):
        """The records of a ``train_steps.jsonl``; a line that does not parse is skipped.

        A run killed while writing leaves at most a partial last line; it is
        skipped and counted in a warning naming the file.

        Arguments
        ---------
        path : str
            The file; a missing file has no records.

        Returns
        -------
        list of dict
            The records, in file order.

        Example
        -------
        >>> path = getfixture("tmp_path") / "train_steps.jsonl"
        >>> _ = path.write_text('{"step": 1, "loss": 2.0}\\n{"step": 2, "lo')
        >>> StepLog.read(str(path))
        [{'step': 1, 'loss': 2.0}]
        """
        if not os.path.isfile(path):
            return []
        records, bad = [], 0
        with open(path, encoding="utf-8") as fin:
            for line in fin:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    bad += 1
                    continue
                if isinstance(record, dict) and isinstance(record.get("step"), int):
                    records.append(record)
                else:
                    bad += 1
        if bad:
            logger.warning("%s: skipped %d unreadable step record(s)", path, bad)
        return records

    def resume(self, step):
        """Keeps the file's records up to ``step`` (the checkpoint's) and drops the rest.

        The records written after the checkpoint that a run resumes from are
        trained again, and so written again: dropping them here keeps one
        record per step. The file is rewritten atomically only when records
        are dropped.

        Arguments
        ---------
        step : int
            The optimizer step of the recovered checkpoint (0: a new run,
            which drops any records of an earlier run in the folder).

        Example
        -------
        >>> log = StepLog()  # in memory
        >>> log.records = [{"step": 1}, {"step": 5}]
        >>> log.resume(2)
        >>> log.records
        [{'step': 1}]
        """
        records = self.read(self.path) if self.path else self.records
        kept = [record for record in records if record["step"] <= step]
        if self.path and len(kept) != len(records):
            logger.info(
                "%s: %d step record(s) after step %d dropped (resuming from there)",
                self.path,
                len(records) - len(kept),
                step,
            )
            self._rewrite(kept)
        self.records = kept

    def _rewrite(self, records):
        """Replaces the file by ``records`` in one ``os.replace`` call."""
        with atomic_write(self.path) as fout:
            for record in records:
                fout.write(json.dumps(record) + "\n")

    def append(self, record):
        """Adds one record (a dict with an int ``step``) and writes it as one line.

        Arguments
        ---------
        record : dict
            Plain Python values (``step``, ``stage``, ``epoch``, ``lr`` and
            the losses).

        Example
        -------
        >>> log = StepLog()
        >>> log.append({"step": 3, "loss": 0.5})
        >>> log.records
        [{'step': 3, 'loss': 0.5}]
        """
        if not isinstance(record.get("step"), int):
            raise ValueError(f"a step record needs an int 'step', got {record!r}")
        self.records.append(record)
        if self.path:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fout:
                fout.write(json.dumps(record) + "\n")
