"""CraftPretrainer methods and CraftClassifier fusions on tiny models."""

import pytest
import torch

from craft_modules.models.craft import (
    FUSION_METHODS,
    PRETRAINING_METHODS,
    CraftClassifier,
    CraftPretrainer,
)
from craft_modules.nn.embedding import spectrogram_image

TINY = dict(model_size="tiny", depth=2, target_frames=64)


def batch(size):
    lens = torch.linspace(1.0, 0.55, size) if size > 1 else torch.ones(1)
    return torch.randn(size, 8000) * 0.1, lens


EXPECTED_KEYS = {
    "ssast": {"loss", "nce_spec", "mse_spec", "acc_spec"},
    "swapt": {
        "loss",
        "nce_spec",
        "mse_spec",
        "acc_spec",
        "nce_wav",
        "mse_wav",
        "acc_wav",
    },
    "wapt": {"loss", "nce_wav", "mse_wav", "acc_wav"},
    "swacl": {"loss", "swacl", "swacl_acc"},
    "pswacl": {"loss", "nce_spec", "mse_spec", "acc_spec", "swacl", "swacl_acc"},
}


@pytest.mark.parametrize("method", PRETRAINING_METHODS)
@pytest.mark.parametrize("size", [1, 3])
def test_every_pretraining_method_gives_finite_losses(method, size):
    model = CraftPretrainer(method=method, mask_patch=20, **TINY)
    losses = model(*batch(size))
    assert set(losses) == EXPECTED_KEYS[method]
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    # Every parameter the method builds receives a gradient (DDP-safe).
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, unused


def test_total_losses_follow_the_paper_equations():
    torch.manual_seed(1)
    wavs, lens = batch(2)
    model = CraftPretrainer(method="swapt", mask_patch=20, r_w=0.3, r_g=10, **TINY)
    out = model(wavs, lens)
    expected = (
        out["nce_spec"]
        + 10 * out["mse_spec"]
        + 0.3 * (out["nce_wav"] + 10 * out["mse_wav"])
    )
    assert torch.allclose(out["loss"], expected)
    model = CraftPretrainer(method="pswacl", mask_patch=20, r_cl=0.01, **TINY)
    out = model(wavs, lens)
    assert torch.allclose(
        out["loss"], out["nce_spec"] + 10 * out["mse_spec"] + 0.01 * out["swacl"]
    )


def test_pswacl_gradients_reach_msae():
    model = CraftPretrainer(method="pswacl", mask_patch=20, **TINY)
    model(*batch(2))["loss"].backward()
    for conv in model.msae.convs:
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert model.msae.kernel_sizes == [11, 51, 101]


def test_mspm_loss_is_recomputed_from_the_masked_pass():
    """The pretrainer's nce equals a by-hand SSAST computation with the same mask."""
    model = CraftPretrainer(
        method="ssast", mask_patch=20, single_pass=True, **TINY
    ).eval()
    wavs, lens = batch(2)
    torch.manual_seed(5)
    out = model(wavs, lens)
    torch.manual_seed(5)
    from craft_modules.losses import masked_patch_infonce
    from craft_modules.nn.masking import cluster_mask_ids

    ids = cluster_mask_ids(2, 8, 4, 20)
    image = spectrogram_image(model.fbank(wavs, lens))
    emb = model.spec_embed
    patches = emb.patchify(image)
    mask = torch.zeros(2, 32, 1).scatter_(1, ids.unsqueeze(-1), 1.0)
    tokens = emb.add_tokens(patches * (1 - mask) + model.mask_embed * mask)
    encoded = model.encoder(tokens)
    rows = torch.arange(2)[:, None]
    pred = model.cpredlayer(encoded[rows, ids + 2])
    target = emb.unfold(image)[rows, ids]
    nce, _ = masked_patch_infonce(pred, target)
    mse = ((model.gpredlayer(encoded[rows, ids + 2]) - target) ** 2).mean()
    assert torch.allclose(out["nce_spec"], nce, atol=1e-5)
    assert torch.allclose(out["mse_spec"], mse, atol=1e-6)


@pytest.mark.parametrize("method", ["swapt", "pswacl"])
def test_batched_passes_equal_separate_passes(method):
    model = CraftPretrainer(method=method, mask_patch=20, **TINY)
    wavs, lens = batch(3)
    torch.manual_seed(3)
    batched = model(wavs, lens)
    model.batched = False
    torch.manual_seed(3)
    separate = model(wavs, lens)
    for key in batched:
        assert torch.allclose(batched[key], separate[key], atol=1e-5), key


