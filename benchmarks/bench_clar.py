"""CLAR: augmentation throughput (clips/s) next to the model's training step rate.

Each waveform augmentation of :mod:`craft_modules.augment.waveform`
(applied to every clip, ``prob=1``) on a batch of 5 s clips at 16 kHz on
CPU, then a CLAR training step (two views, NT-Xent + CE, Adam) of the
spectrogram and raw ResNet18 encoders on the same batch. Augmentations keep
up when their rate exceeds twice the model's (two views per clip). Results
are printed and written as JSON.

Usage: python benchmarks/bench_clar.py [--batch-size 16] [--steps 2]

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import argparse
import json
import os
import time

import torch

from craft_modules.augment import waveform as wa
from craft_modules.models.clar import ClarModel, clar_losses


def rate(fn, batch_size, repeats):
    """Clips per second of ``fn`` (after one warm-up call)."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return batch_size * repeats / (time.perf_counter() - start)


def main():
    """Runs the measurements and prints the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--output", default="benchmarks/results/clar.json")
    args = parser.parse_args()
    wavs = torch.randn(args.batch_size, 80000) * 0.1
    lens = torch.ones(args.batch_size)
    augmentations = {
        "pitch_shift": wa.PitchShift(prob=1.0),
        "fade": wa.Fade(prob=1.0),
        "white_noise": wa.WhiteNoise(prob=1.0),
        "coloured_noise": wa.ColouredNoise(prob=1.0),
        "time_mask": wa.TimeMask(prob=1.0),
        "time_shift": wa.TimeShift(prob=1.0),
        "time_stretch": wa.TimeStretch(prob=1.0),
    }
    results = {"batch_size": args.batch_size, "threads": torch.get_num_threads()}
    for name, augmentation in augmentations.items():
        results[name] = round(
            rate(lambda a=augmentation: a(wavs, lens), args.batch_size, 2), 1
        )
        print(f"{name:15s} {results[name]:8.1f} clips/s")
    targets = torch.nn.functional.one_hot(
        torch.arange(args.batch_size) % 50, 50
    ).float()
    chain = wa.AugmentationChain([wa.Fade(), wa.TimeMask()])
    for encoder in ("spectrogram", "raw"):
        model = ClarModel(encoder, n_classes=50)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step(model=model, optimizer=optimizer):
            loss = clar_losses(model, wavs, None, targets, augment=chain)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        key = f"train_step_{encoder}"
        results[key] = round(rate(step, args.batch_size, args.steps), 2)
        print(f"CLAR training step, {encoder} ResNet18: {results[key]:.2f} clips/s")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as fout:
        json.dump(results, fout, indent=2)


if __name__ == "__main__":
    main()
