"""Tagging speed: clips/s for 10 s clips (tiny and base) and time to the first result.

For each model size, builds a genuine run folder the way the ESC-50 recipe
writes one (``hyperparams.yaml`` resolved from ``recipes/ESC50/hparams``, a
SpeechBrain checkpoint, ``labels.json``) with untrained weights, then
measures, in a fresh process, the time from ``import`` to the first tagged
file (``craft-tag``'s path: load the run, read and tag one 10 s file), and
in this process the throughput of :meth:`AudioTagger.tag_waveform` on 10 s
clips (one window each at ``clip_duration=10``). Results are printed and
written as JSON.

Usage: python benchmarks/bench_inference.py [--sizes tiny base] [--clips 8] [--fusion swab]

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
import torch
from hyperpyyaml import load_hyperpyyaml, resolve_references

from craft_modules.atomic_files import write_json_atomic
from craft_modules.inference.tagger import AudioTagger

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
YAMLS = {"swab": "craft.yaml", "ast": "ast.yaml", "swast": "swast.yaml"}


def make_run(folder, size, fusion, clip_duration=10.0):
    """A run folder with untrained weights, as the ESC-50 recipe lays it out."""
    overrides = {
        "data_folder": folder,
        "output_folder": folder,
        "model_size": size,
        "clip_duration": clip_duration,
        "fold": 1,
    }
    yaml_path = os.path.join(ROOT, "recipes", "ESC50", "hparams", YAMLS[fusion])
    with open(yaml_path, encoding="utf-8") as fin:
        resolved = resolve_references(fin, overrides)
    text = resolved.getvalue()
    hparams = load_hyperpyyaml(text)
    run = hparams["experiment_folder"]
    os.makedirs(run, exist_ok=True)
    with open(os.path.join(run, "hyperparams.yaml"), "w", encoding="utf-8") as fout:
        fout.write(text)
    hparams["checkpointer"].save_checkpoint(meta={"accuracy": 0.0})
    labels = [f"class_{i}" for i in range(hparams["n_classes"])]
    write_json_atomic(labels, os.path.join(folder, "data", "labels.json"))
    return folder


def time_to_first_result(run, audio):
    """Seconds from a fresh interpreter to one tagged file (model load included)."""
    code = (
        "import time; t = time.perf_counter();"
        "from craft_modules.inference.tagger import AudioTagger;"
        f"tagger = AudioTagger.from_run({run!r});"
        f"tagger.tag_files([{audio!r}], top_k=5);"
        "print(time.perf_counter() - t)"
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    total = time.perf_counter() - start
    return float(proc.stdout.strip().splitlines()[-1]), total


def throughput(tagger, clips):
    """10 s clips tagged per second (after one warm-up clip)."""
    wav = torch.randn(int(10.0 * tagger.sample_rate)) * 0.1
    tagger.tag_waveform(wav, tagger.sample_rate)
    start = time.perf_counter()
    for _ in range(clips):
        tagger.tag_waveform(wav, tagger.sample_rate)
    return clips / (time.perf_counter() - start)


def main():
    """Runs the measurements and prints a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "base"])
    parser.add_argument("--fusion", default="swab", choices=sorted(YAMLS))
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--output", default="benchmarks/results/inference.json")
    args = parser.parse_args()
    results = {"fusion": args.fusion, "threads": torch.get_num_threads(), "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        audio = os.path.join(tmp, "clip.wav")
        sf.write(audio, (np.random.randn(441000) * 0.1).astype(np.float32), 44100)
        for size in args.sizes:
            run = make_run(os.path.join(tmp, size), size, args.fusion)
            first, wall = time_to_first_result(run, audio)
            tagger = AudioTagger.from_run(run)
            rate = throughput(tagger, args.clips)
            results["sizes"][size] = {
                "clips_per_s": round(rate, 3),
                "first_result_s": round(first, 2),
                "first_result_with_interpreter_s": round(wall, 2),
            }
            print(
                f"{args.fusion} {size}: {rate:.2f} clips/s (10 s clips); first result "
                f"{first:.2f} s after import ({wall:.2f} s with interpreter start)",
                flush=True,
            )
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as fout:
        json.dump(results, fout, indent=2)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
