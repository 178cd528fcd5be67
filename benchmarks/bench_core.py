"""Speed and memory of the CRAFT core on CPU: one training step per method.

Prints, for the tiny preset with batch 2 and 10 s clips, the median seconds per
training step (forward, backward, Adam) of SSAST, PSWaCL (two MSPM passes, or
one with ``single_pass``; SWaCL's spectrogram side from its own unmasked pass,
Eq. 4a of the CRAFT paper, or with ``swacl_spec="masked"`` from the
discriminative masked pass, one encoder pass fewer), AST and SWaB
fine-tuning, the batched two-stream
SWaB step against the same step run stream after stream, the share of a
pretraining step spent drawing masks, and each configuration's peak memory
(every configuration runs once more in its own process, so peaks do not mix).

Each configuration's FLOPs per step (forward and backward, counted by
``torch.utils.flop_counter`` with the CPU attention kernel added) are printed
next to its time, with the FLOP ratio next to each time ratio: a step-time
ratio cannot go much below its FLOP ratio when both steps run the same
kernels (matrix products and attention are over 90 % of every step).

All step times come from one process that takes one step of every
configuration per round, rotating their order from round to round, so a
change of machine load affects every configuration alike. Every ratio printed
is between two configurations measured in that same run: the script holds no
reference time measured elsewhere.

With ``--official PATH`` the run also times the official SSAST/AST code next
to this project's. ``PATH`` is a folder holding the official SSAST
``ast_models.py`` (github.com/YuanGongND/ssast, ``src/models``) and, in
``PATH/ast/ast_models.py``, the official AST one (github.com/YuanGongND/ast);
``timm==0.4.5`` must be importable (the folder is put first on ``sys.path``,
so shims such as a stub ``wget`` module may live there). The official steps
are those of the official recipes:

* SSAST pretraining (``traintest_mask.py``, ``pretrain_joint``): the tiny
  16x16-patch model without overlap, ``pretrain_mpc`` and ``pretrain_mpg``
  forward passes with 400 masked patches each, ``loss = nce + 10 * mse``;
* AST fine-tuning: the official AST ``tiny224`` model, stride 10 (1212
  patches), without ImageNet weights, BCE loss on 527 classes.

Both use the same Adam as this project's steps. The official code computes
its features per clip in the data loader (``torchaudio.compliance.kaldi.fbank``
after removing the clip's mean, padded to 1024 frames, normalised), whereas
this project computes them inside the model from the waveforms; each
official step is therefore timed twice, on precomputed features ("model
only") and with the per-clip fbank of the batch inside the step ("with
fbank"). The project-versus-official ratios use the "with fbank" time, the
like-for-like step; the "model only" ratios are printed as well.

``--clock cpu`` times CPU seconds of the process instead of wall seconds
(steadier when other jobs share the machine; with ``--threads 1`` it is the
work of the step alone).

Usage: python benchmarks/bench_core.py [--steps 7] [--threads 2]
[--clock wall|cpu] [--official PATH] [--configs NAME ...] [--output bench_core.json]

``--configs`` times only the named configurations (and prints the ratios
between them), e.g. ``--configs pswacl pswacl_swacl_masked --memory 0`` for
the SWaCL switch alone.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import argparse
import contextlib
import importlib.util
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from craft_modules.models.craft import CraftClassifier, CraftPretrainer
from craft_modules.nn.masking import cluster_mask_ids
from craft_modules.training.flops import flop_counter

BATCH, SAMPLES, N_CLASSES, TARGET_FRAMES, MASK_PATCH = 2, 160000, 527, 1024, 400
AUDIOSET_MEAN, AUDIOSET_STD = -4.2677393, 4.5689974

CONFIGS = {
    "ssast": lambda: CraftPretrainer(method="ssast", model_size="tiny"),
    "pswacl": lambda: CraftPretrainer(method="pswacl", model_size="tiny"),
    "pswacl_single_pass": lambda: CraftPretrainer(
        method="pswacl", model_size="tiny", single_pass=True
    ),
    "pswacl_swacl_masked": lambda: CraftPretrainer(
        method="pswacl", model_size="tiny", swacl_spec="masked"
    ),
    "ast": lambda: CraftClassifier(N_CLASSES, fusion="ast", model_size="tiny"),
    "swab": lambda: CraftClassifier(N_CLASSES, fusion="swab", model_size="tiny"),
    "swab_stream_after_stream": lambda: CraftClassifier(
        N_CLASSES, fusion="swab", model_size="tiny", batched=False
    ),
}

OFFICIAL_CONFIGS = (
    "official_ssast",
    "official_ssast_with_fbank",
    "official_ast",
    "official_ast_with_fbank",
)

#: (name, numerator, denominator, target or None); only pairs of one run.
RATIOS = (
    ("pswacl_vs_ssast", "pswacl", "ssast", None),
    ("pswacl_single_pass_vs_ssast", "pswacl_single_pass", "ssast", None),
    # The masked-pass saving of SWaCL's spectrogram side against the default.
    ("pswacl_swacl_masked_vs_pswacl", "pswacl_swacl_masked", "pswacl", None),
    ("swab_batched_vs_stream_after_stream", "swab", "swab_stream_after_stream", 0.85),
)

#: Against the official code (``--official``), "with fbank" unless named "model_only".
OFFICIAL_RATIOS = (
    ("ssast_vs_official_ssast", "ssast", "official_ssast_with_fbank", 0.8),
    ("pswacl_vs_official_ssast", "pswacl", "official_ssast_with_fbank", 1.2),
    (
        "pswacl_single_pass_vs_official_ssast",
        "pswacl_single_pass",
        "official_ssast_with_fbank",
        None,
    ),
    ("ast_vs_official_ast", "ast", "official_ast_with_fbank", None),
    ("swab_vs_official_ast", "swab", "official_ast_with_fbank", None),
    ("ssast_vs_official_ssast_model_only", "ssast", "official_ssast", None),
    ("pswacl_vs_official_ssast_model_only", "pswacl", "official_ssast", None),
    ("ast_vs_official_ast_model_only", "ast", "official_ast", None),
)


def load_official(path):
    """Imports the official SSAST and AST ``ast_models`` modules from ``path``."""
    path = os.path.abspath(path)
    if path not in sys.path:
        sys.path.insert(0, path)
    modules = {}
    for key, file in (("ssast", "ast_models.py"), ("ast", "ast/ast_models.py")):
        spec = importlib.util.spec_from_file_location(
            f"official_{key}_models", os.path.join(path, file)
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[key] = module
    return modules


def official_fbank(wavs):
    """The official data loader's features, clip by clip, stacked as a batch."""
    import torchaudio

    feats = []
    for wav in wavs:
        wav = wav[None] - wav.mean()
        fbank = torchaudio.compliance.kaldi.fbank(
            wav,
            htk_compat=True,
            sample_frequency=16000,
            use_energy=False,
            window_type="hanning",
            num_mel_bins=128,
            dither=0.0,
            frame_shift=10,
        )
        missing = TARGET_FRAMES - fbank.shape[0]
        if missing > 0:
            fbank = torch.nn.ZeroPad2d((0, 0, 0, missing))(fbank)
        elif missing < 0:
            fbank = fbank[:TARGET_FRAMES, :]
        feats.append((fbank - AUDIOSET_MEAN) / (AUDIOSET_STD * 2))
    return torch.stack(feats)


