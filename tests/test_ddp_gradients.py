"""One batch convention: 1, 2 or 3 processes give the same gradient for the same global batch.

Each gloo process reads its share of a 7-clip global batch
(:class:`ShareBatchSampler`: shares of 4+3 or 3+2+2 clips), weights its
mean loss by :func:`share_weight` and lets DDP average the gradients. The
result must equal the single-process gradient of the whole batch, within
1e-5, for PSWaCL pretraining (SWaCL's negatives gathered from every rank)
and for an ESC-50 classifier (SWaB, cross-entropy).
"""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from craft_modules import distributed
from craft_modules.data.samplers import ShareBatchSampler
from craft_modules.models.craft import CraftClassifier, CraftPretrainer

GLOBAL_BATCH = 7
SAMPLES = 12800  # 0.8 s: a 128-frame, 8 x 8 patch grid
TINY = dict(model_size="tiny", depth=2, target_frames=128)
KINDS = ("pswacl", "esc50_classifier")


def _data():
    generator = torch.Generator().manual_seed(0)
    wavs = torch.randn(GLOBAL_BATCH, SAMPLES, generator=generator) * 0.1
    lens = torch.linspace(1.0, 0.6, GLOBAL_BATCH)
    labels = torch.arange(GLOBAL_BATCH) % 3
    # Fixed masks per clip (two masked passes), so that every split masks alike.
    masks = [
        torch.stack(
            [
                torch.randperm(63, generator=generator)[:20].sort().values + 1
                for _ in labels
            ]
        )
        for _ in range(2)
    ]
    return wavs, lens, labels, masks


def _model(kind):
    torch.manual_seed(1)
    if kind == "pswacl":
        return CraftPretrainer(method="pswacl", mask_patch=20, r_cl=1.0, **TINY)
    return CraftClassifier(3, fusion="swab", n_bottlenecks=4, fusion_layer=1, **TINY)


def _gradient(kind, indices, world, monkeypatch_masks):
    """The model's gradient for clips ``indices`` of the global batch, weighted as a share."""
    wavs, lens, labels, masks = _data()
    model = _model(kind)
    calls = iter(range(2))

    def fixed_masks(batch, *args, **kwargs):
        return masks[next(calls)][indices]

    monkeypatch_masks(fixed_masks)
    wrapped = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    out = wrapped(wavs[indices], lens[indices])
    if kind == "pswacl":
        loss = out["loss"]
    else:
        loss = torch.nn.functional.cross_entropy(out, labels[indices])
    weight = distributed.share_weight(len(indices), GLOBAL_BATCH, world)
    (loss * weight).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def _patcher():
    import craft_modules.models.craft

    def patch(fn):
        craft_modules.models.craft.mask_ids = fn

    return patch


def _worker(rank, world, init_file, results):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        sampler = ShareBatchSampler(range(GLOBAL_BATCH), GLOBAL_BATCH, world, rank)
        distributed.set_gather_rows(sampler.max_share)
        (indices,) = list(sampler)
        results[rank] = {
            kind: _gradient(kind, indices, world, _patcher()) for kind in KINDS
        }
    finally:
        distributed.set_gather_rows(None)
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def single_process_gradients():
    import craft_modules.models.craft

    original = craft_modules.models.craft.mask_ids
    try:
        return {
            kind: _gradient(kind, list(range(GLOBAL_BATCH)), 1, _patcher())
            for kind in KINDS
        }
    finally:
        craft_modules.models.craft.mask_ids = original


@pytest.mark.parametrize("world", [2, 3])
def test_processes_give_the_single_process_gradient(
    world, tmp_path, single_process_gradients
):
    results = mp.Manager().dict()
    init_file = os.path.join(tmp_path, "init")
    # fork: the workers inherit the imported modules (spawn re-imports them).
    mp.start_processes(
        _worker,
        args=(world, init_file, results),
        nprocs=world,
        join=True,
        start_method="fork",
    )
    results = dict(results)  # one copy out of the manager, not one per lookup
    for kind in KINDS:
        single = single_process_gradients[kind]
        for rank in range(world):  # DDP leaves every process with the same average
            for name, grad in single.items():
                got = results[rank][kind][name]
                assert torch.allclose(got, grad, atol=1e-5, rtol=1e-4), (
                    kind,
                    name,
                    (got - grad).abs().max(),
                )


@pytest.mark.parametrize("world", range(1, 9))
def test_shares_cover_each_global_batch_once_and_differ_by_one(world):
    for accumulation in (1, 2, 3):
        batch = 180 if world * accumulation <= 180 else world * accumulation
        samplers = [
            ShareBatchSampler(range(400), batch, world, r, accumulation, drop_last=True)
            for r in range(world)
        ]
        per_rank = [list(s) for s in samplers]
        assert len({len(batches) for batches in per_rank}) == 1  # same step count
        assert len(per_rank[0]) == len(samplers[0]) == (400 // batch) * accumulation
        sizes = [len(b) for batches in per_rank for b in batches]
        assert max(sizes) - min(sizes) <= 1
        for step in range(400 // batch):
            clips = [
                i
                for batches in per_rank
                for b in batches[step * accumulation : (step + 1) * accumulation]
                for i in b
            ]
            assert sorted(clips) == list(range(step * batch, (step + 1) * batch))
        # DDP divides by world x accumulation: one step's weights sum to it.
        step_sizes = [len(b) for batches in per_rank for b in batches[:accumulation]]
        weights = [
            distributed.share_weight(n, batch, world, accumulation) for n in step_sizes
        ]
        assert abs(sum(weights) - world * accumulation) < 1e-9


def test_an_incomplete_last_batch_is_completed_or_dropped():
    kept = list(ShareBatchSampler(range(10), 4, world_size=2, rank=0))
    dropped = list(
        ShareBatchSampler(range(10), 4, world_size=2, rank=0, drop_last=True)
    )
    assert kept == [[0, 1], [4, 5], [8, 9]]  # the third global batch is 8, 9, 0, 1
    assert list(ShareBatchSampler(range(10), 4, 2, 1)) == [[2, 3], [6, 7], [0, 1]]
    assert dropped == [[0, 1], [4, 5]]


def test_a_batch_smaller_than_the_world_is_an_error_naming_both():
    with pytest.raises(ValueError, match="batch_size=4 is smaller than 8 processes"):
        ShareBatchSampler(range(10), 4, world_size=8, rank=0)


def _draws():
    import random

    import numpy as np

    return (random.random(), float(np.random.rand()), torch.rand(2).tolist())


@pytest.mark.parametrize("world, rank", [(1, 0), (4, 0), (4, 3)])
def test_each_process_draws_its_own_randomness_from_seed_plus_rank(
    monkeypatch, world, rank
):
    import random

    import numpy as np

    from craft_modules.training.brains import PretrainBrain

    monkeypatch.setattr(distributed, "world_size", lambda: world)
    monkeypatch.setattr(distributed, "rank", lambda: rank)
    brain = PretrainBrain(
        modules={"model": torch.nn.Linear(2, 2)},
        hparams={"seed": 1986},
        run_opts={"device": "cpu"},
    )
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    untouched = _draws()
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    brain.seed_per_process()
    drawn = _draws()
    if world == 1:  # one process keeps the YAML's seeding
        assert drawn == untouched
        return
    (
        random.seed(1986 + rank),
        np.random.seed(1986 + rank),
        torch.manual_seed(1986 + rank),
    )
    assert drawn == _draws()  # Python, NumPy and torch: seed + rank
