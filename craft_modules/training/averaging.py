"""Uniform weight averaging over epochs (SSAST's ``--wa``), kept as a running mean.

SSAST averages the state dicts of epochs ``wa_start .. wa_end`` after
training. Keeping every epoch's checkpoint for that costs one model per epoch
on disk; :class:`WeightAverager` keeps the same uniform average incrementally
(``avg += (w - avg) / n``) as a checkpointable object, so resuming a killed
run resumes the average too. :meth:`WeightAverager.check_range` refuses, at
the start of fitting, a range that no epoch of the run falls in (evaluation
would otherwise silently fall back to the best checkpoint).

The ranges of the official recipes (YuanGongND/ast ``src/traintest.py`` and
``egs/audioset/run.sh``, followed by SSAST): epochs 6..25 on the balanced
AudioSet (25 epochs), 1..5 on the full set (5 epochs).

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)


@register_checkpoint_hooks
class WeightAverager:
    """Running uniform average of a model's weights over a range of epochs.

    Arguments
    ---------
    start_epoch : int
        First epoch included (1-based).
    end_epoch : int
        Last epoch included.

    Example
    -------
    >>> model = torch.nn.Linear(1, 1, bias=False)
    >>> averager = WeightAverager(start_epoch=2, end_epoch=3)
    >>> for epoch, value in [(1, 10.0), (2, 1.0), (3, 3.0)]:
    ...     _ = model.weight.data.fill_(value)
    ...     averager.update(model, epoch)
    >>> averager.count, float(averager.average["weight"])
    (2, 2.0)
    """

    def __init__(self, start_epoch=1, end_epoch=10**9):
        self.start_epoch = int(start_epoch)
        self.end_epoch = int(end_epoch)
        self.average = None
        self.count = 0
        self.last_epoch = 0

    def update(self, model, epoch):
        """Adds ``model``'s weights of ``epoch`` to the average when inside the range.

        Arguments
        ---------
        model : torch.nn.Module
            The model (a DDP wrapper is unwrapped).
        epoch : int
            The epoch that just ended; an epoch already counted is ignored.
        """
        if not self.start_epoch <= epoch <= self.end_epoch or epoch <= self.last_epoch:
            return
        model = getattr(model, "module", model)
        state = {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}
        self.count += 1
        if self.average is None:
            self.average = state
        else:
            for key, value in state.items():
                if value.is_floating_point():
                    self.average[key] += (value - self.average[key]) / self.count
                else:
                    self.average[key] = value
        self.last_epoch = epoch

    def check_range(self, number_of_epochs):
        """Raises if no epoch of a run of ``number_of_epochs`` would be averaged.

        Arguments
        ---------
        number_of_epochs : int
            The epochs the run trains (``number_of_epochs`` of the YAML).

        Raises
        ------
        ValueError
            When ``start_epoch`` (``weight_averaging_start``) is beyond
            ``number_of_epochs`` or beyond ``end_epoch``; the message names
            the keys and their values.

        Example
        -------
        >>> WeightAverager(start_epoch=1, end_epoch=5).check_range(5)
        >>> WeightAverager(start_epoch=6, end_epoch=5).check_range(5)
        Traceback (most recent call last):
        ...
        ValueError: use_weight_averaging is True but weight_averaging_start (6) is beyond number_of_epochs (5)...
        """
        number_of_epochs = int(number_of_epochs)
        if self.start_epoch > number_of_epochs:
            raise ValueError(
                f"use_weight_averaging is True but weight_averaging_start "
                f"({self.start_epoch}) is beyond number_of_epochs "
                f"({number_of_epochs}): no epoch would be averaged. Set "
                f"weight_averaging_start to at most {number_of_epochs} (the "
                "full-set schedule of 5 epochs averages epochs 1..5: "
                "--weight_averaging_start=1), or use_weight_averaging: False "
                "to evaluate the best checkpoint."
            )
        if self.start_epoch > self.end_epoch:
            raise ValueError(
                f"use_weight_averaging is True but weight_averaging_start "
                f"({self.start_epoch}) is beyond the averager's end_epoch "
                f"({self.end_epoch}): no epoch would be averaged."
            )

    def apply_to(self, model):
        """Loads the averaged weights into ``model``; returns False if nothing was averaged.

        Arguments
        ---------
        model : torch.nn.Module
            The model to overwrite.

        Returns
        -------
        bool
            Whether weights were loaded.
        """
        if not self.count:
            return False
        getattr(model, "module", model).load_state_dict(self.average)
        return True

    @mark_as_saver
    def _save(self, path):
        torch.save(
            {
                "average": self.average,
                "count": self.count,
                "last_epoch": self.last_epoch,
            },
            path,
        )

    @mark_as_loader
    def _load(self, path, end_of_epoch=False):
        state = torch.load(path)
        self.average, self.count, self.last_epoch = (
            state["average"],
            state["count"],
            state["last_epoch"],
        )
