"""A GPU check of CRAFT prepared to run in one short go (at most 6 minutes on an H200).

It needs no data: it writes a small synthetic dataset in the official AudioSet
layout (:func:`craft_modules.testing.synth.make_audioset`) and runs, one after the
other, each check recorded as pass / fail / skipped with its details and wall
time (a failed check does not stop the next one):

a. ``recipe_pretrain_kill_resume``: ``torchrun --nproc_per_node=1`` (NCCL on
   CUDA, gloo on CPU) runs tiny PSWaCL pretraining (``hparams/craft.yaml``,
   ``--precision=bf16`` on CUDA, fp32 on CPU) through a validation and a
   checkpoint; torchrun and its worker are then killed (SIGKILL), the same
   command resumes from the checkpoint and finishes (``results.json``);
b. ``recipe_finetune_swab``: SWaB fine-tuning (``recipes/AudioSet/train.py
   hparams/finetune_craft.yaml``) from that run's save folder writes
   ``results.json`` with mAP;
c. ``sync_debug``: a few PSWaCL, SWaB and diverse-embedding (four
   streams) training steps (forward, backward, Adam) after warm-up under
   ``torch.cuda.set_sync_debug_mode("error")``; every host-device sync is
   also listed with its source line (one step in ``"warn"`` mode); then
   ``fit_batch`` of ``PretrainBrain`` (PSWaCL), ``ClassifierBrain`` (SWaB
   with SpecAugment and mixup) and ``ClarBrain`` (two views through CLAR's
   augmentations), precision ``auto``, two steps each in error mode after
   two warm-up steps; and CLAR's waveform augmentations (all seven, prob
   0.5) on a batch, twice in error mode. On the CPU the same code runs
   (smaller models, one step each) and reports that no sync was watched;
f. ``nccl_collectives`` (CUDA only): this process joins a world-size-1 NCCL
   group and every helper of ``craft_modules.distributed`` takes its
   multi-process path (with one process they skip their collectives, so the
   recipe runs of a/b alone never hand them to NCCL);
d. ``base_{pswacl,swab}_eager``: base-size PSWaCL pretraining and
   SWaB fine-tuning steps on 10 s clips in bf16 autocast with Adam: seconds
   per step after warm-up (steps back to back, as training runs them, and the
   median of steps synchronised one by one), clips/s, peak memory, FLOPs of one step
   (forward + backward, ``torch.utils.flop_counter.FlopCounterMode``) and MFU
   against the GPU's dense bf16 peak; target MFU >= 40 % on H100/H200-class
   GPUs;
e. ``compile_matches_eager``: a tiny SWaB model with its encoder blocks
   compiled in place (``compile: True``) gives the eager outputs (fp32), and
   really was compiled (``compile: True`` falls back to eager on errors, which
   would make equal outputs prove nothing);
d. ``base_{pswacl,swab}_compiled``: the same steps with the encoder's blocks
   compiled in place (``Block.compile()``; SWaB calls the blocks directly,
   not ``encoder.forward``; ``--compile-target encoder`` compiles
   ``model.encoder`` instead); each starts only with
   ``--compiled-min-seconds`` of the budget left.

The eager measurements come before anything that compiles, so a run that
reaches its ``--budget-seconds`` loses the compiled numbers first.
Results go to ``<output-folder>/gpu_check.json`` and ``gpu_check.md`` (the
Markdown table is also printed), after every check, so that a run stopped
early keeps what it measured; the recipes' console logs go to
``<output-folder>/logs``. The exit status is 1 when any check failed.
``--device cpu --quick`` is the CI path (under 30 s on 2 cores): tiny model,
short clips, one or two steps, checks a/b and compilation skipped with a
note. ``--device cpu`` without ``--quick`` runs the recipe checks with gloo
(depth-1 tiny model, 1 s clips; about a minute for a and b, which the test
suite runs) and compiles on CPU.

Usage:
    python benchmarks/gpu_check.py --output-folder gpu_check_results
    python benchmarks/gpu_check.py --device cpu --quick --output-folder /tmp/gpu_check

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN = ROOT / "recipes" / "AudioSet" / "pretrain.py"
FINETUNE = ROOT / "recipes" / "AudioSet" / "train.py"
SAMPLE_RATE = 16000
MFU_TARGET = 0.40
#: Dense (no sparsity) bf16 tensor-core peaks in TFLOPS, by a substring of
#: ``torch.cuda.get_device_name()``; the first match wins.
PEAK_BF16_TFLOPS = (
    ("GH200", 989.0),
    ("H200 NVL", 835.0),
    ("H200", 989.0),  # SXM
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM (HBM3)
    ("A100", 312.0),
    ("L40S", 362.0),
)
#: Devices the MFU target applies to (substrings of the device name).
TARGET_CLASS = ("H100", "H200")
STATUSES = ("pass", "fail", "skipped")


class CheckSkipped(Exception):
    """Raised by a check that does not apply here; its message is the note."""


class CheckFailed(Exception):
    """Raised by a check that ran and failed.

    Arguments
    ---------
    summary : str
        One line saying what went wrong.
    **details : dict
        What was measured before the failure.
    """

    def __init__(self, summary, **details):
        super().__init__(summary)
        self.summary = summary
        self.details = details


def peak_bf16_tflops(device_name, override=None):
    """The dense bf16 peak of a GPU from its name, or ``override`` when given.

    Arguments
    ---------
    device_name : str
        ``torch.cuda.get_device_name()`` (or "cpu").
    override : float, optional
        ``--peak-tflops``: used as is when given.

    Returns
    -------
    float or None
        TFLOPS, or None when unknown.

    Example
    -------
    >>> peak_bf16_tflops("NVIDIA H100 PCIe"), peak_bf16_tflops("NVIDIA H200")
    (756.0, 989.0)
    >>> peak_bf16_tflops("cpu") is None, peak_bf16_tflops("cpu", 2.5)
    (True, 2.5)
    """
    if override:
        return float(override)
    name = device_name.lower()
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in name:
            return tflops
    return None


def mfu_target_applies(device_name):
    """Whether the MFU target is meant for this device (H100 / H200 class).

    Arguments
    ---------
    device_name : str
        ``torch.cuda.get_device_name()``.

    Returns
    -------
    bool

    Example
    -------
    >>> mfu_target_applies("NVIDIA H100 80GB HBM3"), mfu_target_applies("NVIDIA A100-SXM4-80GB")
    (True, False)
    """
    return any(key.lower() in device_name.lower() for key in TARGET_CLASS)


def mask_patch_for(frames, fshape=16, n_mels=128):
    """SSAST's share of masked patches (400 of 512) for a clip of ``frames`` frames.

    Arguments
    ---------
    frames : int
        Input frames (1024 for 10 s).
    fshape : int
        Patch side.
    n_mels : int
        Mel bins.

    Returns
    -------
    int
        Masked patches per clip.

    Example
    -------
    >>> mask_patch_for(1024), mask_patch_for(128)
    (400, 50)
    """
    patches = (n_mels // fshape) * (frames // fshape)
    return max(1, patches * 400 // 512)


def markdown_table(report):
    """The report as a Markdown table with a header line and a summary.

    Arguments
    ---------
    report : dict
        What :class:`GpuCheck` writes to ``gpu_check.json``.

    Returns
    -------
    str

    Example
    -------
    >>> report = {"environment": {"device": "cpu", "device_name": "cpu", "torch": "2.11"},
    ...           "checks": [{"id": "a", "name": "x", "status": "pass", "seconds": 1.0,
    ...                       "summary": "ok | fine"}], "wall_seconds": 1.0}
    >>> print(markdown_table(report).splitlines()[-3])
    | a | x | pass | 1.0 | ok / fine |
    """
    env = report["environment"]
    lines = [
        "# CRAFT GPU check",
        "",
        f"{env['device_name']} ({env['device']}), torch {env['torch']}"
        + (f", CUDA {env['cuda']}" if env.get("cuda") else "")
        + (
            f", dense bf16 peak {env['peak_bf16_tflops']:g} TFLOPS"
            if env.get("peak_bf16_tflops")
            else ", bf16 peak unknown"
        ),
        "",
        "| | check | status | seconds | result |",
        "|---|---|---|---|---|",
    ]
    counts = dict.fromkeys(STATUSES, 0)
    for check in report["checks"]:
        counts[check["status"]] = counts.get(check["status"], 0) + 1
        summary = check.get("summary", "").replace("|", "/").replace("\n", " ")
        lines.append(
            f"| {check['id']} | {check['name']} | {check['status']} | "
            f"{check['seconds']:.1f} | {summary} |"
        )
    lines.append("")
    lines.append(
        f"{counts['pass']} passed, {counts['fail']} failed, {counts['skipped']} skipped "
        f"in {report['wall_seconds']:.0f} s"
    )
    return "\n".join(lines)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _tail(text, n=2000):
    return text if len(text) <= n else "..." + text[-n:]


def _complete_checkpoints(save_folder):
    """Checkpoint folders whose metadata is published (AtomicCheckpointer: complete)."""
    return sorted(p.parent for p in Path(save_folder).glob("CKPT+*/CKPT.yaml"))


def _logged_epochs(train_log):
    """Epoch numbers of the lines of a FileTrainLogger file, in order."""
    if not Path(train_log).is_file():
        return []
    text = Path(train_log).read_text(encoding="utf-8")
    return [int(m) for m in re.findall(r"^epoch: (\d+)", text, flags=re.M)]


class GpuCheck:
    """Runs the checks, prints progress and writes the JSON and Markdown reports.

    Arguments
    ---------
    args : argparse.Namespace
        The parsed command line (see :func:`parse_args`).
    """

    def __init__(self, args):
        self.args = args
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda and self.device.index is None:  # torch.cuda.set_device needs one
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.output = Path(args.output_folder).resolve()
        self.logs = self.output / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.work = Path(args.work_folder or tempfile.mkdtemp(prefix="gpu_check_"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.start = time.monotonic()
        self.checks = []
        self.flops = {}  # kind -> FLOPs of one step (counted once, eager)
        self.device_name = (
            torch.cuda.get_device_name(self.device) if self.cuda else "cpu"
        )
        self.peak_tflops = peak_bf16_tflops(self.device_name, args.peak_tflops)
        self.dataset = None
        self.pretrain_save = None

    # ------------------------------------------------------------ bookkeeping
    def elapsed(self):
        """Seconds since the start."""
        return time.monotonic() - self.start

    def say(self, message):
        """Prints a progress line with the elapsed time."""
        print(f"[{self.elapsed():6.1f} s] {message}", flush=True)

    def environment(self):
        """Versions and device facts for the report."""
        env = {
            "device": str(self.device),
            "device_name": self.device_name,
            "torch": torch.__version__,
            "cuda": torch.version.cuda if self.cuda else None,
            "python": platform.python_version(),
            "peak_bf16_tflops": self.peak_tflops,
            "mfu_target": MFU_TARGET,
            "mfu_target_applies": self.cuda and mfu_target_applies(self.device_name),
            "cpu_threads": torch.get_num_threads(),
        }
        if self.cuda:
            props = torch.cuda.get_device_properties(self.device)
            env["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
            env["compute_capability"] = f"{props.major}.{props.minor}"
        try:
            import speechbrain

            env["speechbrain"] = speechbrain.__version__
        except ImportError:  # pragma: no cover - a dependency
            env["speechbrain"] = None
        return env

    def report(self):
        """The whole report as a dict."""
        return {
            "created": _now(),
            "environment": self.environment(),
            "arguments": vars(self.args),
            "checks": self.checks,
            "failed": [c["name"] for c in self.checks if c["status"] == "fail"],
            "wall_seconds": round(self.elapsed(), 2),
        }

    def write(self):
        """Writes gpu_check.json and gpu_check.md; returns the Markdown."""
        report = self.report()
        with open(self.output / "gpu_check.json", "w", encoding="utf-8") as fout:
            json.dump(report, fout, indent=2, default=str)
        table = markdown_table(report)
        (self.output / "gpu_check.md").write_text(table + "\n", encoding="utf-8")
        return table

    def run(self, check_id, name, function):
        """Runs one check, records its outcome and rewrites the reports.

        Arguments
        ---------
        check_id : str
            ``a`` .. ``d`` (the issue's letters).
        name : str
            The check's name.
        function : callable
            Returns ``(summary, details)``; raises :class:`CheckSkipped` or
            :class:`CheckFailed` (any other exception is a failure too).
        """
        entry = {"id": check_id, "name": name, "started": _now()}
        start = time.monotonic()
        selected = self.args.checks
        budget_left = self.args.budget_seconds - self.elapsed()
        self.say(f"({check_id}) {name}: running")
        try:
            if selected and name not in selected and check_id not in selected:
                raise CheckSkipped("not selected (--checks)")
            if budget_left <= 0:
                raise CheckSkipped(
                    f"time budget of {self.args.budget_seconds:g} s spent (--budget-seconds)"
                )
            summary, details = function()
            entry.update(status="pass", summary=summary, details=details)
        except CheckSkipped as skip:
            entry.update(status="skipped", summary=str(skip), details={})
        except CheckFailed as failure:
            entry.update(
                status="fail", summary=failure.summary, details=failure.details
            )
        except Exception as error:  # any error is this check's failure, not the run's
            entry.update(
                status="fail",
                summary=f"{type(error).__name__}: {error}"[:500],
                details={"traceback": _tail(traceback.format_exc(), 4000)},
            )
        finally:
            self._release_memory()
        entry["seconds"] = round(time.monotonic() - start, 2)
        self.checks.append(entry)
        self.write()
        self.say(
            f"({check_id}) {name}: {entry['status'].upper()} in {entry['seconds']:.1f} s"
            f" - {entry['summary']}"
        )

    def _release_memory(self):
        from craft_modules.training.experiment import release_memory

        release_memory()

    # ------------------------------------------------------------ recipe runs
    def recipe_clip_seconds(self):
        """Clip length of the recipe checks (short on CPU, SSAST's 10 s on CUDA)."""
        if self.args.recipe_clip_seconds:
            return float(self.args.recipe_clip_seconds)
        return 10.0 if self.cuda else 1.0

    def make_dataset(self):
        """Writes the synthetic AudioSet-layout dataset once; returns its folder."""
        if self.dataset is None:
            from craft_modules.testing.synth import make_audioset

            root = self.work / "AudioSet"
            shutil.rmtree(root, ignore_errors=True)
            seconds = self.recipe_clip_seconds()
            start = time.monotonic()
            make_audioset(
                str(root),
                n_classes=self.args.recipe_classes,
                n_balanced=16,
                n_eval=6,
                duration=seconds,
            )
            self.say(
                f"    wrote 22 clips of {seconds:g} s in the AudioSet layout to {root} "
                f"({time.monotonic() - start:.1f} s)"
            )
            self.dataset = root
        return self.dataset

    def recipe_env(self):
        """Environment of the recipe processes: this checkout first on PYTHONPATH."""
        env = dict(os.environ)
        paths = [str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(":") if p]
        env["PYTHONPATH"] = ":".join(paths)
        env["PYTHONUNBUFFERED"] = "1"  # a killed run keeps its log tail
        if self.cuda and self.device.index is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(self.device.index)
        if self.cuda:  # one node: NCCL's bootstrap needs no network interface
            env.setdefault("NCCL_SOCKET_IFNAME", "lo")
        else:
            env.setdefault("OMP_NUM_THREADS", "1")
        return env

    def recipe_command(self, script, yaml, output_folder, *extra):
        """``torchrun --nproc_per_node=1 <script> <yaml> ...`` with the common options."""
        seconds = self.recipe_clip_seconds()
        common = [
            f"--data_folder={self.make_dataset()}",
            f"--output_folder={output_folder}",
            f"--device={'cuda:0' if self.cuda else 'cpu'}",
            f"--distributed_backend={'nccl' if self.cuda else 'gloo'}",
            f"--precision={'bf16' if self.cuda else 'fp32'}",
            "--model_size=tiny",
            f"--clip_duration={seconds:g}",
            f"--num_workers={2 if self.cuda else 0}",
        ]
        if not self.cuda:
            common.append("--depth=1")
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nnodes=1",
            "--nproc_per_node=1",
            str(script),
            yaml,
            *common,
            *extra,
        ]

    def _launch(self, command, log_path):
        log = open(log_path, "w", encoding="utf-8")
        log.write(" ".join(command) + "\n\n")
        log.flush()
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.recipe_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return proc, log

    def _run_to_end(self, command, log_path, timeout, label):
        """Runs a recipe command to its end; returns ``(returncode, seconds)``."""
        proc, log = self._launch(command, log_path)
        start = time.monotonic()
        next_note = start + 15
        try:
            while proc.poll() is None:
                now = time.monotonic()
                if now - start > timeout:
                    kill_tree(proc)
                    raise CheckFailed(
                        f"{label} ran past {timeout:.0f} s and was killed",
                        log=str(log_path),
                        log_tail=_tail(Path(log_path).read_text(errors="replace")),
                    )
                if now > next_note:
                    self.say(f"    {label}: still running ({now - start:.0f} s)")
                    next_note = now + 15
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                kill_tree(proc)
            log.close()
        return proc.returncode, time.monotonic() - start

    def _timeout(self):
        """Seconds a recipe run may take: ``--recipe-timeout``, never past the budget."""
        left = self.args.budget_seconds - self.elapsed()
        if left <= 1.0:
            raise CheckFailed(
                f"the time budget of {self.args.budget_seconds:g} s ran out "
                "during the check (--budget-seconds)"
            )
        return min(self.args.recipe_timeout, left)

    def check_pretrain_kill_resume(self):
        """(a) torchrun pretraining: validation + checkpoint, SIGKILL, resume, finish."""
        if self.args.quick and not self.cuda:
            raise CheckSkipped(
                "skipped by --quick on CPU (about 20 s of torchrun runs; run without --quick)"
            )
        from craft_modules.training.experiment import frames_for_duration

        out = self.work / "pretrain"
        shutil.rmtree(out, ignore_errors=True)
        frames = frames_for_duration(self.recipe_clip_seconds())
        command = self.recipe_command(
            PRETRAIN,
            "hparams/craft.yaml",
            out,
            "--batch_size=4",
            f"--number_of_epochs={self.args.recipe_passes}",
            "--epoch_iter=1",  # one validation + checkpoint per optimizer step
            "--train_splits=[balanced_train]",  # the generated data has no unbalanced set
            f"--mask_patch={mask_patch_for(frames)}",
            "--warmup_steps=2",
        )
        save = out / "save"
        log1 = self.logs / "a_pretrain_first_run.log"
        proc, log = self._launch(command, log1)
        start = time.monotonic()
        timeout = self._timeout()
        killed_after, survivors = None, []
        try:
            while proc.poll() is None and time.monotonic() - start < timeout:
                if _complete_checkpoints(save):
                    killed_after = [p.name for p in _complete_checkpoints(save)]
                    survivors = kill_tree(proc)
                    break
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                kill_tree(proc)
            log.close()
        first_seconds = time.monotonic() - start
        details = {
            "command": " ".join(command),
            "first_run_seconds": round(first_seconds, 2),
            "first_run_log": str(log1),
            "first_run_returncode": proc.returncode,
        }
        if killed_after is None:
            reason = (
                f"ended (exit status {proc.returncode}) before a checkpoint existed"
                if first_seconds < timeout
                else f"wrote no checkpoint in {timeout:.0f} s"
            )
            raise CheckFailed(
                f"first run {reason}",
                log_tail=_tail(log1.read_text(errors="replace")),
                **details,
            )
        epochs_before = _logged_epochs(out / "train_log.txt")
        details.update(
            killed_after_checkpoints=killed_after, epochs_before_kill=epochs_before
        )
        if survivors:
            raise CheckFailed(
                f"processes {survivors} of the killed run still run 30 s after SIGKILL",
                **details,
            )
        if (out / "results.json").exists():
            raise CheckFailed(
                "the run had finished before it was killed (raise --recipe-passes)",
                **details,
            )
        self.say(
            f"    killed (SIGKILL) after {first_seconds:.1f} s, {len(killed_after)} checkpoint(s), "
            f"epochs logged {epochs_before}; resuming"
        )
        self.pretrain_save = save
        log2 = self.logs / "a_pretrain_resumed_run.log"
        code, seconds = self._run_to_end(command, log2, self._timeout(), "resumed run")
        text = log2.read_text(errors="replace")
        epochs = _logged_epochs(out / "train_log.txt")
        details.update(
            resumed_run_seconds=round(seconds, 2),
            resumed_run_log=str(log2),
            resumed_run_returncode=code,
            epochs_logged=epochs,
        )
        if (out / "train_log.txt").exists():
            shutil.copy(out / "train_log.txt", self.logs / "a_pretrain_train_log.txt")
        if code != 0:
            raise CheckFailed(
                f"resumed run failed (exit status {code})",
                log_tail=_tail(text),
                **details,
            )
        problems = []
        if "Loading a checkpoint" not in text:
            problems.append("the resumed run did not load a checkpoint")
        if epochs.count(1) != 1:
            problems.append(f"epoch 1 logged {epochs.count(1)} times (restarted?)")
        if not epochs or sorted(set(epochs)) != list(range(1, max(epochs) + 1)):
            problems.append(f"epochs logged {epochs} are not 1..N")
        results = out / "results.json"
        valid = {}
        if results.exists():
            valid = json.loads(results.read_text()).get("valid", {})
            details["valid"] = valid
        else:
            problems.append("no results.json")
        if not valid or not all(math.isfinite(v) for v in valid.values()):
            problems.append(f"validation losses missing or not finite: {valid}")
        if problems:
            raise CheckFailed("; ".join(problems), log_tail=_tail(text), **details)
        summary = (
            f"killed after epoch {max(epochs_before or [0])} ({len(killed_after)} checkpoint), "
            f"resumed, finished {max(epochs)} epochs; valid loss {valid.get('loss', float('nan')):.3f}"
        )
        return summary, details

    def check_finetune(self):
        """(b) SWaB fine-tuning from check a's save folder: results.json with mAP."""
        if self.args.quick and not self.cuda:
            raise CheckSkipped("skipped by --quick on CPU (needs check a)")
        save = self.pretrain_save
        if save is None or not _complete_checkpoints(save):
            raise CheckFailed("no pretraining checkpoint from check a to start from")
        out = self.work / "finetune"
        shutil.rmtree(out, ignore_errors=True)
        extra = [
            f"--pretrained_path={save}",
            "--batch_size=4",
            "--number_of_epochs=2",
            f"--n_classes={self.args.recipe_classes}",
            "--weight_averaging_start=1",
        ]
        if not self.cuda:  # depth 1: fuse from block 0, few bottlenecks
            extra += ["--fusion_layer=0", "--n_bottlenecks=4"]
        command = self.recipe_command(
            FINETUNE, "hparams/finetune_craft.yaml", out, *extra
        )
        log_path = self.logs / "b_finetune.log"
        code, seconds = self._run_to_end(
            command, log_path, self._timeout(), "fine-tuning"
        )
        text = log_path.read_text(errors="replace")
        details = {
            "command": " ".join(command),
            "log": str(log_path),
            "returncode": code,
            "run_seconds": round(seconds, 2),
        }
        if code != 0:
            raise CheckFailed(
                f"fine-tuning failed (exit status {code})",
                log_tail=_tail(text),
                **details,
            )
        results_path = out / "results.json"
        if not results_path.exists():
            raise CheckFailed("no results.json", log_tail=_tail(text), **details)
        results = json.loads(results_path.read_text())
        details.update(
            {k: results.get(k) for k in ("mAP", "mAUC", "d_prime", "weight_averaged")}
        )
        mean_ap = results.get("mAP")
        problems = []
        if not isinstance(mean_ap, (int, float)) or not 0.0 <= mean_ap <= 1.0:
            problems.append(f"mAP {mean_ap!r} is not in [0, 1]")
        if "Pretrained weights: loaded" not in text:
            problems.append("the log does not say the pretrained weights were loaded")
        if problems:
            raise CheckFailed("; ".join(problems), log_tail=_tail(text), **details)
        return (
            f"mAP {mean_ap:.4f}, mAUC {results.get('mAUC', float('nan')):.4f}",
            details,
        )

    # ------------------------------------------------------------ in-process steps
    def clip_samples(self):
        """Samples per clip of the in-process steps (10 s unless --quick / --clip-seconds)."""
        seconds = self.args.clip_seconds or (1.0 if self.args.quick else 10.0)
        return int(seconds * SAMPLE_RATE)

    def build_model(self, kind, model_size, depth=None):
        """A model as the recipes build it: PSWaCL pretrainer, SWaB or diverse classifier.

        ``diverse`` is the diverse-embedding model with its four streams
        (``model_size`` does not apply to it). ``depth`` overrides the
        number of blocks (``None``: the preset's).
        """
        from craft_modules.augment.spectrogram import SpecAugment
        from craft_modules.models.craft import CraftClassifier, CraftPretrainer
        from craft_modules.models.diverse import DiverseEmbeddingModel
        from craft_modules.training.experiment import frames_for_duration

        frames = frames_for_duration(self.clip_samples() / SAMPLE_RATE)
        torch.manual_seed(0)
        if kind == "diverse":
            model = DiverseEmbeddingModel(527, depth=depth or 6)
        elif kind == "pswacl":
            model = CraftPretrainer(
                method="pswacl",
                model_size=model_size,
                depth=depth,
                target_frames=frames,
                norm_stats="audioset",
                mask_patch=mask_patch_for(frames),
            )
        else:
            model = CraftClassifier(
                527,
                fusion="swab",
                model_size=model_size,
                depth=depth,
                **({} if depth is None else {"fusion_layer": depth // 2}),
                target_frames=frames,
                norm_stats="audioset",
                spec_augment=SpecAugment(freqm=48, timem=min(192, frames // 4)),
            )
        return model.to(self.device).train()

    def training_step(self, model, kind, batch_size):
        """Returns ``(step, forward_backward)`` closures on a fixed random batch.

        A step is what a recipe's optimizer step does: (waveform mixup for
        SWaB,) forward in bf16 autocast (fp32 with ``--precision fp32``),
        backward, gradient clipping at the recipes' 1e10 and Adam with their
        betas and weight decay.
        """
        from craft_modules.augment.spectrogram import mixup

        samples = self.clip_samples()
        generator = torch.Generator(device="cpu").manual_seed(0)
        wavs = (torch.randn(batch_size, samples, generator=generator) * 0.1).to(
            self.device
        )
        lens = torch.ones(batch_size, device=self.device)
        targets = (torch.rand(batch_size, 527, generator=generator) < 0.02).float()
        targets = targets.to(self.device)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=5e-5, betas=(0.95, 0.999), weight_decay=5e-7
        )
        bf16 = self.precision() == "bf16"

        def forward_backward():
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                if kind == "pswacl":
                    loss = model(wavs, lens)["loss"]
                else:
                    mixed, mixed_lens, mixed_targets = mixup(
                        wavs, lens, targets, alpha=10.0, prob=0.5
                    )
                    logits = model(mixed, mixed_lens)
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(
                        logits, mixed_targets
                    )
            loss.backward()
            return loss

        def step():
            loss = forward_backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1e10)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss

        return step, forward_backward

    def precision(self):
        """Autocast precision of the in-process steps."""
        return self.args.precision or ("bf16" if self.cuda else "fp32")

    def synchronize(self):
        """Waits for the device (no-op on CPU)."""
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def check_sync_debug(self):
        """(c) Host-device syncs in the training steps and ``fit_batch``.

        On CUDA every step runs under ``torch.cuda.set_sync_debug_mode("error")``.
        On the CPU there is nothing to watch: the same steps run, so that the
        check's code cannot rot, and the result says the syncs were not
        watched (the test suite's CPU detector covers the host reads).
        """
        per_model = {}
        warmup, watched = (2, 2) if self.cuda else (1, 1)
        batch, depth = self.sync_check_sizes()
        for kind in ("pswacl", "swab", "diverse"):
            self.say(
                f"    {kind} (tiny, batch {batch}): {warmup} warm-up step(s), "
                "then sync-debug steps"
            )
            model = self.build_model(kind, "tiny", depth)
            step, _ = self.training_step(model, kind, batch)
            for _ in range(warmup):
                step()
            self.synchronize()
            sites = sync_sites(step) if self.cuda else []
            self.synchronize()
            error = _sync_error_of(step, times=watched)
            self.synchronize()
            per_model[kind] = {"raised": error, "sync_sites_warn_mode": sites}
            del model, step
            self._release_memory()
        per_model["brain_fit_batch"] = self.brain_fit_batch_syncs()
        per_model["clar_augmentations"] = self.clar_augmentation_syncs()
        raised = [k for k, v in per_model.items() if v["raised"]]
        details = {"syncs_watched": self.cuda, **per_model}
        if raised:
            first = per_model[raised[0]]["raised"]
            where = first["where"][-1] if first["where"] else "?"
            raise CheckFailed(
                f"host-device sync in {', '.join(raised)} steps (first at {where}): "
                f"{first['error'][:200]}",
                **details,
            )
        ran = (
            "PSWaCL, SWaB and diverse-embedding steps, the three Brains' fit_batch "
            "and CLAR's augmentations"
        )
        if not self.cuda:
            return f"CPU: {ran} ran; syncs are watched on CUDA only", details
        return f"no host-device sync in the {ran}", details

    def sync_check_sizes(self):
        """``(batch, depth)`` of check c's models: tiny on CUDA; smaller on the CPU.

        On the CPU no sync is watched, the steps only need to run (``depth``
        None: the preset's twelve blocks).
        """
        return (4, None) if self.cuda else (2, 2)

    def clar_chain(self):
        """CLAR's augmentations, each with prob 0.5, in one chain (on the CPU)."""
        from craft_modules.augment import waveform

        return waveform.AugmentationChain(
            [
                waveform.PitchShift(16000, prob=0.5),
                waveform.Fade(prob=0.5),
                waveform.WhiteNoise(prob=0.5),
                waveform.ColouredNoise(prob=0.5),
                waveform.TimeMask(prob=0.5),
                waveform.TimeShift(prob=0.5),
                waveform.TimeStretch(prob=0.5),
            ]
        )

    def clar_augmentation_syncs(self):
        """CLAR's augmentations (prob 0.5) on a batch, twice, under error mode."""
        chain = self.clar_chain().to(self.device)  # as ClarBrain.on_fit_start puts it
        wavs = torch.randn(4, self.clip_samples(), device=self.device) * 0.1
        lens = torch.ones(4, device=self.device)
        for _ in range(2):
            chain(wavs, lens)
        self.synchronize()
        error = _sync_error_of(lambda: chain(wavs, lens), times=2)
        self.synchronize()
        return {"raised": error}

    def brain_fit_batch_syncs(self):
        """``fit_batch`` of the three Brains under error mode (steps 3 and 4, after warm-up).

        ``PretrainBrain`` (PSWaCL: loss weighting, running averages, Adam),
        ``ClassifierBrain`` (SWaB with SpecAugment and waveform mixup, as
        fine-tuning trains) and ``ClarBrain`` (CLAR: two views augmented by
        CLAR's seven augmentations, NT-Xent and cross-entropy), precision
        ``auto``.
        """
        from speechbrain.utils.train_logger import FileTrainLogger

        from craft_modules.models.clar import ClarModel
        from craft_modules.training.brains import ClassifierBrain, PretrainBrain
        from craft_modules.training.clar_brain import ClarBrain
        from craft_modules.training.schedulers import (
            EpochDecayScheduler,
            WarmupPlateauScheduler,
        )

        samples = self.clip_samples()
        batch, depth = self.sync_check_sizes()
        wavs = torch.randn(batch, samples, device=self.device) * 0.1
        lens = torch.ones(batch, device=self.device)
        logger = FileTrainLogger(os.devnull)
        results = {}
        pretrain = PretrainBrain(
            modules={"model": self.build_model("pswacl", "tiny", depth)},
            opt_class=lambda params: torch.optim.Adam(params, lr=1e-4),
            hparams={
                "lr_scheduler": WarmupPlateauScheduler(1e-4, warmup_steps=10),
                "train_logger": logger,
                "monitor": "acc_spec",
                "precision": "auto",
            },
            run_opts={"device": str(self.device)},
        )
        results["pretrain"] = self._fit_batches(pretrain, _WaveformBatch(wavs, lens))
        del pretrain
        classifier = ClassifierBrain(
            modules={"model": self.build_model("swab", "tiny", depth)},
            opt_class=lambda params: torch.optim.Adam(params, lr=1e-4),
            hparams={
                "loss": "bce",
                "metric": "mAP",
                "lr_schedule": EpochDecayScheduler(1e-4, start=5, step=1, decay=0.5),
                "train_logger": logger,
                "mixup_prob": 0.5,
                "mixup_alpha": 10.0,
                "precision": "auto",
            },
            run_opts={"device": str(self.device)},
        )
        targets = (torch.rand(batch, 527, device=self.device) > 0.99).float()
        results["finetune"] = self._fit_batches(
            classifier, _WaveformBatch(wavs, lens, targets)
        )
        del classifier
        widths = [64, 128, 256, 512] if self.cuda else [8, 16, 32, 64]
        clar = ClarBrain(
            modules={"model": ClarModel("spectrogram", n_classes=4, widths=widths)},
            opt_class=lambda params: torch.optim.Adam(params, lr=1e-3),
            hparams={
                "augmentation": self.clar_chain(),
                "clar_mode": "clar",
                "temperature": 0.5,
                "label_fraction": 1.0,
                "seed": 1,
                "loss": "ce",
                "metric": "accuracy",
                "lr_schedule": EpochDecayScheduler(1e-3, start=5, step=1, decay=0.5),
                "train_logger": logger,
                "precision": "auto",
            },
            run_opts={"device": str(self.device)},
        )
        clar_targets = torch.eye(4)[torch.arange(batch) % 4].to(self.device)
        clar_batch = _WaveformBatch(wavs, lens, clar_targets)
        clar.labelled_ids = set(clar_batch.id)
        results["clar"] = self._fit_batches(clar, clar_batch)
        del clar
        self._release_memory()
        raised = {k: v for k, v in results.items() if v}
        first = next(iter(raised.values()), None)
        return {"raised": first, "per_brain": results, "precision": "auto"}

    def _fit_batches(self, brain, batch, steps=4, checked_from=3):
        """Runs ``fit_batch`` ``steps`` times, in sync-debug error mode from ``checked_from``.

        On the CPU, where no sync is watched, two steps run (the second as if
        watched).
        """
        if not self.cuda:
            steps, checked_from = 2, 2
        brain.on_fit_start()
        brain.on_stage_start(sb_stage_train(), 1)
        brain.modules.train()
        error = None
        for step in range(1, steps + 1):
            brain.step = step
            if step >= checked_from:
                self.synchronize()
                _set_sync_debug_mode("error")
            try:
                loss = brain.fit_batch(batch)
                brain.update_average(loss, 0.0)
            except RuntimeError as exc:
                error = {
                    "error": str(exc)[:1000],
                    "where": _project_frames(traceback.extract_tb(exc.__traceback__)),
                }
                break
            finally:
                _set_sync_debug_mode(0)
        self.synchronize()
        return error

    def check_collectives(self):
        """(f) Every collective helper of ``craft_modules.distributed`` on NCCL.

        One GPU hosts one NCCL rank, and with one process the helpers skip
        their collectives, so this process joins a world-size-1 NCCL group
        and the helpers are made to take their multi-process path: every
        tensor they hand to NCCL must be on this GPU.
        """
        if not self.cuda:
            raise CheckSkipped("NCCL needs CUDA (the gloo paths run in the test suite)")
        import socket
        from unittest import mock

        import torch.distributed as dist

        from craft_modules import distributed

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        torch.cuda.set_device(self.device)
        os.environ.setdefault("NCCL_SOCKET_IFNAME", "lo")
        dist.init_process_group(
            "nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1
        )
        results = {}
        try:
            with mock.patch.object(distributed, "is_distributed", lambda: True):
                total = distributed.all_reduce_sum(torch.tensor([1.0, 2.0]))
                results["all_reduce_sum_cpu_input"] = total.tolist()
                on_gpu = distributed.all_reduce_sum(torch.ones(2, device=self.device))
                results["all_reduce_sum_gpu_input"] = on_gpu.tolist()
                results["all_gather_objects"] = distributed.all_gather_objects({"a": 1})
                results["broadcast_object"] = distributed.broadcast_object([1, 2])
                results["all_gather_max"] = distributed.all_gather_max(5)
                distributed.barrier()
                x = torch.randn(3, 8, device=self.device, requires_grad=True)
                distributed.set_gather_rows(4)
                try:
                    gathered, valid, start = distributed.gather_with_grad(x)
                finally:
                    distributed.set_gather_rows(None)
                (gathered[valid] * 2).sum().backward()
                results["gather_with_grad"] = {
                    "shape": list(gathered.shape),
                    "valid_rows": int(valid.sum()),
                    "start": start,
                    "grad_ok": bool(torch.all(x.grad == 2)),
                }
        finally:
            dist.destroy_process_group()
        expected = {
            "all_reduce_sum_cpu_input": [1.0, 2.0],
            "all_reduce_sum_gpu_input": [1.0, 1.0],
            "all_gather_objects": [{"a": 1}],
            "broadcast_object": [1, 2],
            "all_gather_max": 5,
        }
        wrong = {k: results[k] for k, v in expected.items() if results[k] != v}
        gather = results["gather_with_grad"]
        if gather != {"shape": [4, 8], "valid_rows": 3, "start": 0, "grad_ok": True}:
            wrong["gather_with_grad"] = gather
        if wrong:
            raise CheckFailed(f"wrong results: {wrong}", **results)
        return (
            "all_reduce, all_gather, broadcast, barrier, gather_with_grad on NCCL",
            results,
        )

    def check_compile_matches_eager(self):
        """(e) ``compile: True`` (blocks compiled in place) gives the eager outputs."""
        if self.args.no_compile:
            raise CheckSkipped("--no-compile")
        if self.args.quick and not self.cuda:
            raise CheckSkipped(
                "skipped by --quick on CPU (inductor compilation is slow)"
            )
        from craft_modules.training.compile import compile_in_place

        torch._dynamo.reset()
        model = self.build_model("swab", "tiny").eval()
        wavs = torch.randn(2, self.clip_samples(), device=self.device) * 0.1
        with torch.no_grad():
            eager = model(wavs).float()
            names = list(model.state_dict())
            targets = model.compile_targets()
            accepted = [compile_in_place(target) for target in targets]
            torch._dynamo.utils.counters.clear()
            start = time.perf_counter()
            compiled = model(wavs).float()
            self.synchronize()
            first_call = time.perf_counter() - start
        graphs = int(torch._dynamo.utils.counters["stats"].get("unique_graphs", 0))
        still_compiled = sum(t._compiled_call_impl is not None for t in targets)
        difference = float((compiled - eager).abs().max())
        details = {
            "max_abs_difference": difference,
            "first_compiled_call_s": round(first_call, 2),
            "same_parameter_names": list(model.state_dict()) == names,
            "compiled_modules": f"{still_compiled}/{len(targets)}",
            "graphs": graphs,
        }
        del model
        self._release_memory()
        if not all(accepted) or still_compiled < len(targets) or graphs < 1:
            # compile_in_place falls back to eager: equal outputs would prove nothing.
            raise CheckFailed(
                f"compilation fell back to eager ({still_compiled}/{len(targets)} "
                f"modules compiled, {graphs} graphs)",
                **details,
            )
        if difference > 1e-3 or not details["same_parameter_names"]:
            raise CheckFailed(f"compiled outputs differ by {difference:.2e}", **details)
        return f"compiled = eager within {difference:.1e} (fp32)", details

    def count_flops(self, kind, model, batch_size):
        """FLOPs of one forward + backward of ``model`` (counted once per kind, eager)."""
        from craft_modules.training.flops import flop_counter

        key = (kind, self.model_size(), batch_size, self.clip_samples())
        if key not in self.flops:
            _, forward_backward = self.training_step(model, kind, batch_size)
            with flop_counter() as counter:
                forward_backward()
            model.zero_grad(set_to_none=True)
            self.synchronize()
            self.flops[key] = counter.get_total_flops()
        return self.flops[key]

    def model_size(self):
        """Model size of check d (base, or tiny with --quick)."""
        return self.args.model_size or ("tiny" if self.args.quick else "base")

    def batch_size(self, kind):
        """Clips per step of check d."""
        if kind == "pswacl":
            return self.args.pretrain_batch or (2 if self.args.quick else 24)
        return self.args.finetune_batch or (2 if self.args.quick else 12)

    def compile_model(self, model):
        """Compiles the encoder in place; returns what was compiled."""
        torch._dynamo.reset()
        options = {"dynamic": False}
        if self.args.compile_mode != "default":
            options["mode"] = self.args.compile_mode
        if self.args.compile_target == "encoder":
            model.encoder.compile(**options)
            return "model.encoder"
        for block in model.encoder.blocks:
            block.compile(**options)
        return f"model.encoder.blocks[0..{len(model.encoder.blocks) - 1}]"

    def check_base_steps(self, kind, compiled):
        """(d) Seconds per step, clips/s, peak memory and MFU of one model and mode."""
        if compiled and self.args.quick and not self.cuda:
            raise CheckSkipped(
                "skipped by --quick on CPU (inductor compilation is slow)"
            )
        if compiled and self.args.no_compile:
            raise CheckSkipped("--no-compile")
        left = self.args.budget_seconds - self.elapsed()
        if compiled and self.cuda and left < self.args.compiled_min_seconds:
            raise CheckSkipped(
                f"{left:.0f} s of the budget left, a compiled base step needs "
                f"{self.args.compiled_min_seconds:g} (--compiled-min-seconds)"
            )
        size, batch = self.model_size(), self.batch_size(kind)
        warmup = self.args.warmup or (1 if self.args.quick else 3)
        steps = self.args.steps or (2 if self.args.quick else 10)
        self.say(
            f"    {kind} {size}, batch {batch}, {self.clip_samples() / SAMPLE_RATE:g} s clips, "
            f"{self.precision()}, {'compiled' if compiled else 'eager'}: building"
        )
        model = self.build_model(kind, size)
        details = {
            "model_size": size,
            "batch_size": batch,
            "clip_samples": self.clip_samples(),
            "precision": self.precision(),
            "parameters": sum(p.numel() for p in model.parameters()),
            "mode": "compiled" if compiled else "eager",
        }
        from craft_modules.training.flops import analytic_encoder_flops

        flops = self.count_flops(kind, model, batch)
        analytic = analytic_encoder_flops(model, batch)
        details.update(
            flops_per_step=flops,
            analytic_encoder_flops=analytic,
            flops_over_analytic=round(flops / analytic, 3) if analytic else None,
        )
        if compiled:
            details["compiled"] = self.compile_model(model)
            if kind == "swab" and self.args.compile_target == "encoder":
                details["note"] = (
                    "SWaB never calls encoder.forward (fusion.encode_two_streams runs "
                    "the blocks): compiling model.encoder leaves SWaB eager"
                )
        step, _ = self.training_step(model, kind, batch)
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        warm_times = []
        for index in range(warmup):
            self.synchronize()
            start = time.perf_counter()
            step()
            self.synchronize()
            warm_times.append(time.perf_counter() - start)
            self.say(f"    warm-up step {index + 1}/{warmup}: {warm_times[-1]:.3f} s")
        times = []
        for _ in range(steps):
            self.synchronize()
            start = time.perf_counter()
            step()
            self.synchronize()
            times.append(time.perf_counter() - start)
        # As training runs: steps back to back, the host running ahead of the
        # device, one synchronisation at the end (the per-step times above wait
        # for the device after each step, which hides that overlap).
        self.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        self.synchronize()
        back_to_back = (time.perf_counter() - start) / steps
        median = statistics.median(times)
        self.say(
            f"    {steps} timed steps: median {median:.4f} s, "
            f"back to back {back_to_back:.4f} s per step"
        )
        details.update(
            warmup_step_seconds=[round(t, 4) for t in warm_times],
            step_seconds=[round(t, 5) for t in times],
            median_synchronised_step_seconds=median,
            seconds_per_step=back_to_back,
            clips_per_second=batch / back_to_back,
            tflops_achieved=flops / back_to_back / 1e12,
        )
        if compiled:
            details["first_step_minus_median_seconds"] = round(
                warm_times[0] - back_to_back, 2
            )
        if self.cuda:
            details["peak_memory_gib"] = (
                torch.cuda.max_memory_allocated(self.device) / 2**30
            )
        else:
            details["peak_memory_gib"] = None
            details["peak_rss_gib"] = (
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            )
        mfu = None
        if self.peak_tflops:  # the MFU of training: steps back to back
            mfu = flops / back_to_back / (self.peak_tflops * 1e12)
        details.update(
            peak_bf16_tflops=self.peak_tflops,
            mfu=mfu,
            mfu_target=MFU_TARGET,
            mfu_target_met=None if mfu is None else mfu >= MFU_TARGET,
        )
        memory = (
            f", peak {details['peak_memory_gib']:.1f} GiB"
            if details["peak_memory_gib"] is not None
            else ""
        )
        summary = (
            f"{back_to_back:.3f} s/step, {batch / back_to_back:.1f} clips/s{memory}, "
            f"{flops / 1e12:.2f} TFLOP/step, MFU "
            + (f"{100 * mfu:.1f} %" if mfu is not None else "unknown")
        )
        applies = self.cuda and mfu_target_applies(self.device_name)
        details["mfu_target_applies"] = applies
        if applies and mfu is not None and mfu < MFU_TARGET:
            raise CheckFailed(
                f"{summary} (below the {100 * MFU_TARGET:.0f} % target)", **details
            )
        if applies:
            summary += f" (target {100 * MFU_TARGET:.0f} %)"
        return summary, details


class _WaveformBatch:
    """A stand-in for a SpeechBrain ``PaddedBatch`` of waveforms, already on the device."""

    def __init__(self, wavs, lens, targets=None):
        self.id = [str(i) for i in range(wavs.shape[0])]
        self.sig = (wavs, lens)
        self.targets = targets

    def to(self, device, **kwargs):
        return self


def sb_stage_train():
    """SpeechBrain's training stage (imported late, with the project)."""
    import speechbrain as sb

    return sb.Stage.TRAIN


def kill_tree(proc):
    """SIGKILL to ``proc`` (torchrun) and every process below it.

    torchrun starts its workers in sessions of their own, so killing
    torchrun's process group would leave the worker training on; this
    kills the worker (and its data loaders) like a crashed node would.

    Arguments
    ---------
    proc : subprocess.Popen
        The process at the top of the tree.

    Returns
    -------
    list of int
        The killed processes still alive 30 s later (empty when all died).
    """
    victims = []
    for _ in range(2):  # a second pass for processes started meanwhile
        tree = [proc.pid, *_descendants(proc.pid)]
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        victims += [pid for pid in tree if pid not in victims]
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(pid) for pid in victims):
        time.sleep(0.05)
    return [pid for pid in victims if _alive(pid)]


def sync_sites(step):
    """Every synchronizing call of one step, with its source lines.

    Runs ``step`` under ``torch.cuda.set_sync_debug_mode("warn")`` and
    records each warning about a synchronizing CUDA operation with the
    innermost lines of this project's code that led to it.

    Arguments
    ---------
    step : callable
        One training step.

    Returns
    -------
    list of dict
        ``where`` (innermost project frame), ``count`` and ``stack`` (the
        last project frames) per distinct place.
    """
    sites = {}
    previous = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        text = str(message)
        if "called a synchronizing CUDA operation" not in text:
            return previous(message, category, filename, lineno, file, line)
        frames = _project_frames(traceback.extract_stack()[:-1])
        key = frames[-1] if frames else f"{filename}:{lineno}"
        entry = sites.setdefault(key, {"count": 0, "stack": frames[-4:]})
        entry["count"] += 1
        return None

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        _set_sync_debug_mode("warn")
        try:
            step()
        finally:
            _set_sync_debug_mode(0)
    return [{"where": k, **v} for k, v in sites.items()]


def _children_map():
    """``{parent pid: [child pids]}`` of every process (Linux /proc)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat.rsplit(")", 1)[-1].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _descendants(pid):
    """Every process below ``pid``."""
    children, found, todo = _children_map(), [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid):
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _sync_error_of(run, times):
    """Runs ``run()`` ``times`` times in sync-debug error mode; the first sync's error, else None."""
    _set_sync_debug_mode("error")
    try:
        for _ in range(times):
            run()
    except RuntimeError as exc:
        return {
            "error": str(exc)[:1000],
            "where": _project_frames(traceback.extract_tb(exc.__traceback__)),
        }
    finally:
        _set_sync_debug_mode(0)
    return None


def _set_sync_debug_mode(mode):
    """``torch.cuda.set_sync_debug_mode``, a no-op where there is no GPU to watch."""
    if torch.cuda.is_available():
        torch.cuda.set_sync_debug_mode(mode)


def _project_frames(frames):
    """``file:line function`` of the frames inside this project (craft_modules, benchmarks)."""
    out = []
    for frame in frames:
        path = Path(frame.filename)
        if ROOT in path.parents and ".venv" not in path.parts:
            out.append(f"{path.relative_to(ROOT)}:{frame.lineno} {frame.name}")
    return out


def _base_step(kind, mode):
    """Check d for one model and mode, as a PLAN entry."""
    return (
        "d",
        f"base_{kind}_{mode}",
        lambda self: self.check_base_steps(kind, mode == "compiled"),
    )


#: The checks in order: (issue letter, name, GpuCheck method). The eager base
#: steps (the MFU the README needs) run before anything that compiles, which
#: takes the longest and is skipped first when the budget runs out.
PLAN = [
    ("a", "recipe_pretrain_kill_resume", GpuCheck.check_pretrain_kill_resume),
    ("b", "recipe_finetune_swab", GpuCheck.check_finetune),
    ("c", "sync_debug", GpuCheck.check_sync_debug),
    ("f", "nccl_collectives", GpuCheck.check_collectives),
    _base_step("pswacl", "eager"),
    _base_step("swab", "eager"),
    ("e", "compile_matches_eager", GpuCheck.check_compile_matches_eager),
    _base_step("pswacl", "compiled"),
    _base_step("swab", "compiled"),
]


def parse_args(argv=None):
    """Parses the command line.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    argparse.Namespace
    """
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--output-folder", default="gpu_check_results")
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cuda, cuda:N or cpu",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI: tiny model, 1 s clips, batch 2, 1+2 steps; on CPU skips a, b and compilation",
    )
    parser.add_argument(
        "--checks",
        type=lambda s: [c.strip() for c in s.split(",") if c.strip()],
        default=None,
        help="comma-separated check names or letters to run (default: all)",
    )
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=300.0,
        help="seconds after which checks not yet started are skipped",
    )
    parser.add_argument(
        "--compiled-min-seconds",
        type=float,
        default=150.0,
        help="a compiled base step (check d) starts only with this much budget left",
    )
    parser.add_argument(
        "--model-size",
        default=None,
        help="check d's size (default: base; tiny with --quick)",
    )
    parser.add_argument(
        "--pretrain-batch", type=int, default=None, help="default 24 (2 with --quick)"
    )
    parser.add_argument(
        "--finetune-batch", type=int, default=None, help="default 12 (2 with --quick)"
    )
    parser.add_argument(
        "--clip-seconds",
        type=float,
        default=None,
        help="check c/d clips (default 10; 1 with --quick)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed steps (default 10; 1 with --quick)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="warm-up steps (default 3; 1 with --quick)",
    )
    parser.add_argument(
        "--precision",
        choices=("bf16", "fp32"),
        default=None,
        help="check c/d autocast (default bf16 on CUDA, fp32 on CPU)",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="dense bf16 peak of the device, when not in the built-in table",
    )
    parser.add_argument(
        "--no-compile", action="store_true", help="skip the compiled steps"
    )
    parser.add_argument(
        "--compile-target",
        choices=("blocks", "encoder"),
        default="blocks",
        help="compile each encoder block, or model.encoder (not used by SWaB)",
    )
    parser.add_argument(
        "--compile-mode",
        default="default",
        help="torch.compile mode (default, reduce-overhead, max-autotune-no-cudagraphs ...)",
    )
    parser.add_argument(
        "--recipe-clip-seconds",
        type=float,
        default=None,
        help="clips of checks a/b (default 10 on CUDA, 1 on CPU)",
    )
    parser.add_argument(
        "--recipe-passes",
        type=int,
        default=3,
        help="pretraining passes over the 16 training clips (4 steps each) in check a",
    )
    parser.add_argument("--recipe-classes", type=int, default=4)
    parser.add_argument(
        "--recipe-timeout",
        type=float,
        default=120.0,
        help="seconds for each recipe run of checks a/b",
    )
    parser.add_argument(
        "--work-folder",
        default=None,
        help="data and recipe runs (default: a temporary folder, removed at the end)",
    )
    return parser.parse_args(argv)


