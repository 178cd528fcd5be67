"""Front ends compute their features in full float32: no autocast, no TF32 on CUDA."""

import subprocess
import sys
from pathlib import Path

import torch

from craft_modules.features.full_fp32 import full_fp32

ROOT = Path(__file__).resolve().parents[1]


def test_cuda_features_switch_tf32_off_inside_and_restore_it_after():
    # SpeechBrain turns TF32 on through the legacy flag at import.
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_tf32
    matmul.allow_tf32 = True
    try:
        with full_fp32("cuda:0"):
            assert matmul.allow_tf32 is False
        assert matmul.allow_tf32 is True
        with full_fp32("cpu"):  # nothing global changes for CPU features
            assert matmul.allow_tf32 is True
    finally:
        matmul.allow_tf32 = before


def test_autocast_is_off_inside_on_any_device():
    x = torch.ones(4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with full_fp32(x.device):
            assert (x @ x).dtype == torch.float32
        assert (x @ x).dtype == torch.bfloat16


def test_the_newer_tf32_api_is_switched_when_it_is_the_one_in_use():
    # Once fp32_precision is set, torch refuses to read the legacy flag (the
    # CLAR front end used to fail on every call then); a fresh process, as
    # the switch cannot be undone.
    code = """
import torch
from craft_modules.features.clar_frontend import ClarFrontEnd
from craft_modules.features.full_fp32 import full_fp32
matmul = torch.backends.cuda.matmul
matmul.fp32_precision = "tf32"
with full_fp32("cuda"):
    assert matmul.fp32_precision == "ieee"
assert matmul.fp32_precision == "tf32"
out = ClarFrontEnd()(torch.randn(2, 8000))
assert out.shape[:2] == (2, 3) and torch.isfinite(out).all()
print("ok")
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
