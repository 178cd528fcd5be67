"""benchmarks/bench_scale.py runs end to end (quick mode, small sizes) and reports numbers.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import json
from pathlib import Path

import numpy as np

from craft_modules.testing.scripts import load_script

REPO = Path(__file__).resolve().parents[1]
bench = load_script("benchmarks/bench_scale.py")


def test_synthetic_manifest_looks_like_audioset():
    manifest = bench.synthetic_manifest(3000)
    assert len(manifest) == 3000
    ids = list(manifest)
    assert all(len(clip_id) == 11 for clip_id in ids)
    n_labels = np.array([len(entry["labels"]) for entry in manifest.values()])
    assert n_labels.min() == 1 and n_labels.max() == 5
    assert {label for e in manifest.values() for label in e["labels"]} <= {
        f"/m/{i:05x}" for i in range(527)
    }
    assert manifest[ids[0]]["wav"].endswith(f"/Y{ids[0]}.flac")


def _positive_numbers(tree):
    if isinstance(tree, dict):
        return [n for value in tree.values() for n in _positive_numbers(value)]
    if isinstance(tree, list):
        return [n for value in tree for n in _positive_numbers(value)]
    return (
        [tree] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []
    )


def _in_this_process(kind, args, flac_files, folder):
    """The memory scenario without its own process (saves the imports, ~5 s)."""
    return bench.memory_scenario(
        kind, args.rows, args.workers, args.items, args.batch_size, flac_files
    )


def test_quick_run_writes_every_measurement(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "run_memory_scenario", _in_this_process)
    output = tmp_path / "bench_scale.json"
    bench.main(["--quick", "--rows", "2000", "--workers", "2", "--output", str(output)])
    results = json.loads(output.read_text())
    printed = capsys.readouterr().out
    assert "2. Memory with 2 workers" in printed and "clips/s needs" in printed
    prep = results["preparation"]
    assert prep["rows"] == prep["clips_written"] == 2000
    for key in (
        "read_csv_s",
        "build_entries_s",
        "write_json_s",
        "load_and_cache_s",
        "load_cached_s",
        "probe_per_file_ms",
    ):
        assert prep[key] > 0, key
    assert 0 < prep["compact_mib"] < prep["json_mib"]
    for kind in ("compact", "dict"):
        memory = results["memory"][kind]
        assert memory["rows"] == 2000
        for phase in ("short", "long_run", "frozen"):
            run = memory[phase]
            assert run["clips"] == 8 and len(run["workers"]) == 2
            assert all(w["rss_mib"] > 0 and w["pss_mib"] > 0 for w in run["workers"])
            assert run["main_before"]["pss_mib"] > 0
    loader = results["loader"]
    assert set(loader["clips_per_s"]) == {"0", "1", "2"}
    assert all(rate > 0 for rate in loader["clips_per_s"].values())
    assert loader["workers_per_gpu"] >= 1
    assert (
        loader["workers_per_gpu"] * loader["clips_per_s_per_worker"]
        >= (loader["gpu_clips_per_s"])
    )
    numbers = _positive_numbers({k: v for k, v in results.items() if k != "memory"})
    assert numbers and all(n > 0 for n in numbers)
