"""No host-device sync inside a training step (a CPU stand-in for CUDA's sync debug mode).

On a GPU, ``torch.cuda.set_sync_debug_mode("error")`` (``benchmarks/gpu_check.py``)
proves it. On the CPU, every operation that would read a device value on the
host (``item``, ``bool``, ``float``, ``tolist``, ``nonzero``, boolean-mask
indexing, ``.cpu()``, ...) or would copy host data to it blocking
(``torch.tensor(data, device=...)``) is intercepted with a ``TorchFunctionMode`` and
fails the test, during the forward, loss and backward of each model's
training step and of the Brains' ``fit_batch``. The optimizer step is left
out: Adam's step counters live on the host even on a GPU.
"""

import contextlib

import pytest
import speechbrain as sb
import torch
from torch.overrides import TorchFunctionMode

from craft_modules.augment.spectrogram import SpecAugment
from craft_modules.models.clar import ClarModel, clar_losses
from craft_modules.models.craft import CraftClassifier, CraftPretrainer
from craft_modules.models.diverse import DiverseEmbeddingModel
from craft_modules.training.brains import ClassifierBrain, PretrainBrain
from craft_modules.training.schedulers import (
    EpochDecayScheduler,
    WarmupPlateauScheduler,
)

HOST_READS = {
    "item",
    "__bool__",
    "__float__",
    "__int__",
    "__index__",
    "tolist",
    "nonzero",
    "argwhere",
    "cpu",
    "numpy",
    "masked_select",
    "unique",
    "unique_consecutive",
}


class HostReads(TorchFunctionMode):
    """Raises on every operation that reads a tensor's values on the host."""

    def __init__(self):
        super().__init__()
        self.paused = False

    @contextlib.contextmanager
    def pause(self):
        self.paused, before = True, self.paused
        try:
            yield
        finally:
            self.paused = before

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self.paused:
            name = getattr(func, "__name__", "")
            if name in HOST_READS:
                raise AssertionError(f"host read in the training step: {name}")
            if (
                name in ("tensor", "as_tensor")
                and kwargs.get("device") is not None
                and args
                and not isinstance(args[0], torch.Tensor)
            ):
                # Host data made on a device: a blocking copy on a GPU.
                raise AssertionError(
                    f"host-to-device copy in the training step: {name}"
                )
            if name == "__getitem__" and len(args) > 1:
                index = args[1] if isinstance(args[1], tuple) else (args[1],)
                if any(
                    isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index
                ):
                    raise AssertionError("boolean-mask indexing in the training step")
        return func(*args, **kwargs)


def test_the_detector_catches_host_reads():
    x = torch.randn(4)
    for read in (
        lambda: x.sum().item(),
        lambda: bool(x[0] > 0),
        lambda: x[x > 0],
        lambda: torch.tensor(0.5, device=x.device),
        lambda: torch.as_tensor([1, 2], device=x.device),
    ):
        with pytest.raises(AssertionError, match="host read|boolean|host-to-device"):
            with HostReads():
                read()


WAVS = torch.randn(3, 12800) * 0.1
LENS = torch.tensor([1.0, 0.8, 0.6])
TINY = dict(model_size="tiny", depth=2, target_frames=128)


@pytest.fixture(autouse=True)
def _checks_as_on_a_gpu(monkeypatch):
    """Input value checks run as on an accelerator: asserted on the device."""
    monkeypatch.setattr(
        "craft_modules.models.inputs._values_checked_on_host", lambda w: False
    )


def test_device_side_input_checks_still_reject_bad_batches():
    model = CraftClassifier(3, fusion="ast", **TINY)
    with pytest.raises(RuntimeError, match="invalid waveform batch"):
        model(WAVS, torch.tensor([1.0, 0.0, 1.0]))
    nan = WAVS.clone()
    nan[1, 5] = float("nan")
    with pytest.raises(RuntimeError, match="invalid waveform batch"):
        model(nan, LENS)


