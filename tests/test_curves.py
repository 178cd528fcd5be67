"""Runs you can look at: running-loss logs, step records, curves and per-class AP."""

import functools
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import speechbrain as sb
import torch
from sklearn.metrics import average_precision_score
from speechbrain.utils.train_logger import FileTrainLogger, TrainLogger

from craft_modules import plots
from craft_modules.metrics import multilabel_metrics, per_class_average_precision
from craft_modules.training.brains import PretrainBrain
from craft_modules.training.results import per_class_results
from craft_modules.training.step_log import StepLog


def assert_png(path):
    """``path`` is a complete PNG image of a plausible size."""
    from PIL import Image

    with Image.open(path) as image:
        image.verify()  # raises on a truncated or corrupt file
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) >= 100


class _ToyPretrainer(torch.nn.Module):
    """Returns a dict of losses that depend only on the batch (and one weight)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, wavs, lens):
        loss = self.w * wavs.mean()
        return {"loss": loss, "nce": 2 * loss, "acc": torch.sigmoid(loss)}


class _Scheduler:
    """The interface PretrainBrain uses, without changing the learning rate."""

    def on_step(self, optimizer, step):
        pass

    def on_evaluation(self, optimizer, value):
        return optimizer.param_groups[0]["lr"]


class _RecordingLogger(TrainLogger):
    """Stands in for SpeechBrain's TensorboardLogger: its ``writer`` records scalars."""

    def __init__(self):
        self.writer = SimpleNamespace(
            scalars=[],
            add_scalar=lambda tag, value, step: self.writer.scalars.append(
                (tag, value, step)
            ),
        )

    def log_stats(self, *args, **kwargs):
        raise AssertionError("the Brain writes scalars at the optimizer step")


def _brain(folder, **hparams):
    return PretrainBrain(
        modules={"model": _ToyPretrainer()},
        opt_class=lambda params: torch.optim.SGD(params, lr=0.0),
        hparams={
            "lr_scheduler": _Scheduler(),
            "train_logger": FileTrainLogger(str(folder / "train_log.txt")),
            "monitor": "acc",
            "output_folder": str(folder),
            **hparams,
        },
        run_opts={"device": "cpu"},
    )


def _batch(value):
    return SimpleNamespace(
        id=["a", "b"],
        sig=(torch.full((2, 8), float(value)), torch.ones(2)),
        to=lambda device, **kwargs: _batch(value),
    )


def _train(brain, values, epoch=1):
    """One training stage over batches of constant ``values`` (one step each)."""
    brain.on_stage_start(sb.Stage.TRAIN, epoch)
    brain.modules.train()
    for step, value in enumerate(values, start=1):
        brain.step = step
        brain.fit_batch(_batch(value))
    brain.on_stage_end(sb.Stage.TRAIN, 0.0, epoch)


def test_running_losses_every_log_interval_steps(tmp_path):
    """Records at steps 2 and 4 and, at the end of the stage, 5: the interval means."""
    tensorboard = _RecordingLogger()
    brain = _brain(
        tmp_path, log_interval=2, use_tensorboard=True, tensorboard_logger=tensorboard
    )
    brain.on_fit_start()
    _train(brain, [1.0, 3.0, 5.0, 7.0, 9.0])
    records = StepLog.read(str(tmp_path / "train_steps.jsonl"))
    assert records == brain.step_log.records
    assert [(r["stage"], r["step"], r["steps"]) for r in records] == [
        ("train", 2, 2),
        ("train", 4, 2),
        ("train", 5, 1),
    ]
    assert [r["loss"] for r in records] == pytest.approx([2.0, 6.0, 9.0])
    assert [r["nce"] for r in records] == pytest.approx([4.0, 12.0, 18.0])
    assert all(r["lr"] == 0.0 and r["epoch"] == 1 for r in records)
    lines = (tmp_path / "train_log.txt").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["step: 2", "step: 4", "step: 5"]
    assert "train loss: 6.00" in lines[1] and "train nce: 12.00" in lines[1]
    assert ("loss/train", pytest.approx(6.0), 4) in tensorboard.writer.scalars
    assert ("lr", 0.0, 5) in tensorboard.writer.scalars
    # The stage's statistics are still those of all its clips.
    assert brain.train_stats["loss"] == pytest.approx(5.0)


def test_validation_adds_a_record_and_draws_curves(tmp_path):
    brain = _brain(tmp_path, log_interval=1)
    brain.on_fit_start()
    _train(brain, [1.0, 2.0])
    brain.on_stage_start(sb.Stage.VALID, 1)
    brain.modules.eval()
    with torch.no_grad():
        brain.evaluate_batch(_batch(4.0), sb.Stage.VALID)
    brain.checkpointer = SimpleNamespace(save_and_keep_only=lambda **kwargs: None)
    brain.write_inference_yaml = lambda: None
    brain.on_stage_end(sb.Stage.VALID, 0.0, 1)
    valid = brain.step_log.records[-1]
    assert valid["stage"] == "valid" and valid["step"] == 2
    assert valid["loss"] == pytest.approx(4.0)
    assert_png(tmp_path / "curves.png")
    log = (tmp_path / "train_log.txt").read_text().splitlines()
    assert log[-1].startswith("epoch: 1, step: 2,") and "valid loss: 4.00" in log[-1]


