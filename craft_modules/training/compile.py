"""``compile: True``: ``torch.compile`` of a model's encoder, in place, with an eager fallback.

The Brains compile what dominates a training step, the transformer encoder
(each model's ``compile_targets()``), with ``nn.Module.compile``, which keeps
the parameter names, so checkpoints of compiled and eager runs are the same.
Compilation happens at the first call; if it fails there (no compiler, an
unsupported operation), the module runs eagerly from then on, after one
warning. The backward is compiled later, lazily, at the first backward: the
Brains run their first training step through :func:`run_with_eager_fallback`,
which sends the compiled modules back to eager and runs the step again
when it fails, with one warning too.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import torch
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)


def compile_in_place(module, mode=None, backend=None):
    """Compiles ``module`` in place; falls back to eager if its first call fails to compile.

    Arguments
    ---------
    module : torch.nn.Module
        The module (e.g. a model's encoder).
    mode : str, optional
        ``torch.compile`` mode (``default``, ``reduce-overhead``,
        ``max-autotune``).
    backend : str or callable, optional
        ``torch.compile`` backend (default: inductor).

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
        if backend is None:
            module.compile(mode=mode)
        else:
            module.compile(mode=mode, backend=backend)
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
                "torch.compile of %s failed at its first call (%s); running it eagerly",
                type(module).__name__,
                _summary(err),
            )
            module._compiled_call_impl = None
            return module._call_impl(*args, **kwargs)
        state["first"] = False
        return out

    module._compiled_call_impl = first_call_guarded
    return True


def is_compiled(module):
    """Whether ``module`` runs compiled (:func:`compile_in_place`, not reverted).

    Example
    -------
    >>> layer = torch.nn.Linear(3, 2)
    >>> is_compiled(layer)
    False
    >>> _ = compile_in_place(layer)
    >>> is_compiled(layer)
    True
    """
    return getattr(module, "_compiled_call_impl", None) is not None


def run_with_eager_fallback(step, modules, before_retry=None):
    """Runs ``step()``; if it fails while ``modules`` run compiled, runs it again eagerly.

    ``torch.compile`` compiles a module's backward at its first backward, so a
    compiler failure (no C++ compiler, an operation inductor cannot lower)
    can surface in ``loss.backward()``, after the forward worked. The first
    training step is run through this function: on a failure, every
    compiled module of ``modules`` runs eagerly from then on, one warning
    names the error, ``before_retry()`` clears what the failed attempt left
    (the Brains drop the partial gradients), and the step runs once more. An
    out-of-memory error is not a compiler failure and is raised as it is; an
    error of the step itself is raised again by the eager attempt.

    Arguments
    ---------
    step : callable
        The work to run (a forward and backward); its result is returned.
    modules : list of torch.nn.Module
        The modules compiled with :func:`compile_in_place`.
    before_retry : callable, optional
        Called after the failure, before the eager attempt.

    Returns
    -------
    The result of ``step()``.

    Example
    -------
    >>> layer = torch.nn.Linear(3, 1)
    >>> _ = compile_in_place(layer)
    >>> def step():
    ...     if is_compiled(layer):
    ...         raise RuntimeError("backward compile failed")
    ...     return layer(torch.ones(1, 3)).sum()
    >>> loss = run_with_eager_fallback(step, [layer])
    >>> is_compiled(layer), loss.shape
    (False, torch.Size([]))
    """
    try:
        return step()
    except torch.OutOfMemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - compile errors have many types
        compiled = [module for module in modules if is_compiled(module)]
        if not compiled:
            raise
        logger.warning(
            "torch.compile failed in the first training step (%s); %d compiled "
            "module(s) run eagerly from now on",
            _summary(err),
            len(compiled),
        )
        for module in compiled:
            module._compiled_call_impl = None
        if before_retry is not None:
            before_retry()
        return step()


def _summary(err):
    """``Type: first line`` of an error, for the one warning of a fallback."""
    lines = str(err).splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"
