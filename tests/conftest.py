"""Shared pytest fixtures and settings for the CRAFT test suite."""

import os

import pytest
import torch

# Under pytest-xdist (``-n``), each worker gets its share of the cores.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_THREADS = max(1, min(2, os.cpu_count() or 1) // _WORKERS)
torch.set_num_threads(_THREADS)
# The recipe runs that tests start as subprocesses inherit the same share:
# more intra-op threads than free cores make small ops wait on each other.
os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