@pytest.mark.parametrize("method", ["swacl", "pswacl"])
def test_default_swacl_contrasts_the_unmasked_spectrogram_tokens(method, monkeypatch):
    """Eq. 4a: O_spec = Encoder(p_spec), the unmasked tokens (Eq. 6b), not a masked pass."""
    import craft_modules.models.craft as craft

    seen = {}

    def spy(wav_z, spec_z, **options):
        seen["wav"], seen["spec"] = wav_z, spec_z
        return swacl(wav_z, spec_z, **options)

    swacl = craft.swacl_loss
    monkeypatch.setattr(craft, "swacl_loss", spy)
    model = CraftPretrainer(method=method, mask_patch=20, **TINY).eval()
    assert model.swacl_spec == "clean"
    wavs, lens = batch(3)
    with torch.no_grad():
        model(wavs, lens)
        spec_out = model.encoder(model.spec_embed(model.spec_image(wavs, lens)))
        wav_out = model.encoder(model.wav_embed(model.wav_image(wavs, lens)))
        expected_spec = model.spec_proj(spec_out[:, 2:].mean(dim=1))
        expected_wav = model.wav_proj(wav_out[:, 2:].mean(dim=1))
    assert torch.allclose(seen["spec"], expected_spec, atol=1e-5)
    assert torch.allclose(seen["wav"], expected_wav, atol=1e-5)
    if method == "pswacl":  # the saving switch takes the masked pass instead
        model.swacl_spec = "masked"
        with torch.no_grad():
            model(wavs, lens)
        assert not torch.allclose(seen["spec"], expected_spec, atol=1e-3)
        assert torch.allclose(seen["wav"], expected_wav, atol=1e-5)


def test_mask_ratio_scales_ssast_masking_to_the_grid():
    assert CraftPretrainer(method="ssast", model_size="tiny", depth=1).mask_patch == 400
    short = CraftPretrainer(
        method="ssast", target_frames=256, model_size="tiny", depth=1
    )
    assert short.mask_patch == 100  # 400/512 of 8 x 16 patches
    half = CraftPretrainer(method="ssast", mask_ratio=0.5, **TINY)
    assert half.mask_patch == 16  # of 8 x 4
    assert (
        CraftPretrainer(method="ssast", mask_patch=5, mask_ratio=0.5, **TINY).mask_patch
        == 5
    )
    with pytest.raises(ValueError, match="mask_ratio must be in"):
        CraftPretrainer(method="ssast", mask_ratio=1.5, **TINY)


def test_unknown_method_and_oversized_mask_are_clear_errors():
    with pytest.raises(ValueError, match="method must be one of"):
        CraftPretrainer(method="mae", **TINY)
    with pytest.raises(ValueError, match="mask_patch=400"):
        CraftPretrainer(method="ssast", mask_patch=400, **TINY)
    with pytest.raises(ValueError, match="non-overlapping"):
        CraftPretrainer(method="ssast", fstride=10, **TINY)


@pytest.mark.parametrize("fusion", FUSION_METHODS)
@pytest.mark.parametrize("size", [1, 3])
def test_every_fusion_gives_logits(fusion, size):
    model = CraftClassifier(7, fusion=fusion, n_bottlenecks=4, fusion_layer=1, **TINY)
    logits = model(*batch(size))
    assert logits.shape == (size, 7)
    assert torch.isfinite(logits).all()
    embedding = model.forward_head(model.forward_features(*batch(size)), True)
    assert embedding.shape == (size, 192 if fusion in ("ast", "wav") else 384)


def _manual_swab(model, wavs, lens):
    """Eq. 5a-5c written out: two separate passes per fused layer, bottlenecks averaged."""
    spec = model.spec_embed(spectrogram_image(model.fbank(wavs, lens)))
    wav = model.wav_embed(model.msae(wavs, lens))
    blocks = model.encoder.blocks
    for block in blocks[: model.fusion_layer]:
        spec, wav = block(spec), block(wav)
    shared = model.bottlenecks.expand(wavs.shape[0], -1, -1)
    n = spec.shape[1]
    for block in blocks[model.fusion_layer :]:
        spec_out = block(torch.cat([spec, shared], dim=1))
        wav_out = block(torch.cat([wav, shared], dim=1))
        spec, wav = spec_out[:, :n], wav_out[:, :n]
        shared = (spec_out[:, n:] + wav_out[:, n:]) / 2
    return model.encoder.norm(spec), model.encoder.norm(wav)


