"""Patch embedding layout, MSAE grid and the official SSAST parameter counts."""

import pytest
import torch

from craft_modules.features.fbank import KaldiFbank
from craft_modules.models.craft import CraftPretrainer
from craft_modules.nn.embedding import (
    MSAE,
    PatchEmbedding,
    grid_shape,
    spectrogram_image,
    window_average,
)
from craft_modules.nn.transformer import ViTEncoder

# Official SSAST numbers (YuanGongND/ssast ast_models.py and its released checkpoints): the full pretraining
# model, minus the two unused 1000-way timm heads and the two int64 scalars.
OFFICIAL_PRETRAIN_PARAMS = {
    "tiny": 6_046_290 - 2 * (192 * 1000 + 1000) - 2,
    "small": 22_854_354 - 2 * (384 * 1000 + 1000) - 2,
    "base": 88_763_346 - 2 * (768 * 1000 + 1000) - 2,
}


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", ["tiny", "small", "base"])
def test_preset_parameter_counts_match_official_ssast(size):
    model = CraftPretrainer(method="ssast", model_size=size, target_frames=1024)
    assert count(model) == OFFICIAL_PRETRAIN_PARAMS[size]
    # The timm ViT "v" without its heads: encoder + spectrogram token embedding.
    if size == "tiny":
        assert count(model.encoder) + count(model.spec_embed) == 5_487_168


def test_free_sizes_override_the_preset():
    enc = ViTEncoder("base", embed_dim=96, depth=3, num_heads=4)
    assert (enc.embed_dim, enc.depth, enc.num_heads) == (96, 3, 4)
    assert len(enc.blocks) == 3
    with pytest.raises(ValueError, match="divisible"):
        ViTEncoder("tiny", num_heads=5)
    with pytest.raises(ValueError, match="model_size"):
        ViTEncoder("huge")


def test_encoder_blocks_are_pre_norm_with_exact_gelu_and_eps():
    enc = ViTEncoder("tiny", depth=1)
    block = enc.blocks[0]
    assert block.norm1.eps == 1e-6 and enc.norm.eps == 1e-6
    assert block.mlp.act.approximate == "none"
    assert block.attn.qkv.weight.shape == (576, 192)
    # The attention equals a manual softmax(q k^T / sqrt(d)) v.
    x = torch.randn(2, 7, 192)
    attn = block.attn
    q, k, v = attn.qkv(x).reshape(2, 7, 3, 3, 64).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-1, -2) / 8.0, dim=-1)
    manual = attn.proj((weights @ v).transpose(1, 2).reshape(2, 7, 192))
    assert torch.allclose(attn(x), manual, atol=1e-5)


@pytest.mark.parametrize(
    "frames, fshape, tshape, fstride, tstride, grid",
    [
        (1024, 16, 16, 16, 16, (8, 64)),
        (1024, 16, 16, 10, 10, (12, 101)),
        (512, 16, 16, 10, 10, (12, 50)),
        (1024, 128, 2, 128, 2, (1, 512)),
    ],
)
def test_grid_shapes_of_ssast(frames, fshape, tshape, fstride, tstride, grid):
    emb = PatchEmbedding(8, 128, frames, 1, fshape, tshape, fstride, tstride)
    assert (
        (emb.f_dim, emb.t_dim)
        == grid
        == grid_shape(128, frames, fshape, tshape, fstride, tstride)
    )
    assert emb.pos_embed.shape == (1, grid[0] * grid[1] + 2, 8)


def test_token_order_is_frequency_major():
    emb = PatchEmbedding(4, input_fdim=32, input_tdim=48)  # 2 x 3 grid
    with torch.no_grad():
        emb.proj.weight.zero_()
        emb.proj.bias.zero_()
        emb.proj.weight[0, 0] = 1.0 / 256  # token channel 0 = patch mean
    image = torch.zeros(1, 1, 32, 48)
    image[:, :, 16:, :16] = 1.0  # the high-frequency row, first time column
    tokens = emb.patchify(image)[0, :, 0]
    assert tokens.tolist() == [0, 0, 0, 1, 0, 0]  # token k = f * t_dim + t
    # Unfold targets follow the same order.
    assert emb.unfold(image)[0, 3].mean() == 1 and emb.unfold(image)[0, 0].sum() == 0


def test_spectrogram_image_puts_frequency_on_the_height():
    fbank = torch.arange(6.0).reshape(1, 3, 2)  # (B, T=3, F=2)
    image = spectrogram_image(fbank)
    assert image.shape == (1, 1, 2, 3)
    assert image[0, 0, 1, 2] == fbank[0, 2, 1]


