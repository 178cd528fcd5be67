#!/usr/bin/env python3
"""End-to-end CRAFT demo on CPU: synthetic ESC-50, PSWaCL pretraining, SWaB vs AST.

Runs the real recipes, as subprocesses, on a small deterministic dataset so
that the whole pipeline finishes in a few minutes on two CPU cores:

1. writes procedurally synthesised sound classes in the official ESC-50
   layout (44.1 kHz wav files and ``meta/esc50.csv``) with
   :func:`craft_modules.testing.synth.make_esc50`, and records their SHA-256;
2. pretrains a tiny CRAFT model (PSWaCL: masked spectrogram patch modelling
   plus spectrogram-waveform contrastive learning) with
   ``recipes/AudioSet/pretrain.py`` on the unlabeled audio;
3. fine-tunes it with bottleneck fusion of both streams (SWaB) and trains the
   spectrogram-only AST of the same size from scratch, both with
   ``recipes/ESC50/train.py`` on the same held-out fold(s);
4. prints both accuracies next to chance level and writes
   ``demo_output/demo_results.json``.

The recipes' full output goes to ``demo_output/*.log``; only their per-epoch
summaries and errors are shown. The data and the training folders are
recreated on every run, so the numbers are always those of this run.

The numbers are the same on every run on one machine (:data:`DETERMINISM`):
seeded data, recipes and samplers, no loader workers, a fixed number of
CPU threads (``--threads``, default 1) and hash seed for every recipe, and no
intra-epoch checkpoints (``--ckpt_interval_minutes=0``: the recipes' default
saves one after a wall-clock interval, a point that depends on the machine's
speed). Another CPU (other kernels) or another thread count changes the
floating-point sums, and through training the figures: README says by how
much. Usage::

    python demo/run_demo.py            # or: make demo
    python demo/run_demo.py --threads=2

One thread is the default: the 2-block model's matrices are too small to
gain much from a second thread, and on a busy machine a second OpenMP thread
that waits for a core makes every step several times slower.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DATA = {"n_classes": 8, "clips_per_class": 40, "duration": 1.0, "seed": 0}
"""Synthetic dataset: classes, clips per class (spread over 5 folds), seconds, seed.

8 x 40 clips: the held-out fold 1 has 64 clips, so one clip is 1.6 points.
"""

TEST_FOLDS = [1]
"""The held-out fold(s) of fine-tuning."""

MODEL = [
    "--model_size=tiny",
    "--depth=2",
    "--clip_duration=1.0",
    "--num_workers=0",
    "--ckpt_interval_minutes=0",
]
"""Options shared by every recipe run (a 2-block, 192-d encoder on 1 s clips).

``--num_workers=0`` and ``--ckpt_interval_minutes=0`` are part of
:data:`DETERMINISM`: no worker processes, no checkpoint at a wall-clock time.
"""

DETERMINISM = {"PYTHONHASHSEED": "0"}
"""Environment of every recipe run, with the thread count of ``--threads``.