def main(argv=None):
    """Runs every check and writes the reports; returns the exit status."""
    args = parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # this checkout's craft_modules, installed or not
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda given but CUDA is not available here", file=sys.stderr)
        return 2
    if device.type not in ("cuda", "cpu"):
        print(
            f"--device must be cuda, cuda:N or cpu, got {args.device}", file=sys.stderr
        )
        return 2
    names = [name for _, name, _ in PLAN] + sorted({letter for letter, _, _ in PLAN})
    unknown = sorted(set(args.checks or []) - set(names))
    if unknown:
        print(f"--checks: unknown {unknown}; choose from {names}", file=sys.stderr)
        return 2
    keep_work = args.work_folder is not None
    check = GpuCheck(args)
    check.say(
        f"CRAFT GPU check on {check.device_name} ({device}), torch {torch.__version__}; "
        f"reports in {check.output}"
    )
    try:
        for check_id, name, method in PLAN:
            check.run(check_id, name, lambda m=method: m(check))
    finally:
        if not keep_work:
            shutil.rmtree(check.work, ignore_errors=True)
    table = check.write()
    print("\n" + table, flush=True)
    failed = [c["name"] for c in check.checks if c["status"] == "fail"]
    print(
        f"\nwritten {check.output / 'gpu_check.json'} and gpu_check.md"
        + (f"; FAILED: {', '.join(failed)}" if failed else ""),
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