def test_swab_batched_equals_separate_streams_with_averaged_bottlenecks():
    model = CraftClassifier(
        5, fusion="swab", n_bottlenecks=6, fusion_layer=1, **TINY
    ).eval()
    wavs, lens = batch(3)
    spec, wav = model.forward_features(wavs, lens)
    ref_spec, ref_wav = _manual_swab(model, wavs, lens)
    assert torch.allclose(spec, ref_spec, atol=1e-5)
    assert torch.allclose(wav, ref_wav, atol=1e-5)
    model.batched = False
    spec_sep, wav_sep = model.forward_features(wavs, lens)
    assert torch.allclose(spec, spec_sep, atol=1e-5) and torch.allclose(
        wav, wav_sep, atol=1e-5
    )
    # The bottlenecks do carry information between the streams.
    swast = CraftClassifier(5, fusion="swast", **TINY).eval()
    swast.load_state_dict(model.state_dict(), strict=False)
    assert not torch.allclose(swast.forward_features(wavs, lens)[0], spec, atol=1e-4)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("train", [True, False])
def test_forward_is_the_head_on_the_features(pooling, train):
    """forward == forward_head(forward_features(...)); the pooled embedding is
    the one the former ``output="embedding"`` gave: Eq. 5's streams, computed
    here through the encoder directly, pooled and concatenated."""
    torch.manual_seed(0)
    model = CraftClassifier(
        5, fusion="swab", n_bottlenecks=6, fusion_layer=1, pooling=pooling, **TINY
    ).train(train)
    wavs, lens = batch(3)
    features = model.forward_features(wavs, lens)
    assert torch.equal(model(wavs, lens), model.forward_head(features))
    ref_spec, ref_wav = _manual_swab(model, wavs, lens)
    if pooling == "mean":
        expected = torch.cat([ref_spec[:, 2:].mean(1), ref_wav[:, 2:].mean(1)], -1)
    else:
        expected = torch.cat([ref_spec[:, :2].mean(1), ref_wav[:, :2].mean(1)], -1)
    embedding = model.forward_head(features, pre_logits=True)
    assert embedding.shape == (3, 2 * 192)
    assert torch.allclose(embedding, expected, atol=1e-5)
    assert torch.equal(model.forward_head(features), model.mlp_head(embedding))


def test_pretrainer_features_are_those_inference_embeds_with():
    """CraftPretrainer.forward_features: the unmasked streams, as the SWAST
    classifier that inference builds from the pretrainer computes them."""
    from craft_modules.inference.tagger import embedding_model_from_pretrainer

    torch.manual_seed(0)
    wavs, lens = batch(2)
    for method, n_streams in (("pswacl", 2), ("ssast", 1)):
        pre = CraftPretrainer(method=method, mask_patch=20, **TINY).eval()
        clf = embedding_model_from_pretrainer(pre)
        with torch.no_grad():
            mine, theirs = (
                pre.forward_features(wavs, lens),
                clf.forward_features(wavs, lens),
            )
            assert len(mine) == len(theirs) == n_streams
            for a, b in zip(mine, theirs):
                assert torch.allclose(a, b, atol=1e-6)
            pooled = pre.forward_head(mine, pre_logits=True)
            assert pooled.shape == (2, n_streams * 192)
            assert torch.allclose(
                pooled, clf.forward_head(theirs, pre_logits=True), atol=1e-6
            )
            spec = pre.encoder(pre.spec_embed(pre.spec_image(wavs, lens)))
            assert torch.allclose(pooled[:, :192], spec[:, 2:].mean(1), atol=1e-6)
    with pytest.raises(ValueError, match="no classification head"):
        pre.forward_head(mine, pre_logits=False)
    wapt = CraftPretrainer(method="wapt", mask_patch=20, **TINY).eval()
    (tokens,) = wapt.forward_features(wavs, lens)
    assert tokens.shape == (2, wapt.wav_embed.num_patches + 2, 192)


def test_swab_without_bottlenecks_equals_swast():
    swast = CraftClassifier(5, fusion="swast", **TINY).eval()
    swab = CraftClassifier(
        5, fusion="swab", n_bottlenecks=0, fusion_layer=0, **TINY
    ).eval()
    swab.load_state_dict(swast.state_dict())
    wavs, lens = batch(2)
    for a, b in zip(
        swast.forward_features(wavs, lens), swab.forward_features(wavs, lens)
    ):
        assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(swast(wavs, lens), swab(wavs, lens), atol=1e-6)


def test_classifier_pooling_and_head_layout():
    model = CraftClassifier(4, fusion="ast", pooling="mean", **TINY).eval()
    wavs, lens = batch(2)
    tokens = model.forward_features(wavs, lens)[0][:, 2:]
    assert torch.allclose(
        model(wavs, lens), model.mlp_head(tokens.mean(dim=1)), atol=1e-6
    )
    assert isinstance(model.mlp_head[0], torch.nn.LayerNorm)
    assert model.spec_embed.fstride == 10  # SSAST's fine-tuning stride by default
    with pytest.raises(ValueError, match="fusion must be one of"):
        CraftClassifier(4, fusion="late", **TINY)
    with pytest.raises(ValueError, match="fusion_layer"):
        CraftClassifier(4, fusion="swab", fusion_layer=3, **TINY)
