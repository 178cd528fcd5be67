"""Uniform weight averaging over epochs (SSAST's ``--wa``), kept as a running mean.

SSAST averages the state dicts of epochs ``wa_start .. wa_end`` after
training. Keeping every epoch's checkpoint for that costs one model per epoch
on disk; :class:`WeightAverager` keeps the same uniform average incrementally
(``avg += (w - avg) / n``) as a checkpointable object, so resuming a killed
run resumes the average too.

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
