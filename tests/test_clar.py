"""CLAR models and losses (craft_modules.models.clar)."""

import math

import pytest
import torch
import torch.nn.functional as F

from craft_modules.augment.waveform import AugmentationChain, Fade, TimeMask
from craft_modules.data.labels import label_fraction_mask
from craft_modules.features.clar_frontend import ClarFrontEnd
from craft_modules.losses import labelled_cross_entropy, nt_xent_loss
from craft_modules.models.clar import ClarModel, clar_losses
from craft_modules.nn.resnet import ResNet18_1D, ResNet18_2D

SR = 16000
SMALL = (8, 16, 16, 32)  # narrow ResNets for the cheap tests


def _tone(freq, samples, batch=1):
    t = torch.arange(samples) / SR
    return torch.sin(2 * math.pi * freq * t).repeat(batch, 1)


# ----------------------------------------------------------------------------
# Front end


@pytest.mark.parametrize("samples", [4000, 8000])
def test_front_end_shape(samples):
    front_end = ClarFrontEnd()
    feats = front_end(torch.randn(3, samples))
    frames = 1 + samples // 128  # 8 ms hop at 16 kHz, centred frames
    assert feats.shape == (3, 3, 128, frames)
    assert front_end.n_frames(samples) == frames
    assert front_end.win_length == 256 and front_end.hop_length == 128
    official = ClarFrontEnd(n_fft=2048)
    assert official.win_length == 2048
    assert official(torch.randn(2, samples)).shape == (2, 3, 128, frames)