def test_resumed_run_appends_after_its_checkpoint_step(tmp_path):
    """Steps 1..4 were logged, the checkpoint was at 2: 3 and 4 are logged once."""
    first = _brain(tmp_path, log_interval=1)
    first.on_fit_start()
    _train(first, [1.0, 2.0, 3.0, 4.0])
    with open(tmp_path / "train_steps.jsonl", "a") as fout:
        fout.write('{"stage": "train", "st')  # killed while writing
    resumed = _brain(tmp_path, log_interval=1)
    resumed.optimizer_step = 2  # what the recovered checkpoint holds
    resumed.on_fit_start()
    assert [r["step"] for r in resumed.step_log.records] == [1, 2]
    _train(resumed, [30.0, 40.0])
    records = StepLog.read(str(tmp_path / "train_steps.jsonl"))
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert [r["loss"] for r in records] == pytest.approx([1.0, 2.0, 30.0, 40.0])
    # A new run in the folder (no checkpoint) starts the records afresh.
    fresh = _brain(tmp_path, log_interval=1)
    fresh.on_fit_start()
    assert StepLog.read(str(tmp_path / "train_steps.jsonl")) == []


def test_bad_log_interval_and_missing_tensorboard_are_named(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="log_interval"):
        _brain(tmp_path, log_interval=-1).on_fit_start()
    from speechbrain.utils.train_logger import TensorboardLogger

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    brain = _brain(
        tmp_path,
        use_tensorboard=True,
        tensorboard_logger=functools.partial(TensorboardLogger, save_dir="tb"),
    )
    with pytest.raises(ImportError, match=r"craft-modules\[tensorboard\]"):
        brain.on_fit_start()
    with pytest.raises(ValueError, match="tensorboard_logger"):
        _brain(tmp_path, use_tensorboard=True).on_fit_start()


def test_per_class_ap_is_sklearns_and_averages_to_the_map():
    rng = np.random.default_rng(0)
    targets = (rng.random((40, 6)) < 0.3).astype(float)
    targets[:, 2] = 0.0  # no positive clip
    targets[:, 4] = 1.0  # no negative clip
    scores = rng.random((40, 6)) + 0.5 * targets
    names = ["a", "b", "c", "d", "e", "f"]
    results = per_class_results(scores, targets, names)
    assert results["unscored_classes"] == ["c", "e"]
    expected = {
        name: average_precision_score(targets[:, k], scores[:, k])
        for k, name in enumerate(names)
        if name not in ("c", "e")
    }
    assert results["per_class_AP"] == pytest.approx(expected)
    assert list(results["per_class_AP"]) == ["a", "b", "d", "f"]  # label order
    aps = per_class_average_precision(scores, targets)
    assert np.nanmean(aps) == pytest.approx(multilabel_metrics(scores, targets)["mAP"])
    with pytest.raises(ValueError, match="5 label names for scores of 6 classes"):
        per_class_results(scores, targets, names[:5])


def test_plots_without_matplotlib_write_nothing_and_warn_once(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    monkeypatch.setattr(plots, "_warned_no_matplotlib", False)
    history = [{"epoch": 1, "accuracy": 0.5, "train_loss": 1.0, "lr": 1e-4}]
    with caplog.at_level("WARNING", logger="craft_modules.plots"):
        assert not plots.plot_epoch_curves(history, str(tmp_path / "a.png"))
        assert not plots.plot_step_curves(
            [{"stage": "train", "step": 1, "loss": 1.0}], str(tmp_path / "b.png")
        )
        assert not plots.plot_fold_curves({1: history}, str(tmp_path / "c.png"))
        assert not plots.plot_per_class_ap({"dog": 0.5}, str(tmp_path / "d.png"))
    assert list(tmp_path.iterdir()) == []
    warned = [r for r in caplog.records if "matplotlib is not installed" in r.message]
    assert len(warned) == 1 and "craft-modules[plot]" in warned[0].message


def test_a_failed_write_keeps_the_previous_figure(tmp_path):
    from matplotlib.figure import Figure

    path = tmp_path / "curves.png"
    plots.save_figure(Figure(figsize=(2, 2)), str(path))
    before = path.read_bytes()
    fig = Figure(figsize=(3, 3))

    def killed(target, **kwargs):
        target.write(b"\x89PNG half")
        raise KeyboardInterrupt

    fig.savefig = killed
    with pytest.raises(KeyboardInterrupt):
        plots.save_figure(fig, str(path))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_a_drawing_error_is_logged_and_never_stops_the_run(
    tmp_path, monkeypatch, caplog
):
    def broken(fig, path):
        raise ValueError("odd tick values")

    monkeypatch.setattr(plots, "save_figure", broken)
    history = [{"epoch": 1, "accuracy": 0.5, "train_loss": 1.0, "lr": 1e-4}]
    with caplog.at_level("WARNING", logger="craft_modules.plots"):
        assert plots.plot_epoch_curves(history, str(tmp_path / "c.png")) is False
        assert plots.plot_per_class_ap({"dog": 0.5}, str(tmp_path / "d.png")) is False
    assert "odd tick values" in caplog.text and not list(tmp_path.iterdir())


def test_only_the_log_steps_read_the_device(tmp_path):
    """Between two logs a step makes no host read (the losses stay on the device)."""
    from test_host_sync import HostReads

    brain = _brain(tmp_path, log_interval=3)
    brain.on_fit_start()
    detector = HostReads()
    optimizers_step = brain.optimizers_step

    def step_outside_the_detector():  # SGD's own bookkeeping is not the Brain's
        with detector.pause():
            optimizers_step()

    brain.optimizers_step = step_outside_the_detector
    brain.on_stage_start(sb.Stage.TRAIN, 1)
    brain.modules.train()
    for step in (1, 2):
        brain.step = step
        with detector:
            brain.fit_batch(_batch(step))
    assert brain.step_log.records == []
    brain.step = 3
    with pytest.raises(AssertionError, match="host read"):
        with detector:
            brain.fit_batch(_batch(3))  # the log step reads the sums once
