"""Gradients with PyTorch's meaning on every backend (SPEC §7)."""

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
    chosen = _registry.adapter(backend) if backend is not None else None
    adapters = [chosen] if chosen else (_registry.loaded_adapters() or [_registry.adapter()])
    token = _state.recording.set(_state.recording.get() + 1)
    try:
        with contextlib.ExitStack() as stack:
            for ad in adapters:
                stack.enter_context(ad.record())
            loss = fn()
            owner = chosen or _owner(loss, adapters)
            return owner.backward(loss)
    finally:
        _state.recording.reset(token)


def _owner(loss, adapters):
    for ad in adapters:
        if ad.is_tensor(loss):
            return ad
    raise TypeError(
        f"the function given to d2p.backward returned {type(loss).__name__}; it must return a "
        "scalar native tensor (for example ops.sum(net(X)))"
    )


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
