"""Speed and memory of the CRAFT core on CPU: one training step per method.

Prints, for the tiny preset with batch 2 and 10 s clips, the median seconds per
training step (forward, backward, Adam) of SSAST, PSWaCL (two MSPM passes, or
one with ``single_pass``), AST and SWaB fine-tuning, the batched two-stream
SWaB step against the same step run stream after stream, the share of a
pretraining step spent drawing masks, and each configuration's peak memory
(every configuration runs in its own process, so peaks do not mix).

The reference is the official SSAST code on a 2-core CPU: 1.08-1.18 s per tiny
pretraining step (ssast_spec.md section 8). Results are also written as JSON.

Usage: python benchmarks/bench_core.py [--steps 5] [--output bench_core.json]

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from craft_modules.masking import cluster_mask_ids
from craft_modules.models import CraftClassifier, CraftPretrainer

OFFICIAL_SSAST_STEP = 1.08  # seconds, lower end of the measured 1.08-1.18 s

CONFIGS = {
    "ssast": lambda: CraftPretrainer(method="ssast", model_size="tiny"),
    "pswacl": lambda: CraftPretrainer(method="pswacl", model_size="tiny"),
    "pswacl_single_pass": lambda: CraftPretrainer(
        method="pswacl", model_size="tiny", single_pass=True
    ),
    "ast": lambda: CraftClassifier(527, fusion="ast", model_size="tiny"),
    "swab": lambda: CraftClassifier(527, fusion="swab", model_size="tiny"),
    "swab_stream_after_stream": lambda: CraftClassifier(
        527, fusion="swab", model_size="tiny", batched=False
    ),
}


def time_steps(name, steps, warmup=1):
    """Median seconds of a full training step of configuration ``name``."""
    torch.manual_seed(0)
    model = CONFIGS[name]()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    wavs, lens = torch.randn(2, 160000) * 0.1, torch.ones(2)
    targets = torch.zeros(2, 527)
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        out = model(wavs, lens)
        if isinstance(out, dict):
            loss = out["loss"]
        else:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds_per_step": statistics.median(times), "peak_rss_mib": peak_mib}


def time_masking(repeats=200):
    """Median seconds to draw the masks of one batch-2 step (two objectives)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        cluster_mask_ids(2, 8, 64, 400)
        cluster_mask_ids(2, 8, 64, 400)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    """Runs every configuration in a child process and prints the summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--output", default="bench_core.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(time_steps(args.one, args.steps)))
        return
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, tiny, batch 2, 10 s clips"
    )
    results = {}
    for name in CONFIGS:
        out = subprocess.run(
            [sys.executable, __file__, "--one", name, "--steps", str(args.steps)],
            check=True,
            capture_output=True,
            text=True,
        )
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[name]
        print(
            f"{name:26s} {r['seconds_per_step']:7.3f} s/step   peak {r['peak_rss_mib']:7.0f} MiB"
        )
    step = {k: v["seconds_per_step"] for k, v in results.items()}
    mask_time = time_masking()
    ratios = {
        "ssast_vs_official": step["ssast"] / OFFICIAL_SSAST_STEP,
        "pswacl_vs_official": step["pswacl"] / OFFICIAL_SSAST_STEP,
        "pswacl_single_pass_vs_official": step["pswacl_single_pass"]
        / OFFICIAL_SSAST_STEP,
        "swab_batched_vs_stream_after_stream": step["swab"]
        / step["swab_stream_after_stream"],
        "masking_share_of_ssast_step": mask_time / step["ssast"],
    }
    targets = {
        "ssast_vs_official": 0.9,
        "pswacl_vs_official": 1.35,
        "pswacl_single_pass_vs_official": 0.95,
        "swab_batched_vs_stream_after_stream": 0.85,
        "masking_share_of_ssast_step": 0.05,
    }
    print(
        f"\nratios (target) against the official SSAST tiny step of {OFFICIAL_SSAST_STEP} s:"
    )
    for key, value in ratios.items():
        status = "ok" if value <= targets[key] else "MISSED"
        print(f"  {key:38s} {value:6.3f}  (<= {targets[key]})  {status}")
    with open(args.output, "w", encoding="utf-8") as fout:
        json.dump(
            {"steps": results, "ratios": ratios, "targets": targets}, fout, indent=2
        )
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
