"""Gradients with PyTorch's meaning on every backend.

The entry point takes the *function* that computes the loss, not a loss value: a tape
framework records it while it runs, a functional one (no tape) differentiates it. Either
way the gradient is **added** into ``.grad``.
"""

from __future__ import annotations

import contextlib

from . import _registry, _state


def backward(fn, *, backend: str | None = None) -> float:
    """Run ``fn()`` while recording, back-propagate its scalar result, and **add** the
    gradient into ``.grad`` of every parameter that requires one (until ``zero_grad``).

    Returns the loss as a Python float. While ``fn`` runs, writing a parameter raises
    ``RuntimeError``.

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import nn, ops
        >>> net = nn.Linear(3, 1, backend="torch")
        >>> X = d2p.ones(2, 3, backend="torch")
        >>> loss = d2p.backward(lambda: ops.sum(net(X)))
        >>> net.weight.grad.tolist()
        [[2.0], [2.0], [2.0]]
    """
    if not callable(fn):
        raise TypeError(
            f"d2p.backward takes a function returning a scalar loss, got {type(fn).__name__}; "
            "write d2p.backward(lambda: loss_fn(net(X), y))"
        )
    loaded = _registry.loaded_adapters()
    if backend is not None or not loaded:
        ad = _registry.adapter(backend)
    else:  # the current backend if loaded; never import a framework just to differentiate
        current = _registry.get_backend()
        ad = next((a for a in loaded if a.name == current), loaded[0])
    token = _state.recording.set(_state.recording.get() + 1)
    try:
        return ad.backward(fn, loaded or [ad])
    finally:
        _state.recording.reset(token)


@contextlib.contextmanager
def no_grad():
    """Nothing inside the block is recorded for differentiation (every loaded backend).

    Examples:
        >>> import d2lparams as d2p
        >>> with d2p.no_grad():
        ...     y = d2p.nn.Linear(2, 1, backend="torch")(d2p.ones(1, 2, backend="torch"))
    """
    with contextlib.ExitStack() as stack:
        for ad in _registry.loaded_adapters():
            stack.enter_context(ad.no_grad())
        yield