def _official_ssast(module):
    """The official tiny SSAST pretraining model (16x16 patches, no overlap).

    Its size is ``tiny`` in the current SSAST code and ``tiny224`` in earlier
    commits; both build timm's ``vit_deit_tiny_distilled_patch16_224``.
    """
    for size in ("tiny", "tiny224"):
        try:
            return module.ASTModel(
                fshape=16,
                tshape=16,
                fstride=16,
                tstride=16,
                input_fdim=128,
                input_tdim=TARGET_FRAMES,
                model_size=size,
                pretrain_stage=True,
            )
        except Exception as error:  # the official code raises a bare Exception
            if "Model size" not in str(error):
                raise
    raise ValueError("the official SSAST code accepts neither 'tiny' nor 'tiny224'")


def build_step(name, official=None):
    """Returns a closure running one training step (forward, backward, Adam) of ``name``."""
    wavs, lens = torch.randn(BATCH, SAMPLES) * 0.1, torch.ones(BATCH)
    targets = torch.zeros(BATCH, N_CLASSES)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    if name.startswith("official_"):
        with contextlib.redirect_stdout(io.StringIO()):  # the official code prints
            if name.startswith("official_ssast"):
                model = _official_ssast(official["ssast"])
            else:
                model = official["ast"].ASTModel(
                    label_dim=N_CLASSES,
                    fstride=10,
                    tstride=10,
                    input_fdim=128,
                    input_tdim=TARGET_FRAMES,
                    imagenet_pretrain=False,
                    model_size="tiny224",
                    verbose=False,
                )
        with_fbank = name.endswith("_with_fbank")
        precomputed = official_fbank(wavs)

        def loss_fn():
            feats = official_fbank(wavs) if with_fbank else precomputed
            if name.startswith("official_ssast"):
                _, nce = model(feats, "pretrain_mpc", mask_patch=MASK_PATCH)
                mse = model(feats, "pretrain_mpg", mask_patch=MASK_PATCH)
                return nce + 10 * mse
            return bce(model(feats), targets)

    else:
        model = CONFIGS[name]()

        def loss_fn():
            out = model(wavs, lens)
            return out["loss"] if isinstance(out, dict) else bce(out, targets)

    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        loss = loss_fn()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def count_step_flops(names, official=None):
    """FLOPs of one training step of every configuration (forward, backward; Adam not counted).

    Counted by ``torch.utils.flop_counter`` with the CPU attention kernel
    added (:func:`craft_modules.training.flops.flop_counter`), on a fresh model of
    each configuration.
    """
    flops = {}
    for name in names:
        torch.manual_seed(0)
        step = build_step(name, official)
        with flop_counter() as counter:
            step()
        flops[name] = counter.get_total_flops()
    return flops


