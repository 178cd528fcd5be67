"""benchmarks/bench_learning.py: the parts that need neither espeak-ng nor training.

The data layouts the benchmark writes are read back by the ESC-50 recipe's
preparation, the split keeps every speaker in one fold, and the MFCC baseline
separates classes that differ in spectral shape only.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import json
import re
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from craft_modules.testing.scripts import load_script

REPO = Path(__file__).resolve().parents[1]
bench = load_script("benchmarks/bench_learning.py")
sys.path.insert(0, str(REPO / "recipes" / "ESC50"))
from esc50_prepare import prepare_esc50  # noqa: E402

from craft_modules.data.class_folders import prepare_class_folders  # noqa: E402


def _vowel(rng, formants, rate, n):
    """A voiced, vowel-like sound: a pulse train through two resonances."""
    f0 = rng.uniform(90, 220)
    t = np.arange(n) / rate
    source = np.sign(np.sin(2 * np.pi * f0 * t)) + 0.05 * rng.standard_normal(n)
    spectrum = np.fft.rfft(source)
    freqs = np.fft.rfftfreq(n, 1 / rate)
    shape = sum(
        1 / (1 + ((freqs - f * rng.uniform(0.9, 1.1)) / 80) ** 2) for f in formants
    )
    return np.fft.irfft(spectrum * shape, n).astype(np.float32)


def _clips(n_speakers=10, words=("aa", "ii"), seed=0, **options):
    """Two vowel-like 'words' said by several 'speakers' at 8 and 16 kHz."""
    formants = {"aa": (700, 1200), "ii": (300, 2300)}
    rng = np.random.default_rng(seed)
    clips = []
    for s, (speaker, _, fold) in enumerate(bench.speakers(n_speakers)):
        for t, word in enumerate(words):
            rate = (8000, 16000)[s % 2]
            speech = _vowel(rng, formants[word], rate, rate // 2)
            signal, details = bench.make_clip(
                speech, rng, rate, {**bench.DATA, **options}, speech_rate=rate
            )
            clips.append(
                {
                    "signal": signal,
                    "rate": rate,
                    "word": word,
                    "target": t,
                    "speaker": speaker,
                    "repeat": 0,
                    "fold": fold,
                    **details,
                }
            )
    return clips


def test_layouts_are_read_by_the_recipe_and_split_by_speaker(tmp_path):
    records = bench.write_layouts(str(tmp_path), _clips())
    assert len(records) == 20
    # Class folders: one folder per word, the speaker before the first "_".
    for record in records:
        path = Path(record["path"])
        assert path.parent.name == record["word"]
        assert re.match(bench.GROUP_REGEX, path.name).group(1) == record["speaker"]
        audio, rate = sf.read(path)
        assert rate == record["rate"] and audio.shape == (rate,)
    # The ESC-50 layout: the recipe's preparation reads every clip with its
    # fold and target, and no speaker has clips in two folds.
    out = prepare_esc50(str(tmp_path / "esc50"), str(tmp_path / "prepared"))
    manifest = json.loads(Path(out["manifest"]).read_text())
    assert len(manifest) == 20
    split = bench.recipe_split(str(tmp_path / "prepared"))
    assert len(split["test"]) == 4 and len(split["train"]) == 16
    folds_of = {}
    for clip_id, entry in manifest.items():
        speaker = clip_id.split("-", 1)[1].split("_")[0]
        folds_of.setdefault(speaker, set()).add(entry["fold"])
    assert all(len(folds) == 1 for folds in folds_of.values())
    assert json.loads(Path(out["labels"]).read_text()) in (
        ["aa", "ii"],
        {"0": "aa", "1": "ii"},
    )
    described = bench.describe_split(split)
    assert described["test_speakers"] == 2 and described["train_speakers"] == 8
    assert described["shared_speakers"] == 0
    # The class folders: the recipe's --layout=folders preparation groups the
    # clips by the benchmark's speaker regex, so no speaker straddles folds.
    prepare_class_folders(
        str(tmp_path / "words"),
        str(tmp_path / "folders"),
        n_folds=5,
        group_regex=bench.GROUP_REGEX,
    )
    split = bench.recipe_split(str(tmp_path / "folders"))
    assert len(split["train"]) + len(split["test"]) == 20 and split["test"]
    assert bench.describe_split(split)["shared_speakers"] == 0


def test_mfcc_baseline_learns_spectral_shape_across_speakers(tmp_path):
    records = bench.write_layouts(str(tmp_path), _clips(snr_db=[20.0, 30.0]))
    train = [(r["path"], r["target"]) for r in records if r["fold"] != 1]
    test = [(r["path"], r["target"]) for r in records if r["fold"] == 1]
    assert len(test) == 4 and len({t for _, t in test}) == 2
    result = bench.mfcc_baseline(*zip(*train), *zip(*test))
    assert result["accuracy"] == 1.0 and result["train_accuracy"] == 1.0


def test_make_clip_draws_level_noise_and_position():
    rng = np.random.default_rng(0)
    word = np.zeros(8000, dtype=np.float32)
    word[1000:6000] = np.sin(np.arange(5000) * 0.3)
    clips = [
        bench.make_clip(word, rng, 8000, bench.DATA, speech_rate=16000)
        for _ in range(30)
    ]
    for clip, details in clips:
        assert clip.shape == (8000,) and np.abs(clip).max() <= 1.0
        peak_db = 20 * np.log10(np.abs(clip).max())
        assert abs(peak_db - details["gain_db"]) < 0.01
    offsets = {details["offset_s"] for _, details in clips}
    noisy = [details["snr_db"] is not None for _, details in clips]
    assert len(offsets) > 20 and 0 < sum(noisy) < 30
    # Silent samples in front of a noiseless clip's word: its offset.
    quiet = next((c, d) for c, d in clips if d["snr_db"] is None)
    first = np.flatnonzero(np.abs(quiet[0]) > 1e-3)[0] / 8000
    assert abs(first - quiet[1]["offset_s"]) < 0.01
