"""SWaCL under DDP takes its negatives from the global batch, with gradients."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from craft_modules.losses import swacl_loss


def _worker(rank, world, init_file, sizes, wav, spec, results):
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        start = sum(sizes[:rank])
        local_wav = wav[start : start + sizes[rank]].clone().requires_grad_(True)
        local_spec = spec[start : start + sizes[rank]].clone().requires_grad_(True)
        loss, _ = swacl_loss(local_wav, local_spec, cosine=True, temperature=0.5)
        loss.backward()
        results[rank] = (loss.detach(), local_wav.grad, local_spec.grad)
    finally:
        dist.destroy_process_group()


def _run(tmp_path, sizes):
    torch.manual_seed(0)
    total = sum(sizes)
    wav, spec = torch.randn(total, 8), torch.randn(total, 8)
    manager = mp.Manager()
    results = manager.dict()
    init_file = os.path.join(tmp_path, "init")
    mp.spawn(
        _worker, args=(2, init_file, sizes, wav, spec, results), nprocs=2, join=True
    )
    return wav, spec, dict(results)


def test_global_negatives_match_a_single_process_batch(tmp_path):
    sizes = [3, 3]
    wav, spec, results = _run(tmp_path, sizes)
    wav_leaf, spec_leaf = (
        wav.clone().requires_grad_(True),
        spec.clone().requires_grad_(True),
    )
    full, _ = swacl_loss(wav_leaf, spec_leaf, cosine=True, temperature=0.5)
    full.backward()
    assert torch.allclose((results[0][0] + results[1][0]) / 2, full.detach(), atol=1e-6)
    # DDP averages gradients over ranks: rank grads / world == full-batch grads.
    grads_wav = torch.cat([results[0][1], results[1][1]]) / 2
    grads_spec = torch.cat([results[0][2], results[1][2]]) / 2
    assert torch.allclose(grads_wav, wav_leaf.grad, atol=1e-6)
    assert torch.allclose(grads_spec, spec_leaf.grad, atol=1e-6)


def test_unequal_rank_batches_are_gathered(tmp_path):
    sizes = [3, 1]
    wav, spec, results = _run(tmp_path, sizes)
    logits = (
        torch.nn.functional.normalize(wav, dim=1)
        @ torch.nn.functional.normalize(spec, dim=1).T
        / 0.5
    )
    per_anchor = torch.nn.functional.cross_entropy(
        logits, torch.arange(4), reduction="none"
    )
    assert torch.allclose(results[0][0], per_anchor[:3].mean(), atol=1e-6)
    assert torch.allclose(results[1][0], per_anchor[3:].mean(), atol=1e-6)


def _nt_xent_worker(rank, world, init_file, sizes, z1, z2, results):
    from craft_modules import distributed
    from craft_modules.losses import nt_xent_loss

    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        distributed.set_gather_rows(max(sizes))
        start = sum(sizes[:rank])
        a = z1[start : start + sizes[rank]].clone().requires_grad_(True)
        b = z2[start : start + sizes[rank]].clone().requires_grad_(True)
        loss = nt_xent_loss(a, b, temperature=0.5)
        weight = distributed.share_weight(sizes[rank], sum(sizes), world)
        (loss * weight).backward()
        results[rank] = (loss.detach(), a.grad, b.grad)
    finally:
        dist.destroy_process_group()


def test_clar_nt_xent_takes_its_negatives_from_every_process(tmp_path):
    """Uneven shares (3 + 2): the share-weighted gradients are the 5-clip batch's."""
    from craft_modules.losses import nt_xent_loss

    torch.manual_seed(0)
    sizes = [3, 2]
    z1, z2 = torch.randn(5, 8), torch.randn(5, 8)
    results = mp.Manager().dict()
    init_file = os.path.join(tmp_path, "init")
    mp.spawn(
        _nt_xent_worker,
        args=(2, init_file, sizes, z1, z2, results),
        nprocs=2,
        join=True,
    )
    a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    full = nt_xent_loss(a, b, temperature=0.5)
    full.backward()
    weighted = sum(results[r][0] * sizes[r] for r in range(2)) / 5
    assert torch.allclose(weighted, full.detach(), atol=1e-6)
    # DDP averages over the 2 processes; each process's rows get every loss's gradient.
    grad_a = torch.cat([results[0][1], results[1][1]]) / 2
    grad_b = torch.cat([results[0][2], results[1][2]]) / 2
    assert torch.allclose(grad_a, a.grad, atol=1e-6)
    assert torch.allclose(grad_b, b.grad, atol=1e-6)