def test_front_end_channels_match_a_direct_dft():
    front_end = ClarFrontEnd()
    wav = torch.randn(1, 3000, dtype=torch.float64).float()
    feats = front_end(wav)
    frame = 7
    win, hop = front_end.win_length, front_end.hop_length
    padded = F.pad(wav[:, None], (win // 2, win // 2), mode="reflect")[0, 0]
    segment = padded[frame * hop : frame * hop + win].double()
    n = torch.arange(win, dtype=torch.float64)
    window = torch.hann_window(win, dtype=torch.float64)
    freqs = 40.0 * (8000.0 / 40.0) ** (torch.arange(128, dtype=torch.float64) / 128)
    dft = (segment * window * torch.exp(-2j * math.pi * freqs[:, None] * n / SR)).sum(
        -1
    )
    expected_db = 20 * torch.log10(dft.abs().clamp(min=1e-5))
    assert torch.allclose(feats[0, 0, :, frame].double(), expected_db, atol=1e-3)
    phase_error = torch.remainder(
        feats[0, 1, :, frame].double() - dft.angle() + math.pi, 2 * math.pi
    )
    assert torch.allclose(phase_error, torch.full_like(phase_error, math.pi), atol=1e-3)
    assert torch.allclose(front_end.frequencies.double(), freqs, rtol=1e-6)


def test_front_end_tone_peaks_at_its_frequency():
    front_end = ClarFrontEnd(n_fft=2048)  # fine resolution
    feats = front_end(_tone(1000, 8000))
    middle = feats.shape[-1] // 2
    peak_bin = int(feats[0, 0, :, middle].argmax())
    ratio = float(front_end.frequencies[peak_bin]) / 1000
    assert abs(math.log2(ratio)) < 0.05  # within ~1 bin of 1000 Hz
    mel_peak = int(feats[0, 2, :, middle].argmax())
    mel_centre = float(front_end.mel_filters[:, mel_peak].argmax()) * SR / 2048
    assert abs(mel_centre - 1000) < 60
    phase = feats[0, 1]
    assert phase.min() >= -math.pi and phase.max() <= math.pi


def test_front_end_mel_filters_are_never_empty():
    front_end = ClarFrontEnd()  # 16 ms window, padded FFT for the mel channel
    assert (front_end.mel_filters.sum(dim=0) > 0).all()


def test_clip_shorter_than_the_window_raises():
    model = ClarModel("spectrogram", n_classes=2, widths=SMALL)
    with pytest.raises(ValueError, match=r"200 samples.*256 samples \(16.0 ms"):
        model(torch.zeros(2, 200))
    with pytest.raises(ValueError, match="200 samples.*256 samples"):
        model.forward_features(torch.zeros(2, 200))
    model = ClarModel("spectrogram", n_classes=2, n_fft=2048, widths=SMALL)
    with pytest.raises(ValueError, match="1000 samples.*2048 samples"):
        model(torch.zeros(2, 1000))


# ----------------------------------------------------------------------------
# Encoders and model


def test_resnets_have_resnet18_layout():
    encoder_2d = ResNet18_2D().eval()
    assert encoder_2d(torch.randn(1, 3, 64, 32)).shape == (1, 512)
    # torchvision's resnet18 without its fc layer
    assert sum(p.numel() for p in encoder_2d.parameters()) == 11_176_512
    encoder_1d = ResNet18_1D().eval()
    assert encoder_1d(torch.randn(1, 1000)).shape == (1, 512)
    assert encoder_1d(torch.randn(1, 1, 1000)).shape == (1, 512)
    convs = [m for m in encoder_1d.modules() if isinstance(m, torch.nn.Conv1d)]
    assert sum(c.kernel_size == (9,) for c in convs) == 16  # 8 blocks x 2 convs
    blocks = [
        m for m in encoder_1d.layers.modules() if m.__class__.__name__ == "BasicBlock"
    ]
    assert len(blocks) == 8
    assert [stage[-1].conv2.out_channels for stage in encoder_1d.layers] == [
        64,
        128,
        256,
        512,
    ]
    with pytest.raises(ValueError, match="samples"):
        encoder_1d(torch.randn(2, 8))


@pytest.mark.parametrize("encoder", ["spectrogram", "raw"])
def test_model_outputs(encoder):
    model = ClarModel(encoder, n_classes=5, widths=SMALL, hidden_dim=16, proj_dim=8)
    wavs = torch.randn(3, 2000)
    assert model(wavs).shape == (3, 5)
    assert model.forward_features(wavs, torch.ones(3)).shape == (3, 32)
    z = model(wavs, output="projection")
    assert z.shape == (3, 8) and torch.allclose(z.norm(dim=1), torch.ones(3))
    logits, z = model(wavs, output="both")
    assert logits.shape == (3, 5) and z.shape == (3, 8)
    with pytest.raises(ValueError, match="output must be one of .*'features'"):
        model(wavs, output="features")
    with pytest.raises(ValueError, match="forward_features"):
        model(wavs, output="embedding")  # the embedding has its own name now
    with pytest.raises(ValueError, match="wavs"):
        model(torch.randn(2000))


@pytest.mark.parametrize("encoder", ["spectrogram", "raw"])
def test_forward_is_the_head_on_the_features(encoder):
    """forward == forward_head(forward_features(...)); the features are the
    encoder's embedding (the former ``output="embedding"``), computed here from
    the front end and encoder directly."""
    torch.manual_seed(0)
    model = ClarModel(encoder, n_classes=4, widths=SMALL, proj_dim=8).eval()
    wavs = torch.randn(2, 3000)
    with torch.no_grad():
        features = model.forward_features(wavs)
        inputs = wavs if model.front_end is None else model.front_end(wavs)
        assert torch.equal(features, model.encoder(inputs))
        assert torch.equal(model.forward_head(features, pre_logits=True), features)
        assert torch.equal(model(wavs), model.forward_head(features))
        assert torch.equal(model.forward_head(features), model.classifier(features))
        logits, z = model(wavs, output="both")
        assert torch.equal(logits, model(wavs))
        expected_z = F.normalize(model.projection(features), dim=-1)
        assert torch.equal(z, expected_z)
    without = ClarModel(encoder, n_classes=None, widths=SMALL)
    with pytest.raises(ValueError, match="n_classes=None"):
        without.forward_head(without.forward_features(wavs))


def test_model_without_heads_and_bad_encoder():
    model = ClarModel("raw", n_classes=None, widths=SMALL)
    assert model.classifier is None
    with pytest.raises(ValueError, match="n_classes=None"):
        model(torch.randn(2, 2000))
    with pytest.raises(ValueError, match="proj_dim=None"):
        ClarModel("raw", n_classes=2, proj_dim=None, widths=SMALL)(
            torch.randn(2, 2000), output="both"
        )
    with pytest.raises(ValueError, match="encoder"):
        ClarModel("waveform", n_classes=2)


# ----------------------------------------------------------------------------
# Losses


def _nt_xent_loop(z1, z2, temperature):
    """Direct SimCLR NT-Xent: mean over the 2N anchors of -log softmax(positive)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1).double()
    n2 = z.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        positive = (i + n) % n2
        denominator = sum(
            math.exp(float(z[i] @ z[k]) / temperature) for k in range(n2) if k != i
        )
        total += -math.log(
            math.exp(float(z[i] @ z[positive]) / temperature) / denominator
        )
    return total / n2


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_matches_a_loop(temperature):
    z1, z2 = torch.randn(5, 7), torch.randn(5, 7)
    loss = nt_xent_loss(z1, z2, temperature)
    assert abs(float(loss) - _nt_xent_loop(z1, z2, temperature)) < 1e-4


def test_nt_xent_prefers_matched_views_and_checks_inputs():
    z1 = torch.randn(8, 16)
    z2 = z1 + 0.1 * torch.randn(8, 16)
    matched = nt_xent_loss(z1, z2)
    shuffled = nt_xent_loss(z1, z2[torch.roll(torch.arange(8), 1)])
    assert matched < shuffled - 1.0
    with pytest.raises(ValueError, match="temperature"):
        nt_xent_loss(z1, z2, temperature=0.0)
    with pytest.raises(ValueError, match="shape"):
        nt_xent_loss(z1, z2[:4])


def test_labelled_cross_entropy_uses_only_labelled_items():
    logits = torch.randn(6, 4, requires_grad=True)
    targets = torch.tensor([1, 3, 0, 2, 2, 1])
    mask = torch.tensor([True, False, True, False, False, True])
    loss = labelled_cross_entropy(logits, targets, mask)
    assert torch.allclose(loss, F.cross_entropy(logits[mask], targets[mask]))
    loss.backward()
    assert (logits.grad[~mask] == 0).all() and (logits.grad[mask] != 0).any()
    # -1 targets mark unlabelled items when no mask is given
    inferred = labelled_cross_entropy(logits, torch.where(mask, targets, -1))
    assert torch.allclose(inferred, loss)


def test_labelled_cross_entropy_with_nothing_labelled_is_a_differentiable_zero():
    logits = torch.randn(4, 3, requires_grad=True)
    loss = labelled_cross_entropy(logits, torch.full((4,), -1))
    assert float(loss.detach()) == 0.0 and loss.grad_fn is not None
    loss.backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad == 0).all()


def test_labelled_cross_entropy_multilabel():
    logits = torch.randn(5, 6)
    targets = (torch.rand(5, 6) > 0.5).float()
    mask = [True, True, False, True, False]
    loss = labelled_cross_entropy(logits, targets, mask, multilabel=True)
    keep = torch.tensor(mask)
    expected = F.binary_cross_entropy_with_logits(logits[keep], targets[keep])
    assert torch.allclose(loss, expected)
    targets[~keep] = float("nan")  # garbage targets of unlabelled items are ignored
    assert torch.isfinite(
        labelled_cross_entropy(logits, targets, mask, multilabel=True)
    )


# ----------------------------------------------------------------------------
# Label fractions


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.2, 0.5, 1.0])
def test_label_fraction_keeps_the_requested_share(fraction):
    ids = [f"utt{i:04d}" for i in range(1000)]
    labelled = label_fraction_mask(ids, fraction, seed=3)
    assert len(labelled) == round(fraction * 1000)
    assert labelled <= set(ids)


def test_label_fraction_is_deterministic_per_seed_and_nested():
    ids = [f"utt{i}" for i in range(200)]
    first = label_fraction_mask(ids, 0.1, seed=0)
    assert first == label_fraction_mask(list(reversed(ids)), 0.1, seed=0)
    assert first != label_fraction_mask(ids, 0.1, seed=1)
    assert first <= label_fraction_mask(ids, 0.5, seed=0)
    assert len(label_fraction_mask(ids[:10], 0.01, seed=0)) == 1  # never empty


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.01])
def test_label_fraction_out_of_range_raises(fraction):
    with pytest.raises(ValueError, match="label_fraction"):
        label_fraction_mask(["a", "b"], fraction)


def test_label_fraction_rejects_duplicates():
    with pytest.raises(ValueError, match="unique"):
        label_fraction_mask(["a", "a", "b"], 0.5)


# ----------------------------------------------------------------------------
# Training modes


class _CountingAugment(torch.nn.Module):
    """Records how often it is called; adds a little noise."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, wavs):
        self.calls += 1
        return wavs + 0.01 * torch.randn_like(wavs)


HEADS = {
    "supervised": dict(n_classes=3, proj_dim=None),
    "selfsupervised": dict(n_classes=None, proj_dim=128),
    "clar": dict(n_classes=3, proj_dim=128),
}
VIEWS = {"supervised": 1, "selfsupervised": 2, "clar": 2}


@pytest.mark.parametrize("encoder", ["spectrogram", "raw"])
@pytest.mark.parametrize("mode", ["supervised", "selfsupervised", "clar"])
def test_each_mode_trains_a_step(mode, encoder):
    samples = 4000 if encoder == "spectrogram" else 2000
    # the full ResNet18 for CLAR itself, narrow ones for the other modes
    widths = (64, 128, 256, 512) if mode == "clar" else SMALL
    model = ClarModel(encoder, widths=widths, **HEADS[mode])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    wavs = torch.randn(2, samples) * 0.1
    targets = torch.tensor([0, 2])
    augment = _CountingAugment()
    losses = clar_losses(
        model, wavs, torch.ones(2), targets, [True, True], augment, mode=mode
    )
    expected = {"supervised": {"ce"}, "selfsupervised": {"nt_xent"}}.get(
        mode, {"ce", "nt_xent"}
    )
    assert set(losses) == expected | {"loss"}
    assert augment.calls == VIEWS[mode]
    assert torch.isfinite(losses["loss"])
    stem = model.encoder.stem[0].weight
    before = stem.detach().clone()
    optimizer.zero_grad()
    losses["loss"].backward()
    assert stem.grad is not None and stem.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())  # DDP-safe heads
    optimizer.step()
    assert not torch.equal(stem.detach(), before)


def test_clar_loss_is_nt_xent_plus_both_view_cross_entropies():
    model = ClarModel("raw", n_classes=4, widths=SMALL).eval()
    wavs = torch.randn(3, 2000)
    targets = torch.tensor([1, 3, 0])
    labelled = torch.tensor([True, False, True])
    losses = clar_losses(model, wavs, None, targets, labelled, augment=None)
    logits, z = model(wavs, output="both")  # identical views without augment
    per_view = F.cross_entropy(logits[labelled], targets[labelled])
    assert torch.allclose(losses["ce"], 2 * per_view, atol=1e-5)
    assert torch.allclose(losses["nt_xent"], nt_xent_loss(z, z), atol=1e-5)
    assert torch.allclose(losses["loss"], losses["nt_xent"] + losses["ce"])


def test_clar_with_an_unlabelled_batch_is_finite_and_still_learns():
    model = ClarModel("spectrogram", n_classes=3, widths=SMALL)
    augment = AugmentationChain([Fade(prob=1.0), TimeMask(prob=1.0)])
    wavs = torch.randn(3, 2000)
    losses = clar_losses(
        model, wavs, None, torch.full((3,), -1), None, augment, mode="clar"
    )
    assert float(losses["ce"].detach()) == 0.0
    assert torch.isfinite(losses["loss"]) and float(losses["loss"].detach()) > 0
    losses["loss"].backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(torch.isfinite(g).all() for g in grads if g is not None)
    assert any(g.abs().sum() > 0 for g in grads if g is not None)


def test_clar_losses_validates_mode_and_targets():
    model = ClarModel("raw", n_classes=2, widths=SMALL)
    wavs = torch.randn(2, 2000)
    with pytest.raises(ValueError, match="mode"):
        clar_losses(model, wavs, None, torch.tensor([0, 1]), mode="semi")
    with pytest.raises(ValueError, match="targets"):
        clar_losses(model, wavs, mode="clar")


def test_selfsupervised_probe_trains_the_classifier_but_not_the_encoder():
    """Online linear evaluation: CE reaches the classifier only, NT-Xent the encoder."""
    from craft_modules.models.clar import ClarModel, clar_losses

    model = ClarModel("raw", n_classes=3, widths=(8, 8, 16, 16))
    wavs, targets = torch.randn(4, 2000), torch.tensor([0, 2, 1, 1])
    losses = clar_losses(model, wavs, None, targets, mode="selfsupervised")
    assert set(losses) == {"loss", "nt_xent", "probe_ce"}
    losses["probe_ce"].backward()
    assert model.classifier.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.encoder.parameters())


