"""benchmarks/gpu_check.py: its CPU path, FLOP counts, process-tree kill and sync listing."""

import doctest
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from craft_modules.testing.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
CHECKS = [
    "recipe_pretrain_kill_resume",
    "recipe_finetune_swab",
    "sync_debug",
    "nccl_collectives",
    "base_pswacl_eager",
    "base_swab_eager",
    "compile_matches_eager",
    "base_pswacl_compiled",
    "base_swab_compiled",
]


@pytest.fixture(scope="module")
def gpu_check():
    return load_script("benchmarks/gpu_check.py")


def test_quick_cpu_run_reports_every_check(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",  # steady on a busy 2-core machine
    }
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--device",
            "cpu",
            "--quick",
            "--output-folder",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == CHECKS
    assert all(c["status"] in ("pass", "fail", "skipped") for c in checks.values())
    assert all(c["seconds"] >= 0 and c["summary"] for c in checks.values())
    # What does not run on CPU in quick mode says why.
    for name in CHECKS[:2] + CHECKS[3:4] + CHECKS[6:]:
        assert checks[name]["status"] == "skipped", checks[name]
    assert "NCCL needs CUDA" in checks["nccl_collectives"]["summary"]
    # The sync check's steps run on the CPU too (so its code cannot rot),
    # saying that nothing was watched.
    sync = checks["sync_debug"]
    assert sync["status"] == "pass", sync
    assert "watched on CUDA only" in sync["summary"]
    details = sync["details"]
    assert details["syncs_watched"] is False
    for kind in ("pswacl", "swab", "diverse", "clar_augmentations"):
        assert details[kind]["raised"] is None, details[kind]
    brains = details["brain_fit_batch"]["per_brain"]
    assert sorted(brains) == ["clar", "finetune", "pretrain"]
    assert all(error is None for error in brains.values()), brains
    for name in ("base_pswacl_eager", "base_swab_eager"):
        check = checks[name]
        assert check["status"] == "pass", check
        details = check["details"]
        assert details["model_size"] == "tiny" and details["batch_size"] == 2
        assert details["step_seconds"] and all(t > 0 for t in details["step_seconds"])
        assert details["seconds_per_step"] > 0 and details["clips_per_second"] > 0
        assert details["median_synchronised_step_seconds"] > 0
        # Counted FLOPs: the encoder's matmuls and attention plus a little
        # (embeddings, MSAE, heads), so just above the analytic encoder count.
        assert details["flops_per_step"] > 0
        assert 1.0 <= details["flops_over_analytic"] <= 1.5, details
        assert details["mfu"] is None and details["peak_bf16_tflops"] is None
        assert "MFU unknown" in check["summary"]
    assert report["failed"] == [] and report["environment"]["device"] == "cpu"
    table = (tmp_path / "gpu_check.md").read_text()
    assert all(f"| {name} |" in table for name in CHECKS)
    assert "3 passed, 0 failed, 6 skipped" in table
    assert "(d) base_swab_eager: running" in proc.stdout  # progress as it goes
    assert table.strip() in proc.stdout


def test_recipe_checks_kill_resume_and_fine_tune_on_cpu(tmp_path):
    """Checks a and b end to end with gloo: their code runs before any GPU does."""
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--device",
            "cpu",
            "--checks",
            "a,b",
            "--recipe-passes",
            "1",
            "--output-folder",
            str(tmp_path / "out"),
            "--work-folder",
            str(tmp_path / "work"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        env={
            **os.environ,
            "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1",
        },
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    pretrain = checks["recipe_pretrain_kill_resume"]
    assert pretrain["status"] == "pass", pretrain
    details = pretrain["details"]
    assert details["first_run_returncode"] == -9  # killed after a checkpoint
    assert (
        details["killed_after_checkpoints"] and details["resumed_run_returncode"] == 0
    )
    # The resumed run went on from the checkpoint to the last epoch.
    assert details["epochs_logged"][-1] > max(details["epochs_before_kill"])
    finetune = checks["recipe_finetune_swab"]
    assert finetune["status"] == "pass", finetune
    assert 0.0 <= finetune["details"]["mAP"] <= 1.0
    assert finetune["details"]["weight_averaged"] is True


def _run_script(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"},
    )


def test_unknown_check_names_fail_before_any_work(tmp_path):
    proc = _run_script("--checks", "sync_debug,nope", "--output-folder", str(tmp_path))
    assert proc.returncode == 2
    assert "unknown ['nope']" in proc.stderr and "base_swab_compiled" in proc.stderr
    assert not (tmp_path / "gpu_check.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda_is_refused(tmp_path):
    proc = _run_script("--device", "cuda", "--output-folder", str(tmp_path))
    assert proc.returncode == 2 and "CUDA is not available" in proc.stderr


def test_doctests(gpu_check):
    """The script's examples: peaks, MFU target, masks (the FLOP counts' are in craft_modules.training.flops)."""
    result = doctest.testmod(gpu_check, extraglobs={"torch": torch})
    assert result.attempted >= 4 and result.failed == 0


def test_flop_counter_counts_cpu_attention_like_cuda():
    from craft_modules.training.flops import flop_counter

    q = torch.randn(2, 3, 16, 8, requires_grad=True)
    with flop_counter() as counter:
        torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().backward()
    forward = 2 * (2 * 2 * 3 * 16 * 16 * 8)  # scores and weighted sum
    assert counter.get_total_flops() == forward + 5 * forward // 2


def test_kill_tree_kills_workers_in_their_own_session(gpu_check, tmp_path):
    """torchrun starts workers with start_new_session: killing its group is not enough."""
    pid_file = tmp_path / "worker.pid"
    code = (
        "import subprocess, sys, time\n"
        "w = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(w.pid))\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 20
    while not (pid_file.exists() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    worker = int(pid_file.read_text())
    assert gpu_check._alive(worker) and worker in gpu_check._descendants(proc.pid)
    survivors = gpu_check.kill_tree(proc)
    assert survivors == [] and proc.returncode == -9
    assert not gpu_check._alive(worker)


def test_sync_sites_lists_each_synchronizing_call_once_with_its_count(
    gpu_check, monkeypatch
):
    """The warn-mode listing, with the CUDA switch stubbed (no GPU needed)."""
    modes = []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def synchronizing_call():
        warnings.warn(
            "called a synchronizing CUDA operation", UserWarning, stacklevel=1
        )

    def step():
        for _ in range(3):
            synchronizing_call()
        warnings.warn("an unrelated warning", UserWarning, stacklevel=1)
        # PyTorch's one-time notice of the mode itself is not a sync.
        warnings.warn(
            "Synchronization debug mode is a prototype feature and does not yet "
            "detect all synchronizing operations",
            UserWarning,
            stacklevel=1,
        )

    with warnings.catch_warnings(record=True) as unrelated:
        warnings.simplefilter("always")
        sites = gpu_check.sync_sites(step)
    assert modes == ["warn", 0]
    assert len(sites) == 1 and sites[0]["count"] == 3
    assert sites[0]["where"].startswith("tests/test_gpu_check.py:")
    assert sites[0]["where"].endswith(" synchronizing_call")
    assert [str(w.message)[:20] for w in unrelated] == [
        "an unrelated warning",
        "Synchronization debu",
    ]
