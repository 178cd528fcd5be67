"""CLAR's batched waveform augmentations (craft_modules.augment.waveform)."""

import math

import pytest
import torch

from craft_modules.augment.waveform import (
    AugmentationChain,
    ColouredNoise,
    Fade,
    PitchShift,
    TimeMask,
    TimeShift,
    TimeStretch,
    WhiteNoise,
    coloured_noise,
    draw_item_mask,
    fft_resample,
    inverse_stft,
    time_stretch,
)

SR = 16000
NOISE_EXPONENT = {"pink": 1.0, "brown": 2.0}


def _tone(freq, samples=SR, batch=1, sample_rate=SR):
    t = torch.arange(samples) / sample_rate
    return torch.sin(2 * math.pi * freq * t).repeat(batch, 1)


def _peak_hz(wav, sample_rate=SR):
    """Frequency of the largest spectral peak, 1 Hz resolution (zero-padded)."""
    window = torch.hann_window(wav.shape[-1], dtype=wav.dtype)
    spectrum = torch.fft.rfft(wav * window, n=sample_rate).abs()
    return float(spectrum.argmax())


def full(wavs):
    """Relative lengths of a batch of unpadded clips (SpeechBrain's ``lengths``)."""
    return torch.ones(wavs.shape[0])


def _snr_db(clean, noisy):
    noise = noisy - clean
    return 10 * torch.log10(clean.pow(2).mean(-1) / noise.pow(2).mean(-1))


