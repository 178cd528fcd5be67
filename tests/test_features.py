"""KaldiFbank against torchaudio's kaldi fbank with SSAST's padding and normalisation."""

import pytest
import torch
from torchaudio.compliance import kaldi

from craft_modules.features.fbank import (
    NORM_STATS,
    KaldiFbank,
    compute_norm_stats,
    norm_stats,
)


def ssast_reference(wav, target_frames, mean, std):
    """SSAST's dataloader on one clip: DC removal, kaldi fbank, pad/cut, normalise."""
    wav = wav - wav.mean()
    fbank = kaldi.fbank(
        wav.unsqueeze(0),
        htk_compat=True,
        sample_frequency=16000,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=128,
        dither=0.0,
        frame_shift=10,
    )
    missing = target_frames - fbank.shape[0]
    if missing > 0:
        fbank = torch.nn.functional.pad(fbank, (0, 0, 0, missing))
    fbank = fbank[:target_frames]
    return (fbank - mean) / (2 * std)


@pytest.mark.parametrize("target_frames", [300, 512])
def test_batched_fbank_matches_kaldi_per_clip(target_frames):
    lengths = [48000, 31234, 16000, 4000]  # longer than, and shorter than, target
    wavs = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        t = torch.arange(n) / 16000
        wavs[i, :n] = (
            0.3 * torch.sin(2 * torch.pi * (200 + 300 * i) * t)
            + 0.05 * torch.randn(n)
            + 0.1
        )
    lens = torch.tensor(lengths, dtype=torch.float) / max(lengths)
    fbank = KaldiFbank(target_frames=target_frames, stats="esc50")
    out = fbank(wavs, lens)
    assert out.shape == (len(lengths), target_frames, 128)
    mean, std = NORM_STATS["esc50"]
    for i, n in enumerate(lengths):
        ref = ssast_reference(wavs[i, :n], target_frames, mean, std)
        assert torch.allclose(out[i], ref, atol=1e-3), (i, (out[i] - ref).abs().max())


def test_padding_frames_take_the_normalised_zero():
    fbank = KaldiFbank(target_frames=200, stats="audioset")
    out = fbank(torch.randn(1, 16000) * 0.1)  # 98 frames of audio
    assert torch.allclose(out[0, 98:], torch.full((102, 128), fbank.pad_value))
    assert fbank.pad_value == pytest.approx(4.2677393 / (2 * 4.5689974))
    assert not torch.allclose(out[0, :98], torch.full((98, 128), fbank.pad_value))


def test_silence_gives_finite_features():
    out = KaldiFbank(target_frames=50)(torch.zeros(2, 8000))
    assert torch.isfinite(out).all()


def test_named_stats_and_unknown_name():
    assert norm_stats("ESC-50") == NORM_STATS["esc50"]
    with pytest.raises(ValueError, match="unknown normalisation statistics"):
        norm_stats("librispeech-foo")


def test_compute_norm_stats_matches_direct_computation():
    fbank = KaldiFbank(target_frames=80)
    batches = [
        (torch.randn(3, 12000) * 0.2, torch.tensor([1.0, 0.5, 0.8])) for _ in range(2)
    ]
    mean, std = compute_norm_stats(batches, fbank)
    raw = KaldiFbank(target_frames=80, normalize=False)
    feats = [raw(w, lens) for w, lens in batches]
    assert mean == pytest.approx(sum(f.mean().item() for f in feats) / 2, rel=1e-5)
    assert std == pytest.approx(sum(f.std().item() for f in feats) / 2, rel=1e-5)
    # With the computed statistics, features have mean 0 and std 0.5 (the factor 2).
    norm = KaldiFbank(target_frames=80, mean=mean, std=std)
    all_feats = torch.cat([norm(w, lens) for w, lens in batches])
    assert abs(all_feats.mean().item()) < 1e-3
