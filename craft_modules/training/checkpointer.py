"""A SpeechBrain Checkpointer whose checkpoints become visible only once complete.

SpeechBrain 1.1.2 writes a checkpoint's ``CKPT.yaml`` first and the
parameter files after it. A run killed in between leaves a folder that looks
like a valid checkpoint, and the next run crashes trying to recover it
(e.g. ``invalid literal for int()`` from an empty epoch-counter file), so a
killed run cannot resume. :class:`AtomicCheckpointer` writes the metadata
under a pending name and renames it into place after every file is written:
an interrupted save is ignored (and cleaned up), the previous checkpoint
stays the one recovered.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import os
import pathlib
import shutil

from speechbrain.utils.checkpoints import METAFNAME, Checkpointer
from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.logger import get_logger

from craft_modules import distributed

logger = get_logger(__name__)

PENDING_SUFFIX = ".pending"


class AtomicCheckpointer(Checkpointer):
    """Checkpointer with all-or-nothing checkpoint folders (same arguments as SpeechBrain's).

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> layer = torch.nn.Linear(2, 2)
    >>> ckpter = AtomicCheckpointer(tmp, recoverables={"layer": layer})
    >>> ckpt = ckpter.save_checkpoint(meta={"epoch": 1})
    >>> sorted(p.name for p in ckpt.path.iterdir())
    ['CKPT.yaml', 'layer.ckpt']
    """

    _pending = None

    def _save_checkpoint_metafile(self, fpath, meta_to_include={}, end_of_epoch=True):
        pending = pathlib.Path(str(fpath) + PENDING_SUFFIX)
        saved = super()._save_checkpoint_metafile(
            pending, meta_to_include, end_of_epoch
        )
        self._pending = (pending, pathlib.Path(fpath))
        return saved

    def save_checkpoint(self, *args, **kwargs):
        """Saves every recoverable, then publishes the checkpoint's metadata."""
        checkpoint = super().save_checkpoint(*args, **kwargs)
        pending, self._pending = self._pending, None
        if pending is not None and pending[0].exists():
            os.replace(pending[0], pending[1])
        # Under DDP every process must see the published checkpoint before any
        # of them lists checkpoints: SpeechBrain's delete_checkpoints runs one
        # collective per deletion it finds, so two listings that differ (one
        # made before the rename above) leave the processes deadlocked.
        distributed.barrier()
        return checkpoint

    def recover_if_possible(self, *args, **kwargs):
        """Removes interrupted saves, then recovers the latest complete checkpoint."""
        if if_main_process() and self.checkpoints_dir.is_dir():
            for folder in self.checkpoints_dir.glob("CKPT+*"):
                if (folder / (METAFNAME + PENDING_SUFFIX)).exists() and not (
                    folder / METAFNAME
                ).exists():
                    logger.warning(
                        "Removing an interrupted checkpoint save: %s", folder
                    )
                    shutil.rmtree(folder, ignore_errors=True)
        return super().recover_if_possible(*args, **kwargs)
