"""SSAST training augmentations: SpecAugment, noise/shift and waveform mixup."""

import pytest
import torch

from craft_modules.augment.spectrogram import (
    MixUp,
    NoiseAugment,
    SpecAugment,
    batch_derangement,
    mixup,
)


def _bands(mask_1d):
    """Returns the (start, end) runs of True in a 1-D boolean tensor."""
    values = [False] + mask_1d.tolist() + [False]
    starts = [i for i in range(len(values) - 1) if not values[i] and values[i + 1]]
    ends = [i for i in range(len(values) - 1) if values[i] and not values[i + 1]]
    return list(zip(starts, ends))


def test_specaugment_one_contiguous_band_per_axis_per_clip():
    freqm, timem, fill = 12, 30, 7.0
    augment = SpecAugment(freqm=freqm, timem=timem, fill_value=fill).train()
    feats = torch.rand(64, 100, 40)  # in [0, 1): fill value never occurs
    out = augment(feats)
    masked = out == fill
    assert torch.equal(out[~masked], feats[~masked])
    freq_widths, time_widths = [], []
    for b in range(feats.shape[0]):
        # A frequency bin is masked over all frames, a frame over all bins.
        freq_cols = masked[b].all(dim=0)
        time_rows = masked[b].all(dim=1)
        assert torch.equal(masked[b], freq_cols[None, :] | time_rows[:, None]), (
            "mask is not the union of a frequency band and a time band"
        )
        freq_bands, time_bands = _bands(freq_cols), _bands(time_rows)
        assert len(freq_bands) <= 1 and len(time_bands) <= 1
        freq_widths.append(freq_bands[0][1] - freq_bands[0][0] if freq_bands else 0)
        time_widths.append(time_bands[0][1] - time_bands[0][0] if time_bands else 0)
    assert max(freq_widths) < freqm and max(time_widths) < timem
    # drawn per clip: widths vary across the batch and are on average ~param/2
    assert len(set(time_widths)) > 5
    assert 8 < sum(time_widths) / len(time_widths) < 22


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_specaugment_of_one_clip_is_ssast_torchaudio_masking(seed):
    """SSAST's loader: FrequencyMasking(freqm) then TimeMasking(timem) on (1, F, T)."""
    import torchaudio

    freqm, timem = 24, 96
    fbank = torch.rand(1, 200, 64)  # (1, T, F)
    torch.manual_seed(seed)
    ours = SpecAugment(freqm, timem).train()(fbank)
    torch.manual_seed(seed)
    ssast = fbank[0].t().unsqueeze(0)  # (1, F, T), as SSAST's dataloader
    ssast = torchaudio.transforms.FrequencyMasking(freqm)(ssast)
    ssast = torchaudio.transforms.TimeMasking(timem)(ssast)
    assert torch.equal(ours[0], ssast.squeeze(0).t())
    assert (ours == 0).any()


def _previous_band_mask(batch, size, max_width):
    """The batched masks drawn before torchaudio's ``mask_along_axis_iid``."""
    width = torch.rand(batch) * max_width
    start = (torch.rand(batch) * (size - width)).long()
    positions = torch.arange(size)
    return (positions >= start[:, None]) & (positions < (start + width.long())[:, None])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("freqm, timem", [(48, 192), (0, 30), (12, 0), (60, 400)])
def test_specaugment_draws_the_same_masks_as_before_under_one_seed(dtype, freqm, timem):
    feats = torch.randn(16, 1024, 128).to(dtype)
    torch.manual_seed(7)
    mask = torch.zeros(feats.shape, dtype=torch.bool)
    if freqm:
        mask |= _previous_band_mask(16, 128, freqm)[:, None, :]
    if timem:
        mask |= _previous_band_mask(16, 1024, timem)[:, :, None]
    torch.manual_seed(7)
    out = SpecAugment(freqm, timem, fill_value=0.25).train()(feats)
    assert out.dtype == dtype
    assert torch.equal(out, feats.masked_fill(mask, 0.25))


def test_specaugment_default_fill_is_zero_and_input_untouched():
    feats = torch.rand(8, 50, 20) + 1.0
    copy = feats.clone()
    out = SpecAugment(freqm=10, timem=20).train()(feats)
    assert torch.equal(feats, copy)
    assert ((out == 0) | (out == feats)).all() and (out == 0).any()


