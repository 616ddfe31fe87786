"""Gradients with PyTorch's meaning on every backend.

The entry point takes the *function* that computes the loss, not a loss value: a tape
framework records it while it runs, a functional one (no tape) differentiates it. Either
way the gradient is **added** into ``.grad``.
"""

from __future__ import annotations

import contextlib

import numpy as np

from . import _registry, _state
from ._tensor import as_array


def backward(fn, *, gradient=None, backend: str | None = None) -> float:
    """Run ``fn()`` while recording, back-propagate its scalar result, and **add** the
    gradient into ``.grad`` of every parameter that requires one and of every tensor made
    with ``requires_grad=True`` (``d2p.grad_of``), until ``zero_grad``.

    With ``gradient`` (an array or tensor of the output's shape), ``fn()`` may return a
    tensor of any shape: the vector-Jacobian product is added, as PyTorch's
    ``y.backward(gradient)`` does (it is the gradient of ``sum(fn() * gradient)``).

    Returns the loss as a Python float (with ``gradient``: ``sum(fn() * gradient)``). While
    ``fn`` runs, writing a parameter raises ``RuntimeError``.

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
    g = _gradient(gradient, "d2p.backward")
    loaded = _registry.loaded_adapters()
    if backend is not None or not loaded:
        ad = _registry.adapter(backend)
    else:  # the current backend if loaded; never import a framework just to differentiate
        current = _registry.get_backend()
        ad = next((a for a in loaded if a.name == current), loaded[0])
    token = _state.recording.set(_state.recording.get() + 1)
    try:
        if g is None:
            return ad.backward(fn, loaded or [ad])
        return ad.backward(fn, loaded or [ad], g)
    finally:
        _state.recording.reset(token)


# -- gradients with respect to inputs -----------------------------------------------------------
def _gradient(gradient, what: str) -> np.ndarray | None:
    """``gradient=`` as a finite float32 NumPy array (checked before anything runs)."""
    if gradient is None:
        return None
    try:
        g = np.asarray(as_array(gradient), dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{what}: gradient= takes an array or tensor of the output's shape, got "
            f"{type(gradient).__name__}"
        ) from exc
    if not np.isfinite(g).all():
        raise ValueError(f"{what}: gradient= holds NaN or inf; pass finite numbers")
    return g


def _is_parameter(x) -> bool:
    return getattr(x, "_d2p_parameter", False) is True


def _tensor_adapter(x, what: str):
    """The adapter of a Parameter or native tensor ``x``, else a TypeError that says so."""
    if _is_parameter(x):
        return x._adapter
    name = _registry.backend_of_type(x)
    if name is None:
        raise TypeError(
            f"{what} takes a tensor made with requires_grad=True or an nn.Parameter, got "
            f"{type(x).__name__}; make one with d2p.tensor(values, requires_grad=True)"
        )
    return _registry.adapter(name)


def _leaf(x, what: str):
    """``(adapter, native)`` of a Parameter or tensor that accumulates a gradient."""
    ad = _tensor_adapter(x, what)
    native = x.native if _is_parameter(x) else x
    if not ad.requires_grad(native):
        if _is_parameter(x):
            fix = "it is frozen; set p.requires_grad = True"
        else:
            fix = ("only a tensor made with requires_grad=True has one (not a tensor computed "
                   "from it); make it with d2p.tensor(values, requires_grad=True)")
        raise ValueError(f"{what}: this {type(x).__name__} does not require a gradient: {fix}")
    return ad, native


def grad_of(x) -> np.ndarray | None:
    """The gradient accumulated in ``x`` (a tensor made with ``requires_grad=True``, or a
    Parameter) by ``d2p.backward`` calls, as NumPy; ``None`` before any backward reached it
    and after :func:`zero_grad` (PyTorch's ``x.grad``).

    Raises:
        ValueError: ``x`` does not require a gradient (a plain tensor, or one computed from a
            leaf: only leaves keep their gradient, as in PyTorch).

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import ops
        >>> x = d2p.tensor([1.0, 2.0], requires_grad=True, backend="torch")
        >>> _ = d2p.backward(lambda: ops.sum(x * x))
        >>> d2p.grad_of(x).tolist()
        [2.0, 4.0]
    """
    if _is_parameter(x):
        return x.grad
    ad, native = _leaf(x, "d2p.grad_of")
    g = ad.grad_tensor(native)
    return None if g is None else ad.to_numpy(g)


def zero_grad(*tensors) -> None:
    """Drop the accumulated gradient of each tensor (made with ``requires_grad=True``) or
    Parameter, so that :func:`grad_of` is ``None`` again (PyTorch's ``x.grad = None``).
    Everything is checked before anything is cleared."""
    leaves = [(x._adapter, x.native) if _is_parameter(x) else _leaf(x, "d2p.zero_grad")
              for x in tensors]
    for ad, native in leaves:
        ad.zero_grad(native)


def grad(fn, inputs, *, gradient=None) -> tuple:
    """The gradients of ``fn()`` with respect to ``inputs``, **without** touching any
    accumulated gradient (PyTorch's ``torch.autograd.grad``).

    ``fn`` returns a scalar native tensor (or any shape with ``gradient=``, as in
    :func:`backward`). ``inputs`` is one tensor made with ``requires_grad=True`` or
    Parameter, or a sequence of them (mixed); the result is a tuple of NumPy arrays in the
    order of ``inputs``, a Parameter's in its canonical layout, zeros for an input that
    ``fn()`` does not depend on.

    Raises:
        ValueError: an input does not require a gradient (checked before ``fn`` runs).
        TypeError: inputs of different backends, or ``fn`` does not return a tensor.

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import nn, ops
        >>> x = d2p.tensor([1.0, 2.0], requires_grad=True, backend="torch")
        >>> w = nn.Parameter([3.0, 4.0], backend="torch")
        >>> gx, gw = d2p.grad(lambda: ops.sum(x * w), [x, w])
        >>> gx.tolist(), gw.tolist(), d2p.grad_of(x), w.grad
        ([3.0, 4.0], [1.0, 2.0], None, None)
    """
    if not callable(fn):
        raise TypeError(
            f"d2p.grad takes a function returning the output, got {type(fn).__name__}; "
            "write d2p.grad(lambda: loss_fn(net(X), y), [x])"
        )
    items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if not items:
        raise ValueError("d2p.grad needs at least one input")
    leaves = [_leaf(x, f"d2p.grad (input {i})") for i, x in enumerate(items)]
    ad = leaves[0][0]
    for i, (other, _) in enumerate(leaves):
        if other is not ad:
            raise TypeError(
                f"d2p.grad: input 0 is a {ad.name} tensor and input {i} a {other.name} one; "
                "differentiate with respect to one backend's tensors at a time"
            )
    g = _gradient(gradient, "d2p.grad")
    loaded = _registry.loaded_adapters()
    token = _state.recording.set(_state.recording.get() + 1)
    try:
        sources = [native for _, native in leaves]
        grads = ad.grad(fn, sources, loaded) if g is None else ad.grad(fn, sources, loaded, g)
    finally:
        _state.recording.reset(token)
    out = []
    for x, native, gi in zip(items, sources, grads):
        value = (np.zeros(ad.param_shape(native), np.float32) if gi is None
                 else ad.to_numpy(gi))
        out.append(x._canonical(value) if _is_parameter(x) else value)
    return tuple(out)


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
