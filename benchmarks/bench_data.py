"""Does data loading keep up? Pipeline clips/s with 0, 2 and 4 workers vs a training step.

Generates ESC-50-layout clips at 44.1 kHz (5 s), then measures the clips per
second of the recipes' data pipeline (read with soundfile, mix to mono,
resample to 16 kHz, crop/pad, collate) with 0, 2 and 4 DataLoader workers,
next to the clips per second of a tiny AST and a tiny SWaB training step
(forward, backward, Adam) on the same batch size. Loading keeps up when its
rate exceeds the model's. Results are printed and written as JSON.

Usage: python benchmarks/bench_data.py [--clips 64] [--batch-size 8]

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import argparse
import json
import os
import tempfile
import time

import torch

from craft_modules.data.batching import SkipBadCollate
from craft_modules.data.datasets import audio_dataset
from craft_modules.models.craft import CraftClassifier
from craft_modules.testing.synth import make_esc50


def pipeline_rate(manifest, workers, batch_size):
    """Clips per second of reading, resampling, cropping and collating every clip once."""
    dataset = audio_dataset(manifest, 16000, 5.0)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=SkipBadCollate()
    )
    start = time.perf_counter()
    n = sum(batch.sig[0].shape[0] for batch in loader)
    return n / (time.perf_counter() - start)


def model_rate(fusion, batch_size, steps=3):
    """Clips per second of a tiny classifier's training step on 5 s clips."""
    model = CraftClassifier(50, fusion=fusion, model_size="tiny", target_frames=512)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    wavs, targets = (
        torch.randn(batch_size, 80000) * 0.1,
        torch.randint(0, 50, (batch_size,)),
    )
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(wavs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
    return batch_size / (sum(times) / len(times))


def main():
    """Runs the measurements and prints the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--output", default="bench_data.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = make_esc50(
            tmp, n_classes=8, clips_per_class=max(1, args.clips // 8), duration=5.0
        )
        manifest = {
            r["filename"]: {"wav": os.path.join(tmp, "audio", r["filename"])}
            for r in rows
        }
        results = {
            f"pipeline_{w}_workers": pipeline_rate(manifest, w, args.batch_size)
            for w in (0, 2, 4)
        }
    for fusion in ("ast", "swab"):
        results[f"train_step_tiny_{fusion}"] = model_rate(fusion, args.batch_size)
    print(
        f"clips per second, 5 s clips at 44.1 kHz -> 16 kHz, batch {args.batch_size}, {os.cpu_count()} CPUs"
    )
    for key, value in results.items():
        print(f"  {key:28s} {value:8.1f}")
    with open(args.output, "w", encoding="utf-8") as fout:
        json.dump(results, fout, indent=2)


if __name__ == "__main__":
    main()
