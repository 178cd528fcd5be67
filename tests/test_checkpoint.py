"""Pretraining checkpoint -> classifier: transfer, positional resize, reports."""

import pytest
import torch

from craft_modules.models.craft import CraftClassifier, CraftPretrainer
from craft_modules.weights.transfer import load_pretrained, resize_pos_embed

TINY = dict(model_size="tiny", depth=2)


def test_resize_rules():
    pos = torch.randn(1, 2 + 8 * 64, 4)
    grid = pos[:, 2:].reshape(8, 64, 4)
    # Shrinking time: centre crop of columns 7..56 (SSAST's ESC-50 case).
    out = resize_pos_embed(pos, (8, 64), (8, 50))
    assert torch.equal(out[:, :2], pos[:, :2])
    assert torch.equal(out[0, 2:].reshape(8, 50, 4), grid[:, 7:57])
    # Shrinking frequency: centre crop of rows (SSAST crashes here).
    out = resize_pos_embed(pos, (8, 64), (6, 64))
    assert torch.equal(out[0, 2:].reshape(6, 64, 4), grid[1:7])
    # Growing both: bilinear, identical to one 2-D interpolation.
    out = resize_pos_embed(pos, (8, 64), (12, 101))
    ref = torch.nn.functional.interpolate(
        grid.permute(2, 0, 1)[None],
        size=(12, 101),
        mode="bilinear",
        align_corners=False,
    )[0].permute(1, 2, 0)
    assert torch.allclose(out[0, 2:].reshape(12, 101, 4), ref, atol=1e-6)
    # Same grid: unchanged. Bilinear mode never crops.
    assert torch.equal(resize_pos_embed(pos, (8, 64), (8, 64)), pos)
    assert not torch.equal(
        resize_pos_embed(pos, (8, 64), (8, 50), mode="bilinear")[0, 2:].reshape(
            8, 50, 4
        ),
        grid[:, 7:57],
    )


def test_round_trip_into_a_classifier_with_another_clip_length(tmp_path):
    pre = CraftPretrainer(method="pswacl", target_frames=128, mask_patch=30, **TINY)
    path = tmp_path / "model.ckpt"
    torch.save(pre.state_dict(), path)
    clf = CraftClassifier(
        10, fusion="swab", target_frames=96, n_bottlenecks=4, fusion_layer=1, **TINY
    )
    report = load_pretrained(clf, str(path))
    assert not report.missing
    assert set(report.resized) == {"spec_embed.pos_embed", "wav_embed.pos_embed"}
    assert {"mlp_head.1.weight", "bottlenecks"} <= set(report.initialised)
    assert {"cpredlayer.0.weight", "mask_embed", "spec_proj.2.weight"} <= set(
        report.unexpected
    )
    state = clf.state_dict()
    for key, value in pre.state_dict().items():
        if key.startswith(("encoder.", "msae.")) or key.endswith(
            ("proj.weight", "cls_token")
        ):
            if key in state and not key.startswith(("spec_proj", "wav_proj")):
                assert torch.equal(state[key], value), key
    # The grid kept is the classifier's own, and the pos embed is the resized one.
    assert clf.spec_embed.grid.tolist() == [12, 9]
    expected = resize_pos_embed(pre.spec_embed.pos_embed, (8, 8), (12, 9))
    assert torch.allclose(clf.spec_embed.pos_embed, expected)
    # The loaded classifier runs.
    assert clf(torch.randn(2, 16000) * 0.1).shape == (2, 10)


def test_ssast_checkpoint_into_swab_reports_the_missing_waveform_stream():
    pre = CraftPretrainer(method="ssast", target_frames=64, mask_patch=10, **TINY)
    clf = CraftClassifier(
        3, fusion="swab", target_frames=64, n_bottlenecks=2, fusion_layer=0, **TINY
    )
    report = load_pretrained(
        clf,
        {"module." + k: v for k, v in pre.state_dict().items()},
        allow_missing=["msae", "wav_embed"],
    )
    assert report.missing and all(
        k.startswith(("wav_embed.", "msae.")) for k in report.missing
    )
    assert "encoder.blocks.0.attn.qkv.weight" in report.loaded
    with pytest.raises(ValueError, match="lacks backbone keys"):
        load_pretrained(
            clf, pre.state_dict(), strict=True, allow_missing=["msae", "wav_embed"]
        )


