"""``precision: auto``, its overrides and errors, and losses computed in float32 under autocast."""

import contextlib

import pytest
import torch

import craft_modules.training.precision as precision
from craft_modules.losses import (
    masked_patch_infonce,
    masked_patch_mse,
    nt_xent_loss,
    swacl_loss,
)
from craft_modules.training.brains import PretrainBrain
from craft_modules.training.precision import resolve_precision


def test_auto_is_bf16_on_a_gpu_with_bf16_and_fp32_elsewhere(monkeypatch):
    assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(precision, "device_supports_bf16", lambda d: True)
    assert resolve_precision("auto", "cuda:0") == "bf16"
    assert resolve_precision("fp32", "cuda:0") == "fp32"  # an explicit choice wins


def test_bf16_on_a_gpu_without_bf16_is_an_error_naming_the_device(monkeypatch):
    monkeypatch.setattr(precision, "device_supports_bf16", lambda d: False)
    with pytest.raises(ValueError, match="bf16 support, but the device is cuda:1"):
        resolve_precision("bf16", "cuda:1")
    assert resolve_precision("auto", "cuda:1") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("float16", "cpu")


def test_a_gpu_that_only_emulates_bf16_gets_fp32(monkeypatch):
    # A V100 (compute capability 7.0): torch can make bf16 tensors there, so
    # its default answer is True, but the arithmetic is emulated.
    asked = []

    def is_bf16_supported(including_emulation=True):
        asked.append(including_emulation)
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert precision.device_supports_bf16("cuda:0") is False
    assert asked == [False]
    assert resolve_precision("auto", "cuda:0") == "fp32"
    with pytest.raises(ValueError, match="the device is cuda:0"):
        resolve_precision("bf16", "cuda:0")


def test_the_command_line_overrides_the_yaml_and_evaluation_follows(tmp_path):
    from speechbrain.utils.run_opts import RunOptions

    def brain(run_opts, **hparams):
        return PretrainBrain(
            modules={"model": torch.nn.Linear(2, 2)},
            hparams={"precision": "auto", **hparams},
            run_opts=run_opts,
        )

    auto = brain(RunOptions(device="cpu", overridden_args={"device"}))
    assert (auto.precision, auto.eval_precision) == ("fp32", "fp32")
    cli = brain({"device": "cpu", "precision": "bf16"})  # bf16 autocast exists on CPU
    assert (cli.precision, cli.eval_precision) == ("bf16", "bf16")
    with cli.training_ctx:
        assert (torch.randn(2, 2) @ torch.randn(2, 2)).dtype == torch.bfloat16
    split = brain({"device": "cpu", "precision": "bf16"}, eval_precision="fp32")
    assert split.eval_precision == "fp32"
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        brain({"device": "cpu", "precision": "fp16"})


def test_losses_run_in_float32_inside_bf16_autocast():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 30, 256), torch.randn(2, 30, 256)
    wav, spec = torch.randn(6, 64), torch.randn(6, 64)
    full = [
        masked_patch_infonce(pred, target)[0],
        masked_patch_mse(pred, target),
        swacl_loss(wav, spec)[0],
        nt_xent_loss(wav, spec),
    ]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = [
            masked_patch_infonce(pred.bfloat16(), target.bfloat16())[0],
            masked_patch_mse(pred, target),
            swacl_loss(wav, spec)[0],
            nt_xent_loss(wav, spec),
        ]
    assert all(b.dtype == torch.float32 for b in low)
    # Inputs already in float32 give the float32 result exactly, autocast or not.
    for a, b in zip(full[1:], low[1:]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_classifier_loss_is_float32_inside_bf16_autocast(loss):
    from types import SimpleNamespace

    import speechbrain as sb

    from craft_modules.training.brains import ClassifierBrain

    brain = SimpleNamespace(
        hparams=SimpleNamespace(loss=loss), _loss_weight=lambda batch, stage: 1.0
    )
    logits = torch.randn(4, 3, requires_grad=True)
    targets = torch.eye(3)[[0, 2, 1, 0]]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = (logits @ torch.eye(3)).bfloat16()
        value = ClassifierBrain.compute_objectives(
            brain, (low, targets), None, sb.Stage.TRAIN
        )
    assert value.dtype == torch.float32
    reference = (
        torch.nn.functional.cross_entropy(low.float(), targets.argmax(-1))
        if loss == "ce"
        else torch.nn.functional.binary_cross_entropy_with_logits(low.float(), targets)
    )
    assert torch.allclose(value, reference, atol=1e-6)


def test_classifier_ce_trains_a_mixup_clip_on_both_labels():
    from types import SimpleNamespace

    import speechbrain as sb

    from craft_modules.training.brains import ClassifierBrain

    brain = SimpleNamespace(
        hparams=SimpleNamespace(loss="ce"), _loss_weight=lambda batch, stage: 1.0
    )
    logits = torch.randn(2, 3)
    mixed = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.0, 1.0]])
    value = ClassifierBrain.compute_objectives(
        brain, (logits, mixed), None, sb.Stage.TRAIN
    )
    log_p = torch.log_softmax(logits, dim=-1)
    expected = -(mixed * log_p).sum(dim=-1).mean()
    assert torch.allclose(value, expected, atol=1e-6)
    # One-hot targets: the class-index cross-entropy of AST/SSAST.
    one_hot = torch.eye(3)[[1, 2]]
    value = ClassifierBrain.compute_objectives(
        brain, (logits, one_hot), None, sb.Stage.TRAIN
    )
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([1, 2]))
    assert torch.allclose(value, expected, atol=1e-6)
