"""Diverse embeddings: training clips/s of the combined model against each stream alone.

A training step (forward, BCE, backward, Adam) of
:class:`craft_modules.models.diverse.DiverseEmbeddingModel` at the paper's sizes
(64-d, 6 blocks per stream, 1 s chunks) on 5 s clips, for the four streams
together and for each stream alone, on CPU. Results are printed and written
as JSON.

Usage: python benchmarks/bench_diverse.py [--batch-size 8] [--steps 3]

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import argparse
import json
import os
import time

import torch

from craft_modules.features.diverse_streams import STREAMS
from craft_modules.models.diverse import DiverseEmbeddingModel


def clips_per_second(streams, batch_size, steps, seconds=5.0):
    """Training clips per second (after one warm-up step)."""
    model = DiverseEmbeddingModel(200, streams=streams, num_heads=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    wavs = torch.randn(batch_size, int(seconds * 16000)) * 0.1
    targets = (torch.rand(batch_size, 200) < 0.02).float()
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            model(wavs), targets
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
    n_params = sum(p.numel() for p in model.parameters())
    return batch_size / (sum(times) / len(times)), n_params


def main():
    """Runs the measurements and prints the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--output", default="benchmarks/results/diverse.json")
    args = parser.parse_args()
    configs = {"combined": list(STREAMS), **{name: [name] for name in STREAMS}}
    results = {"batch_size": args.batch_size, "threads": torch.get_num_threads()}
    for label, streams in configs.items():
        rate, n_params = clips_per_second(streams, args.batch_size, args.steps)
        results[label] = {"clips_per_s": round(rate, 2), "parameters": n_params}
        print(f"{label:12s} {rate:7.2f} clips/s  ({n_params / 1e6:.2f} M parameters)")
    combined = results["combined"]["clips_per_s"]
    alone = sum(1.0 / results[name]["clips_per_s"] for name in STREAMS)
    print(
        f"combined vs the four streams trained one after another: "
        f"{combined * alone:.2f}x the throughput"
    )
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as fout:
        json.dump(results, fout, indent=2)


if __name__ == "__main__":
    main()
