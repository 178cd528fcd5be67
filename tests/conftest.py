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


#: Test files whose module fixtures train a run: their tests share one xdist
#: worker (``--dist loadgroup``), so the run is trained once, not per worker.
_ONE_WORKER_FILES = ("test_inference.py", "test_export.py", "test_cli.py")
#: The longest tests (tens of seconds each: recipe runs in subprocesses) go
#: first, so that the workers do not end on one long test while the other idles.
_LONG_FIRST = ("test_scratch_learning.py", "test_recipes.py", "test_gpu_check.py")


def pytest_collection_modifyitems(config, items):
    """Groups the run-training modules on one worker and schedules long tests first."""
    for item in items:
        if item.path.name in _ONE_WORKER_FILES:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))

    def rank(item):
        name = item.path.name
        return _LONG_FIRST.index(name) if name in _LONG_FIRST else len(_LONG_FIRST)

    items.sort(key=rank)  # stable: the order inside each file is kept