def _step(model, loss_fn):
    model.train()
    with HostReads():
        loss = loss_fn(model)
        loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("method", ["ssast", "pswacl", "swapt"])
def test_pretraining_step_has_no_host_read(method):
    model = CraftPretrainer(method=method, mask_patch=20, **TINY)
    _step(model, lambda m: m(WAVS, LENS)["loss"])


def test_swab_fine_tuning_step_with_specaugment_has_no_host_read():
    augment = SpecAugment(freqm=8, timem=20)
    model = CraftClassifier(
        3, fusion="swab", n_bottlenecks=4, fusion_layer=1, spec_augment=augment, **TINY
    )
    _step(model, lambda m: m(WAVS, LENS).logsumexp(-1).mean())


def test_clar_step_has_no_host_read():
    model = ClarModel("spectrogram", n_classes=3, widths=[4, 4, 8, 8])
    targets = torch.eye(3)
    labelled = torch.tensor([True, False, True])
    _step(
        model,
        lambda m: clar_losses(m, WAVS, LENS, targets, labelled, mode="clar")["loss"],
    )


@pytest.mark.parametrize("prob", [0.5, 1.0])
def test_clar_augmentations_read_nothing_back_from_the_device(monkeypatch, prob):
    """The draws that set the work's shapes are made on the host, not read back.

    On the CPU a host draw and a device read look alike to the detector, so
    ``host_values`` (the one place that lists a draw made on the host) runs
    with it paused; every other read still fails the test.
    """
    import craft_modules.augment.waveform as waveform

    detector = HostReads()
    host_values = waveform.host_values

    def host_draw(draw):
        with detector.pause():
            return host_values(draw)

    monkeypatch.setattr(waveform, "host_values", host_draw)
    chain = waveform.AugmentationChain(
        [
            waveform.PitchShift(16000, max_semitones=2, prob=prob),
            waveform.Fade(prob=prob),
            waveform.WhiteNoise(prob=prob),
            waveform.ColouredNoise(prob=prob),
            waveform.TimeMask(prob=prob),
            waveform.TimeShift(prob=prob),
            waveform.TimeStretch(prob=prob),
        ]
    )
    torch.manual_seed(3)
    with detector:
        out = chain(WAVS, LENS)
    assert out.shape == WAVS.shape and not torch.equal(out, WAVS)


def test_diverse_step_has_no_host_read():
    model = DiverseEmbeddingModel(
        3,
        streams=["pitch", "timbre", "waveform", "neuralogram"],
        embed_dim=8,
        depth=1,
        num_heads=2,
        chunk_seconds=0.25,
    )
    _step(model, lambda m: m(WAVS, LENS).logsumexp(-1).mean())


class _Batch:
    def __init__(self, targets=None):
        self.id = ["a", "b", "c"]
        self.sig = (WAVS, LENS)
        self.targets = targets

    def to(self, device, **kwargs):
        return self


def _fit_batch_without_host_reads(brain, batch):
    detector = HostReads()
    optimizers_step = brain.optimizers_step

    def step_outside_the_detector():
        with detector.pause():
            optimizers_step()

    brain.optimizers_step = step_outside_the_detector
    brain.on_fit_start()
    brain.on_stage_start(sb.Stage.TRAIN, 1)
    brain.modules.train()
    before = [p.detach().clone() for p in brain.modules.parameters()]
    for step in (1, 2):
        brain.step = step
        with detector:
            loss = brain.fit_batch(batch)
            brain.update_average(loss, 0.0)
    assert loss.device == WAVS.device and loss.dim() == 0  # on the device, unread
    after = list(brain.modules.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after))  # it trained