def test_a_missing_module_is_an_error_naming_checkpoint_and_modules(tmp_path):
    """A WaPT run has no spectrogram stream: an AST/SWaB classifier needs one."""
    pre = CraftPretrainer(method="wapt", target_frames=64, mask_patch=10, **TINY)
    path = tmp_path / "model.ckpt"
    torch.save(pre.state_dict(), path)
    for fusion in ("ast", "swab"):
        clf = CraftClassifier(
            3, fusion=fusion, target_frames=64, fusion_layer=0, **TINY
        )
        before = clf.spec_embed.proj.weight.clone()
        with pytest.raises(ValueError) as err:
            load_pretrained(clf, str(tmp_path))
        message = str(err.value)
        assert str(path) in message
        assert "lacks modules this model needs: spec_embed." in message
        assert "--allow_missing=[spec_embed]" in message
        assert "spec_embed.proj.weight" not in message  # modules, not every tensor
        assert torch.equal(clf.spec_embed.proj.weight, before)  # nothing loaded
        # Opting in keeps the spectrogram stream random and loads the rest.
        report = load_pretrained(clf, str(tmp_path), allow_missing=["spec_embed"])
        assert report.missing and all(
            k.startswith("spec_embed.") for k in report.missing
        )
        assert "encoder.blocks.1.attn.qkv.weight" in report.loaded
        if fusion == "swab":
            assert torch.equal(clf.msae.convs[0].weight, pre.msae.convs[0].weight)
    # A shallower encoder names the blocks it lacks.
    deep = CraftClassifier(
        3, fusion="wav", target_frames=64, model_size="tiny", depth=3
    )
    with pytest.raises(ValueError, match=r"needs: encoder\.blocks\.2\. To keep"):
        load_pretrained(deep, pre.state_dict())


def test_wapt_checkpoint_fine_tunes_waveform_tokens_alone():
    """Table 8's WaPT-AST: fusion="wav" has no spectrogram stream to miss."""
    pre = CraftPretrainer(method="wapt", target_frames=64, mask_patch=10, **TINY)
    clf = CraftClassifier(3, fusion="wav", target_frames=64, **TINY)
    assert clf.spec_embed is None and clf.fbank is None
    assert not any(k.startswith("spec_embed.") for k in clf.state_dict())
    report = load_pretrained(clf, pre.state_dict())
    assert not report.missing
    assert {"msae.convs.0.weight", "wav_embed.proj.weight"} <= set(report.loaded)
    # The logits are the head applied to the waveform tokens' pooled encoder output.
    clf.eval()
    wavs, lens = torch.randn(2, 8000), torch.tensor([1.0, 0.6])
    tokens = clf.encoder(clf.wav_embed(clf.msae(wavs, lens)))
    expected = clf.mlp_head(tokens[:, 2:].mean(dim=1))
    assert torch.allclose(clf(wavs, lens), expected, atol=1e-6)


def test_wrong_model_size_names_the_key():
    pre = CraftPretrainer(
        method="ssast", target_frames=64, mask_patch=10, model_size="small", depth=1
    )
    clf = CraftClassifier(3, fusion="ast", target_frames=64, model_size="tiny", depth=1)
    with pytest.raises(ValueError, match="shape mismatch for encoder"):
        load_pretrained(clf, pre.state_dict())


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    clf = CraftClassifier(3, fusion="ast", target_frames=64, **TINY)
    with pytest.raises(FileNotFoundError, match="model.ckpt"):
        load_pretrained(clf, str(tmp_path))