# Every augmentation with settings that always change a clip when applied.
FACTORIES = {
    "pitch": lambda prob: PitchShift(SR, min_semitones=3, max_semitones=3, prob=prob),
    "fade": lambda prob: Fade(prob=prob),
    "white": lambda prob: WhiteNoise(prob=prob),
    "coloured": lambda prob: ColouredNoise(prob=prob),
    "mask": lambda prob: TimeMask(prob=prob),
    "shift": lambda prob: TimeShift(SR, prob=prob),
    "stretch": lambda prob: TimeStretch(min_rate=0.7, max_rate=0.8, prob=prob),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_keeps_shape_and_dtype_and_changes_every_item_with_prob_one(name, dtype):
    wavs = (torch.randn(3, 4000) * 0.3).to(dtype)
    out = FACTORIES[name](1.0)(wavs, full(wavs))
    assert out.shape == wavs.shape and out.dtype == dtype
    assert out.device == wavs.device
    assert torch.isfinite(out.float()).all()
    for clean, augmented in zip(wavs, out):
        assert not torch.equal(clean, augmented), f"{name} left an item unchanged"


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_prob_zero_is_identity_and_train_eval_alike(name):
    wavs = torch.randn(4, 4000)
    augmentation = FACTORIES[name](0.0)
    assert torch.equal(augmentation(wavs, full(wavs)), wavs)
    active = FACTORIES[name](1.0).eval()  # active in evaluation mode too
    assert not torch.equal(active(wavs, full(wavs)), wavs)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_input_is_not_modified_in_place(name):
    wavs = torch.randn(4, 4000)
    copy = wavs.clone()
    FACTORIES[name](0.5)(wavs, full(wavs))
    assert torch.equal(wavs, copy)


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("prob", [-0.1, 1.5])
def test_bad_prob_raises_naming_it(name, prob):
    with pytest.raises(ValueError, match="prob"):
        FACTORIES[name](prob)


def test_partial_prob_transforms_only_the_drawn_items():
    wavs = torch.randn(400, 64)
    out = TimeMask(fraction=0.5, prob=0.3)(wavs, full(wavs))
    changed = (out != wavs).any(dim=1)
    assert 0.2 < changed.float().mean() < 0.4
    assert torch.equal(out[~changed], wavs[~changed])
    mask = draw_item_mask(10000, 0.25)
    assert mask.dtype == torch.bool and abs(mask.float().mean() - 0.25) < 0.02


def test_global_seed_controls_the_draws():
    chain = AugmentationChain(
        [PitchShift(SR, prob=0.5), Fade(prob=0.5), WhiteNoise(prob=0.5)]
    )
    wavs = torch.randn(4, 4000)
    torch.manual_seed(123)
    first = chain(wavs, full(wavs))
    torch.manual_seed(123)
    assert torch.equal(chain(wavs, full(wavs)), first)
    assert not torch.equal(chain(wavs, full(wavs)), first)


@pytest.mark.parametrize("snr", [0.0, 7.5, 20.0])
def test_white_noise_hits_the_target_snr(snr):
    wavs = torch.randn(4, 8000) * torch.tensor([[0.01], [0.1], [0.5], [1.0]])
    out = WhiteNoise(min_snr_db=snr, max_snr_db=snr, prob=1.0)(wavs, full(wavs))
    assert torch.allclose(_snr_db(wavs, out), torch.full((4,), snr), atol=0.5)


def test_white_noise_snr_is_drawn_in_range_per_item():
    wavs = torch.randn(200, 2000)
    snr = _snr_db(wavs, WhiteNoise(0.0, 20.0, prob=1.0)(wavs, full(wavs)))
    assert snr.min() >= -0.01 and snr.max() <= 20.01
    assert snr.std() > 3  # one draw per item, spread over the range


@pytest.mark.parametrize("colour, slope", [("pink", -1.0), ("brown", -2.0)])
def test_coloured_noise_snr_and_spectral_slope(colour, slope):
    wavs = _tone(440, 8000, batch=3) * torch.tensor([[0.1], [0.5], [1.0]])
    out = ColouredNoise(12.0, 12.0, colours=(colour,), prob=1.0)(wavs, full(wavs))
    assert torch.allclose(_snr_db(wavs, out), torch.full((3,), 12.0), atol=0.5)

    noise = coloured_noise(64, 4096, NOISE_EXPONENT[colour])
    power = torch.fft.rfft(noise).abs().pow(2).mean(0)
    bins = torch.arange(4, 2048, dtype=torch.float32)
    log_f, log_p = torch.log10(bins), torch.log10(power[4:2048])
    fitted = ((log_f - log_f.mean()) * (log_p - log_p.mean())).sum() / (
        (log_f - log_f.mean()) ** 2
    ).sum()
    assert abs(float(fitted) - slope) < 0.1


def test_coloured_noise_draws_the_colour_per_item():
    wavs = torch.zeros(64, 2048) + _tone(1000, 2048)
    out = ColouredNoise(0.0, 0.0, colours=("white", "brown"), prob=1.0)(
        wavs, full(wavs)
    )
    noise_power = torch.fft.rfft(out - wavs).abs().pow(2)
    low_share = noise_power[:, 1:50].sum(1) / noise_power[:, 1:].sum(1)
    brown = low_share > 0.5
    assert 10 < int(brown.sum()) < 54  # both colours drawn


@pytest.mark.parametrize("semitones", [-7, 4, 12])
def test_pitch_shift_moves_a_tone_by_the_semitone_ratio(semitones):
    tone = _tone(600)
    out = PitchShift(SR, min_semitones=semitones, max_semitones=semitones, prob=1.0)(
        tone, full(tone)
    )
    expected = 600 * 2 ** (semitones / 12)
    assert abs(_peak_hz(out[0]) - expected) <= 2.0
    assert out.shape == tone.shape
    # the level is kept (no vocoder cancellation)
    level_db = 10 * torch.log10(out[0, 1000:-1000].pow(2).mean() / 0.5)
    assert abs(float(level_db)) < 1.0


def test_pitch_shift_draws_whole_semitones_within_the_range():
    tones = _tone(500, batch=12)
    out = PitchShift(SR, max_semitones=3, prob=1.0)(tones, full(tones))
    steps = [12 * math.log2(_peak_hz(wav) / 500) for wav in out]
    assert all(abs(s - round(s)) < 0.05 and abs(s) <= 3.05 for s in steps)
    assert len({round(s) for s in steps}) > 2


def test_fft_resample_scales_frequencies():
    tone = _tone(1000, 8000)
    out = fft_resample(tone, 4000)  # half the samples: twice the frequency
    assert out.shape == (1, 4000)
    assert abs(_peak_hz(out[0]) - 2000) <= 1.0


@pytest.mark.parametrize("rate", [0.6, 1.4])
def test_time_stretch_keeps_the_pitch_and_the_length(rate):
    tone = _tone(700, batch=2)
    out = TimeStretch(min_rate=rate, max_rate=rate, prob=1.0)(tone, full(tone))
    assert out.shape == tone.shape
    valid = min(tone.shape[1], round(tone.shape[1] / rate))
    assert abs(_peak_hz(out[0, :valid]) - 700) <= 2.0
    level_db = 10 * torch.log10(out[0, 1000 : valid - 1000].pow(2).mean() / 0.5)
    assert abs(float(level_db)) < 1.0
    if rate > 1:  # zero-padded after the shortened clip
        assert torch.equal(out[:, valid:], torch.zeros_like(out[:, valid:]))


def test_time_stretch_changes_the_duration():
    burst = _tone(900, batch=1)
    burst[:, SR // 2 :] = 0  # tone in the first half only
    slow = TimeStretch(0.5, 0.5, prob=1.0)(burst, full(burst))
    fast = TimeStretch(2.0, 2.0, prob=1.0)(burst, full(burst))
    last_quarter = slice(3 * SR // 4, SR)
    assert slow[0, last_quarter].pow(2).mean() > 0.3  # tone now lasts the clip
    assert fast[0, SR // 4 + 600 :].abs().max() < 0.05  # tone over after 1/4
    assert fast[0, : SR // 4 - 600].pow(2).mean() > 0.3


@pytest.mark.parametrize(
    "n_fft, hop, length, dtype",
    [
        (512, 128, 4000, torch.float32),  # time_stretch's default (hop divides)
        (400, 160, 16000, torch.float32),  # hop does not divide: the fold path
        (512, 256, 3000, torch.float64),
        (512, 128, 6000, torch.float32),  # longer than the frames: zero-padded
    ],
)
@pytest.mark.filterwarnings("ignore:The length of signal is shorter")
def test_inverse_stft_equals_torch_istft(n_fft, hop, length, dtype):
    torch.manual_seed(0)
    window = torch.hann_window(n_fft, dtype=dtype)
    wavs = torch.randn(3, 4000, dtype=dtype)
    spec = torch.stft(wavs, n_fft, hop, window=window, return_complex=True)
    spec = spec * torch.exp(1j * torch.rand(spec.shape, dtype=dtype) * 6.3)
    reference = torch.istft(spec, n_fft, hop, window=window, length=length)
    out = inverse_stft(spec, n_fft, hop, window, length)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    assert out.shape == (3, length)
    assert torch.allclose(out, reference, atol=tolerance, rtol=0)


def test_time_stretch_never_calls_torch_istft(monkeypatch):
    # torch.istft reads its NOLA check back to the host: a sync per step on a GPU.
    def refuse(*args, **kwargs):
        raise AssertionError("torch.istft called")

    monkeypatch.setattr(torch, "istft", refuse)
    out = time_stretch(torch.randn(2, 4000), torch.tensor([0.8, 1.25]), 4000)
    assert out.shape == (2, 4000) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="hop_length"):
        inverse_stft(
            torch.zeros(1, 257, 3, dtype=torch.complex64),
            512,
            300,
            torch.hann_window(512),
            10,
        )


def test_time_shift_is_a_circular_roll_within_the_bound():
    wavs = torch.randn(16, 400)
    shift = TimeShift(sample_rate=400, max_shift_s=0.25, prob=1.0)  # 100 samples
    out = shift(wavs, full(wavs))
    found = []
    for clean, augmented in zip(wavs, out):
        matches = [s for s in range(-100, 101) if torch.equal(clean.roll(s), augmented)]
        assert len(matches) == 1
        found.append(matches[0])
    assert len(set(found)) > 8


def test_time_mask_zeroes_exactly_the_fraction_in_one_segment():
    wavs = torch.rand(32, 800) + 0.5  # no zero sample
    out = TimeMask(fraction=1 / 8, prob=1.0)(wavs, full(wavs))
    zero = out == 0
    assert (zero.sum(dim=1) == 100).all()
    assert torch.equal(out[~zero], wavs[~zero])
    for row in zero:
        where = torch.nonzero(row).flatten()
        assert int(where[-1] - where[0]) == 99  # contiguous
    starts = {int(torch.nonzero(row)[0]) for row in zero}
    assert len(starts) > 10


def test_time_mask_noise_fill():
    wavs = torch.full((4, 800), 5.0)
    out = TimeMask(fraction=0.25, prob=1.0, noise_std=0.01)(wavs, full(wavs))
    filled = out != 5.0
    assert (filled.sum(dim=1) == 200).all()
    assert out[filled].abs().max() < 0.1


@pytest.mark.parametrize(
    "shape", ["linear", "logarithmic", "exponential", "quarter_sine", "half_sine"]
)
def test_fade_gains_are_monotonic_at_the_ends(shape):
    samples = 1000
    gains = Fade(max_fraction=0.5, shapes=(shape,), prob=1.0)(
        torch.ones(64, samples), torch.ones(64)
    )
    assert ((gains >= 0) & (gains <= 1)).all()
    head, tail = gains[:, : samples // 2], gains[:, samples // 2 :]
    assert (head.diff(dim=1) >= -1e-6).all(), "fade-in is not rising"
    assert (tail.diff(dim=1) <= 1e-6).all(), "fade-out is not falling"
    fade_in = (head < 1).sum(dim=1)
    fade_out = (tail < 1).sum(dim=1)
    assert fade_in.max() < samples // 2 and fade_out.max() < samples // 2
    assert len(set(fade_in.tolist())) > 10  # lengths drawn per item
    # every curve starts (ends) at 0, or 2 ** -5 for the exponential one
    assert gains[fade_in > 1, 0].max() < 0.04
    assert gains[fade_out > 1, -1].max() < 0.04


def test_fade_rejects_unknown_shape_and_bad_fraction():
    with pytest.raises(ValueError, match="shapes"):
        Fade(shapes=("cubic",))
    with pytest.raises(ValueError, match="max_fraction"):
        Fade(max_fraction=1.5)


def test_range_arguments_are_checked():
    with pytest.raises(ValueError, match="min_snr_db"):
        WhiteNoise(min_snr_db=10, max_snr_db=5)
    with pytest.raises(ValueError, match="min_rate"):
        TimeStretch(min_rate=0.0, max_rate=1.0)
    with pytest.raises(ValueError, match="colours"):
        ColouredNoise(colours=("purple",))
    with pytest.raises(ValueError, match="fraction"):
        TimeMask(fraction=2.0)


def test_chain_applies_in_order():
    wavs = torch.ones(2, 800)
    mask_then_noise = AugmentationChain(
        [TimeMask(fraction=0.5, prob=1.0), WhiteNoise(20, 20, prob=1.0)]
    )
    noise_then_mask = AugmentationChain(
        [WhiteNoise(20, 20, prob=1.0), TimeMask(fraction=0.5, prob=1.0)]
    )
    assert ((mask_then_noise(wavs, full(wavs)) == 0).sum(dim=1) == 0).all()
    assert ((noise_then_mask(wavs, full(wavs)) == 0).sum(dim=1) == 400).all()
    assert torch.equal(AugmentationChain([])(wavs, full(wavs)), wavs)


def test_chain_is_a_sequential_that_passes_lengths_to_speechbrain_augmenters():
    from speechbrain.augment.time_domain import DropChunk, DropFreq

    drop = DropChunk(
        drop_length_low=100, drop_length_high=100, drop_count_low=1, drop_count_high=1
    )
    chain = AugmentationChain([Fade(prob=0.0), drop, DropFreq()])
    assert isinstance(chain, torch.nn.Sequential) and chain[1] is drop
    wavs = torch.ones(64, 1000)
    lengths = torch.full((64,), 0.5)  # true clips: the first 500 samples
    out = AugmentationChain([drop])(wavs, lengths)
    assert ((out == 0).sum(dim=1) == 100).all()
    assert torch.equal(out[:, 500:], wavs[:, 500:]), "DropChunk did not get lengths"
    filtered = chain(torch.randn(4, 1000), torch.ones(4))
    assert filtered.shape == (4, 1000) and torch.isfinite(filtered).all()


def test_chain_takes_an_augmenter_and_is_taken_by_one():
    from speechbrain.augment.augmenter import Augmenter

    wavs = torch.rand(8, 800) + 0.5  # no zero sample
    augmenter = Augmenter(augmentations=[TimeMask(fraction=0.25, prob=1.0)])
    out = AugmentationChain([augmenter])(wavs, torch.ones(8))  # (wavs, lengths) out
    assert isinstance(out, torch.Tensor) and ((out == 0).sum(dim=1) == 200).all()
    chain = AugmentationChain([TimeMask(fraction=0.25, prob=1.0)])
    out, lengths = Augmenter(augmentations=[chain])(wavs, torch.ones(8))
    assert ((out == 0).sum(dim=1) == 200).all() and torch.equal(lengths, torch.ones(8))


@pytest.mark.parametrize(
    "options, name",
    [
        ({"concat_original": True}, "concat_original"),
        ({"repeat_augment": 2}, "repeat_augment"),
        ({"augment_end_index": 2}, "augment_end_index"),
        ({"parallel_augment": True}, "parallel_augment"),
    ],
)
def test_an_augmenter_changing_the_batch_size_is_an_error_naming_the_option(
    options, name
):
    from speechbrain.augment.augmenter import Augmenter

    augmenter = Augmenter(augmentations=[TimeMask(prob=1.0)], **options)
    with pytest.raises(ValueError, match=f"{name}=.*set {name}="):
        AugmentationChain([augmenter])(torch.randn(4, 800), torch.ones(4))
    # An end index past the batch, or parallel outputs sharing it, keep it.
    for keeping in (
        Augmenter(augmentations=[TimeMask()], augment_end_index=9),
        Augmenter(
            augmentations=[TimeMask(prob=1.0), Fade(prob=1.0)],
            parallel_augment=True,
            parallel_augment_fixed_bs=True,
        ),
    ):
        out = AugmentationChain([keeping])(torch.randn(4, 800), torch.ones(4))
        assert out.shape == (4, 800)


def test_any_other_batch_size_change_is_an_error():
    class Doubles(torch.nn.Module):
        def forward(self, wavs, lengths):
            return torch.cat([wavs, wavs]), torch.cat([lengths, lengths])

    with pytest.raises(ValueError, match="Doubles returned 8 clips for a batch of 4"):
        AugmentationChain([Doubles()])(torch.randn(4, 800), torch.ones(4))
