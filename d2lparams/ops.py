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

from . import _conv, _registry


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


# -- convolution and pooling (issue 11) --------------------------------------------------------
# NCHW input on every backend, the weight in the canonical (out, in/groups, kh, kw) layout;
# arguments are checked here and handed to the adapter's op as pairs.
def _shape(x) -> tuple:
    return tuple(x.shape) if getattr(x, "_d2p_parameter", False) else tuple(
        int(s) for s in x.shape)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """PyTorch's ``F.conv2d``: ``input`` ``(N, C, H, W)``, ``weight`` ``(out, C/groups, kh,
    kw)`` (a Conv2d's ``weight`` or any tensor in that layout), ``bias`` ``(out,)`` or
    ``None``; ``padding`` an int, a pair, ``"same"`` or ``"valid"``.

    Examples:
        >>> import numpy as np, d2lparams as d2p
        >>> from d2lparams import ops
        >>> x = d2p.ones(1, 1, 3, 3, backend="torch")
        >>> w = d2p.ones(1, 1, 2, 2, backend="torch")
        >>> d2p.to_numpy(ops.conv2d(x, w)).tolist()
        [[[[4.0, 4.0], [4.0, 4.0]]]]
    """
    ad = _adapter_of(input, weight)
    stride = _conv.pair(stride, "ops.conv2d stride")
    dilation = _conv.pair(dilation, "ops.conv2d dilation")
    padding = _conv.conv_padding(padding, stride, "ops.conv2d")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"ops.conv2d groups must be a positive int, got {groups!r}")
    wshape = _shape(weight)
    if len(wshape) != 4 or wshape[0] % groups:
        raise ValueError(
            f"ops.conv2d expects a weight of shape (out_channels, in_channels/groups, kh, kw) "
            f"with out_channels divisible by groups={groups}, got {wshape}"
        )
    if bias is not None and _shape(bias) != wshape[:1]:
        raise ValueError(f"ops.conv2d expects a bias of shape {wshape[:1]}, got {_shape(bias)}")
    kernel = tuple(d * (k - 1) + 1 for k, d in zip(wshape[2:], dilation))
    pad = (0, 0) if padding == "valid" else (kernel[0] // 2, kernel[1] // 2) \
        if padding == "same" else padding
    minimum = (max(1, kernel[0] - 2 * pad[0]), max(1, kernel[1] - 2 * pad[1]))
    _conv.InputCheck(f"ops.conv2d with a weight of shape {wshape}", wshape[1] * groups, minimum,
                     f"the {kernel[0]}×{kernel[1]} kernel with padding {padding!r}")(_shape(input))
    return ad.op("conv2d")(_unwrap(input), _unwrap(weight),
                           None if bias is None else _unwrap(bias), stride, padding, dilation,
                           groups)


def _pool(name: str, input, kernel_size, stride, padding):
    ad = _adapter_of(input)
    kernel = _conv.pair(kernel_size, f"ops.{name} kernel_size")
    stride = _conv.pool_stride(stride, kernel, f"ops.{name}")
    pad = _conv.pool_padding(padding, kernel, f"ops.{name}")
    minimum = (max(1, kernel[0] - 2 * pad[0]), max(1, kernel[1] - 2 * pad[1]))
    _conv.PoolCheck(f"ops.{name}(kernel_size={kernel_size!r})", None, minimum,
                    f"the {kernel[0]}×{kernel[1]} window with padding {pad}")(_shape(input))
    return ad.op(name)(_unwrap(input), kernel, stride, pad)


def max_pool2d(input, kernel_size, stride=None, padding=0):
    """PyTorch's ``F.max_pool2d`` over ``(N, C, H, W)`` input (the padding never wins)."""
    return _pool("max_pool2d", input, kernel_size, stride, padding)


def avg_pool2d(input, kernel_size, stride=None, padding=0):
    """PyTorch's ``F.avg_pool2d`` over ``(N, C, H, W)`` input (``count_include_pad=True``)."""
    return _pool("avg_pool2d", input, kernel_size, stride, padding)