The recipes seed torch, numpy and random from their ``seed`` and their
samplers from it; the hash seed fixes what a ``set`` of strings iterates,
and ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` (torch's intra-op threads) how
the CPU kernels split their sums.
"""

PRETRAIN = [
    "--batch_size=16",
    "--number_of_epochs=20",
    "--mask_patch=40",
    "--warmup_steps=0",
    "--lr=0.0005",
    "--valid_fraction=0.1",
]
"""PSWaCL pretraining: 40 of the 8 x 8 = 64 patches masked, 10% held out.

No warm-up: the recipe's staircase warm-up raises the lr only every 50
optimizer steps, too coarse for a run of about 260 steps.
"""

FINETUNE = [
    f"--folds={json.dumps(TEST_FOLDS)}",
    "--batch_size=8",
    "--number_of_epochs=20",
    "--lr=0.0003",
    "--timem=24",
    "--freqm=24",
    "--fusion_layer=1",
    "--n_bottlenecks=8",
    "--mixup_prob=0",
]
"""ESC-50 fine-tuning, the same for AST and CRAFT (fold 1 held out).

``--mixup_prob=0`` is SSAST's ESC-50 setting: the recipes' default mixup
(the CRAFT paper's, 0.5 with Beta(10, 10)) needs more than the demo's 20
epochs of 40 steps (measured: AST 58.3 %, CRAFT 56.2 % with it).
"""

CHAINS = (("pretrain", "craft"), ("ast",))
"""Stages that run in order; the two chains run side by side when there are
cores for both (``--parallel``). Each recipe run is its own process with its
own threads and seed, so running them side by side changes no number.
"""

SHOWN = re.compile(r"epoch:|accuracy|error|exception|traceback", re.IGNORECASE)
SUMMARY_KEYS = (
    "train loss",
    "valid loss",
    "valid acc_spec",
    "valid swacl_acc",
    "valid accuracy",
)


def elapsed(start):
    """Formats the time since ``start`` as ``m:ss``.

    Arguments
    ---------
    start : float
        A ``time.time()`` value.

    Returns
    -------
    str
        Minutes and seconds.
    """
    seconds = int(time.time() - start)
    return f"{seconds // 60}:{seconds % 60:02d}"


def say(start, message):
    """Prints a progress line stamped with the elapsed time.

    Arguments
    ---------
    start : float
        Start time of the demo.
    message : str
        What to print.
    """
    print(f"[demo {elapsed(start)}] {message}", flush=True)


def summarise_line(line):
    """Shortens a recipe's per-epoch log line to the values worth watching.

    Arguments
    ---------
    line : str
        A line of the recipe's output.

    Returns
    -------
    str
        ``epoch N, key value, ...`` for SpeechBrain's epoch summaries, the
        stripped line otherwise.
    """
    match = re.search(r"epoch: (\d+)", line)
    if "train_logger" not in line or match is None:
        return line.strip()
    fields = dict(re.findall(r"((?:train|valid) [\w ]+?): ([-+.\deE]+|nan)", line))
    parts = [f"epoch {match.group(1)}"]
    parts += [
        f"{key} {float(fields[key]):.3g}" for key in SUMMARY_KEYS if key in fields
    ]
    return ", ".join(parts)


def stage_environment(threads, base=None):
    """The environment of a recipe run: :data:`DETERMINISM` and ``threads`` CPU threads.

    Arguments
    ---------
    threads : int
        Torch's intra-op threads (``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``).
    base : dict, optional
        The environment to extend (default: this process's).

    Returns
    -------
    dict
        The subprocess environment.

    Example
    -------
    >>> env = stage_environment(2, base={"OMP_NUM_THREADS": "16"})
    >>> env["OMP_NUM_THREADS"], env["MKL_NUM_THREADS"], env["PYTHONHASHSEED"]
    ('2', '2', '0')
    """
    env = dict(os.environ if base is None else base, PYTHONUNBUFFERED="1")
    env.update(DETERMINISM)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(int(threads))
    return env


def run_stage(start, name, args, log_path, env):
    """Runs one recipe as a subprocess, logging everything and echoing summaries.

    Arguments
    ---------
    start : float
        Start time of the demo.
    name : str
        Stage name for the progress lines.
    args : list of str
        Script and arguments (run with this Python, from the repository root).
    log_path : str
        Where the full output is written.
    env : dict
        Its environment (:func:`stage_environment`).

    Returns
    -------
    tuple
        Wall-clock seconds of the stage and the CPU seconds (user + system)
        its process used: on a shared machine, CPU seconds / threads is what
        the stage would take alone.
    """
    say(start, f"{name}: started (full log: {os.path.relpath(log_path, ROOT)})")
    stage_start = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join([sys.executable, *args]) + "\n")
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        for line in process.stdout:
            log.write(line)
            if line.strip() and SHOWN.search(line) and "%|" not in line:
                print(f"    [{name}] {summarise_line(line)}", flush=True)
        # wait4: this process's own CPU time, also while another stage runs.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = code = os.waitstatus_to_exitcode(status)
    if code != 0:
        with open(log_path, encoding="utf-8", errors="replace") as fin:
            tail = [line for line in fin.read().splitlines() if "%|" not in line]
        print("\n".join(tail[-40:]), file=sys.stderr)
        sys.exit(
            f"demo: stage '{name}' failed with exit code {code}; "
            f"see {os.path.relpath(log_path, ROOT)}"
        )
    seconds, cpu = time.time() - stage_start, usage.ru_utime + usage.ru_stime
    say(start, f"{name}: done in {seconds:.0f} s ({cpu:.0f} CPU s)")
    return seconds, cpu


def dataset_digest(root):
    """SHA-256 of the dataset's metadata and audio files, in sorted order.

    Two machines that print the same digest trained on the same bytes, so
    differing accuracies come from the CPU, not the data.

    Arguments
    ---------
    root : str
        The ESC-50 folder.

    Returns
    -------
    str
        Hex digest.

    Example
    -------
    >>> root = getfixture("tmp_path")
    >>> _ = (root / "a.wav").write_bytes(b"1")
    >>> dataset_digest(str(root)) == dataset_digest(str(root))
    True
    """
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as fin:
                digest.update(fin.read())
    return digest.hexdigest()


def make_data(start, root):
    """Writes the synthetic ESC-50 folder afresh (a few seconds).

    Arguments
    ---------
    start : float
        Start time of the demo.
    root : str
        The ESC-50 folder to create.

    Returns
    -------
    tuple
        Seconds spent and :func:`dataset_digest` of the folder.
    """
    from craft_modules.testing.synth import make_esc50

    say(
        start,
        "data: synthesising {n_classes} classes x {clips_per_class} clips "
        "of {duration} s at 44.1 kHz".format(**DATA),
    )
    begin = time.time()
    shutil.rmtree(root, ignore_errors=True)
    make_esc50(root, sample_rate=44100, **DATA)
    digest = dataset_digest(root)
    seconds = time.time() - begin
    say(
        start,
        f"data: written to {os.path.relpath(root, ROOT)} in {seconds:.0f} s "
        f"(sha256 {digest[:12]})",
    )
    return seconds, digest


def test_clips():
    """Clips in the held-out fold(s): the clips of each class are spread over 5 folds.

    Returns
    -------
    int
        ``n_classes * clips_per_class * len(TEST_FOLDS) / 5``.

    Example
    -------
    >>> test_clips()
    64
    """
    per_fold = DATA["clips_per_class"] // 5
    return DATA["n_classes"] * per_fold * len(TEST_FOLDS)


def read_results(folder):
    """Loads a recipe's ``results.json``.

    Arguments
    ---------
    folder : str
        The recipe's output folder.

    Returns
    -------
    dict
        The results.
    """
    with open(os.path.join(folder, "results.json"), encoding="utf-8") as fin:
        return json.load(fin)


def print_table(results, chance, total, threads):
    """Prints the final comparison.

    Arguments
    ---------
    results : dict
        Model name -> ESC-50 results (``mean_accuracy``, ``per_fold``).
    chance : float
        Chance accuracy.
    total : float
        Total seconds.
    threads : int
        CPU threads of the recipe runs.
    """
    folds = sorted({f for r in results.values() for f in r["per_fold"]}, key=int)
    header = f"{'model':<34}" + "".join(f"{'fold ' + f:>9}" for f in folds)
    print("\n" + header + f"{'mean':>9}")
    print("-" * (len(header) + 9))
    for name, result in results.items():
        cells = "".join(f"{100 * result['per_fold'][f]:>8.1f}%" for f in folds)
        print(f"{name:<34}{cells}{100 * result['mean_accuracy']:>8.1f}%")
    print(f"{'chance (1 / classes)':<34}{' ' * 9 * len(folds)}{100 * chance:>8.1f}%")
    print(
        f"\ntotal time {int(total) // 60} min {int(total) % 60:02d} s "
        f"({threads} CPU thread(s))"
    )
    print(
        "A smoke-scale run (a 2-block model, a few minutes of pretraining on a\n"
        f"few hundred synthetic clips, one held-out fold of {test_clips()} clips): "
        "it shows\nthat every stage runs and learns, not which method is better."
    )


def stage_commands(out, device="cpu"):
    """The three recipe runs: ``(key, name, arguments)``, outputs in ``out/<key>``.

    Arguments
    ---------
    out : str
        The demo's output folder (holding ``ESC-50/``).
    device : str
        The recipes' ``--device``.

    Returns
    -------
    list of tuple
        Pretraining, CRAFT fine-tuning, AST from scratch.

    Example
    -------
    >>> [key for key, _, _ in stage_commands("/out")]
    ['pretrain', 'craft', 'ast']
    """
    audio = os.path.join(out, "ESC-50", "audio")
    folders = {key: os.path.join(out, key) for key in ("pretrain", "craft", "ast")}
    data_args = [f"--data_folder={os.path.join(out, 'ESC-50')}"]
    data_args.append(f"--n_classes={DATA['n_classes']}")
    common = [*MODEL, f"--device={device}"]
    return [
        (
            "pretrain",
            "pretraining CRAFT (PSWaCL)",
            ["recipes/AudioSet/pretrain.py", "hparams/craft.yaml"]
            + ["--train_splits=[]", f"--unlabeled_folders={json.dumps([audio])}"]
            + [f"--data_folder={audio}"]
            + [f"--output_folder={folders['pretrain']}", *common, *PRETRAIN],
        ),
        (
            "craft",
            "fine-tuning CRAFT (SWaB)",
            ["recipes/ESC50/train.py", "hparams/craft.yaml", *data_args]
            + [f"--pretrained_path={folders['pretrain']}"]
            + [f"--output_folder={folders['craft']}", *common, *FINETUNE],
        ),
        (
            "ast",
            "training AST from scratch",
            ["recipes/ESC50/train.py", "hparams/ast.yaml", *data_args]
            + [f"--output_folder={folders['ast']}", *common, *FINETUNE],
        ),
    ]


def main():
    """Runs the four stages and writes ``demo_results.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output_folder", default=os.path.join(ROOT, "demo_output"), help="outputs"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda:0, ...")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads of every recipe run (the numbers depend on it)",
    )
    parser.add_argument(
        "--parallel",
        type=lambda v: v.lower() in ("1", "true", "yes"),
        default=None,
        help="run AST next to pretraining+CRAFT (default: when the CPUs allow it)",
    )
    options = parser.parse_args()
    out = os.path.abspath(options.output_folder)
    os.makedirs(out, exist_ok=True)
    sys.path.insert(0, ROOT)
    start = time.time()
    env = stage_environment(options.threads)
    data_seconds, digest = make_data(start, os.path.join(out, "ESC-50"))
    times, cpu_times = {"data": data_seconds}, {}

    folders = {key: os.path.join(out, key) for key in ("pretrain", "craft", "ast")}
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
    stages = {
        key: (name, args) for key, name, args in stage_commands(out, options.device)
    }

    def run_chain(keys):
        for key in keys:
            name, args = stages[key]
            log = os.path.join(out, f"{key}.log")
            times[key], cpu_times[key] = run_stage(start, name, args, log, env)

    parallel = options.parallel
    if parallel is None:  # two chains of `threads` threads each need the cores
        parallel = (os.cpu_count() or 1) >= 2 * options.threads
    if parallel:
        with concurrent.futures.ThreadPoolExecutor(len(CHAINS)) as pool:
            for chain in [pool.submit(run_chain, keys) for keys in CHAINS]:
                chain.result()  # a failed stage's SystemExit is raised here
    else:
        for keys in CHAINS:
            run_chain(keys)

    results = {
        "AST (from scratch)": read_results(folders["ast"]),
        "CRAFT (PSWaCL + SWaB)": read_results(folders["craft"]),
    }
    chance = 1.0 / DATA["n_classes"]
    total = time.time() - start
    print_table(results, chance, total, options.threads)
    summary = {
        "data": DATA,
        "data_sha256": digest,
        "test_clips": test_clips(),
        "threads": options.threads,
        "parallel": parallel,
        "pretrain_options": MODEL + PRETRAIN,
        "finetune_options": MODEL + FINETUNE,
        "accuracy": {
            name: {"mean": r["mean_accuracy"], "per_fold": r["per_fold"]}
            for name, r in results.items()
        },
        "pretrain_valid": read_results(folders["pretrain"]).get("valid", {}),
        "chance": chance,
        "seconds": {**times, "total": total},
        "cpu_seconds": {**cpu_times, "total": sum(cpu_times.values())},
    }
    path = os.path.join(out, "demo_results.json")
    with open(path, "w", encoding="utf-8") as fout:
        json.dump(summary, fout, indent=2)
    print(f"results written to {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