@pytest.mark.parametrize("seconds", [0.7, 1.3, 4.0])
def test_msae_grid_equals_spectrogram_grid(seconds):
    frames = 128
    n = int(seconds * 16000)
    wavs = torch.randn(2, n) * 0.1
    fbank = KaldiFbank(target_frames=frames)
    msae = MSAE(kernel_sizes=[11, 51, 101], target_frames=frames)
    spec_image = spectrogram_image(fbank(wavs))
    wav_image = msae(wavs)
    assert wav_image.shape == (2, 3, 128, frames)
    spec_tokens = PatchEmbedding(8, 128, frames, 1).patchify(spec_image)
    wav_tokens = PatchEmbedding(8, 128, frames, 3).patchify(wav_image)
    assert spec_tokens.shape == wav_tokens.shape
    # Frames past the audio are zero, where the fbank pads.
    valid = fbank.num_frames(torch.tensor([n]))[0]
    assert wav_image[..., valid:].abs().sum() == 0
    assert wav_image[..., :valid].abs().sum() > 0


def test_msae_single_scale_and_stride_equivalence():
    assert MSAE(kernel_sizes=[51], target_frames=20)(torch.randn(1, 4000)).shape == (
        1,
        1,
        128,
        20,
    )
    # A strided MSAE estimates the dense one's window averages.
    dense = MSAE(kernel_sizes=[11], target_frames=40, conv_stride=1)
    strided = MSAE(kernel_sizes=[11], target_frames=40, conv_stride=5)
    strided.load_state_dict(dense.state_dict())
    wav = torch.randn(1, 8000)
    a, b = dense(wav), strided(wav)
    assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] > 0.9
    assert abs(a.mean() - b.mean()) < 0.05 * a.mean()
    with pytest.raises(ValueError, match="conv_stride"):
        MSAE(conv_stride=7)
    with pytest.raises(ValueError, match="odd"):
        MSAE(kernel_sizes=[10])


@pytest.mark.parametrize("activation", ["relu", "abs", "none"])
def test_msae_scales_with_loudness_and_the_spectrogram_only_shifts(activation):
    """The MSAE normalises nothing: 10x the waveform gives 10x its image and tokens
    (with the learnt biases zeroed), where the spectrogram stream's normalised
    log-mel features only move by the offset ln(10^2) / (2 std)."""
    torch.manual_seed(0)
    frames = 64
    wavs = torch.randn(2, 16000) * 0.05  # 1 s: longer than the 64 frames
    msae = MSAE(kernel_sizes=[11, 51], target_frames=frames, activation=activation)
    embed = PatchEmbedding(8, 128, frames, in_channels=2)
    with torch.no_grad():
        for conv in msae.convs:
            conv.bias.zero_()
        embed.proj.bias.zero_()
        quiet, loud = msae(wavs), msae(10 * wavs)
        assert quiet.abs().sum() > 0
        assert torch.allclose(loud, 10 * quiet, rtol=1e-4, atol=1e-6)
        tokens_quiet, tokens_loud = embed.patchify(quiet), embed.patchify(loud)
        assert torch.allclose(tokens_loud, 10 * tokens_quiet, rtol=1e-4, atol=1e-5)
    fbank = KaldiFbank(target_frames=frames, stats="audioset")
    quiet, loud = fbank(wavs), fbank(10 * wavs)
    # Mel bins with no FFT bin in their filter sit on the log floor at any gain.
    floor = (torch.log(torch.tensor(torch.finfo(torch.float32).eps)) - fbank.mean) / (
        2 * fbank.std
    )
    live = quiet > floor + 1e-3
    assert live.float().mean() > 0.9
    expected = float(torch.log(torch.tensor(100.0)) / (2 * fbank.std))
    assert torch.allclose(
        (loud - quiet)[live], torch.full_like(quiet[live], expected), atol=1e-4
    )
    assert torch.equal(loud[~live], quiet[~live])


def test_msae_biases_break_exact_scaling():
    """With its (default, learnt) biases the MSAE is no longer exactly homogeneous."""
    torch.manual_seed(0)
    msae = MSAE(kernel_sizes=[11], target_frames=32)
    wavs = torch.randn(1, 8000) * 0.05
    with torch.no_grad():
        assert not torch.allclose(msae(10 * wavs), 10 * msae(wavs), rtol=1e-3)


@pytest.mark.parametrize(
    "kernel,stride,length",
    [(80, 32, 32000), (400, 160, 4000), (200, 80, 1999), (7, 3, 50)],
)
def test_window_average_equals_avg_pool_values_and_gradients(kernel, stride, length):
    x = torch.randn(2, 4, length, dtype=torch.float64, requires_grad=True)
    ref_x = x.detach().clone().requires_grad_(True)
    out = window_average(x, kernel, stride)
    ref = torch.nn.functional.avg_pool1d(ref_x, kernel, stride)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref)
    weights = torch.randn_like(ref)
    (out * weights).sum().backward()
    (ref * weights).sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad)


def test_window_average_names_a_too_short_input():
    with pytest.raises(ValueError, match="window 80"):
        window_average(torch.randn(1, 1, 40), 80, 32)
