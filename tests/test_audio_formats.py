"""Audio formats read through an optional decoder (.opus, .m4a, .webm).

The logic is tested with the decoder discovery monkeypatched (a fake decoder,
or none), so these tests need neither torchcodec nor ffmpeg; the round trip
through a real decoder runs where ffmpeg is installed.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from craft_modules.data import decoders
from craft_modules.data.audio import (
    AUDIO_EXTENSIONS,
    AudioLoadError,
    AudioReader,
    find_audio_files,
    get_resampler,
    load_audio,
    probe_audio,
)
from craft_modules.data.preparation import PreparationSummary, is_prepared
from craft_modules.testing.scripts import load_script
from craft_modules.testing.synth import make_esc50

RATE, CHANNELS, SECONDS = 48000, 2, 1.5


def _signal():
    """A stereo 1.5 s, 48 kHz signal: a ramp on the left, its negative halved on the right."""
    left = np.linspace(-0.5, 0.5, int(RATE * SECONDS), dtype=np.float32)
    return np.stack([left, -0.5 * left], axis=1)


class FakeDecoder:
    """Decodes every file as :func:`_signal`, recording the calls."""

    name = "fake"

    def __init__(self):
        self.calls = []

    def info(self, path):
        self.calls.append(("info", path))
        return RATE, int(RATE * SECONDS), CHANNELS

    def read(self, path, offset, duration):
        self.calls.append(("read", path, offset, duration))
        data = _signal()[int(round(offset * RATE)) :]
        if duration is not None:
            data = data[: math.ceil(duration * RATE)]
        return data, RATE


def _not_audio(path):
    """A non-empty file soundfile cannot read."""
    Path(path).write_bytes(b"\x00\x01not audio at all" * 64)
    return str(path)


@pytest.fixture
def fake_decoder(monkeypatch):
    decoder = FakeDecoder()
    monkeypatch.setattr(decoders, "find_decoder", lambda: decoder)
    return decoder


@pytest.fixture
def no_decoder(monkeypatch):
    monkeypatch.setattr(decoders, "find_decoder", lambda: None)


def test_extensions_are_listed(tmp_path):
    for name in ("a.opus", "b.M4A", "c.webm", "d.wav", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert {".opus", ".m4a", ".webm"} <= set(AUDIO_EXTENSIONS)
    names = [Path(p).name for p in find_audio_files(str(tmp_path))]
    assert names == ["a.opus", "b.M4A", "c.webm", "d.wav"]


def test_fake_decoder_reads_an_opus_path(tmp_path, fake_decoder):
    path = _not_audio(tmp_path / "clip.opus")
    wav = load_audio(path, sample_rate=16000)
    expected = get_resampler(RATE, 16000)(torch.from_numpy(_signal()).mean(dim=1))
    assert wav.shape == (24000,)
    torch.testing.assert_close(wav, expected)
    assert fake_decoder.calls == [("read", path, 0.0, None)]

    # offset and duration reach the decoder; the clip is padded to duration
    clip = load_audio(path, sample_rate=16000, offset=1.0, duration=1.0)
    assert fake_decoder.calls[-1] == ("read", path, 1.0, 1.0)
    assert clip.shape == (16000,)
    assert clip[8000:].abs().max() == 0 and clip[:7000].abs().min() > 0

    info = probe_audio(path)
    assert (info.sample_rate, info.frames, info.channels) == (RATE, 72000, 2)
    assert info.duration == pytest.approx(SECONDS)


def test_without_decoder_the_error_names_the_extra(tmp_path, no_decoder):
    path = _not_audio(tmp_path / "clip.m4a")
    for read in (load_audio, probe_audio):
        with pytest.raises(AudioLoadError) as err:
            read(path)
        assert err.value.reason == "needs_decoder"
        assert "clip.m4a" in str(err.value) and "decoder for .m4a" in str(err.value)
        assert "craft-modules[formats]" in str(err.value) and "ffmpeg" in str(err.value)
    # training: the clip is skipped (None) instead of stopping the run
    assert AudioReader(16000, duration=1.0)(path) is None
    # an unreadable file of a soundfile format stays "unreadable"
    with pytest.raises(AudioLoadError) as err:
        load_audio(_not_audio(tmp_path / "clip.wav"))
    assert err.value.reason == "unreadable"


def test_decoder_failure_is_unreadable(tmp_path, monkeypatch):
    class Broken(FakeDecoder):
        def read(self, path, offset, duration):
            raise decoders.DecoderError("Invalid data found when processing input")

    monkeypatch.setattr(decoders, "find_decoder", Broken)
    with pytest.raises(AudioLoadError) as err:
        load_audio(_not_audio(tmp_path / "clip.webm"))
    assert err.value.reason == "unreadable" and "fake: Invalid data" in str(err.value)


def _esc50_with_one_m4a(root):
    """A 2-class synthetic ESC-50 whose first clip exists only as ``.m4a``."""
    rows = make_esc50(str(root), n_classes=2, clips_per_class=5, duration=0.2)
    first = root / "audio" / rows[0]["filename"]
    first.unlink()
    _not_audio(first.with_suffix(".m4a"))
    return rows[0]["filename"][:-4]


def test_esc50_preparation_skips_and_reports_without_decoder(tmp_path, no_decoder):
    prep = load_script("recipes/ESC50/esc50_prepare.py", "esc50_prep_fmt")
    clip_id = _esc50_with_one_m4a(tmp_path / "ESC-50")
    out = prep.prepare_esc50(str(tmp_path / "ESC-50"), str(tmp_path / "save"))
    summary = json.loads(Path(out["summary"]).read_text())
    assert summary["skipped"] == {"needs_decoder": 1}
    assert "craft-modules[formats]" in summary["hints"]["needs_decoder"]
    (item,) = summary["skipped_items"]
    assert item["id"] == clip_id and "decoder for .m4a" in item["detail"]
    assert len(json.loads(Path(out["manifest"]).read_text())) == 9


def test_esc50_preparation_reads_through_the_decoder(tmp_path, fake_decoder):
    prep = load_script("recipes/ESC50/esc50_prepare.py", "esc50_prep_fmt2")
    clip_id = _esc50_with_one_m4a(tmp_path / "ESC-50")
    out = prep.prepare_esc50(str(tmp_path / "ESC-50"), str(tmp_path / "save"))
    manifest = json.loads(Path(out["manifest"]).read_text())
    assert len(manifest) == 10
    assert manifest[clip_id]["wav"].endswith(f"{clip_id}.m4a")
    assert manifest[clip_id]["duration"] == pytest.approx(SECONDS)


def test_preparation_is_redone_when_a_decoder_appears(tmp_path, monkeypatch):
    from craft_modules.atomic_files import write_json_atomic
    from craft_modules.data.preparation import mark_prepared

    out, marker = str(tmp_path / "m.json"), str(tmp_path / "opts.json")
    write_json_atomic({}, out)
    monkeypatch.setattr(decoders, "find_decoder", lambda: None)
    skipped = PreparationSummary("x")
    skipped.skip("s", "a", "needs_decoder", "a.m4a")
    mark_prepared(marker, {"a": 1}, skipped)
    assert is_prepared(marker, {"a": 1}, [out])
    monkeypatch.setattr(decoders, "find_decoder", FakeDecoder)
    assert not is_prepared(marker, {"a": 1}, [out])
    # Nothing skipped for want of a decoder: installing one redoes nothing.
    mark_prepared(marker, {"a": 1}, PreparationSummary("x"))
    assert is_prepared(marker, {"a": 1}, [out])


def test_summary_hint_is_written_once():
    summary = PreparationSummary("x")
    summary.skip("s", "a", "needs_decoder", "a.opus")
    summary.skip("s", "b", "needs_decoder", "b.webm")
    summary.skip("s", "c", "missing_audio", "c.wav")
    assert list(summary.to_dict()["hints"]) == ["needs_decoder"]


def test_decoder_discovery(monkeypatch):
    monkeypatch.setattr(decoders, "_FOUND", {})
    monkeypatch.setenv(decoders.DECODER_ENV, "none")
    assert decoders.find_decoder() is None
    monkeypatch.setenv(decoders.DECODER_ENV, "ffmpeg")
    monkeypatch.setattr(decoders.shutil, "which", lambda name: f"/opt/bin/{name}")
    assert decoders.find_decoder().ffprobe == "/opt/bin/ffprobe"
    monkeypatch.setenv(decoders.DECODER_ENV, "vlc")
    with pytest.raises(ValueError, match="CRAFT_AUDIO_DECODER='vlc'"):
        decoders.find_decoder()
    # first available: no torchcodec, no ffmpeg -> None
    monkeypatch.delenv(decoders.DECODER_ENV)
    monkeypatch.setattr(decoders.TorchCodecDecoder, "find", classmethod(lambda c: None))
    monkeypatch.setattr(decoders.shutil, "which", lambda name: None)
    assert decoders.find_decoder() is None


def test_ffmpeg_decoder_commands_and_parsing(monkeypatch):
    """The ffprobe / ffmpeg command lines and the float32 pipe, with subprocess faked."""
    commands = []
    pcm = _signal()[: int(RATE * 0.5)]

    def run(command, capture_output, check):
        commands.append(command)
        if command[0] == "ffprobe":
            stream = {"sample_rate": str(RATE), "channels": CHANNELS}
            out = json.dumps({"streams": [stream], "format": {"duration": "1.5"}})
            return subprocess.CompletedProcess(command, 0, out.encode(), b"")
        if "missing.webm" in command:
            return subprocess.CompletedProcess(command, 1, b"", b"x\nNo such file")
        return subprocess.CompletedProcess(command, 0, pcm.tobytes(), b"")

    monkeypatch.setattr(decoders.subprocess, "run", run)
    decoder = decoders.FFmpegDecoder("ffmpeg", "ffprobe")
    assert decoder.info("a.webm") == (RATE, 72000, 2)
    data, rate = decoder.read("a.webm", 1.0, 0.5)
    assert rate == RATE and data.dtype == np.float32
    np.testing.assert_array_equal(data, pcm)
    ffmpeg = commands[-1]
    assert ffmpeg[ffmpeg.index("-ss") + 1] == "1.0" and ffmpeg.index("-ss") < (
        ffmpeg.index("-i")
    )
    assert ffmpeg[ffmpeg.index("-t") + 1] == "0.5"
    assert ffmpeg[ffmpeg.index("-f") + 1] == "f32le"
    assert ffmpeg[ffmpeg.index("-ac") + 1] == "2"
    with pytest.raises(decoders.DecoderError, match="No such file"):
        decoder.read("missing.webm", 0.0, None, rate=RATE, channels=2)


def _ffmpeg_write(path, codec_args, rate, seconds):
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi"]
        + ["-i", f"sine=frequency=440:sample_rate={rate}:duration={seconds}"]
        + ["-ac", "2", *codec_args, str(path)],
        check=True,
    )
    return str(path)


def _real_decoders():
    found = [decoders.FFmpegDecoder.find(), decoders.TorchCodecDecoder.find()]
    return [decoder for decoder in found if decoder is not None]


@pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="ffmpeg writes the test files"
)
@pytest.mark.parametrize("name", [".opus", ".m4a", ".webm"])
def test_real_round_trip(tmp_path, name):
    """A file written by ffmpeg decodes to its length and rate, by every decoder found."""
    rate = 44100 if name == ".m4a" else 48000
    codec = ["-c:a", "aac"] if name == ".m4a" else ["-c:a", "libopus"]
    path = _ffmpeg_write(tmp_path / f"tone{name}", codec, rate, 1.5)
    for decoder in _real_decoders():
        file_rate, frames, channels = decoder.info(path)
        assert (file_rate, channels) == (rate, 2), decoder.name
        assert abs(frames / rate - 1.5) < 0.03, decoder.name
        data, got_rate = decoder.read(path, 0.5, 0.5)
        assert got_rate == rate and data.shape[1] == 2, decoder.name
        assert abs(data.shape[0] - rate // 2) <= rate // 100, decoder.name
    wav = load_audio(path, sample_rate=16000, offset=0.25, duration=1.0)
    assert wav.shape == (16000,) and wav.abs().max() > 0.05  # sine amplitude 1/8
    assert probe_audio(path).duration == pytest.approx(1.5, abs=0.03)