def test_brains_fit_batch_has_no_host_read(tmp_path):
    from speechbrain.utils.train_logger import FileTrainLogger

    logger = FileTrainLogger(str(tmp_path / "log.txt"))
    pretrain = PretrainBrain(
        modules={"model": CraftPretrainer(method="pswacl", mask_patch=20, **TINY)},
        opt_class=lambda p: torch.optim.Adam(p, lr=1e-3),
        hparams={
            "lr_scheduler": WarmupPlateauScheduler(1e-3, warmup_steps=0),
            "train_logger": logger,
            "monitor": "acc_spec",
            "precision": "auto",
        },
        run_opts={"device": "cpu"},
    )
    assert pretrain.precision == "fp32"  # auto on the CPU
    _fit_batch_without_host_reads(pretrain, _Batch())
    classifier = ClassifierBrain(
        modules={"model": CraftClassifier(3, fusion="ast", **TINY)},
        opt_class=lambda p: torch.optim.Adam(p, lr=1e-3),
        hparams={
            "loss": "ce",
            "metric": "accuracy",
            "lr_schedule": EpochDecayScheduler(1e-3, start=5, step=1, decay=0.85),
            "train_logger": logger,
            "mixup_prob": 0.5,
            "mixup_alpha": 10.0,
            "precision": "auto",
        },
        run_opts={"device": "cpu"},
    )
    _fit_batch_without_host_reads(classifier, _Batch(torch.eye(3)))


def test_intra_epoch_checkpoint_decision_is_broadcast_only_every_progress_interval(
    tmp_path, monkeypatch
):
    """SpeechBrain broadcasts its clock-based decision at every step under DDP (a sync)."""
    import speechbrain.core

    from craft_modules.training.checkpointer import AtomicCheckpointer

    model = CraftPretrainer(method="ssast", mask_patch=20, **TINY)
    brain = PretrainBrain(
        modules={"model": model},
        opt_class=lambda p: torch.optim.Adam(p, lr=1e-3),
        hparams={
            "lr_scheduler": WarmupPlateauScheduler(1e-3, warmup_steps=0),
            "monitor": "acc_spec",
            "progress_every": 10,
            "ckpt_interval_minutes": 1e-9,  # always due on the clock
        },
        run_opts={"device": "cpu"},
        checkpointer=AtomicCheckpointer(tmp_path, {"model": model}),
    )
    broadcasts = []

    def broadcast(objects, src=0):
        broadcasts.append(list(objects))

    monkeypatch.setattr(speechbrain.core, "is_distributed_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "broadcast_object_list", broadcast)
    decisions = [brain._should_save_intra_epoch_ckpt(0.0, n) for n in range(1, 31)]
    assert [n for n, due in enumerate(decisions, 1) if due] == [10, 20, 30]
    assert len(broadcasts) == 3  # not 30
    brain.ckpt_interval_minutes, brain.ckpt_interval_steps = 0, 4
    assert [n for n in range(1, 9) if brain._should_save_intra_epoch_ckpt(0.0, n)] == [
        4,
        5,
        6,
        7,
        8,
    ]  # exact step counts, as SpeechBrain's (the loop resets the count on saving)
    assert len(broadcasts) == 3
    brain.checkpointer = None
    assert not brain._should_save_intra_epoch_ckpt(0.0, 10)


def test_time_stretch_reads_nothing_and_still_rejects_bad_rates_on_the_device():
    from craft_modules.augment.waveform import time_stretch

    rates = torch.rand(3) + 0.5
    with HostReads():
        out = time_stretch(WAVS, rates, WAVS.shape[1])
    assert out.shape == WAVS.shape and not torch.equal(out, WAVS)
    with pytest.raises(RuntimeError, match="stretch rates must be > 0"):
        time_stretch(WAVS, torch.tensor([1.0, -1.0, 1.0]), WAVS.shape[1])


def test_time_stretch_by_one_host_rate_makes_no_copy_and_checks_it_on_the_host():
    from craft_modules.augment.waveform import time_stretch

    with HostReads():  # torch.full, not a blocking as_tensor copy of the rate
        out = time_stretch(WAVS, 1.25, WAVS.shape[1])
    expected = time_stretch(WAVS, torch.full((3,), 1.25), WAVS.shape[1])
    assert torch.allclose(out, expected)
    with pytest.raises(ValueError, match="stretch rates must be > 0, got 0"):
        time_stretch(WAVS, 0, WAVS.shape[1])
