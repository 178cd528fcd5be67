"""Shared pytest fixtures and settings for the CRAFT test suite."""

import os

import pytest
import torch

# Under pytest-xdist (``-n``), each worker gets its share of the cores.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // _WORKERS))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
