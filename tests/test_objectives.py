"""MSPM and SWaCL losses against direct re-computations."""

import math

import pytest
import torch

from craft_modules.losses import masked_patch_infonce, masked_patch_mse, swacl_loss


def official_mpc(pred, target):
    """The official per-clip loop of SSAST's mpc (YuanGongND/ssast ast_models.py)."""
    nce, correct = 0.0, 0
    batch, masked = pred.shape[:2]
    for i in range(batch):
        total = target[i] @ pred[i].T  # [a, b] = <x_a, p_b>
        correct += (
            torch.argmax(torch.softmax(total, dim=-1), dim=0) == torch.arange(masked)
        ).sum()
        nce += torch.sum(torch.diag(torch.log_softmax(total, dim=-1)))
    return -nce / (batch * masked), correct / (batch * masked)


def test_infonce_equals_the_official_loop():
    pred, target = torch.randn(3, 20, 16), torch.randn(3, 20, 16)
    nce, acc = masked_patch_infonce(pred, target)
    ref_nce, ref_acc = official_mpc(pred, target)
    assert torch.allclose(nce, ref_nce, atol=1e-5)
    assert acc == pytest.approx(float(ref_acc))


def test_infonce_negatives_are_within_the_clip():
    pred, target = torch.randn(2, 10, 8), torch.randn(2, 10, 8)
    both, _ = masked_patch_infonce(pred, target)
    first, _ = masked_patch_infonce(pred[:1], target[:1])
    second, _ = masked_patch_infonce(pred[1:], target[1:])
    assert torch.allclose(both, (first + second) / 2)


def test_infonce_rewards_correct_predictions():
    target = torch.randn(2, 30, 16)
    good, acc_good = masked_patch_infonce(target * 3, target)
    bad, acc_bad = masked_patch_infonce(target.roll(1, dims=1) * 3, target)
    assert good < bad and acc_good > 0.9 and acc_bad < 0.2


def test_mse_is_the_plain_mean():
    pred, target = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    assert torch.allclose(
        masked_patch_mse(pred, target), ((pred - target) ** 2).sum() / 70
    )


def eq_4a(wav, spec):
    n = wav.shape[0]
    loss = 0.0
    for i in range(n):
        denom = sum(math.exp(float(wav[i] @ spec[j])) for j in range(n))
        loss += -math.log(math.exp(float(wav[i] @ spec[i])) / denom)
    return loss / n


def test_swacl_equals_equation_4a():
    wav, spec = torch.randn(6, 4) * 0.5, torch.randn(6, 4) * 0.5
    loss, _ = swacl_loss(wav, spec)
    assert float(loss) == pytest.approx(eq_4a(wav, spec), rel=1e-5)
    # Temperature and cosine similarity are the documented transformations.
    cos, _ = swacl_loss(wav, spec, temperature=0.1, cosine=True)
    norm = torch.nn.functional.normalize
    assert float(cos) == pytest.approx(
        eq_4a(norm(wav, dim=1) / 0.1**0.5, norm(spec, dim=1) / 0.1**0.5), rel=1e-4
    )
    sym, _ = swacl_loss(wav, spec, symmetric=True)
    assert float(sym) == pytest.approx(
        (eq_4a(wav, spec) + eq_4a(spec, wav)) / 2, rel=1e-5
    )


def test_swacl_matched_pairs_beat_shuffled_pairs():
    spec = torch.randn(16, 32)
    wav = spec + 0.3 * torch.randn(16, 32)
    matched, acc = swacl_loss(wav, spec, cosine=True, temperature=0.1)
    shuffled, acc_shuffled = swacl_loss(
        wav, spec[torch.randperm(16)], cosine=True, temperature=0.1
    )
    assert matched < shuffled
    assert acc == 1.0 and acc_shuffled < 0.5


def test_swacl_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        swacl_loss(torch.randn(2, 3), torch.randn(2, 3), temperature=0)
