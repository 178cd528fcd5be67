"""``compile: True``: the encoder's blocks compiled in place, eager fallback with one warning.

The fallback covers a forward that fails to compile at its first call and a
backward that fails at the first training step (compiled lazily), in one
process and under DDP.

That compiled blocks give the eager outputs is check ``e`` of
``benchmarks/gpu_check.py`` (inductor takes minutes on a 2-core CPU).
"""

import logging

import torch

from craft_modules.models.craft import CraftClassifier
from craft_modules.training.compile import compile_in_place


def test_compile_targets_are_the_encoder_blocks():
    model = CraftClassifier(
        3, fusion="swab", model_size="tiny", depth=2, target_frames=128, fusion_layer=1
    )
    assert model.compile_targets() == list(model.encoder.blocks)


def test_a_failing_compilation_falls_back_to_eager_with_one_warning(caplog):
    layer = torch.nn.Linear(3, 2)

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler\nmore details")

    # What torch.compile produced fails at its first call, like inductor can.
    assert compile_in_place_with(layer, broken)
    x = torch.randn(4, 3)
    with caplog.at_level(logging.WARNING):
        out = layer(x)
        again = layer(x)
    assert torch.equal(out, torch.nn.functional.linear(x, layer.weight, layer.bias))
    assert torch.equal(again, out)
    warnings = [r for r in caplog.records if "running it eagerly" in r.getMessage()]
    assert len(warnings) == 1 and "no C++ compiler" in warnings[0].getMessage()


def compile_in_place_with(module, compiled):
    """``compile_in_place`` with ``torch.compile``'s result replaced by ``compiled``."""

    def fake_compile(**kwargs):
        module._compiled_call_impl = compiled

    module.compile = fake_compile
    return compile_in_place(module)


def _failing_backward_backend():
    """A ``torch.compile`` backend whose forward works and whose backward fails to compile."""
    from torch._dynamo.backends.common import aot_autograd

    def backward_compiler(graph, example_inputs):
        raise RuntimeError("inductor could not lower the backward")

    return aot_autograd(
        fw_compiler=lambda graph, example_inputs: graph, bw_compiler=backward_compiler
    )


class _Batch:
    id = ["a", "b"]
    sig = (
        torch.randn(2, 12800, generator=torch.Generator().manual_seed(0)) * 0.1,
        torch.tensor([1.0, 0.7]),
    )
    targets = torch.eye(3)[:2]

    def to(self, device, **kwargs):
        return self


def _classifier_brain(model, compile_, **run_opts):
    from craft_modules.training.brains import ClassifierBrain
    from craft_modules.training.schedulers import EpochDecayScheduler

    brain = ClassifierBrain(
        modules={"model": model},
        opt_class=lambda p: torch.optim.SGD(p, lr=0.1),
        hparams={
            "loss": "ce",
            "metric": "accuracy",
            "lr_schedule": EpochDecayScheduler(0.1, start=5, step=1, decay=0.85),
        },
        run_opts={"device": "cpu", "compile": compile_, **run_opts},
    )
    brain.on_fit_start()
    brain.modules.train()
    brain.step = 1
    return brain


def test_a_backward_that_fails_to_compile_reruns_the_first_step_eagerly(
    monkeypatch, caplog
):
    import copy
    import functools

    model = CraftClassifier(
        3, fusion="ast", model_size="tiny", depth=2, target_frames=128
    )
    eager = _classifier_brain(copy.deepcopy(model), compile_=False)
    monkeypatch.setattr(
        "craft_modules.training.brains.compile_in_place",
        functools.partial(compile_in_place, backend=_failing_backward_backend()),
    )
    compiled = _classifier_brain(model, compile_=True)
    blocks = compiled.modules.model.compile_targets()
    assert all(block._compiled_call_impl is not None for block in blocks)
    with caplog.at_level(logging.WARNING):
        loss = compiled.fit_batch(_Batch())
    warnings = [
        r.getMessage()
        for r in caplog.records
        if "first training step" in r.getMessage()
    ]
    assert len(warnings) == 1 and "could not lower the backward" in warnings[0]
    assert all(block._compiled_call_impl is None for block in blocks)  # eager now
    # The step that trained is the eager one: the failed attempt's partial
    # gradients were dropped, so the parameters match an eager Brain's step.
    expected = eager.fit_batch(_Batch())
    assert torch.allclose(loss, expected)
    for ours, theirs in zip(compiled.modules.parameters(), eager.modules.parameters()):
        assert torch.allclose(ours, theirs, atol=1e-6)
    # The next steps run without a guard, eagerly.
    compiled.step = 2
    compiled.fit_batch(_Batch())
    assert (
        len([r for r in caplog.records if "first training step" in r.getMessage()]) == 1
    )


def _ddp_worker(rank, world, init_file, results):
    import functools
    import os

    import torch.distributed as dist

    import craft_modules.training.brains

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    torch.manual_seed(0)
    craft_modules.training.brains.compile_in_place = functools.partial(
        compile_in_place, backend=_failing_backward_backend()
    )
    brain = _classifier_brain(
        CraftClassifier(3, fusion="ast", model_size="tiny", depth=2, target_frames=128),
        compile_=True,
        distributed_backend="gloo",
    )
    assert isinstance(brain.modules.model, torch.nn.parallel.DistributedDataParallel)
    brain.fit_batch(_Batch())
    brain.step = 2
    brain.fit_batch(_Batch())  # the re-wrapped module's reducer works
    inner = brain.modules.model.module
    results[rank] = [p.detach().clone() for p in inner.parameters()]
    dist.destroy_process_group()


def test_the_eager_rerun_works_under_ddp(tmp_path):
    """A backward that stopped half-way leaves DDP's reducer waiting; the modules are re-wrapped."""
    import torch.multiprocessing as mp

    results = mp.Manager().dict()
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), results), nprocs=2)
    torch.manual_seed(0)
    eager = _classifier_brain(
        CraftClassifier(3, fusion="ast", model_size="tiny", depth=2, target_frames=128),
        compile_=False,
    )
    eager.fit_batch(_Batch())
    eager.step = 2
    eager.fit_batch(_Batch())
    # Both ranks had the same clips: DDP's average is the single-process step.
    for rank in (0, 1):
        for ours, theirs in zip(results[rank], eager.modules.parameters()):
            assert torch.allclose(ours, theirs, atol=1e-5)
