"""CLAR training in the recipes: two augmented views, NT-Xent and/or cross-entropy.

:class:`ClarBrain` is a :class:`craft_modules.training.brains.ClassifierBrain` whose
training step is :func:`craft_modules.models.clar.clar_losses` (the YAML's
``clar_mode``: ``supervised``, ``selfsupervised`` or ``clar``) with the
YAML's ``augmentation`` applied on the device inside the step
(:meth:`ClarBrain.view`: any waveform augmentation with SpeechBrain's
signature ``(wavs, lengths) -> wavs``, e.g. an
:class:`~craft_modules.augment.waveform.AugmentationChain`, SpeechBrain's
``DropChunk`` or an ``Augmenter``), and whose
labels are restricted to a ``label_fraction`` of the training clips (chosen
deterministically from the clip ids and the seed). Evaluation is the
classifier's, as for every recipe model, so ``results.json`` is the same;
in ``selfsupervised`` mode the classifier is trained on the detached
embeddings (online linear evaluation) while the encoder learns from NT-Xent
only.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import speechbrain as sb
import torch
from speechbrain.utils.logger import get_logger

from craft_modules.augment.waveform import augment_waveforms
from craft_modules.data.labels import label_fraction_mask
from craft_modules.models.clar import CLAR_MODES, clar_losses
from craft_modules.training.brains import ClassifierBrain

logger = get_logger(__name__)


class ClarBrain(ClassifierBrain):
    """CLAR's supervised, self-supervised and combined training.

    Expected hparams, beyond :class:`ClassifierBrain`'s: ``clar_mode``,
    ``augmentation`` (a waveform augmentation ``(wavs, lengths) -> wavs``
    or ``-> (wavs, lengths)`` keeping the batch size, or None),
    ``temperature`` (NT-Xent), ``label_fraction`` (in (0, 1]) and ``seed``.
    """

    def view(self, wavs, lengths=None):
        """One augmented view of a batch, as the training step draws it (twice).

        Arguments
        ---------
        wavs : torch.Tensor
            Padded waveforms ``(batch, samples)``.
        lengths : torch.Tensor, optional
            Relative lengths ``(batch,)``.

        Returns
        -------
        torch.Tensor
            The YAML's ``augmentation`` applied to ``wavs`` (through
            :func:`craft_modules.augment.waveform.augment_waveforms`), or
            ``wavs`` itself when it is None.
        """
        augmentation = self.hparams.augmentation
        if augmentation is None:
            return wavs
        with torch.no_grad():
            views, _ = augment_waveforms(augmentation, wavs, lengths)
        return views

    def on_fit_start(self):
        """Puts the augmentation on the device too: it is not one of ``modules``.

        Its buffers (Fade's curve shapes, ColouredNoise's exponents) would
        otherwise stay on the CPU and be copied to the device, blocking, in
        every training step.
        """
        super().on_fit_start()
        augmentation = getattr(self.hparams, "augmentation", None)
        if isinstance(augmentation, torch.nn.Module):
            augmentation.to(self.device)

    def fit(self, epoch_counter, train_set, valid_set=None, *args, **kwargs):
        """Chooses the labelled clips, then trains as usual."""
        mode = self.hparams.clar_mode
        if mode not in CLAR_MODES:
            raise ValueError(f"clar_mode must be one of {CLAR_MODES}, got {mode!r}")
        ids = list(train_set.data_ids)
        self.labelled_ids = label_fraction_mask(
            ids, self.hparams.label_fraction, self.hparams.seed
        )
        logger.info(
            "CLAR (%s): %d of %d training clips keep their labels (label_fraction=%s)",
            mode,
            len(self.labelled_ids),
            len(ids),
            self.hparams.label_fraction,
        )
        return super().fit(epoch_counter, train_set, valid_set, *args, **kwargs)

    def compute_forward(self, batch, stage):
        """Training: the CLAR losses of the batch; otherwise the classifier's logits."""
        if stage != sb.Stage.TRAIN:
            return super().compute_forward(batch, stage)
        batch = batch.to(self.device, non_blocking=True)
        wavs, lens = batch.sig
        targets = getattr(batch.targets, "data", batch.targets).float()
        labelled = torch.tensor(
            [clip_id in self.labelled_ids for clip_id in batch.id], dtype=torch.bool
        )
        if torch.device(self.device).type == "cuda":  # a non-blocking copy
            labelled = labelled.pin_memory()
        labelled = labelled.to(self.device, non_blocking=True)
        return clar_losses(
            self.model_for(stage),
            wavs,
            lens,
            targets,
            labelled,
            augment=self.view,
            mode=self.hparams.clar_mode,
            temperature=self.hparams.temperature,
            multilabel=self.hparams.loss == "bce",
        )

    def compute_objectives(self, predictions, batch, stage):
        """Training: the CLAR loss (its parts are averaged for the log)."""
        if stage != sb.Stage.TRAIN:
            return super().compute_objectives(predictions, batch, stage)
        for key, value in predictions.items():
            if key != "loss" and not getattr(self, "_zero_weight", False):
                total, count = self.loss_parts.get(key, (0.0, 0))
                self.loss_parts[key] = (total + value.detach().float(), count + 1)
        return predictions["loss"] * self._loss_weight(batch, stage)

    def on_stage_start(self, stage, epoch=None):
        """Resets the per-part loss averages."""
        self.loss_parts = {}
        super().on_stage_start(stage, epoch)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Adds the averaged loss parts (``nt_xent``, ``ce``...) to the training log."""
        if stage == sb.Stage.TRAIN:
            super().on_stage_end(stage, stage_loss, epoch)
            self.train_stats.update(
                {
                    k: float(total) / count
                    for k, (total, count) in self.loss_parts.items()
                }
            )
            return
        super().on_stage_end(stage, stage_loss, epoch)
