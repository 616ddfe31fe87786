"""Tensor operations for custom ``forward`` methods (also ``d2lparams.nn.functional``).

Each takes native tensors (or ``Parameter``s) of one backend and returns a native tensor of
that backend; the backend is found from the argument's type.

Examples:
    >>> import d2lparams as d2p
    >>> from d2lparams import ops
    >>> x = d2p.tensor([[-1.0, 2.0]], backend="torch")
    >>> d2p.to_numpy(ops.relu(x)).tolist()
    [[0.0, 2.0]]
"""

from __future__ import annotations

from . import _registry


def _unwrap(x):
    return x.value() if getattr(x, "_d2p_parameter", False) else x


def _adapter_of(*xs):
    for x in xs:
        if getattr(x, "_d2p_parameter", False):
            return x._adapter
        name = _registry.backend_of_type(x)
        if name is not None:
            return _registry.adapter(name)
    raise TypeError(
        "d2lparams.ops takes native tensors or Parameters, got "
        + ", ".join(type(x).__name__ for x in xs)
        + "; make one with d2p.tensor(x)"
    )


def _call(name: str, *args, **options):
    """Apply the backend's native ``name`` to tensors/Parameters ``args`` (positional)."""
    return _adapter_of(*args).op(name)(*(_unwrap(a) for a in args), *options.values())


def relu(x):
    """``max(x, 0)``."""
    return _call("relu", x)


def sigmoid(x):
    """``1 / (1 + exp(-x))``."""
    return _call("sigmoid", x)


def tanh(x):
    """``tanh(x)``."""
    return _call("tanh", x)


def softmax(x, dim: int = -1):
    """Softmax over ``dim``."""
    return _call("softmax", x, dim=dim)


def matmul(a, b):
    """Matrix product ``a @ b``."""
    return _call("matmul", a, b)


def transpose(x, dim0: int = 0, dim1: int = 1):
    """``x`` with axes ``dim0`` and ``dim1`` swapped."""
    return _call("transpose", x, dim0=dim0, dim1=dim1)


def mean(x, dim=None, keepdim: bool = False):
    """Mean over ``dim`` (all axes when ``None``)."""
    return _call("mean", x, dim=dim, keepdim=keepdim)


def sum(x, dim=None, keepdim: bool = False):  # noqa: A001 - PyTorch's name
    """Sum over ``dim`` (all axes when ``None``)."""
    return _call("sum", x, dim=dim, keepdim=keepdim)


def reshape(x, shape):
    """``x`` with a new shape (one axis may be ``-1``)."""
    return _call("reshape", x, shape=tuple(shape))


def concat(tensors, dim: int = 0):
    """Join tensors along ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concat takes a non-empty list of tensors")
    return _adapter_of(*tensors).op("concat")([_unwrap(t) for t in tensors], dim)


cat = concat
