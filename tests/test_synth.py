"""Tests for craft_modules.testing.synth: determinism, classes, dataset layouts.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import csv
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from craft_modules.testing.synth import (
    SOUND_CLASSES,
    class_names,
    make_audioset,
    make_esc50,
    synth_clip,
)

SR = 16000


def _files(root):
    """{relative path: bytes} of every file under root."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            out[os.path.relpath(path, root)] = path.read_bytes()
    return out


def _centroid(x, sample_rate=SR):
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / sample_rate)
    return float((spectrum * freqs).sum() / spectrum.sum())


def _class(name):
    return [n for n, _, _ in SOUND_CLASSES].index(name)


def test_same_seed_gives_identical_files_other_seed_differs(tmp_path):
    kwargs = {"n_classes": 3, "clips_per_class": 5, "duration": 0.3}
    make_esc50(str(tmp_path / "a"), seed=1, **kwargs)
    make_esc50(str(tmp_path / "b"), seed=1, **kwargs)
    make_esc50(str(tmp_path / "c"), seed=2, **kwargs)
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert len(a) == 16 and a == b
    assert a.keys() == c.keys()
    audio = [k for k in a if k.endswith(".wav")]
    assert all(a[k] != c[k] for k in audio)


def test_audioset_is_deterministic(tmp_path):
    kwargs = {"n_balanced": 4, "n_eval": 2, "duration": 0.3, "n_corrupt": 1}
    make_audioset(str(tmp_path / "a"), seed=3, **kwargs)
    make_audioset(str(tmp_path / "b"), seed=3, **kwargs)
    make_audioset(str(tmp_path / "c"), seed=4, **kwargs)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a") != _files(tmp_path / "c")


def test_every_class_makes_a_distinct_valid_clip():
    clips = [synth_clip(c, SR, 1.0, seed=[7, c]) for c in range(len(SOUND_CLASSES))]
    assert len(SOUND_CLASSES) >= 10
    assert len({name for name, _, _ in SOUND_CLASSES}) == len(SOUND_CLASSES)
    for clip in clips:
        assert clip.shape == (SR,) and clip.dtype == np.float32
        assert np.isfinite(clip).all()
        assert 0.005 < np.sqrt(np.mean(clip**2)) and np.abs(clip).max() <= 0.95
    for i in range(len(clips)):
        for j in range(i + 1, len(clips)):
            assert not np.allclose(clips[i], clips[j])


def _event(class_name, seed):
    """A clip with little background: a short high-SNR render of one class."""
    return synth_clip(_class(class_name), SR, 2.0, seed=seed)


def test_chirps_differ_by_direction():
    for seed in range(3):
        for name, sign in (("chirp_up", 1), ("chirp_down", -1)):
            x = _event(name, seed)
            active = np.flatnonzero(np.abs(x) > 0.2 * np.abs(x).max())
            part = x[active[0] : active[-1]]
            half = len(part) // 2
            change = _centroid(part[half:]) - _centroid(part[:half])
            assert sign * change > 0, (name, seed)


def test_brown_noise_is_darker_than_white_noise():
    white = np.mean([_centroid(_event("white_burst", s)) for s in range(3)])
    brown = np.mean([_centroid(_event("brown_burst", s)) for s in range(3)])
    assert brown < 0.5 * white


