"""SpeechBrain Brains shared by every recipe: pretraining and classification.

Both Brains only call ``self.modules.model(wavs, lens)``: a pretraining model
returns a dict of named losses (``loss`` is minimised), a classifier returns
logits. So the same Brain trains SSAST, CRAFT or any other model of the
project; the method is chosen in YAML.

* :class:`PretrainBrain` logs every named loss, applies SSAST's staircase
  warm-up per optimizer step and its halve-on-plateau schedule per epoch on a
  monitored validation metric.
* :class:`ClassifierBrain` trains with BCE (multi-label, AudioSet) or CE on
  the argmax target (ESC-50, as SSAST does), with optional waveform mixup;
  evaluation collects sigmoid scores over the whole evaluation set exactly
  once across DDP ranks (each rank evaluates a disjoint shard) and computes
  mAP / mAUC / d-prime / accuracy; per-epoch metrics go to
  ``epoch_metrics.json``; the weights of the last epochs can be averaged.

A batch in which every clip failed to load (``None`` from
:class:`craft_modules.dataio.SkipBadCollate`) is skipped with a warning; under
DDP a zero-weighted silent clip keeps the ranks' collectives in step.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import json
import os
from types import SimpleNamespace

import speechbrain as sb
import torch
from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.logger import get_logger

from craft_modules.augment import mixup
from craft_modules.dataio import write_json_atomic
from craft_modules.metrics import PredictionCollector, accuracy, multilabel_metrics

logger = get_logger(__name__)


def _distributed():
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class _SilentBatch(SimpleNamespace):
    """A one-clip silent batch standing in for a batch whose clips all failed."""

    def to(self, device):
        """Moves the tensors to ``device``."""
        self.sig = tuple(t.to(device) for t in self.sig)
        if getattr(self, "targets", None) is not None:
            self.targets = self.targets.to(device)
        return self


class CraftBrain(sb.Brain):
    """Common behaviour: skipping empty batches, reading the waveform batch."""

    def _wrap_distributed(self):
        """SpeechBrain's DDP wrapping, without SyncBatchNorm on CPU.

        SpeechBrain 1.1.2 converts every BatchNorm to SyncBatchNorm under DDP
        (CLAR's ResNets have many), and SyncBatchNorm runs on GPUs only; CPU
        (gloo) processes keep their own batch statistics instead.
        """
        if not (self.distributed_launch and str(self.device).startswith("cpu")):
            super()._wrap_distributed()
            return
        for name, module in self.modules.items():
            if any(p.requires_grad for p in module.parameters()):
                self.modules[name] = torch.nn.parallel.DistributedDataParallel(
                    module, find_unused_parameters=self.find_unused_parameters
                )

    def _train_loader_specifics(self, dataset, loader_kwargs):
        """Makes a recipe's own sampler see its epoch in single-process runs.

        SpeechBrain 1.1.2 calls ``set_epoch`` only on the samplers it creates
        (``shuffle=True``) or wraps (DDP); a sampler given in the loader
        options of a single-process run (balanced sampling, SSAST's
        ``epoch_iter`` intervals) would repeat its first epoch forever.
        """
        loader_kwargs = super()._train_loader_specifics(dataset, loader_kwargs)
        sampler = loader_kwargs.get("sampler")
        if self.train_sampler is None and hasattr(sampler, "set_epoch"):
            self.train_sampler = sampler
        return loader_kwargs

    def _silent_batch(self):
        samples = int(
            getattr(self.hparams, "sample_rate", 16000)
            * getattr(self.hparams, "clip_duration", 1.0)
        )
        n_classes = getattr(self.hparams, "n_classes", None)
        targets = torch.zeros(1, n_classes) if n_classes else None
        return _SilentBatch(
            id=["<silent>"],
            sig=(torch.zeros(1, samples), torch.ones(1)),
            targets=targets,
        )

    def fit_batch(self, batch):
        """Trains on ``batch``; a ``None`` batch is skipped (DDP-safe)."""
        if batch is None:
            logger.warning("Skipping a training batch whose clips all failed to load")
            if not _distributed():
                return torch.tensor(0.0)
            self._zero_weight = True
            batch = self._silent_batch()
        try:
            return super().fit_batch(batch)
        finally:
            self._zero_weight = False

    def evaluate_batch(self, batch, stage):
        """Evaluates ``batch``; a ``None`` batch is skipped."""
        if batch is None:
            logger.warning(
                "Skipping an evaluation batch whose clips all failed to load"
            )
            return torch.tensor(0.0)
        return super().evaluate_batch(batch, stage)

    def model_for(self, stage):
        """The model to call: outside training, the module inside its DDP wrapper.

        Evaluation shards give ranks unequal numbers of batches, so evaluation
        must not run DDP's per-forward collectives (buffer broadcasts).
        """
        model = self.modules.model
        if stage != sb.Stage.TRAIN and hasattr(model, "module"):
            return model.module
        return model

    def _loss_weight(self):
        return 0.0 if getattr(self, "_zero_weight", False) else 1.0


class PretrainBrain(CraftBrain):
    """Self-supervised pretraining of any model returning a dict of losses.

    Expected hparams: ``lr_scheduler`` (a
    :class:`craft_modules.schedulers.WarmupPlateauScheduler`), ``monitor`` (the
    validation key driving the plateau schedule and checkpoint selection,
    e.g. ``acc_spec`` or ``loss``), ``train_logger``, and optionally
    ``keep_checkpoints``.
    """

    def compute_forward(self, batch, stage):
        """Returns the model's dict of losses for the batch."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        return self.model_for(stage)(wavs, lens)

    def compute_objectives(self, predictions, batch, stage):
        """Accumulates every named loss and returns the total."""
        size = batch.sig[0].shape[0]
        for key, value in predictions.items():
            total, count = self.running.get(key, (0.0, 0))
            self.running[key] = (total + float(value.detach()) * size, count + size)
        return predictions["loss"] * self._loss_weight()

    def on_stage_start(self, stage, epoch=None):
        """Resets the running averages."""
        self.running = {}

    def on_fit_batch_start(self, batch, should_step):
        """Sets the warm-up learning rate of the coming optimizer step."""
        if should_step:
            self.hparams.lr_scheduler.on_step(self.optimizer, self.optimizer_step + 1)

    def _stage_stats(self):
        keys = sorted(self.running)
        sums = torch.tensor(
            [[self.running[k][0], self.running[k][1]] for k in keys],
            dtype=torch.float64,
        )
        if _distributed():
            torch.distributed.all_reduce(sums)
        return {k: float(s / max(c, 1)) for k, (s, c) in zip(keys, sums.tolist())}

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs the stage, steps the plateau schedule and saves a checkpoint."""
        stats = self._stage_stats()
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if stage == sb.Stage.VALID:
            monitor = self.hparams.monitor
            value = stats.get(monitor, stats.get("loss"))
            self.last_valid_stats = stats
            lr = self.hparams.lr_scheduler.on_evaluation(self.optimizer, value)
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": lr},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            mode = getattr(self.hparams.lr_scheduler, "mode", "max")
            self.checkpointer.save_and_keep_only(
                meta={monitor: value, "epoch": epoch},
                num_to_keep=getattr(self.hparams, "keep_checkpoints", 2),
                **(
                    {"max_keys": [monitor]}
                    if mode == "max"
                    else {"min_keys": [monitor]}
                ),
            )
        else:
            self.test_stats = stats
            self.hparams.train_logger.log_stats(
                stats_meta={"evaluation": "test"}, test_stats=stats
            )


class ClassifierBrain(CraftBrain):
    """Supervised fine-tuning of any model returning logits.

    Expected hparams: ``loss`` (``bce`` or ``ce``), ``metric`` (``mAP`` or
    ``accuracy``: checkpoint selection), ``lr_schedule`` (a
    :class:`craft_modules.schedulers.EpochDecayScheduler`), ``train_logger``,
    ``output_folder`` (or ``experiment_folder``, e.g. per fold); optional ``mixup_alpha`` / ``mixup_prob`` (waveform
    mixup, SSAST's Beta(10, 10)), ``weight_averager`` (a
    :class:`craft_modules.averaging.WeightAverager`, also in the
    checkpointer) and ``keep_checkpoints``. Batches carry ``sig`` and
    ``targets`` (float multi-hot or one-hot vectors).
    """

    def compute_forward(self, batch, stage):
        """Returns ``(logits, targets)``; mixes the batch up when training."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        targets = getattr(batch.targets, "data", batch.targets).float()
        prob = getattr(self.hparams, "mixup_prob", 0.0)
        if stage == sb.Stage.TRAIN and prob > 0:
            wavs, lens, targets = mixup(
                wavs, lens, targets, self.hparams.mixup_alpha, prob
            )
        return self.model_for(stage)(wavs, lens), targets

    def compute_objectives(self, predictions, batch, stage):
        """BCE or CE loss; collects scores outside training."""
        logits, targets = predictions
        if self.hparams.loss == "bce":
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
        else:
            loss = torch.nn.functional.cross_entropy(logits, targets.argmax(dim=-1))
        if stage != sb.Stage.TRAIN:
            self.collector.append(batch.id, torch.sigmoid(logits.float()), targets)
        return loss * self._loss_weight()

    def on_stage_start(self, stage, epoch=None):
        """Sets the epoch's learning rate; resets the prediction collector."""
        self.collector = PredictionCollector()
        if stage == sb.Stage.TRAIN and epoch is not None:
            self.current_lr = self.hparams.lr_schedule(self.optimizer, epoch)

    def compute_metrics(self):
        """Metrics over the whole evaluation set (gathered from every rank)."""
        ids, scores, targets = self.collector.gather()
        if self.hparams.loss == "bce":
            metrics = multilabel_metrics(scores, targets)
        else:
            metrics = {"accuracy": float(accuracy(scores, targets))}
        metrics["n_clips"] = len(ids)
        return metrics, (ids, scores, targets)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs metrics, updates the weight average, saves checkpoints and history."""
        if stage == sb.Stage.TRAIN:
            self.train_stats = {"loss": float(stage_loss)}
            return
        metrics, predictions = self.compute_metrics()
        metrics["loss"] = float(stage_loss)
        key = self.hparams.metric
        if stage == sb.Stage.VALID:
            averager = getattr(self.hparams, "weight_averager", None)
            if averager is not None:
                averager.update(self.modules.model, epoch)
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": getattr(self, "current_lr", None)},
                train_stats=self.train_stats,
                valid_stats=metrics,
            )
            self._record_epoch(epoch, metrics, predictions)
            self.checkpointer.save_and_keep_only(
                meta={key: metrics[key], "epoch": epoch},
                max_keys=[key],
                num_to_keep=getattr(self.hparams, "keep_checkpoints", 1),
            )
        else:
            self.test_metrics = metrics
            self.test_predictions = predictions
            self.hparams.train_logger.log_stats(
                stats_meta={"evaluation": "test"}, test_stats=metrics
            )

    def on_evaluate_start(self, max_key=None, min_key=None):
        """Loads the averaged weights when asked for, else the best checkpoint.

        The weight average lives in the most recent checkpoint (the best one
        may be older and hold an average of fewer epochs), so averaging
        recovers that one; without an average the best checkpoint is used.
        """
        averager = getattr(self.hparams, "weight_averager", None)
        if (
            getattr(self.hparams, "use_weight_averaging", False)
            and averager is not None
        ):
            super().on_evaluate_start()  # the most recent checkpoint
            if averager.apply_to(self.modules.model):
                logger.info(
                    "Evaluating the average of %d epochs' weights", averager.count
                )
                return
        super().on_evaluate_start(max_key=max_key, min_key=min_key)

    def history_path(self):
        """Where per-epoch validation metrics are written."""
        folder = (
            getattr(self.hparams, "experiment_folder", None)
            or self.hparams.output_folder
        )
        return os.path.join(folder, "epoch_metrics.json")

    def load_history(self):
        """Per-epoch metrics written so far (survives a resume)."""
        path = self.history_path()
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fin:
                return json.load(fin)
        return []

    def _record_epoch(self, epoch, metrics, predictions):
        if not if_main_process():
            return
        history = [h for h in self.load_history() if h["epoch"] != epoch]
        entry = {"epoch": epoch, **metrics}
        if self.hparams.loss == "ce":
            ids, scores, targets = predictions
            entry["predictions"] = dict(zip(ids, scores.argmax(dim=-1).tolist()))
            entry["targets"] = dict(zip(ids, targets.argmax(dim=-1).tolist()))
        history.append(entry)
        write_json_atomic(
            sorted(history, key=lambda h: h["epoch"]), self.history_path()
        )
