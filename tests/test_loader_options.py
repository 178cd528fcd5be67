"""Loader worker options: ``num_workers: auto``, CPUs per process, DataLoader settings.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import glob
import os
import re

import pytest
import torch

from craft_modules.training import loaders
from craft_modules.training.loaders import (
    default_num_workers,
    loader_worker_options,
    resolve_num_workers,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def cpus(monkeypatch):
    """Sets the CPUs this process may use and the processes per node."""

    def set_cpus(n_cpus, local_world_size=None):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n_cpus)))
        if local_world_size is None:
            monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
        else:
            monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_world_size))

    return set_cpus


@pytest.mark.parametrize(
    "n_cpus, local_world_size, expected",
    [(12, None, 12), (32, 8, 4), (30, 8, 3), (4, 8, 1), (128, 1, 16), (128, 4, 16)],
)
def test_default_workers_share_the_cpus_between_the_nodes_processes(
    cpus, n_cpus, local_world_size, expected
):
    cpus(n_cpus, local_world_size)
    assert default_num_workers() == expected


def test_bad_local_world_size_is_named(cpus):
    cpus(8, "two")
    with pytest.raises(ValueError, match="LOCAL_WORLD_SIZE"):
        default_num_workers()


def test_auto_none_and_ints_resolve(cpus):
    cpus(6, 2)
    assert resolve_num_workers("auto") == 3
    assert resolve_num_workers(" AUTO ") == 3
    assert resolve_num_workers(None) == 3
    assert resolve_num_workers(0) == 0 and resolve_num_workers(7) == 7
    assert resolve_num_workers("5") == 5


@pytest.mark.parametrize("value", [-1, "-2", "many", 2.5, True, [2]])
def test_bad_values_are_a_value_error_naming_the_key(value):
    with pytest.raises(ValueError, match="num_workers must be 'auto' or an integer"):
        resolve_num_workers(value)
    with pytest.raises(ValueError, match="^loader_workers must"):
        resolve_num_workers(value, key="loader_workers")


def test_options_with_and_without_workers():
    assert loader_worker_options(3, torch.device("cuda", 1)) == {
        "num_workers": 3,
        "pin_memory": True,
        "persistent_workers": True,
        "prefetch_factor": loaders.PREFETCH_FACTOR,
        "worker_init_fn": loaders.freeze_inherited_objects,
    }
    assert 2 <= loaders.PREFETCH_FACTOR <= 4
    assert loader_worker_options(0, "cuda") == {"num_workers": 0, "pin_memory": True}
    assert loader_worker_options(2, "cpu")["pin_memory"] is False
    assert loader_worker_options(2, None)["pin_memory"] is False
    with pytest.raises(ValueError, match="num_workers"):
        loader_worker_options(-3, "cpu")


@pytest.mark.parametrize("num_workers", [0, 1])
def test_dataloader_accepts_the_options(num_workers):
    options = loader_worker_options(num_workers, "cpu")
    loader = torch.utils.data.DataLoader(list(range(6)), batch_size=2, **options)
    for _ in range(2):  # persistent workers serve a second epoch too
        assert [batch.tolist() for batch in loader] == [[0, 1], [2, 3], [4, 5]]


def test_every_recipe_yaml_defaults_to_auto_workers():
    files = sorted(glob.glob(os.path.join(ROOT, "recipes", "*", "hparams", "*.yaml")))
    assert len(files) > 20
    for path in files:
        with open(path, encoding="utf-8") as fin:
            values = re.findall(r"^num_workers:\s*(\S+)", fin.read(), re.MULTILINE)
        assert values == ["auto"], path


def test_the_brain_builds_training_loaders_with_shares_and_worker_options():
    import speechbrain as sb
    from speechbrain.dataio.dataset import DynamicItemDataset

    from craft_modules.data.samplers import ShareBatchSampler
    from craft_modules.training.brains import CraftBrain

    data = {f"c{i}": {"x": [float(i)]} for i in range(10)}
    dataset = DynamicItemDataset(data, output_keys=["id", "x"])
    brain = CraftBrain(
        modules={"model": torch.nn.Linear(1, 1)}, run_opts={"device": "cpu"}
    )
    options = loaders.train_loader_options(4, num_workers=1)
    loader = brain.make_dataloader(dataset, sb.Stage.TRAIN, **options)
    assert isinstance(loader.batch_sampler, ShareBatchSampler)
    assert (
        loader.batch_sampler.batch_size == 4
        and brain.train_sampler is loader.batch_sampler
    )
    assert loader.num_workers == 1 and loader.persistent_workers
    assert loader.prefetch_factor == loaders.PREFETCH_FACTOR and not loader.pin_memory
    batches = [batch.id for batch in loader]
    assert [len(b) for b in batches] == [4, 4, 4]  # the last batch completed to 4
    assert sorted({i for b in batches for i in b}) == sorted(data)


def test_training_options_shuffle_unless_given_a_sampler():
    options = loaders.train_loader_options(48, num_workers="auto", drop_last=1)
    assert options["batch_size"] == 48 and options["shuffle"] is True
    assert options["drop_last"] is True and options["num_workers"] == "auto"
    assert "sampler" not in options
    sampler = range(10)
    options = loaders.train_loader_options(4, sampler=sampler)
    assert options["sampler"] is sampler and "shuffle" not in options
    assert options["drop_last"] is False and options["num_workers"] == 0


def test_evaluation_options_give_each_process_its_share_of_the_batch(monkeypatch):
    from craft_modules import distributed
    from craft_modules.metrics import EvalShardSampler

    dataset = list(range(9))
    options = loaders.eval_loader_options(dataset, 96, num_workers=2)
    assert options["batch_size"] == 96 and options["num_workers"] == 2
    assert isinstance(options["sampler"], EvalShardSampler)
    monkeypatch.setattr(distributed, "world_size", lambda: 5)
    assert loaders.eval_loader_options(dataset, 96)["batch_size"] == 20  # ceil(96 / 5)
