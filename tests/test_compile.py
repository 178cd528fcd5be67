"""``compile: True``: the encoder's blocks compiled in place, eager fallback with one warning.

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
