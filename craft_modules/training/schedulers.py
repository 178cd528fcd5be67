"""Learning-rate schedules of the official SSAST recipes, checkpointable.

* :class:`WarmupPlateauScheduler` — SSAST pretraining: a staircase warm-up
  from 0 to ``lr`` over ``warmup_steps`` optimizer steps (the lr is set to
  ``step / warmup_steps * lr`` at every multiple of ``warmup_every``, so the
  first 50 steps train at lr 0, as the official code does), then a
  reduce-on-plateau halving on the validation metric.
* :class:`EpochDecayScheduler` — SSAST fine-tuning: ``MultiStepLR`` with
  milestones ``range(start, 1000, step)`` and factor ``decay``, stepped after
  each epoch (AudioSet: halve after epochs 10, 15, 20; ESC-50: x0.85 after
  every epoch from 6). The lr of an epoch is a pure function of the epoch
  number, so resuming needs no state.
* :class:`WarmupCosineScheduler` — training from scratch (no SSAST
  counterpart: SSAST only fine-tunes pretrained models): a linear warm-up
  from 0 to ``lr`` over the first ``warmup_fraction`` of the optimizer
  steps, then a cosine decay to ``final_lr_ratio * lr`` at the last step
  (the warm-up + cosine schedule of DeiT, Touvron et al. 2021, which AST
  and SSAST build on), set at every optimizer step. The lr is a pure
  function of the step; the Brain gives it the run's number of steps
  (:meth:`WarmupCosineScheduler.set_total_steps`).
* :func:`select_lr_schedule` — which of a YAML's schedules a classification
  run uses: ``scratch_lr_schedule`` without a starting checkpoint, else
  ``lr_schedule``.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import math

from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)


def set_lr(optimizer, lr):
    """Writes ``lr`` into every parameter group of ``optimizer``.

    Arguments
    ---------
    optimizer : torch.optim.Optimizer
        The optimizer.
    lr : float
        The learning rate.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr


@register_checkpoint_hooks
class WarmupPlateauScheduler:
    """SSAST's pretraining schedule: staircase warm-up, then halve on plateau.

    Arguments
    ---------
    lr : float
        Peak learning rate.
    warmup_steps : int
        Optimizer steps of the warm-up (1000 in SSAST; 0 disables it).
    warmup_every : int
        The warm-up updates the lr every this many steps (50 in SSAST).
    factor : float
        Multiplier applied on a plateau.
    patience : int
        Evaluations without improvement tolerated before reducing.
    mode : str
        ``max`` (accuracy) or ``min`` (loss).

    Example
    -------
    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = WarmupPlateauScheduler(lr=1.0, warmup_steps=100, warmup_every=50)
    >>> [sched.on_step(opt, s) for s in (1, 50, 99, 100, 150)]
    [0.0, 0.5, 0.5, 1.0, 1.0]
    >>> short = WarmupPlateauScheduler(lr=1.0, warmup_steps=20, warmup_every=50)
    >>> [short.on_step(opt, s) for s in (1, 19, 20, 21)]
    [0.0, 0.0, 1.0, 1.0]
    >>> [sched.on_evaluation(opt, acc) for acc in (0.5, 0.4, 0.4, 0.4)]
    [1.0, 1.0, 1.0, 0.5]
    """

    def __init__(
        self, lr, warmup_steps=1000, warmup_every=50, factor=0.5, patience=2, mode="max"
    ):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.peak_lr = float(lr)
        self.current_lr = 0.0 if warmup_steps > 0 else float(lr)
        self.warmup_steps = int(warmup_steps)
        self.warmup_every = max(1, int(warmup_every))
        self.factor = float(factor)
        self.patience = int(patience)
        self.mode = mode
        self.best = None
        self.bad_evaluations = 0

    def on_step(self, optimizer, step):
        """Applies the warm-up at optimizer step ``step`` (1-based); returns the lr."""
        if step <= self.warmup_steps:
            if step % self.warmup_every == 0 or step == 1:
                stair = (step // self.warmup_every) * self.warmup_every
                self.current_lr = stair / self.warmup_steps * self.peak_lr
            if step == self.warmup_steps:  # the warm-up always ends at the peak
                self.current_lr = self.peak_lr
        set_lr(optimizer, self.current_lr)
        return self.current_lr

    def on_evaluation(self, optimizer, metric):
        """Halves the lr after more than ``patience`` evaluations without improvement."""
        better = self.best is None or (
            metric > self.best if self.mode == "max" else metric < self.best
        )
        if better:
            self.best, self.bad_evaluations = float(metric), 0
        else:
            self.bad_evaluations += 1
            if self.bad_evaluations > self.patience:
                self.peak_lr *= self.factor
                self.current_lr *= self.factor
                self.bad_evaluations = 0
        set_lr(optimizer, self.current_lr)
        return self.current_lr

    @mark_as_saver
    def _save(self, path):
        import torch

        torch.save(
            {
                "peak_lr": self.peak_lr,
                "current_lr": self.current_lr,
                "best": self.best,
                "bad_evaluations": self.bad_evaluations,
            },
            path,
        )

    @mark_as_loader
    def _load(self, path, end_of_epoch=False):
        import torch

        state = torch.load(path)
        self.peak_lr = state["peak_lr"]
        self.current_lr = state["current_lr"]
        self.best = state["best"]
        self.bad_evaluations = state["bad_evaluations"]


class EpochDecayScheduler:
    """SSAST's fine-tuning schedule: ``lr * decay ** (milestones passed)``.

    Arguments
    ---------
    lr : float
        Initial learning rate.
    start : int
        First milestone epoch.
    step : int
        Epochs between milestones.
    decay : float
        Factor applied at each milestone.

    Example
    -------
    >>> sched = EpochDecayScheduler(lr=1.0, start=10, step=5, decay=0.5)
    >>> [sched.lr_at(e) for e in (1, 10, 11, 16, 21, 25)]
    [1.0, 1.0, 0.5, 0.25, 0.125, 0.125]
    """

    def __init__(self, lr, start, step, decay):
        if step < 1:
            raise ValueError(f"step must be >= 1, got {step}")
        self.lr = float(lr)
        self.start, self.step, self.decay = int(start), int(step), float(decay)

    def lr_at(self, epoch):
        """Learning rate during ``epoch`` (1-based)."""
        passed = len(range(self.start, max(self.start, epoch), self.step))
        return self.lr * self.decay**passed

    def __call__(self, optimizer, epoch):
        """Sets the lr of ``epoch`` on ``optimizer`` and returns it."""
        lr = self.lr_at(epoch)
        set_lr(optimizer, lr)
        return lr

    def __repr__(self):
        return (
            f"EpochDecayScheduler(lr={self.lr}, start={self.start}, "
            f"step={self.step}, decay={self.decay})"
        )


class WarmupCosineScheduler:
    """From-scratch schedule: linear warm-up, then cosine decay, per optimizer step.

    With ``T`` total steps and ``W = max(1, round(warmup_fraction * T))``
    warm-up steps, the lr of step ``s`` (1-based) is ``lr * s / W`` for
    ``s <= W``, then ``lr * (r + (1 - r) * (1 + cos(pi * p)) / 2)`` with
    ``p = (s - W) / (T - W)`` and ``r = final_lr_ratio``. Steps past ``T``
    keep the final lr.

    Arguments
    ---------
    lr : float
        Peak learning rate, reached at the end of the warm-up.
    warmup_fraction : float
        Share of the total steps spent warming up, in [0, 1).
    final_lr_ratio : float
        The last step's lr as a share of ``lr``, in [0, 1].
    total_steps : int, optional
        Optimizer steps of the whole run; ClassifierBrain sets it when
        fitting starts (number of epochs x optimizer steps per epoch).

    Example
    -------
    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    >>> sched = WarmupCosineScheduler(lr=1.0, warmup_fraction=0.2, final_lr_ratio=0.0)
    >>> sched.set_total_steps(10)
    >>> [round(sched.on_step(opt, s), 3) for s in (1, 2, 6, 10, 11)]
    [0.5, 1.0, 0.5, 0.0, 0.0]
    >>> opt.param_groups[0]["lr"]
    0.0
    """

    def __init__(self, lr, warmup_fraction=0.1, final_lr_ratio=0.0, total_steps=None):
        if not 0.0 <= float(warmup_fraction) < 1.0:
            raise ValueError(
                f"warmup_fraction must be in [0, 1), got {warmup_fraction}"
            )
        if not 0.0 <= float(final_lr_ratio) <= 1.0:
            raise ValueError(f"final_lr_ratio must be in [0, 1], got {final_lr_ratio}")
        self.lr = float(lr)
        self.warmup_fraction = float(warmup_fraction)
        self.final_lr_ratio = float(final_lr_ratio)
        self.total_steps = None
        if total_steps is not None:
            self.set_total_steps(total_steps)

    def set_total_steps(self, total_steps):
        """Sets the run's number of optimizer steps (at least 1)."""
        if int(total_steps) < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.total_steps = int(total_steps)

    @property
    def warmup_steps(self):
        """Optimizer steps of the warm-up (0 when ``warmup_fraction`` is 0)."""
        if self.warmup_fraction == 0.0:
            return 0
        return max(1, round(self.warmup_fraction * self._total()))

    def _total(self):
        if self.total_steps is None:
            raise RuntimeError(
                "WarmupCosineScheduler needs total_steps (set_total_steps) before use"
            )
        return self.total_steps

    def lr_at(self, step):
        """Learning rate of optimizer step ``step`` (1-based)."""
        total, warmup = self._total(), self.warmup_steps
        if step <= warmup:
            return self.lr * step / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        cosine = (1 + math.cos(math.pi * progress)) / 2
        ratio = self.final_lr_ratio
        return self.lr * (ratio + (1 - ratio) * cosine)

    def on_step(self, optimizer, step):
        """Sets the lr of optimizer step ``step`` (1-based) and returns it."""
        lr = self.lr_at(step)
        set_lr(optimizer, lr)
        return lr

    def __repr__(self):
        return (
            f"WarmupCosineScheduler(lr={self.lr}, warmup_fraction="
            f"{self.warmup_fraction}, final_lr_ratio={self.final_lr_ratio})"
        )


def select_lr_schedule(hparams):
    """The lr schedule of a classification run, chosen by its starting point.

    A run with neither ``pretrained_path`` nor ``init_from`` trains from
    scratch: it uses ``scratch_lr_schedule`` when the YAML has one (the
    CRAFT/AST YAMLs: :class:`WarmupCosineScheduler`); otherwise, and from
    a checkpoint, ``lr_schedule`` (SSAST's fine-tuning schedule). The
    choice is logged.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters.

    Returns
    -------
    tuple
        ``(schedule, key)``: the schedule object and the YAML key it came from.

    Example
    -------
    >>> fine = EpochDecayScheduler(lr=1e-4, start=6, step=1, decay=0.85)
    >>> scratch = WarmupCosineScheduler(lr=1e-3)
    >>> h = {"pretrained_path": "", "lr_schedule": fine, "scratch_lr_schedule": scratch}
    >>> select_lr_schedule(h)[1]
    'scratch_lr_schedule'
    >>> select_lr_schedule({**h, "pretrained_path": "run/save"})[1]
    'lr_schedule'
    """
    from_scratch = not hparams.get("pretrained_path") and not hparams.get("init_from")
    key = "lr_schedule"
    if from_scratch and hparams.get("scratch_lr_schedule") is not None:
        key = "scratch_lr_schedule"
    schedule = hparams[key]
    logger.info(
        "Training %s: learning-rate schedule %s = %r",
        "from scratch" if from_scratch else "from a checkpoint",
        key,
        schedule,
    )
    return schedule, key
