"""Tests for the diverse-embedding feature streams and models.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import math

import pytest
import torch
import torchaudio

from craft_modules.features.diverse_streams import (
    STREAMS,
    Neuralogram,
    PitchPeaks,
    Timbre,
    WaveformPatches,
)
from craft_modules.models.diverse import DiverseEmbeddingModel, StreamTransformer
from craft_modules.weights import initialise
from craft_modules.weights.streams import (
    load_neuralogram,
    load_stream_checkpoints,
    load_stream_state,
)

SR = 16000
TINY = dict(embed_dim=16, depth=1, num_heads=2)
SMALL_NEURALOGRAM = {"neuralogram": {"width": 4, "embedding_dim": 16}}


def _tiny_model(streams=("timbre", "waveform"), chunk_seconds=0.25, **kwargs):
    options = {k: v for k, v in SMALL_NEURALOGRAM.items() if k in streams}
    kwargs.setdefault("stream_options", options)
    return DiverseEmbeddingModel(
        n_classes=3,
        streams=list(streams),
        chunk_seconds=chunk_seconds,
        sample_rate=SR,
        **TINY,
        **kwargs,
    )


# ---------------------------------------------------------------- feature streams
def test_pitch_peaks_of_a_chord_land_on_its_notes():
    notes = [220.0, 277.18, 329.63]  # A3, C#4, E4
    t = torch.arange(SR) / SR
    # A loud root: its main lobe's side bins are stronger than the quiet notes'
    # peaks, so only true local maxima put the quiet notes in the top 3.
    amplitudes = [0.6, 0.2, 0.2]
    chord = sum(a * torch.sin(2 * math.pi * f * t) for a, f in zip(amplitudes, notes))
    peaks = PitchPeaks(sample_rate=SR, n_fft=4096, top_k=3)
    out = peaks(chord[None])[0]
    assert out.shape == (peaks.num_frames(SR), peaks.feature_dim)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    expected = {round(f * 4096 / SR) for f in notes}
    for frame in out[30:70]:  # frames whose 256 ms window lies inside the chord
        bins = set(torch.nonzero(frame).flatten().tolist())
        assert bins == expected
    # With more peaks allowed, the notes are still picked, plus at most 2 more.
    out5 = PitchPeaks(sample_rate=SR, top_k=5)(chord[None])[0]
    assert (out5[30:70].sum(dim=1) <= 5).all()
    assert out5[30:70][:, sorted(expected)].all()


def test_pitch_peaks_frequency_range_and_silence():
    t = torch.arange(SR) / SR
    tone = torch.sin(2 * math.pi * 1000 * t) + torch.sin(2 * math.pi * 3000 * t)
    peaks = PitchPeaks(top_k=1, f_min=2000, f_max=4000)
    out = peaks(tone[None])[0, 50]
    assert float(peaks.frequencies[0]) >= 2000
    assert float(peaks.frequencies[-1]) <= 4000
    assert float(peaks.frequencies[out.argmax()]) == pytest.approx(3000, abs=4)
    silent = peaks(torch.zeros(1, SR))
    assert silent.sum() == 0


def test_timbre_matches_torchaudio_mfcc_and_dct_of_log_mel():
    wavs = torch.randn(3, 8000) * 0.1
    timbre = Timbre(n_mfcc=12, sample_rate=SR)
    out = timbre(wavs)
    assert out.shape == (3, timbre.num_frames(8000), 12)
    reference = torchaudio.transforms.MFCC(
        sample_rate=SR, n_mfcc=13, log_mels=True, melkwargs=timbre.melkwargs
    )
    for clip in range(3):  # batched == per clip, c0 dropped
        expected = reference(wavs[clip]).T[:, 1:]
        torch.testing.assert_close(out[clip], expected, rtol=1e-4, atol=1e-4)
    # Independent check: orthonormal DCT-II of the natural-log mel energies.
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=SR, **timbre.melkwargs)
    log_mel = torch.log(mel(wavs) + 1e-6).transpose(1, 2)  # (B, T, 40)
    n = log_mel.shape[-1]
    k = torch.arange(13)[:, None]
    m = torch.arange(n)[None]
    dct = torch.cos(math.pi / n * (m + 0.5) * k) * math.sqrt(2.0 / n)
    dct[0] /= math.sqrt(2.0)
    torch.testing.assert_close(out, (log_mel @ dct.T)[..., 1:], rtol=1e-3, atol=1e-3)
    keep_c0 = Timbre(drop_c0=False)(wavs)
    torch.testing.assert_close(keep_c0[..., 1:], out[..., :11])


def test_waveform_patches_cut_the_signal_in_order():
    wav = torch.arange(1000, dtype=torch.float32)[None]
    patches = WaveformPatches(sample_rate=SR, patch_ms=25)
    out = patches(wav)
    assert out.shape == (1, 3, 400)
    assert out[0, 1, 0] == 400 and out[0, 2, 199] == 999
    assert (out[0, 2, 200:] == 0).all()  # the end is zero-padded
    overlapping = WaveformPatches(sample_rate=SR, patch_ms=25, hop_ms=12.5)
    assert overlapping(wav).shape[1] == overlapping.num_frames(1000) == 4


def test_neuralogram_windows_and_checkpoint(tmp_path):
    neuralogram = Neuralogram(width=4, embedding_dim=8)
    out = neuralogram(torch.randn(2, SR))
    assert out.shape == (2, 9, 8) == (2, neuralogram.num_frames(SR), 8)
    assert any(p.requires_grad for p in neuralogram.parameters())
    path = tmp_path / "neuralogram.pt"
    torch.save(neuralogram.state_dict(), path)
    loaded = Neuralogram(width=4, embedding_dim=8)
    load_neuralogram(loaded, str(path))
    neuralogram.eval(), loaded.eval()
    wav = torch.randn(1, SR)
    torch.testing.assert_close(loaded(wav), neuralogram(wav))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_neuralogram(loaded, str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="neuralogram.pt"):
        load_neuralogram(Neuralogram(width=8, embedding_dim=8), str(path))


def test_neuralogram_checkpoint_is_loaded_by_the_loading_step_not_the_model(tmp_path):
    cnn = Neuralogram(width=4, embedding_dim=16)
    path = tmp_path / "cnn.pt"
    torch.save(cnn.state_dict(), path)
    with pytest.raises(ValueError, match="neuralogram_checkpoint"):
        _tiny_model(
            ("neuralogram",),
            stream_options={
                "neuralogram": {
                    **SMALL_NEURALOGRAM["neuralogram"],
                    "checkpoint_path": str(path),
                }
            },
        )
    model = _tiny_model(("timbre", "neuralogram"), freeze_streams=True)
    assert not torch.equal(
        model.streams.neuralogram.feature.cnn[0].weight, cnn.cnn[0].weight
    )
    report = initialise(model, neuralogram_checkpoint=str(path))
    feature = model.streams.neuralogram.feature
    for key, value in cnn.state_dict().items():
        assert torch.equal(feature.state_dict()[key], value), key
    assert "streams.neuralogram.feature.cnn.0.weight" in report.loaded
    assert not any(p.requires_grad for p in model.streams.parameters())  # still frozen
    # A model without a neuralogram stream ignores it (ablation), a CRAFT model refuses it.
    assert (
        initialise(_tiny_model(("timbre",)), neuralogram_checkpoint=str(path)).loaded
        == []
    )
    from craft_modules.models.craft import CraftClassifier

    with pytest.raises(ValueError, match="diverse model only"):
        initialise(
            CraftClassifier(
                2, fusion="ast", model_size="tiny", depth=1, target_frames=48
            ),
            neuralogram_checkpoint=str(path),
        )


def test_stream_registry_gives_frame_counts_that_match_outputs():
    wavs = torch.randn(1, 4000)
    for name, cls in STREAMS.items():
        options = {"width": 4, "embedding_dim": 8} if name == "neuralogram" else {}
        feature = cls(sample_rate=SR, **options)
        out = feature(wavs)
        assert out.shape == (1, feature.num_frames(4000), feature.feature_dim), name
        frames = feature.num_frames(torch.tensor([4000, 1000]))
        assert frames[0] == out.shape[1] and frames[1] <= frames[0], name


# ----------------------------------------------------------------------- models
def test_stream_transformer_pools_only_valid_frames():
    stream = StreamTransformer(WaveformPatches(), max_frames=10, **TINY).eval()
    wavs = torch.randn(1, 4000)
    padded = torch.cat([wavs, torch.randn(1, 4000)], dim=1)
    # Only frames of the true length are averaged: the padding content is
    # seen by attention but the first half's frames are pooled; check the
    # pooled frames are exactly those.
    feats = stream.feature(padded)
    tokens = stream.encoder(stream.proj(stream.norm(feats)) + stream.positions(20))
    expected = tokens[:, :10].mean(dim=1)
    torch.testing.assert_close(stream(padded, torch.tensor([0.5])), expected)
    assert stream(torch.randn(2, 16000)).shape == (2, 16)  # 40 frames > max_frames


def _by_hand(model, wav):
    """Clip logits and embedding computed chunk by chunk, one chunk at a time."""
    size = model.chunk_samples
    logits, embeddings = [], []
    for start in range(0, wav.shape[0], size):
        piece = wav[start : start + size]
        chunk = torch.nn.functional.pad(piece, (0, size - piece.shape[0]))[None]
        rel = torch.tensor([piece.shape[0] / size])
        emb = torch.cat([model.streams[n](chunk, rel) for n in model.stream_names], -1)
        embeddings.append(emb)
        logits.append(model.head(emb))
    return torch.cat(logits).mean(0), torch.cat(embeddings).mean(0), len(logits)


def test_clip_output_is_the_mean_of_chunk_predictions_by_hand():
    model = _tiny_model(("timbre", "waveform", "pitch")).eval()
    size = model.chunk_samples  # 4000
    lengths = [2 * size, int(2.5 * size), int(0.3 * size)]  # whole, partial, short
    wavs = torch.zeros(3, max(lengths))
    clips = [torch.randn(n) * 0.1 for n in lengths]
    for i, clip in enumerate(clips):
        wavs[i, : len(clip)] = clip
        wavs[i, len(clip) :] = 5.0  # garbage past the true length must be ignored
    lens = torch.tensor(lengths, dtype=torch.float32) / max(lengths)
    with torch.no_grad():
        logits = model(wavs, lens)
        embedding = model.forward_head(
            model.forward_features(wavs, lens), pre_logits=True
        )
        chunk_logits, valid = model.chunk_logits(wavs, lens)
        assert valid.sum(dim=1).tolist() == [2, 3, 1]  # short clip padded, kept
        for i, clip in enumerate(clips):
            hand_logits, hand_embedding, n_chunks = _by_hand(model, clip)
            torch.testing.assert_close(logits[i], hand_logits, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(
                embedding[i], hand_embedding, rtol=1e-4, atol=1e-5
            )
            torch.testing.assert_close(
                chunk_logits[i, valid[i]].mean(0), hand_logits, rtol=1e-4, atol=1e-5
            )
            alone = model(clip[None])  # same clip alone in its own batch
            torch.testing.assert_close(alone[0], logits[i], rtol=1e-4, atol=1e-5)
    assert embedding.shape == (3, model.head_input_dim)


def test_head_input_size_and_stream_validation():
    full = _tiny_model(("pitch", "timbre", "waveform", "neuralogram"))
    fewer = _tiny_model(("pitch", "timbre", "waveform"))
    assert full.head_input_dim - fewer.head_input_dim == 16
    assert full.head.in_features == 4 * 16 and fewer.head.in_features == 3 * 16
    default = DiverseEmbeddingModel(n_classes=2, depth=0)
    assert default.head_input_dim == 4 * 64
    assert default.stream_names == ["pitch", "timbre", "waveform", "neuralogram"]
    assert (
        DiverseEmbeddingModel(2, streams=["timbre"], depth=0).head_input_dim
        == default.head_input_dim - 3 * 64
    )
    with pytest.raises(ValueError, match="streams is empty"):
        _tiny_model(())
    with pytest.raises(ValueError, match="unknown stream"):
        _tiny_model(("timbre", "loudness"))
    with pytest.raises(ValueError, match="names unknown stream"):
        _tiny_model(("timbre",), stream_options={"pitchh": {"top_k": 3}})
    ablation = _tiny_model(("timbre",), stream_options=SMALL_NEURALOGRAM)
    assert ablation.stream_names == ["timbre"]  # unused options are ignored


def test_frozen_streams_stay_fixed_while_the_head_learns():
    model = _tiny_model(("timbre", "neuralogram"), freeze_streams=True).train()
    assert not any(p.requires_grad for p in model.streams.parameters())
    assert not model.streams.training and model.head.training
    streams_before = {k: v.clone() for k, v in model.streams.state_dict().items()}
    head_before = model.head.weight.detach().clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], 0.5)
    loss = model(torch.randn(2, 6000)).square().mean()
    loss.backward()
    optimizer.step()
    for key, value in model.streams.state_dict().items():  # BN statistics too
        assert torch.equal(value, streams_before[key]), key
    assert not torch.equal(model.head.weight, head_before)


def test_stream_checkpoints_round_trip(tmp_path):
    single = _tiny_model(("timbre",))
    path = tmp_path / "model.ckpt"
    torch.save(single.state_dict(), path)
    combined = _tiny_model(("timbre", "waveform"))
    load_stream_checkpoints(combined, {"timbre": str(path)})
    for key, value in single.streams["timbre"].state_dict().items():
        assert torch.equal(combined.streams["timbre"].state_dict()[key], value), key
    assert load_stream_state(str(path), "timbre").keys() == (
        single.streams["timbre"].state_dict().keys()
    )
    with pytest.raises(ValueError, match="no weights for stream 'waveform'"):
        load_stream_checkpoints(_tiny_model(("waveform",)), {"waveform": str(path)})
    with pytest.raises(FileNotFoundError, match="nothing.ckpt"):
        load_stream_checkpoints(
            _tiny_model(("timbre",)), {"timbre": str(tmp_path / "nothing.ckpt")}
        )
    with pytest.raises(ValueError, match="unknown stream 'pich'"):
        load_stream_checkpoints(_tiny_model(("timbre",)), {"pich": str(path)})
    # A stream dropped for an ablation: its checkpoint entry is ignored.
    dropped = _tiny_model(("timbre",))
    assert load_stream_checkpoints(dropped, {"pitch": "/not/there"}) == []
    wider = DiverseEmbeddingModel(
        3, streams=["timbre"], embed_dim=8, depth=1, num_heads=2
    )
    with pytest.raises(ValueError, match="does not match stream 'timbre'"):
        load_stream_checkpoints(wider, {"timbre": str(path)})


def test_the_model_reads_no_file_and_frozen_streams_stay_frozen_once_loaded(tmp_path):
    import inspect

    assert (
        "stream_checkpoints" not in inspect.signature(DiverseEmbeddingModel).parameters
    )
    assert "checkpoint_path" not in inspect.signature(Neuralogram).parameters
    stage1 = _tiny_model(("timbre",))
    path = tmp_path / "model.ckpt"
    torch.save(stage1.state_dict(), path)
    stage2 = _tiny_model(("timbre", "waveform"), freeze_streams=True)
    report = initialise(stage2, stream_checkpoints={"timbre": str(path)})
    assert report.loaded and all(k.startswith("streams.timbre.") for k in report.loaded)
    assert not any(p.requires_grad for p in stage2.streams.parameters())
    assert all(p.requires_grad for p in stage2.head.parameters())
    stage2.train()
    assert not stage2.streams.training and stage2.head.training


def test_training_step_of_the_full_model_reaches_every_stream():
    model = _tiny_model(("pitch", "timbre", "waveform", "neuralogram")).train()
    wavs = torch.randn(3, 9000) * 0.1
    lens = torch.tensor([1.0, 0.6, 0.2])
    targets = torch.tensor([[1.0, 0, 1], [0, 1, 0], [0, 0, 1]])
    logits = model(wavs, lens)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    loss.backward()
    assert torch.isfinite(loss)
    for name in model.stream_names:
        grads = [p.grad for p in model.streams[name].parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name
    assert model.head.weight.grad is not None


def test_time_embeddings_are_the_chunk_embeddings_at_their_centres():
    model = DiverseEmbeddingModel(
        3,
        streams=["timbre", "waveform"],
        embed_dim=8,
        depth=1,
        num_heads=2,
        chunk_seconds=0.25,
    ).eval()
    wavs, lens = torch.randn(2, 8000), torch.tensor([1.0, 0.3])
    with torch.no_grad():
        emb, centres = model.time_embeddings(wavs, lens)
        # The second clip's 2400 samples fill one 4000-sample chunk; its
        # padding row repeats that chunk.
        alone = model.time_embeddings(wavs[1:, :2400])[0]
    assert emb.shape == (2, 2, 16) and centres.tolist() == [0.125, 0.375]
    assert torch.allclose(emb[1], alone[0], atol=1e-5)
    full_mean = model.forward_head(model.forward_features(wavs[:1]), pre_logits=True)
    assert torch.allclose(emb[0].mean(dim=0), full_mean[0], atol=1e-5)


@pytest.mark.parametrize("train", [True, False])
def test_forward_is_the_head_on_the_features(train):
    """forward == forward_head(forward_features(...)); the pooled embedding is the
    mean of the valid chunks' stream embeddings, computed here with the model's
    own chunking and streams (the former ``output="embedding"``)."""
    torch.manual_seed(0)
    model = _tiny_model(("timbre", "waveform")).train(train)
    wavs, lens = torch.randn(3, 9000) * 0.1, torch.tensor([1.0, 0.5, 0.1])
    with torch.no_grad():
        features = model.forward_features(wavs, lens)
        embeddings, valid = features
        assert embeddings.shape == (3, 3, model.head_input_dim)
        assert valid.sum(dim=1).tolist() == [3, 2, 1]
        assert torch.equal(model(wavs, lens), model.forward_head(features))
        chunks, chunk_lens, valid_ref = model.chunk(wavs, lens)
        per_chunk = model.embed_chunks(chunks, chunk_lens)
        counts = valid_ref.sum(dim=1).tolist()
        expected = torch.stack([c.mean(0) for c in per_chunk.split(counts)])
        pooled = model.forward_head(features, pre_logits=True)
        torch.testing.assert_close(pooled, expected, rtol=1e-4, atol=1e-5)
        assert torch.equal(embeddings[~valid], torch.zeros_like(embeddings[~valid]))
        chunk_logits, valid_chunks = model.chunk_logits(wavs, lens)
        assert torch.equal(valid_chunks, valid)
        torch.testing.assert_close(
            chunk_logits[valid], model.head(per_chunk), rtol=1e-4, atol=1e-5
        )
        assert torch.equal(chunk_logits[~valid], torch.zeros_like(chunk_logits[~valid]))