def test_fast_clicks_have_more_onsets_than_slow_clicks():
    def peaks_per_second(x):
        frame = SR // 200
        energy = np.square(x[: len(x) // frame * frame]).reshape(-1, frame).sum(1)
        above = energy > 0.3 * energy.max()
        return np.count_nonzero(above[1:] & ~above[:-1]) / 2.0

    slow = np.mean([peaks_per_second(_event("clicks_slow", s)) for s in range(3)])
    fast = np.mean([peaks_per_second(_event("clicks_fast", s)) for s in range(3)])
    assert fast > 2 * slow


def test_multi_label_clip_is_a_sum_of_classes():
    one = synth_clip([0], SR, 0.5, seed=5)
    two = synth_clip([0, 6], SR, 0.5, seed=5)
    assert not np.allclose(one, two)


def test_esc50_layout(tmp_path):
    rows = make_esc50(
        str(tmp_path), n_classes=4, clips_per_class=10, sample_rate=44100, duration=0.2
    )
    names = sorted(os.listdir(tmp_path / "audio"))
    assert len(names) == 40 and names == sorted(r["filename"] for r in rows)
    pattern = re.compile(r"^([1-5])-(\d+)-([A-Z])-(\d+)\.wav$")
    with open(tmp_path / "meta" / "esc50.csv", newline="") as fin:
        reader = csv.DictReader(fin)
        assert reader.fieldnames == [
            "filename",
            "fold",
            "target",
            "category",
            "esc10",
            "src_file",
            "take",
        ]
        meta = list(reader)
    assert len(meta) == 40
    for row in meta:
        match = pattern.match(row["filename"])
        assert match, row["filename"]
        assert match.group(1) == row["fold"] and match.group(4) == row["target"]
        assert row["category"] == class_names()[int(row["target"])]
        assert row["esc10"] in ("True", "False")
    for target in range(4):
        folds = [r["fold"] for r in meta if r["target"] == str(target)]
        assert sorted(folds) == sorted(["1", "2", "3", "4", "5"] * 2)
    info = sf.info(str(tmp_path / "audio" / names[0]))
    assert (info.samplerate, info.subtype, info.frames) == (44100, "PCM_16", 8820)


def test_audioset_layout(tmp_path):
    info = make_audioset(
        str(tmp_path),
        n_classes=5,
        n_balanced=10,
        n_eval=5,
        n_unbalanced=4,
        duration=0.3,
        sample_rates=(16000, 22050),
        formats=("wav", "flac"),
    )
    with open(tmp_path / "class_labels_indices.csv", newline="") as fin:
        classes = list(csv.DictReader(fin))
    assert [c["index"] for c in classes] == ["0", "1", "2", "3", "4"]
    assert all(re.fullmatch(r"/m/0[0-9a-z]+", c["mid"]) for c in classes)
    assert "Chirp, rising" in [c["display_name"] for c in classes]
    mids = {c["mid"] for c in classes}
    row_re = re.compile(r'^([\w-]{11}), (\d+\.\d{3}), (\d+\.\d{3}), "([^"]+)"$')
    for split, n in (("balanced_train", 10), ("eval", 5), ("unbalanced_train", 4)):
        lines = (tmp_path / f"{split}_segments.csv").read_text().splitlines()
        assert lines[0].startswith("# Segments csv created")
        assert lines[1].startswith(f"# num_ytids={n}, num_segs={n}, num_unique_labels=")
        assert lines[2] == "# YTID, start_seconds, end_seconds, positive_labels"
        assert len(lines) == 3 + n
        n_positive = 0
        for line, row in zip(lines[3:], info["splits"][split]):
            match = row_re.match(line)
            assert match, line
            labels = match.group(4).split(",")
            assert set(labels) <= mids and 1 <= len(labels) <= 3
            assert float(match.group(3)) - float(match.group(2)) == pytest.approx(0.3)
            n_positive += len(labels)
            path = row["path"]
            assert os.path.basename(path).startswith(match.group(1))
            assert os.path.dirname(os.path.dirname(path)) == str(
                tmp_path / "audio" / split
            )
            assert sf.info(path).samplerate == row["rate"]
        assert f"num_positive_labels={n_positive}" in lines[1]
    label_counts = [len(r["mids"]) for r in info["splits"]["balanced_train"]]
    assert max(label_counts) > 1


def test_audioset_bad_input_injection(tmp_path):
    info = make_audioset(
        str(tmp_path),
        n_classes=4,
        n_balanced=10,
        n_eval=2,
        duration=0.3,
        n_missing=2,
        n_corrupt=1,
        n_empty=1,
        n_unknown_mid=1,
        n_only_unknown_mid=1,
        n_malformed=2,
    )
    rows = {r["ytid"]: r for r in info["splits"]["balanced_train"]}
    bad = info["bad"]
    assert [len(bad[k]) for k in sorted(bad)] == [1, 1, 2, 1, 1]
    for ytid in bad["missing"]:
        assert rows[ytid]["path"] is None
    with pytest.raises(RuntimeError):
        sf.info(rows[bad["corrupt"][0]]["path"])
    known = {mid for _, mid, _ in info["labels"]}
    assert any(m not in known for m in rows[bad["unknown_mid"][0]]["mids"])
    assert not set(rows[bad["only_unknown_mid"][0]]["mids"]) & known
    text = (tmp_path / "balanced_train_segments.csv").read_text()
    assert all(line in text for line in info["malformed_lines"])
    assert len(info["malformed_lines"]) == 2
    assert not (tmp_path / "unbalanced_train_segments.csv").exists()


def test_too_many_classes_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="n_classes"):
        make_esc50(str(tmp_path), n_classes=len(SOUND_CLASSES) + 1)