def test_specaugment_identity_in_eval_and_with_zero_widths():
    feats = torch.randn(3, 30, 16)
    assert torch.equal(SpecAugment(8, 8).eval()(feats), feats)
    assert torch.equal(SpecAugment(0, 0).train()(feats), feats)


def _find_shift(out, feats, max_shift):
    """The roll that makes ``out - roll(feats)`` lie in [0, 0.1), else None."""
    for shift in range(-max_shift - 3, max_shift + 3):
        diff = out - torch.roll(feats, shift, dims=0)
        if (diff >= 0).all() and (diff < 0.1).all():
            return shift
    return None


def test_noise_augment_adds_bounded_noise_and_rolls_within_range():
    feats = torch.randn(40, 60, 8)
    out = NoiseAugment(max_shift=10).train()(feats)
    shifts = [_find_shift(out[b], feats[b], 10) for b in range(feats.shape[0])]
    assert None not in shifts
    assert all(-10 <= s <= 9 for s in shifts)
    assert len(set(shifts)) > 5
    # per-clip noise amplitude r / 10 with r ~ U[0, 1): maxima differ per clip
    noise = torch.stack(
        [out[b] - torch.roll(feats[b], shifts[b], dims=0) for b in range(40)]
    )
    peaks = noise.amax(dim=(1, 2))
    assert peaks.max() < 0.1 and peaks.min() < 0.05 < peaks.max()


def test_noise_augment_identity_in_eval():
    feats = torch.randn(2, 20, 4)
    assert torch.equal(NoiseAugment().eval()(feats), feats)


def test_noise_augment_probability_augments_that_share_of_clips():
    feats = torch.randn(400, 20, 4)
    torch.manual_seed(1)
    always = NoiseAugment(p=1.0).train()(feats)
    # p=1 is SSAST's formula with its random draws in SSAST's order, and
    # draws nothing more (the next random number is the same).
    after = torch.rand(1)
    torch.manual_seed(1)
    scale = torch.rand(400, 1, 1) / 10
    noisy = feats + torch.rand_like(feats) * scale
    shifts = torch.randint(-10, 10, (400,))
    expected = torch.stack(
        [torch.roll(noisy[b], int(shifts[b]), 0) for b in range(400)]
    )
    assert torch.equal(always, expected) and torch.equal(torch.rand(1), after)
    assert torch.equal(NoiseAugment(p=0.0).train()(feats), feats)
    some = NoiseAugment(p=0.25).train()(feats)
    changed = (some != feats).flatten(1).any(dim=1).float().mean().item()
    assert 0.15 < changed < 0.35


def test_mixup_shapes_soft_targets_and_lambda_statistics():
    batch = 400
    wavs = torch.randn(batch, 50)
    targets = torch.eye(batch)  # distinct one-hot classes reveal lam and partner
    out, lens, mixed = mixup(wavs, torch.ones(batch), targets, alpha=10.0, prob=1.0)
    assert out.shape == wavs.shape and mixed.shape == targets.shape
    assert torch.equal(lens, torch.ones(batch))
    assert ((mixed >= 0) & (mixed <= 1)).all()
    assert torch.allclose(mixed.sum(dim=1), torch.ones(batch))
    lams = []
    for i in range(batch):
        nonzero = mixed[i].nonzero().flatten().tolist()
        if len(nonzero) == 2:
            lam = mixed[i, i]
            partner = [j for j in nonzero if j != i][0]
            expected = lam * wavs[i] + (1 - lam) * wavs[partner]
            assert torch.allclose(out[i], expected, atol=1e-6)
            lams.append(lam.item())
    lams = torch.tensor(lams)
    assert len(lams) > 0.9 * batch
    # Beta(10, 10): mean 0.5, std sqrt(1 / 84) = 0.109
    assert abs(lams.mean().item() - 0.5) < 0.03
    assert 0.08 < lams.std().item() < 0.14


def test_mixup_probability_and_identity():
    batch = 400
    wavs = torch.randn(batch, 20)
    targets = torch.eye(batch)
    _, _, mixed = mixup(wavs, None, targets, prob=0.5)
    fraction = (mixed.max(dim=1).values < 1).float().mean().item()
    assert 0.4 < fraction < 0.6
    out, _, same = mixup(wavs, None, targets, prob=0.0)
    assert torch.equal(out, wavs) and torch.equal(same, targets)
    module = MixUp(prob=1.0).eval()
    out, lens, same = module(wavs, None, targets)
    assert out is wavs and same is targets
    out, _, same = MixUp(prob=0.0).train()(wavs, None, targets)
    assert torch.equal(out, wavs)
    out, _, same = MixUp(prob=1.0).train()(wavs, None, targets)
    assert not torch.equal(out, wavs)


