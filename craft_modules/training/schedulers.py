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

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)


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
