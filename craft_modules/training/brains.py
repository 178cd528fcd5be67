"""SpeechBrain Brains shared by every recipe: pretraining and classification.

Both Brains only call ``self.modules.model(wavs, lens)``: a pretraining model
returns a dict of named losses (``loss`` is minimised), a classifier returns
logits. So the same Brain trains SSAST, CRAFT or any other model of the
project; the method is chosen in YAML.

* :class:`PretrainBrain` logs every named loss, applies SSAST's staircase
  warm-up per optimizer step and its halve-on-plateau schedule per epoch on a
  monitored validation metric; every ``log_interval`` optimizer steps it
  logs the running losses (``train_log.txt``, ``train_steps.jsonl`` and,
  with ``use_tensorboard``, SpeechBrain's TensorBoard logger) and it draws
  ``curves.png`` at each validation.
* :class:`ClassifierBrain` trains with BCE (multi-label, AudioSet) or CE on
  the argmax target (ESC-50, as SSAST does), with optional waveform mixup;
  evaluation collects sigmoid scores over the whole evaluation set exactly
  once across DDP ranks (each rank evaluates a disjoint shard) and computes
  mAP / mAUC / d-prime / accuracy; the per-epoch metrics are kept in
  ``history`` (and in ``epoch_metrics.json``, so that a resumed run keeps
  them, and drawn in ``curves.png``), those of ``evaluate`` in
  ``test_metrics``; the weights of the last epochs can be averaged.

A batch in which every clip failed to load (``None`` from
:class:`craft_modules.data.batching.SkipBadCollate`) is skipped with a warning; under
DDP a zero-weighted silent clip keeps the ranks' collectives in step.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import dataclasses
import json
import os
import random
from types import SimpleNamespace

import numpy as np
import speechbrain as sb
import torch
from speechbrain.dataio.sampler import ReproducibleRandomSampler
from speechbrain.utils.distributed import if_main_process, infer_device
from speechbrain.utils.logger import get_logger
from speechbrain.utils.run_opts import RunOptions
from speechbrain.utils.train_logger import TrainLogger

from craft_modules import distributed
from craft_modules.atomic_files import write_json_atomic
from craft_modules.augment.spectrogram import mixup
from craft_modules.data.samplers import ShareBatchSampler
from craft_modules.metrics import PredictionCollector, accuracy, multilabel_metrics
from craft_modules.plots import plot_epoch_curves, plot_step_curves
from craft_modules.training.compile import compile_in_place, run_with_eager_fallback
from craft_modules.training.loaders import loader_worker_options
from craft_modules.training.precision import resolve_precision
from craft_modules.training.step_log import STEP_LOG_FILE, StepLog
from craft_modules.weights.run_folder import write_run_inference_yaml

logger = get_logger(__name__)


def run_option(run_opts, hparams, key, default=None):
    """A SpeechBrain run option with its priority: command line > YAML > default.

    Arguments
    ---------
    run_opts : RunOptions or dict or None
        From ``sb.parse_arguments`` (only the keys given on the command line
        count as set).
    hparams : dict or None
        The loaded YAML.
    key : str
        The option, e.g. ``precision`` or ``grad_accumulation_factor``.
    default : object
        The value when neither sets it.

    Returns
    -------
    object
        The option's value.

    Example
    -------
    >>> from speechbrain.utils.run_opts import RunOptions
    >>> run_option(RunOptions(), {"precision": "auto"}, "precision", "fp32")
    'auto'
    >>> run_option({"precision": "bf16"}, {"precision": "auto"}, "precision")
    'bf16'
    """
    if isinstance(run_opts, dict):
        if key in run_opts:
            return run_opts[key]
    elif run_opts is not None and key in run_opts.overridden_args:
        return run_opts[key]
    if hparams is not None and key in hparams:
        return hparams[key]
    return default


class _SilentBatch(SimpleNamespace):
    """A one-clip silent batch standing in for a batch whose clips all failed."""

    def to(self, device, **kwargs):
        """Moves the tensors to ``device`` (keyword arguments as ``Tensor.to``)."""
        self.sig = tuple(t.to(device, **kwargs) for t in self.sig)
        if getattr(self, "targets", None) is not None:
            self.targets = self.targets.to(device, **kwargs)
        return self


class CraftBrain(sb.Brain):
    """Common behaviour of the project's Brains.

    * **Precision**: ``precision: auto`` (every recipe's default) becomes bf16
      on CUDA devices that support it and fp32 elsewhere, for training and,
      unless ``eval_precision`` is set, evaluation
      (:func:`craft_modules.training.precision.resolve_precision`).
    * **The batch convention**: ``batch_size`` is the global batch of one
      optimizer step. The training loader yields this process's share of each
      global batch (:class:`craft_modules.data.samplers.ShareBatchSampler`) and each
      share's loss is weighted (:func:`craft_modules.distributed.share_weight`)
      so the gradient DDP averages is the global-batch mean.
    * **No host-device sync in a training step**: the step returns the loss
      on the device; running averages are accumulated there and read at
      stage end, and the non-finite-loss check is read every
      ``progress_every`` steps (default 100) with the progress bar's loss;
      the intra-epoch checkpoint decision, which SpeechBrain broadcasts at
      every step under DDP, is taken at those steps only.
    * Batches whose clips all failed to load are skipped (DDP-safe), and the
      skipped clips of every process are counted in the training statistics.
    """

    def __init__(
        self,
        modules=None,
        opt_class=None,
        hparams=None,
        run_opts=None,
        checkpointer=None,
    ):
        if isinstance(run_opts, dict):
            run_opts = RunOptions.from_dictionary(run_opts)
        run_opts = run_opts or RunOptions()
        device = run_option(run_opts, hparams, "device") or infer_device()
        precision = resolve_precision(
            run_option(run_opts, hparams, "precision", "fp32"), device
        )
        eval_precision = run_option(run_opts, hparams, "eval_precision")
        eval_precision = (
            precision
            if eval_precision is None
            else resolve_precision(eval_precision, device)
        )
        run_opts = dataclasses.replace(
            run_opts,
            precision=precision,
            eval_precision=eval_precision,
            overridden_args=set(run_opts.overridden_args)
            | {"precision", "eval_precision"},
        )
        super().__init__(modules, opt_class, hparams, run_opts, checkpointer)
        self._share_scale = 1.0
        self._train_collate = None
        self._loss_sum = None
        self._loss_count = 0
        self._nonfinite = None
        self._shown_loss = 0.0
        self._zero_weight = False

    def on_fit_start(self):
        """SpeechBrain's start of fitting; a resumed run's inference.yaml is refreshed.

        Under DDP each process then reseeds its random generators with
        ``seed + rank`` (:meth:`seed_per_process`).
        """
        super().on_fit_start()
        self.seed_per_process()
        self.write_inference_yaml()

    def seed_per_process(self):
        """Gives every DDP process its own random draws: ``seed + rank``.

        The YAML seeds every process alike (``seed_everything(seed)``), which
        keeps the initial weights equal, but then every process would draw
        the same masks, SpecAugment bands, mixup partners and waveform
        augmentations for its share of the global batch, where one process
        training the whole batch draws them independently for every clip.
        After the model is built (and DDP has broadcast rank 0's weights),
        each process reseeds Python's, NumPy's and torch's generators (CPU
        and CUDA) with ``seed + rank``. One process keeps its seed.
        """
        n_processes, rank = distributed.world_size(), distributed.rank()
        if n_processes == 1:
            return
        base = getattr(self.hparams, "seed", None)
        base = int(base) if isinstance(base, int) else torch.initial_seed()
        seed = (base + rank) % 2**32
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # every device's generator too

    def write_inference_yaml(self):
        """Writes the run's ``inference.yaml`` next to ``hyperparams.yaml`` (main process).

        Called after every end-of-epoch checkpoint, so it always names the
        checkpoint the run would be used with (the weight average, else the
        best by ``metric``); see :mod:`craft_modules.weights.run_folder`.
        Brains without a checkpointer or an experiment folder write nothing.
        """
        hparams = vars(getattr(self, "hparams", None) or SimpleNamespace())
        folder = hparams.get("experiment_folder") or hparams.get("output_folder")
        if self.checkpointer is None or not folder or not if_main_process():
            return
        try:
            write_run_inference_yaml(folder, hparams, self.checkpointer)
        except (OSError, KeyError, ValueError) as err:  # training goes on without it
            logger.warning("No inference.yaml written in %s: %s", folder, err)

    def run_file(self, name):
        """``name`` in the run's folder (``experiment_folder``, else ``output_folder``).

        Returns None when the hparams name neither folder.
        """
        hparams = vars(getattr(self, "hparams", None) or SimpleNamespace())
        folder = hparams.get("experiment_folder") or hparams.get("output_folder")
        return os.path.join(folder, name) if folder else None

    def _compile(self):
        """``compile: True`` compiles each model's encoder in place (eager by default).

        SpeechBrain's own ``--compile`` would compile whole modules, features
        and masking included; the project compiles what dominates the step,
        the transformer encoder (``model.compile_targets()``), keeping the
        checkpoints' parameter names. Where compiling fails at the first
        call, the model falls back to eager with one warning
        (:func:`craft_modules.training.compile.compile_in_place`), and so
        it does where the backward fails to compile in the first training
        step (:meth:`fit_batch`).
        """
        self._compiled_targets = []
        if not self.compile:
            return
        for name, module in self.modules.items():
            targets = getattr(module, "compile_targets", None)
            if targets is None:
                logger.warning(
                    "Module %s has no encoder to compile; it stays eager", name
                )
                continue
            for target in targets():
                if compile_in_place(target, mode=self.compile_mode):
                    self._compiled_targets.append(target)

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

    def make_dataloader(
        self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs
    ):
        """SpeechBrain's loader, with the project's worker options.

        ``num_workers`` (``auto``: the CPUs of this process's share of the
        node) becomes persistent workers with prefetching, and batches are
        pinned when training on CUDA (:func:`craft_modules.training.loaders.loader_worker_options`).
        """
        if "num_workers" in loader_kwargs:
            loader_kwargs.update(
                loader_worker_options(loader_kwargs.pop("num_workers"), self.device)
            )
        return super().make_dataloader(dataset, stage, ckpt_prefix, **loader_kwargs)

    def _train_loader_specifics(self, dataset, loader_kwargs):
        """Turns ``batch_size`` (global) into this process's shares of each global batch.

        The recipe's index sampler (``sampler``: balanced sampling, SSAST's
        ``epoch_iter`` intervals; else a seeded shuffle when ``shuffle``, or
        the dataset order) gives the same stream on every process;
        :class:`ShareBatchSampler` cuts it into global batches of
        ``batch_size`` and keeps this process's shares. SpeechBrain's own
        distributed sampler wrapping is not used: it would split the clips,
        not the batches, and give ranks unequal batch counts.
        """
        loader_kwargs = dict(loader_kwargs)
        self._train_collate = loader_kwargs.get("collate_fn")
        if "batch_sampler" in loader_kwargs:
            sampler = loader_kwargs["batch_sampler"]
            if distributed.is_distributed() and not isinstance(
                sampler, ShareBatchSampler
            ):
                raise ValueError(
                    "under DDP a training batch_sampler must be a ShareBatchSampler "
                    "(every process would read every batch); pass a sampler of "
                    "indices and the global batch_size instead"
                )
        else:
            global_batch = int(loader_kwargs.pop("batch_size", 1))
            index_sampler = loader_kwargs.pop("sampler", None)
            shuffle = loader_kwargs.pop("shuffle", False)
            if index_sampler is None:
                if shuffle:
                    seed = int(os.environ.get("SB_GLOBAL_SEED", 563375142))
                    index_sampler = ReproducibleRandomSampler(dataset, seed=seed)
                else:
                    index_sampler = range(len(dataset))
            sampler = ShareBatchSampler(
                index_sampler,
                global_batch,
                world_size=distributed.world_size(),
                rank=distributed.rank(),
                accumulation=self.grad_accumulation_factor,
                drop_last=loader_kwargs.pop("drop_last", False),
            )
            loader_kwargs["batch_sampler"] = sampler
        if isinstance(sampler, ShareBatchSampler):
            self._share_scale = (
                sampler.world_size * sampler.accumulation / sampler.batch_size
            )
            distributed.set_gather_rows(sampler.max_share)
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
        """Trains on ``batch`` without a host-device sync; a ``None`` batch is skipped.

        SpeechBrain's step, less its two host reads: the loss stays on the
        device (its finiteness is counted there, see :meth:`update_average`).
        """
        if batch is None:
            logger.warning("Skipping a training batch whose clips all failed to load")
            if not distributed.is_distributed():
                return None
            self._zero_weight = True
            batch = self._silent_batch()
        try:
            should_step = (self.step % self.grad_accumulation_factor) == 0
            self.on_fit_batch_start(batch, should_step)
            if getattr(self, "_compiled_targets", None):
                # torch.compile compiles the backward at the first backward.
                outputs, loss = run_with_eager_fallback(
                    lambda: self._forward_backward(batch, should_step),
                    self._compiled_targets,
                    before_retry=self._restart_step,
                )
                self._compiled_targets = []  # compiled through a whole step
            else:
                outputs, loss = self._forward_backward(batch, should_step)
            if should_step:
                self.optimizers_step()
            self.on_fit_batch_end(batch, outputs, loss, should_step)
            return None if self._zero_weight else loss.detach()
        finally:
            self._zero_weight = False

    def _forward_backward(self, batch, should_step):
        """The forward, loss and backward of one training step; returns both outputs."""
        with self.no_sync(not should_step):
            with self.training_ctx:
                outputs = self.compute_forward(batch, sb.Stage.TRAIN)
                loss = self.compute_objectives(outputs, batch, sb.Stage.TRAIN)
            self.scaler.scale(loss / self.grad_accumulation_factor).backward()
        return outputs, loss

    def _restart_step(self):
        """Clears what a failed first step left, so that it can run again.

        The gradients it computed in part are dropped (nothing was accumulated
        before the first step). Under DDP the modules are wrapped anew: a
        backward that stopped half-way leaves DDP's reducer waiting for the
        rest of its gradients, and the next forward would fail on it.
        """
        for param in self.modules.parameters():
            param.grad = None
        wrapped = False
        for name, module in list(self.modules.items()):
            if isinstance(module, torch.nn.parallel.DistributedDataParallel):
                self.modules[name] = module.module
                wrapped = True
        if wrapped:
            self._wrap_distributed()

    def update_average(self, loss, avg_loss):
        """Accumulates the training loss on the device; returns the shown average.

        The value shown by the progress bar is read from the device every
        ``progress_every`` steps (hparams, default 100), together with the
        count of non-finite losses (SpeechBrain's ``nonfinite_patience``);
        :meth:`stage_loss` gives the exact stage average.
        """
        if self.step <= 1:
            self._loss_sum, self._loss_count, self._nonfinite = None, 0, None
        if loss is None:
            return self._shown_loss
        finite = torch.isfinite(loss)
        value = torch.where(finite, loss, torch.zeros_like(loss)).float()
        if self._loss_sum is None:
            self._loss_sum, self._nonfinite = value, (~finite).long()
        else:
            self._loss_sum = self._loss_sum + value
            self._nonfinite = self._nonfinite + (~finite).long()
        self._loss_count += 1
        every = self._progress_every()
        if every > 0 and self.step % every == 0:
            if self.modules.training:
                self._check_nonfinite()
            self._shown_loss = self.stage_loss()
        return self._shown_loss

    def _progress_every(self):
        """Steps between two progress reads (hparams ``progress_every``, default 100)."""
        return int(getattr(getattr(self, "hparams", None), "progress_every", 100) or 0)

    def _should_save_intra_epoch_ckpt(self, last_ckpt_time, steps_since_ckpt):
        """SpeechBrain's intra-epoch checkpoint decision, taken every ``progress_every`` steps.

        Under DDP, SpeechBrain broadcasts its clock-based decision
        (``ckpt_interval_minutes``) from rank 0 with ``broadcast_object_list``
        at every step: on NCCL a host-device sync per step. Every rank counts
        the same steps, so they all ask at the same steps, together with the
        progress read of :meth:`update_average`; a clock-based checkpoint is
        at most ``progress_every - 1`` steps later than SpeechBrain's.
        ``ckpt_interval_steps`` is exact (a step count needs no broadcast).
        """
        if self.checkpointer is None:
            return False
        if 0 < self.ckpt_interval_steps <= steps_since_ckpt:
            return True  # counted alike on every rank: nothing to broadcast
        every = self._progress_every()
        if every > 1 and steps_since_ckpt % every:
            return False
        return super()._should_save_intra_epoch_ckpt(last_ckpt_time, steps_since_ckpt)

    def _check_nonfinite(self):
        if self._nonfinite is None:
            return
        count = int(self._nonfinite)
        if count > self.nonfinite_patience:
            raise ValueError(
                f"{count} training losses of this stage were not finite (more than "
                f"nonfinite_patience={self.nonfinite_patience}); to debug, wrap fit() "
                "in torch.autograd.detect_anomaly()"
            )
        if count:
            logger.warning("%d non-finite training losses so far this stage", count)

    def stage_loss(self):
        """The average loss of the current stage so far (one host read)."""
        if not self._loss_count:
            return 0.0
        return float(self._loss_sum) / self._loss_count

    def skipped_clips(self):
        """Training clips dropped as unreadable so far, summed over all processes."""
        collate = self._train_collate
        count = getattr(collate, "n_skipped", 0) if collate is not None else 0
        total = distributed.all_reduce_sum(torch.tensor([float(count)]))
        return int(total.item())

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

    def _loss_weight(self, batch, stage):
        """The factor of a batch's mean loss: its share of the global batch.

        ``n_local * world * accumulation / batch_size`` in training (1 for
        equal shares; see :func:`craft_modules.distributed.share_weight`), 0 for a
        stand-in silent batch, 1 outside training.
        """
        if getattr(self, "_zero_weight", False):
            return 0.0
        if stage != sb.Stage.TRAIN:
            return 1.0
        return batch.sig[0].shape[0] * self._share_scale


class PretrainBrain(CraftBrain):
    """Self-supervised pretraining of any model returning a dict of losses.

    Expected hparams: ``lr_scheduler`` (a
    :class:`craft_modules.training.schedulers.WarmupPlateauScheduler`), ``monitor`` (the
    validation key driving the plateau schedule and checkpoint selection,
    e.g. ``acc_spec`` or ``loss``), ``train_logger``, and optionally
    ``keep_checkpoints``, ``log_interval`` (default 100) and
    ``use_tensorboard`` with ``tensorboard_logger``.

    **Running losses.** Every ``log_interval`` optimizer steps, and at the
    end of each training stage, the means since the previous log of
    ``loss`` and of each named loss the model returns (over every
    process's clips) go to ``train_logger`` (a ``step: ...`` line of
    ``train_log.txt``), to the step records (:attr:`step_log`,
    ``train_steps.jsonl`` in the run folder, with the step, the epoch and
    the learning rate) and, with ``use_tensorboard: True``, to the YAML's
    ``tensorboard_logger`` (SpeechBrain's ``TensorboardLogger``, tagged
    ``<loss>/train`` at the optimizer step). Each validation adds a
    ``stage: valid`` record and redraws ``curves.png``. The means are
    differences of the stage's running sums, which stay on the device:
    the only host read is one per log. Only the main process writes. A
    resumed run keeps the records up to its checkpoint's step and appends
    after them.
    """

    def compute_forward(self, batch, stage):
        """Returns the model's dict of losses for the batch."""
        batch = batch.to(self.device, non_blocking=True)  # pinned: no host wait
        wavs, lens = batch.sig
        return self.model_for(stage)(wavs, lens)

    def compute_objectives(self, predictions, batch, stage):
        """Accumulates every named loss (on the device) and returns the weighted total."""
        size = batch.sig[0].shape[0]
        if not getattr(self, "_zero_weight", False):
            for key, value in predictions.items():
                total, count = self.running.get(key, (0.0, 0))
                self.running[key] = (
                    total + value.detach().float() * size,
                    count + size,
                )
        return predictions["loss"] * self._loss_weight(batch, stage)

    def on_stage_start(self, stage, epoch=None):
        """Resets the running averages."""
        self.running = {}
        self._logged_totals = {}
        self._logged_step = self.optimizer_step
        self._epoch = epoch

    def on_fit_batch_start(self, batch, should_step):
        """Sets the warm-up learning rate of the coming optimizer step."""
        if should_step:
            self.hparams.lr_scheduler.on_step(self.optimizer, self.optimizer_step + 1)

    def on_fit_start(self):
        """SpeechBrain's start of fitting, then the step records and TensorBoard.

        The checkpoint recovered here gives the step after which the records
        of an earlier, killed run are dropped (:meth:`StepLog.resume`).
        """
        super().on_fit_start()
        interval = getattr(self.hparams, "log_interval", 100)
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 0:
            raise ValueError(
                f"log_interval must be a number of optimizer steps >= 0 (0: no "
                f"running-loss logs), got {interval!r}"
            )
        self.log_interval = interval
        self.tensorboard = self._open_tensorboard()
        path = self.run_file(STEP_LOG_FILE) if if_main_process() else None
        self.step_log = StepLog(path)
        self.step_log.resume(self.optimizer_step)

    def _open_tensorboard(self):
        """The YAML's ``tensorboard_logger`` when ``use_tensorboard`` (else None).

        ``tensorboard_logger`` is SpeechBrain's ``TensorboardLogger``, given
        as ``!name:`` with its ``save_dir`` (created here) or as an instance.
        """
        if not getattr(self.hparams, "use_tensorboard", False):
            return None
        factory = getattr(self.hparams, "tensorboard_logger", None)
        if isinstance(factory, TrainLogger):
            return factory
        if not callable(factory):
            raise ValueError(
                "use_tensorboard: True needs tensorboard_logger in the YAML, e.g. "
                "!name:speechbrain.utils.train_logger.TensorboardLogger with save_dir"
            )
        try:
            return factory()
        except ImportError as err:
            raise ImportError(
                "use_tensorboard: True needs the tensorboard package "
                "(pip install 'craft-modules[tensorboard]'), or set "
                f"use_tensorboard: False ({err})"
            ) from err

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Logs the running losses after every ``log_interval``-th optimizer step."""
        interval = getattr(self, "log_interval", 0)
        if should_step and interval and self.optimizer_step % interval == 0:
            self.log_running_losses()

    def _running_totals(self):
        """``{name: (sum, clips)}`` of the stage's losses over every process (one read)."""
        keys = sorted(self.running)
        if not keys:
            return {}
        sums = torch.stack(
            [torch.as_tensor(self.running[k][0], dtype=torch.float64) for k in keys]
        )
        counts = torch.tensor([self.running[k][1] for k in keys], dtype=torch.float64)
        totals = distributed.all_reduce_sum(torch.stack([sums.cpu(), counts]))
        return {k: (s, c) for k, s, c in zip(keys, *totals.tolist())}

    def _stage_stats(self):
        """Averages of the stage's named losses over every process (one read)."""
        return {k: float(s / max(c, 1)) for k, (s, c) in self._running_totals().items()}

    def log_running_losses(self):
        """Logs the mean losses of the optimizer steps since the previous log.

        Every process calls it at the same step (it sums the running losses
        over processes); the main process writes the ``train_log.txt`` line,
        the step record and the TensorBoard scalars. Nothing is logged when
        no step was made since the previous log.
        """
        step = self.optimizer_step
        if step <= getattr(self, "_logged_step", 0):
            return
        means = {}
        for key, (total, count) in self._running_totals().items():
            before, before_count = self._logged_totals.get(key, (0.0, 0.0))
            if count > before_count:
                means[key] = (total - before) / (count - before_count)
            self._logged_totals[key] = (total, count)
        steps, self._logged_step = step - self._logged_step, step
        if not means:
            return
        lr = self.optimizer.param_groups[0]["lr"]
        self.hparams.train_logger.log_stats(
            stats_meta={"step": step, "lr": lr}, train_stats=means
        )
        self._record("train", {"epoch": self._epoch, "lr": lr, "steps": steps, **means})

    def _record(self, stage, values):
        """Adds a step record and its TensorBoard scalars (main process)."""
        if not if_main_process() or getattr(self, "step_log", None) is None:
            return
        step = int(self.optimizer_step)
        self.step_log.append({"stage": stage, "step": step, **values})
        writer = getattr(getattr(self, "tensorboard", None), "writer", None)
        if writer is not None:
            for key, value in values.items():
                skip = ("epoch", "steps") if stage == "train" else ("epoch", "lr")
                if key in skip or not isinstance(value, (int, float)):
                    continue
                writer.add_scalar(
                    "lr" if key == "lr" else f"{key}/{stage}", value, step
                )

    def _plot_curves(self):
        """Redraws ``curves.png`` from the step records (main process)."""
        path = self.run_file("curves.png")
        if path and getattr(self, "step_log", None) is not None:
            plot_step_curves(
                self.step_log.records,
                path,
                monitor=getattr(self.hparams, "monitor", None),
            )

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs the stage, steps the plateau schedule and saves a checkpoint."""
        if stage == sb.Stage.TRAIN and getattr(self, "log_interval", 0):
            self.log_running_losses()  # the stage's last steps
        stats = self._stage_stats()
        if stage == sb.Stage.TRAIN:
            stats["skipped_clips"] = self.skipped_clips()
            self.train_stats = stats
            return
        if stage == sb.Stage.VALID:
            monitor = self.hparams.monitor
            value = stats.get(monitor, stats.get("loss"))
            self.last_valid_stats = stats
            lr = self.hparams.lr_scheduler.on_evaluation(self.optimizer, value)
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "step": self.optimizer_step, "lr": lr},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self._record("valid", {"epoch": epoch, "lr": lr, **stats})
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
            self.write_inference_yaml()
            self._plot_curves()
        else:
            self.test_stats = stats
            self.hparams.train_logger.log_stats(
                stats_meta={"evaluation": "test"}, test_stats=stats
            )


class ClassifierBrain(CraftBrain):
    """Supervised fine-tuning of any model returning logits.

    Expected hparams: ``loss`` (``bce`` or ``ce``), ``metric`` (``mAP`` or
    ``accuracy``: checkpoint selection), ``lr_schedule`` (a
    :class:`craft_modules.training.schedulers.EpochDecayScheduler`, set per
    epoch, or a schedule with ``on_step``, e.g.
    :class:`craft_modules.training.schedulers.WarmupCosineScheduler`, set per
    optimizer step and told the run's steps by ``set_total_steps``), ``train_logger``,
    ``output_folder`` (or ``experiment_folder``, e.g. per fold); optional ``mixup_alpha`` / ``mixup_prob`` (waveform
    mixup, SSAST's Beta(10, 10)), ``weight_averager`` (a
    :class:`craft_modules.training.averaging.WeightAverager`, also in the
    checkpointer) and ``keep_checkpoints``. Batches carry ``sig`` and
    ``targets`` (float multi-hot or one-hot vectors).

    What a recipe reads back after ``fit`` and ``evaluate``:

    * ``history``: one dict of validation metrics per epoch (with ``epoch``;
      for ``loss: ce`` also each clip's ``predictions`` and ``targets``).
      It is also written to ``epoch_metrics.json`` in the experiment folder
      and read back when fitting starts, so a resumed run keeps the epochs
      trained before it was stopped.
    * ``test_metrics`` (and ``test_predictions``): the last ``evaluate``.
    * ``weight_averaged``: whether ``evaluate`` used the averaged weights.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.history = []
        self.test_metrics = None
        self.weight_averaged = False

    def compute_forward(self, batch, stage):
        """Returns ``(logits, targets)``; mixes the batch up when training."""
        batch = batch.to(self.device, non_blocking=True)  # pinned: no host wait
        wavs, lens = batch.sig
        targets = getattr(batch.targets, "data", batch.targets).float()
        prob = getattr(self.hparams, "mixup_prob", 0.0)
        if stage == sb.Stage.TRAIN and prob > 0:
            wavs, lens, targets = mixup(
                wavs, lens, targets, self.hparams.mixup_alpha, prob
            )
        return self.model_for(stage)(wavs, lens), targets

    def compute_objectives(self, predictions, batch, stage):
        """BCE or CE loss, in float32 (autocast off); collects scores outside training.

        CE takes the targets as class probabilities, so a mixup clip is
        trained on both of its labels with their weights; for one-hot
        targets this is exactly the cross-entropy with the class index that
        AST's and SSAST's ``traintest.py`` compute (``argmax`` of the label).
        """
        logits, targets = predictions
        with torch.autocast(logits.device.type, enabled=False):
            logits, targets = logits.float(), targets.float()
            if self.hparams.loss == "bce":
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, targets
                )
            else:
                loss = torch.nn.functional.cross_entropy(logits, targets)
        if stage != sb.Stage.TRAIN:
            self.collector.append(batch.id, torch.sigmoid(logits), targets)
        return loss * self._loss_weight(batch, stage)

    def on_stage_start(self, stage, epoch=None):
        """Sets the epoch's learning rate; resets the prediction collector."""
        self.collector = PredictionCollector()
        schedule = self.hparams.lr_schedule
        if stage == sb.Stage.TRAIN and epoch is not None:
            if not hasattr(schedule, "on_step"):
                self.current_lr = schedule(self.optimizer, epoch)

    def on_fit_batch_start(self, batch, should_step):
        """Sets the lr of the coming optimizer step (schedules with ``on_step``)."""
        schedule = getattr(self.hparams, "lr_schedule", None)
        if should_step and hasattr(schedule, "on_step"):
            step = self.optimizer_step + 1
            self.current_lr = schedule.on_step(self.optimizer, step)

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
            self.train_stats = {
                "loss": self.stage_loss(),
                "skipped_clips": self.skipped_clips(),
            }
            return
        metrics, predictions = self.compute_metrics()
        metrics["loss"] = self.stage_loss()
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
            self.write_inference_yaml()
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
        self.weight_averaged = False
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
                self.weight_averaged = True
                return
        super().on_evaluate_start(max_key=max_key, min_key=min_key)

    def on_fit_start(self):
        """SpeechBrain's start of fitting, then the history of the epochs already trained.

        The weight-averaging range is checked first (an error naming
        ``weight_averaging_start`` and ``number_of_epochs`` when no epoch
        would be averaged). A resumed run recovers its checkpoint here, and
        its ``history`` from ``epoch_metrics.json``; an epoch trained again
        replaces its entry.
        """
        self._check_weight_averaging()
        super().on_fit_start()
        self.history = self._saved_history()
        schedule = getattr(self.hparams, "lr_schedule", None)
        if hasattr(schedule, "set_total_steps") and self.train_sampler is not None:
            per_epoch = len(self.train_sampler) // self.grad_accumulation_factor
            schedule.set_total_steps(
                max(1, per_epoch * self.hparams.epoch_counter.limit)
            )

    def _check_weight_averaging(self):
        """Refuses ``use_weight_averaging`` with a range no epoch of the run falls in.

        Without this, a ``weight_averaging_start`` beyond ``number_of_epochs``
        (e.g. 6 with the full-set schedule of 5 epochs) averages nothing and
        ``evaluate`` silently uses the best checkpoint instead.
        """
        averager = getattr(self.hparams, "weight_averager", None)
        if averager is None or not getattr(self.hparams, "use_weight_averaging", False):
            return
        epochs = getattr(self.hparams, "number_of_epochs", None)
        if epochs is None:
            epochs = getattr(
                getattr(self.hparams, "epoch_counter", None), "limit", None
            )
        if epochs is not None:
            averager.check_range(epochs)

    def history_path(self):
        """Where per-epoch validation metrics are written (None without a folder)."""
        folder = getattr(self.hparams, "experiment_folder", None) or getattr(
            self.hparams, "output_folder", None
        )
        return os.path.join(folder, "epoch_metrics.json") if folder else None

    def _saved_history(self):
        """The per-epoch metrics of ``epoch_metrics.json`` (empty if none)."""
        path = self.history_path()
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as fin:
                return json.load(fin)
        return []

    def _training_entry(self):
        """The epoch's training losses (``train_loss``, ``train_<part>``) and ``lr``."""
        entry = {
            f"train_{key}": value
            for key, value in (getattr(self, "train_stats", None) or {}).items()
            if key != "skipped_clips" and isinstance(value, (int, float))
        }
        lr = getattr(self, "current_lr", None)
        if lr is None and getattr(self, "optimizer", None) is not None:
            lr = self.optimizer.param_groups[0]["lr"]
        if isinstance(lr, (int, float)):
            entry["lr"] = float(lr)
        return entry

    def _plot_curves(self):
        """Redraws ``curves.png`` from ``history`` (main process)."""
        path = self.run_file("curves.png")
        if path:
            metric = getattr(self.hparams, "metric", "accuracy")
            metrics = [metric, "mAUC"] if metric == "mAP" else [metric]
            plot_epoch_curves(self.history, path, metrics=metrics)

    def _record_epoch(self, epoch, metrics, predictions):
        """Adds ``epoch``'s metrics to ``history``; the main process saves and plots it."""
        entry = {"epoch": epoch, **metrics, **self._training_entry()}
        if self.hparams.loss == "ce":
            ids, scores, targets = predictions
            entry["predictions"] = dict(zip(ids, scores.argmax(dim=-1).tolist()))
            entry["targets"] = dict(zip(ids, targets.argmax(dim=-1).tolist()))
        history = [h for h in self.history if h["epoch"] != epoch] + [entry]
        self.history = sorted(history, key=lambda h: h["epoch"])
        path = self.history_path()
        if path and if_main_process():
            write_json_atomic(self.history, path)
            self._plot_curves()