@pytest.mark.parametrize("yaml", ["clar_supervised", "clar", "clar_selfsupervised"])
def test_every_parameter_of_the_yaml_model_learns_in_its_mode(yaml, tmp_path):
    """DDP (find_unused_parameters=False) needs a gradient for every parameter."""
    from pathlib import Path

    from hyperpyyaml import load_hyperpyyaml

    from craft_modules.models.clar import clar_losses

    path = Path(__file__).parents[1] / "recipes" / "ESC50" / "hparams" / f"{yaml}.yaml"
    with open(path, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(
            fin,
            {
                "data_folder": str(tmp_path),
                "output_folder": str(tmp_path),
                "widths": [4, 4, 8, 8],
                "n_classes": 3,
            },
        )
    model = hparams["model"]
    targets = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 1]), 3).float()
    losses = clar_losses(
        model, torch.randn(4, 4000), None, targets, mode=hparams["clar_mode"]
    )
    losses["loss"].backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, unused


# ----------------------------------------------------------------------------
# Views drawn with SpeechBrain's augmenters


class _Recorder(torch.nn.Module):
    """Calls ``inner`` and keeps what it was given (waveforms and lengths)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.seen = []

    def forward(self, wavs, lengths=None, output="logits"):
        self.seen.append((wavs.clone(), lengths))
        if isinstance(self.inner, ClarModel):
            return self.inner(wavs, lengths, output=output)
        return self.inner(wavs, lengths)


def _drop_chunk(length=400):
    from speechbrain.augment.time_domain import DropChunk

    return DropChunk(
        drop_length_low=length,
        drop_length_high=length,
        drop_count_low=1,
        drop_count_high=1,
    )


def test_clar_views_come_from_a_speechbrain_augmenter_with_the_lengths():
    from speechbrain.augment.augmenter import Augmenter

    model = _Recorder(ClarModel("raw", n_classes=3, widths=SMALL))
    wavs = torch.rand(4, 2000) + 0.5  # no zero sample
    lens = torch.full((4,), 0.5)  # DropChunk drops inside the first 1000 only
    augmenter = Augmenter(augmentations=[_drop_chunk()])  # returns (wavs, lengths)
    losses = clar_losses(model, wavs, lens, torch.tensor([0, 1, 2, 0]), None, augmenter)
    assert torch.isfinite(losses["loss"])
    ((views, view_lens),) = model.seen  # both views in one forward
    assert views.shape == (8, 2000) and torch.equal(view_lens, torch.cat([lens, lens]))
    assert ((views == 0).sum(dim=1) == 400).all()  # every clip of both views
    assert torch.equal(views[:, 1000:], torch.cat([wavs, wavs])[:, 1000:])
    assert not torch.equal(views[:4], views[4:])  # two independent views


def test_clar_views_must_keep_the_batch_shape():
    from speechbrain.augment.time_domain import SpeedPerturb

    model = ClarModel("raw", n_classes=3, widths=SMALL)
    slower = SpeedPerturb(orig_freq=SR, speeds=[90])
    with pytest.raises(ValueError, match="keep the batch's shape"):
        clar_losses(
            model, torch.randn(2, 2000), None, torch.tensor([0, 1]), None, slower
        )


def _clar_brain(augmentation):
    from craft_modules.training.clar_brain import ClarBrain

    return ClarBrain(
        modules={"model": ClarModel("raw", n_classes=3, widths=SMALL)},
        hparams={
            "augmentation": augmentation,
            "clar_mode": "clar",
            "temperature": 0.5,
            "loss": "ce",
            "label_fraction": 1.0,
            "seed": 1,
        },
        run_opts={"device": "cpu"},
    )


def test_clar_brain_view_applies_the_yaml_augmentation():
    from speechbrain.augment.augmenter import Augmenter

    wavs = torch.rand(4, 2000) + 0.5
    view = _clar_brain(_drop_chunk()).view(wavs, torch.ones(4))
    assert view.shape == wavs.shape and not torch.equal(view, wavs)
    assert ((view == 0).sum(dim=1) == 400).all()
    assert _clar_brain(None).view(wavs, torch.ones(4)) is wavs
    concat = Augmenter(concat_original=True, augmentations=[_drop_chunk()])
    with pytest.raises(ValueError, match="concat_original=True"):
        _clar_brain(concat).view(wavs, torch.ones(4))


def test_clar_brain_training_step_draws_two_views_with_the_batch_lengths():
    import speechbrain as sb

    augmentation = _Recorder(_drop_chunk())
    brain = _clar_brain(augmentation)
    brain.labelled_ids = {"a", "b", "c"}
    lens = torch.tensor([1.0, 0.75, 0.5])

    class Batch:
        id = ["a", "b", "c"]
        sig = (torch.rand(3, 2000) + 0.5, lens)
        targets = torch.eye(3)

        def to(self, device, **kwargs):
            return self

    losses = brain.compute_forward(Batch(), sb.Stage.TRAIN)
    assert torch.isfinite(losses["loss"])
    assert len(augmentation.seen) == 2
    assert all(torch.equal(seen_lens, lens) for _, seen_lens in augmentation.seen)


def test_clar_brain_puts_the_augmentation_on_its_device():
    # The augmentation is not one of the Brain's modules: without the move its
    # buffers stay on the CPU and are copied to the GPU, blocking, every step.
    from craft_modules.augment.waveform import AugmentationChain, ColouredNoise, Fade

    chain = AugmentationChain([Fade(prob=1.0), ColouredNoise(prob=1.0)])
    moved = []

    def record(module):
        original = module._apply

        def _apply(fn, *args, **kwargs):
            moved.append(fn(torch.zeros(1)).device)
            return original(fn, *args, **kwargs)

        module._apply = _apply

    record(chain)
    brain = _clar_brain(chain)
    brain.on_fit_start()
    assert moved and all(device == torch.device(brain.device) for device in moved)
    assert {b.device for b in chain.buffers()} == {torch.device(brain.device)}
    _clar_brain(None).on_fit_start()  # no augmentation: nothing to move