def test_mixup_multi_hot_targets_stay_in_unit_interval():
    targets = (torch.rand(64, 10) < 0.4).float()
    _, _, mixed = mixup(torch.randn(64, 30), None, targets, prob=1.0)
    assert ((mixed >= 0) & (mixed <= 1 + 1e-6)).all()


def test_mixup_partner_cut_to_first_clip_length():
    length = 100
    # clip 0 is short (40 samples), clip 1 long; padding is zero.
    wavs = torch.zeros(2, length)
    wavs[0, :40] = 1.0
    wavs[1, :] = 2.0
    lens = torch.tensor([0.4, 1.0])
    targets = torch.eye(2)
    seen_partner = False
    for _ in range(50):
        out, _, mixed = mixup(wavs, lens, targets, prob=1.0)
        if mixed[0, 1] > 0:  # clip 0 was mixed with clip 1
            seen_partner = True
            lam = mixed[0, 0]
            assert torch.allclose(out[0, :40], lam + (1 - lam) * 2.0 * torch.ones(40))
            assert (out[0, 40:] == 0).all()
        if mixed[1, 0] > 0:  # clip 1 mixed with clip 0: partner zero-padded
            lam = mixed[1, 1]
            assert torch.allclose(out[1, :40], 2 * lam + (1 - lam) * torch.ones(40))
            assert torch.allclose(out[1, 40:], 2 * lam * torch.ones(60))
    assert seen_partner


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: SpecAugment(freqm=-1), "freqm"),
        (lambda: SpecAugment(timem=2.5), "timem"),
        (lambda: NoiseAugment(max_shift=-3), "max_shift"),
        (lambda: NoiseAugment(p=1.5), "NoiseAugment p"),
        (lambda: MixUp(prob=1.5), "prob"),
        (lambda: MixUp(alpha=0.0), "alpha"),
        (lambda: mixup(torch.zeros(2, 4), None, torch.eye(2), prob=-0.1), "prob"),
        (lambda: mixup(torch.zeros(2, 4), None, torch.eye(2), alpha=-1), "alpha"),
    ],
)
def test_bad_arguments_raise_value_error(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_mixup_partner_is_never_the_clip_itself_and_can_be_any_other():
    """The partner is a derangement of the batch: every other clip, never itself."""
    batch, draws = 6, 3000
    counts = torch.zeros(batch, batch)
    for _ in range(draws):
        partner = batch_derangement(batch)
        assert sorted(partner.tolist()) == list(range(batch))  # a permutation
        counts[torch.arange(batch), partner] += 1
    assert (counts.diagonal() == 0).all()  # never the clip itself
    off_diagonal = counts[~torch.eye(batch, dtype=torch.bool)]
    assert (off_diagonal > 0).all()  # every other clip is some draw's partner
    # Uniform over the 5 others: 600 expected draws per pair, sd ~ 22.
    assert (off_diagonal - draws / (batch - 1)).abs().max() < 120
    with pytest.raises(ValueError, match="at least 2"):
        batch_derangement(1)


def test_mixup_mixes_with_another_clip_and_targets_follow_the_weights():
    batch = 8
    wavs = torch.randn(batch, 30)
    targets = torch.eye(batch)  # one class per clip reveals the partner
    for _ in range(200):
        out, _, mixed = mixup(wavs, None, targets, alpha=10.0, prob=1.0)
        lam = mixed.diagonal()
        assert (lam < 1).all()  # every clip was mixed with another clip
        partner = (mixed - torch.diag(lam)).argmax(dim=1)
        assert (partner != torch.arange(batch)).all()
        assert torch.allclose(mixed[torch.arange(batch), partner], 1 - lam)
        expected = lam[:, None] * wavs + (1 - lam[:, None]) * wavs[partner]
        assert torch.allclose(out, expected, atol=1e-6)
    out, _, same = mixup(wavs[:1], None, targets[:1, :1], prob=1.0)
    assert torch.equal(out, wavs[:1]) and torch.equal(same, targets[:1, :1])
