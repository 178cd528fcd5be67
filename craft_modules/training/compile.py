"""``compile: True``: ``torch.compile`` of a model's encoder, in place, with an eager fallback.

The Brains compile what dominates a training step, the transformer encoder
(each model's ``compile_targets()``), with ``nn.Module.compile``, which keeps
the parameter names, so checkpoints of compiled and eager runs are the same.
Compilation happens at the first call; if it fails there (no compiler, an
unsupported operation), the module runs eagerly from then on, after one
warning.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)


def compile_in_place(module, mode=None):
    """Compiles ``module`` in place; falls back to eager if its first call fails to compile.

    Arguments
    ---------
    module : torch.nn.Module
        The module (e.g. a model's encoder).
    mode : str, optional
        ``torch.compile`` mode (``default``, ``reduce-overhead``,
        ``max-autotune``).

    Returns
    -------
    bool
        False if ``torch.compile`` itself refused the module (it stays eager).

    Example
    -------
    >>> layer = torch.nn.Linear(3, 2)
    >>> compile_in_place(layer)
    True
    >>> layer._compiled_call_impl is not None
    True
    """
    try:
        module.compile(mode=mode)
    except Exception as err:  # noqa: BLE001 - any failure means: stay eager
        logger.warning(
            "torch.compile failed (%s); %s stays eager", err, type(module).__name__
        )
        return False
    compiled = module._compiled_call_impl
    state = {"first": True}

    def first_call_guarded(*args, **kwargs):
        if not state["first"]:
            return compiled(*args, **kwargs)
        try:
            out = compiled(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - compile errors have many types
            logger.warning(
                "torch.compile of %s failed at its first call (%s: %s); running it "
                "eagerly",
                type(module).__name__,
                type(err).__name__,
                str(err).splitlines()[0] if str(err) else "",
            )
            module._compiled_call_impl = None
            return module._call_impl(*args, **kwargs)
        state["first"] = False
        return out

    module._compiled_call_impl = first_call_guarded
    return True