def time_alternating(names, steps, warmup=2, official=None, clock="wall"):
    """Median seconds per step of every configuration, one step of each per round.

    ``clock="cpu"`` counts the CPU seconds of the process (all its threads)
    instead of wall seconds: on a machine shared with other jobs a step then
    does not count the time the process waits for a core.
    """
    now = CLOCKS[clock]
    torch.manual_seed(0)
    step_fns = {name: build_step(name, official) for name in names}
    for fn in step_fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in names}
    order = list(names)
    for round_ in range(steps):
        shift = round_ % len(order)
        for name in order[shift:] + order[:shift]:
            start = now()
            step_fns[name]()
            times[name].append(now() - start)
    return {
        name: {
            "seconds_per_step": statistics.median(t),
            "min": min(t),
            "max": max(t),
            "all": t,
        }
        for name, t in times.items()
    }


def peak_memory(name, official=None, steps=2):
    """Peak resident memory (MiB) of a process that builds ``name`` and takes ``steps`` steps."""
    step = build_step(name, official)
    for _ in range(steps):
        step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_masking(repeats=200):
    """Median seconds to draw the masks of one batch-2 step (two objectives)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        cluster_mask_ids(BATCH, 8, 64, MASK_PATCH)
        cluster_mask_ids(BATCH, 8, 64, MASK_PATCH)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _child(args, *extra):
    cmd = [sys.executable, __file__, "--threads", str(args.threads), *extra]
    if args.official:
        cmd += ["--official", args.official]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    """Times every configuration in one child process, measures peaks in others, prints."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--official", help="folder with the official ast_models.py")
    parser.add_argument("--output", default="bench_core.json")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall seconds, or CPU seconds of the process (steadier on a shared machine)",
    )
    parser.add_argument("--memory", type=int, default=1, help="1: measure peaks")
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=sorted(CONFIGS),
        help="only these (default: all)",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--timing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    official = load_official(args.official) if args.official else None
    names = list(args.configs or CONFIGS) + (list(OFFICIAL_CONFIGS) if official else [])
    if args.one:
        print(json.dumps({"peak_rss_mib": peak_memory(args.one, official)}))
        return
    if args.timing:
        times = time_alternating(names, args.steps, official=official, clock=args.clock)
        for name, flops in count_step_flops(names, official).items():
            times[name]["gflop_per_step"] = flops / 1e9
        print(json.dumps(times))
        return
    load_before = os.getloadavg()
    print(
        f"torch {torch.__version__}, {args.threads} threads, tiny, batch {BATCH}, "
        f"10 s clips, {args.steps} alternating rounds, {args.clock} clock, "
        f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}"
    )
    results = _child(
        args,
        "--timing",
        "--steps",
        str(args.steps),
        "--clock",
        args.clock,
        *(["--configs", *args.configs] if args.configs else []),
    )
    if args.memory:
        for name in names:
            results[name].update(_child(args, "--one", name))
    load_after = os.getloadavg()
    for name in names:
        r = results[name]
        peak = f"   peak {r['peak_rss_mib']:7.0f} MiB" if "peak_rss_mib" in r else ""
        rate = r["gflop_per_step"] / r["seconds_per_step"]
        print(
            f"{name:26s} {r['seconds_per_step']:7.3f} s/step "
            f"({r['min']:.3f}-{r['max']:.3f}) {r['gflop_per_step']:6.1f} GFLOP "
            f"{rate:5.0f} GFLOP/s{peak}"
        )
    step = {k: v["seconds_per_step"] for k, v in results.items()}
    work = {k: v["gflop_per_step"] for k, v in results.items()}
    ratios, targets, work_ratios = {}, {}, {}
    for key, num, den, target in RATIOS + (OFFICIAL_RATIOS if official else ()):
        if num in step and den in step:
            ratios[key] = step[num] / step[den]
            targets[key] = target
            work_ratios[key] = work[num] / work[den]
    mask_seconds = time_masking()
    if "ssast" in step:
        ratios["masking_share_of_ssast_step"] = mask_seconds / step["ssast"]
        targets["masking_share_of_ssast_step"] = 0.05
    print("\nratios between steps of this run (target), and of their FLOPs:")
    for key, value in ratios.items():
        target = targets[key]
        status = "" if target is None else (" ok" if value <= target else " MISSED")
        bound = "" if target is None else f"  (<= {target}){status}"
        flops = f"  FLOPs {work_ratios[key]:5.2f}" if key in work_ratios else ""
        print(f"  {key:38s} {value:6.3f}{flops}{bound}")
    print(
        f"\nload average at the end {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}"
    )
    with open(args.output, "w", encoding="utf-8") as fout:
        json.dump(
            {
                "threads": args.threads,
                "clock": args.clock,
                "load_average": {"start": load_before, "end": load_after},
                "steps": results,
                "masking_seconds": mask_seconds,
                "ratios": ratios,
                "flop_ratios": work_ratios,
                "targets": targets,
            },
            fout,
            indent=2,
        )
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
