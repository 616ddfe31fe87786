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

import builtins
from collections import namedtuple

import numpy as np

from . import _conv, _registry, _tensor


def _unwrap(x):
    return x.value() if getattr(x, "_d2p_parameter", False) else x


#: native tensor type -> its adapter, for a type that belongs to one backend only (the
#: registry's lookup by name costs more than a small operation)
_type_adapter: dict = {}


def _adapter_of(*xs):
    for x in xs:
        if getattr(x, "_d2p_parameter", False):
            return x._adapter
        ad = _type_adapter.get(type(x))
        if ad is not None:
            return ad
        name = _registry.backend_of_type(x)
        if name is not None:
            ad = _registry.adapter(name)
            if len(_registry._type_backend.get(type(x), ())) == 1:
                _type_adapter[type(x)] = ad
            return ad
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


# -- what a d2l reader writes by hand: elementwise, reductions, creation -----------------------
# PyTorch's signatures and meanings. Parameters are used in the canonical layout.

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])
ValuesIndices.__doc__ = """``(values, indices)`` of :func:`max` / :func:`min` over a dimension
(PyTorch's ``torch.return_types.max``)."""


def _number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _shape_of(ad, x) -> tuple:
    return tuple(int(s) for s in ad.param_shape(_unwrap(x)))


def _dim(dim, ndim: int, what: str) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{what}: dim must be an int, got {dim!r}")
    size = builtins.max(ndim, 1)
    if not -size <= dim < size:
        raise IndexError(
            f"{what}: dim {dim} is out of range for a tensor with {ndim} dimension(s) "
            f"(expected {-size} to {size - 1})"
        )
    return int(dim) % size


def exp(x):
    """``e ** x``, elementwise.

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import ops
        >>> [round(float(v), 4) for v in d2p.to_numpy(ops.exp(d2p.tensor([0.0, 1.0], backend="torch")))]
        [1.0, 2.7183]
    """
    return _call("exp", x)


def log(x):
    """The natural logarithm, elementwise (``-inf`` at 0, NaN below)."""
    return _call("log", x)


def abs(x):  # noqa: A001 - PyTorch's name
    """``|x|``, elementwise (gradient 0 at 0, as PyTorch's)."""
    return _call("abs", x)


def sqrt(x):
    """``√x``, elementwise."""
    return _call("sqrt", x)


def pow(x, exponent):  # noqa: A001 - PyTorch's name
    """``x ** exponent``: either may be a tensor (broadcast) or a number (``x ** 2`` works
    too)."""
    _adapter_of(x, exponent)  # at least one native tensor or Parameter
    return _unwrap(x) ** _unwrap(exponent)


def maximum(a, b):
    """The elementwise maximum of two tensors (broadcast); one may be a number."""
    if _number(b):
        return clamp(a, min=b)
    if _number(a):
        return clamp(b, min=a)
    return _call("maximum", a, b)


def minimum(a, b):
    """The elementwise minimum of two tensors (broadcast); one may be a number."""
    if _number(b):
        return clamp(a, max=b)
    if _number(a):
        return clamp(b, max=a)
    return _call("minimum", a, b)


def clamp(x, min=None, max=None):  # noqa: A002 - PyTorch's names
    """``x`` limited to ``[min, max]`` (either bound may be ``None``); the gradient passes
    where ``min <= x <= max``. ``min > max`` gives ``max`` everywhere, as in PyTorch.

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import ops
        >>> d2p.to_numpy(ops.clamp(d2p.tensor([-2.0, 0.5, 3.0], backend="torch"), 0, 1)).tolist()
        [0.0, 0.5, 1.0]
    """
    for name, bound in (("min", min), ("max", max)):
        if bound is not None and not _number(bound):
            raise TypeError(f"clamp: {name} must be a number or None, got {type(bound).__name__}")
    if min is None and max is None:
        raise ValueError("clamp needs min or max (or both)")
    return _adapter_of(x).op("clamp")(_unwrap(x), min, max)


def where(condition, x, y):
    """``x`` where ``condition`` is true, else ``y`` (broadcast; ``x``/``y`` may be numbers).
    ``condition`` is a bool tensor (a comparison such as ``X > 0``) or numbers (nonzero is
    true)."""
    return _adapter_of(condition, x, y).op("where")(
        _unwrap(condition), _unwrap(x), _unwrap(y))


def eye(n: int, m: int | None = None, *, dtype="float32", requires_grad: bool = False,
        backend: str | None = None):
    """The ``n × m`` identity matrix (``m = n`` by default) on the current backend (or
    ``backend=``); ``requires_grad`` as in ``d2p.tensor``.

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import ops
        >>> d2p.to_numpy(ops.eye(2, 3, backend="torch")).tolist()
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    shape = _tensor._shape((n,) if m is None else (n, m))
    return _tensor.tensor(np.eye(*shape), backend, dtype=dtype, requires_grad=requires_grad)


def zeros_like(x):
    """Zeros of ``x``'s shape and dtype, on its backend."""
    return _call("zeros_like", x)


def ones_like(x):
    """Ones of ``x``'s shape and dtype, on its backend."""
    return _call("ones_like", x)


def argmax(x, dim: int | None = None, keepdim: bool = False):
    """The int64 index of the largest value over ``dim`` (of the flattened tensor when
    ``None``); the first one among equal maxima."""
    ad = _adapter_of(x)
    if dim is not None:
        dim = _dim(dim, len(_shape_of(ad, x)), "argmax")
    return ad.op("argmax")(_unwrap(x), dim, bool(keepdim))


def _extreme(name: str, x, dim, keepdim):
    ad = _adapter_of(x)
    if dim is None:
        return ad.op("amax" if name == "max" else "amin")(_unwrap(x), None, False)
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        other = "maximum" if name == "max" else "minimum"
        raise TypeError(
            f"ops.{name} takes (x, dim=None, keepdim=False), got dim={type(dim).__name__}; "
            f"the elementwise {other} of two tensors is ops.{other}(a, b)"
        )
    dim = _dim(dim, len(_shape_of(ad, x)), name)
    value = _unwrap(x)
    if name == "max":
        values, indices = ad.op("amax")(value, dim, bool(keepdim)), ad.op("argmax")(value, dim, bool(keepdim))
    else:
        values = ad.op("amin")(value, dim, bool(keepdim))
        indices = ad.op("argmax")(-value, dim, bool(keepdim))
    return ValuesIndices(values, indices)


def max(x, dim: int | None = None, keepdim: bool = False):  # noqa: A001 - PyTorch's name
    """The largest value: of the whole tensor when ``dim`` is ``None`` (a tensor, as
    ``torch.max(x)``), else ``(values, indices)`` over ``dim``, as ``torch.max(x, dim)``:
    a named pair, ``ops.max(x, 1).values``. The gradient goes to the maximum (split among
    equal maxima on some frameworks).

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import ops
        >>> x = d2p.tensor([[1.0, 5.0], [7.0, 2.0]], backend="torch")
        >>> values, indices = ops.max(x, dim=1)
        >>> d2p.to_numpy(values).tolist(), d2p.to_numpy(indices).tolist()
        ([5.0, 7.0], [1, 0])
    """
    return _extreme("max", x, dim, keepdim)


def min(x, dim: int | None = None, keepdim: bool = False):  # noqa: A001 - PyTorch's name
    """The smallest value; see :func:`max` (``(values, indices)`` over ``dim``)."""
    return _extreme("min", x, dim, keepdim)


def flatten(x, start_dim: int = 0, end_dim: int = -1):
    """``x`` with dimensions ``start_dim..end_dim`` merged into one (all by default, as
    ``torch.flatten``; ``nn.Flatten`` keeps the first)."""
    ad = _adapter_of(x)
    shape = _shape_of(ad, x)
    if not shape:
        return _call("reshape", x, shape=(1,))
    start, end = _dim(start_dim, len(shape), "flatten"), _dim(end_dim, len(shape), "flatten")
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    merged = int(np.prod(shape[start:end + 1], dtype=np.int64))
    return _call("reshape", x, shape=shape[:start] + (merged,) + shape[end + 1:])


def one_hot(x, num_classes: int = -1, *, dtype="int64"):
    """Class indices (an integer tensor) as one-hot rows: a new last axis of
    ``num_classes`` (``-1``: the largest index + 1). int64 as in PyTorch; ``dtype="float32"``
    gives floats to multiply with (a d2lparams addition).

    Raises:
        ValueError: an index outside ``[0, num_classes)``, or a tensor that is not integer.
    """
    ad = _adapter_of(x)
    labels = _integer_labels(ad, x, "one_hot")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"one_hot: num_classes must be an int, got {num_classes!r}")
    if num_classes == -1:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    _check_labels(labels, int(num_classes), "one_hot")
    return ad.op("one_hot")(_unwrap(x), int(num_classes), _tensor.dtype_name(dtype))


def astype(x, dtype):
    """``x`` converted to ``dtype`` (``"float32"``, ``"int64"``, ``"int32"``, ``"bool"``):
    PyTorch's ``x.to(dtype)``, e.g. to count correct predictions."""
    return _adapter_of(x).op("astype")(_unwrap(x), _tensor.dtype_name(dtype))


def dropout(x, p: float = 0.5, training: bool = True):
    """Functional dropout (PyTorch's ``F.dropout``): with ``training``, each entry is zeroed
    with probability ``p`` and the others are scaled by ``1/(1-p)``, drawn by the
    framework's own generator (``d2p.seed`` seeds it); without, ``x`` unchanged."""
    if isinstance(p, bool) or not _number(p) or not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p!r}")
    ad = _adapter_of(x)
    value = _unwrap(x)
    if not training or p == 0:
        return value
    if p == 1:
        return value * 0.0
    return ad.op("dropout")(value, float(p))


def linear(input, weight, bias=None):  # noqa: A002 - PyTorch's name
    """``input @ weight + bias``, with ``weight`` in d2lparams' canonical layout
    ``(in_features, out_features)``: ``ops.linear(X, layer.weight, layer.bias)`` is
    ``layer(X)`` on every backend. (PyTorch's ``F.linear`` takes the ``(out, in)`` weight;
    pass ``w.T`` of such an array.)"""
    out = _call("matmul", input, weight)
    return out if bias is None else out + _unwrap(bias)


def detach(x):
    """The value of ``x`` cut from the graph: no gradient flows through it (PyTorch's
    ``x.detach()``; also ``d2p.detach``)."""
    return _call("detach", x)


def log_softmax(x, dim: int = -1):
    """``log(softmax(x))`` over ``dim``, computed stably (finite for any finite ``x``)."""
    return _call("log_softmax", x, dim=dim)


# -- losses: PyTorch's meanings, one formula for every backend --------------------------------
_REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction, what: str) -> str:
    """``reduction`` if it is ``"mean"``, ``"sum"`` or ``"none"``; else a ValueError."""
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"{what}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}"
        )
    return reduction


def _reduce(ad, elementwise, reduction: str):
    if reduction == "none":
        return elementwise
    return ad.op(reduction)(elementwise, None, False)


def _target(ad, target, what: str, dtype=None):
    """A target as a native tensor of ``ad``'s backend (a NumPy array is converted)."""
    if isinstance(target, np.ndarray):
        if dtype is None:
            dtype = "int64" if target.dtype.kind in "iu" else "float32"
        return ad.tensor(np.ascontiguousarray(target, dtype=_tensor.DTYPES[dtype]))
    owner = _adapter_of(target)
    if owner is not ad:
        raise TypeError(
            f"{what}: the input is a {ad.name} tensor but the target a {owner.name} one; "
            f"make the target with d2p.tensor(y, backend={ad.name!r})"
        )
    return _unwrap(target)


def _same_shape(ad, input, target, what: str) -> tuple:
    a, b = _shape_of(ad, input), _shape_of(ad, target)
    if a != b:
        raise ValueError(
            f"{what}: the input has shape {a} and the target {b}; they must have the same "
            "shape (PyTorch would broadcast them, which is rarely meant); reshape one, e.g. "
            f"ops.reshape(target, {a})"
        )
    return a


def _integer_labels(ad, x, what: str, name: str | None = None) -> np.ndarray:
    name = name or ad.dtype(_unwrap(x))
    if name not in ("int64", "int32"):
        raise ValueError(
            f"{what}: class indices must be an integer tensor, got dtype {name}; make them "
            "with d2p.tensor(labels, dtype=\"int64\")"
        )
    return ad.to_numpy(_unwrap(x))


def _check_labels(labels: np.ndarray, num_classes: int, what: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise ValueError(
            f"{what}: class index {int(bad.flat[0])} is out of range for {num_classes} "
            f"classes (expected 0 to {num_classes - 1}; d2lparams has no ignore_index)"
        )


def _check_float(ad, x, what: str, role: str) -> None:
    name = ad.dtype(_unwrap(x))
    if name != "float32":
        raise ValueError(
            f"{what}: the {role} must be a float32 tensor, got dtype {name}; convert it with "
            "ops.astype(x, \"float32\")"
        )


def _loss_adapter(input, what: str):
    ad = _adapter_of(input)
    _check_float(ad, input, what, "input")
    return ad


def mse_loss(input, target, reduction: str = "mean"):  # noqa: A002 - PyTorch's name
    """Squared error ``(input - target) ** 2``, reduced by ``reduction`` (``"mean"``,
    ``"sum"`` or ``"none"``). ``input`` and ``target`` have the same shape; the target may
    be a NumPy array.

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import ops
        >>> y_hat, y = d2p.tensor([1.0, 2.0], backend="torch"), d2p.tensor([1.0, 4.0], backend="torch")
        >>> float(ops.mse_loss(y_hat, y)), d2p.to_numpy(ops.mse_loss(y_hat, y, "none")).tolist()
        (2.0, [0.0, 4.0])
    """
    check_reduction(reduction, "mse_loss")
    ad = _loss_adapter(input, "mse_loss")
    target = _target(ad, target, "mse_loss", "float32")
    _check_float(ad, target, "mse_loss", "target")
    _same_shape(ad, input, target, "mse_loss")
    diff = _unwrap(input) - target
    return _reduce(ad, diff * diff, reduction)


def l1_loss(input, target, reduction: str = "mean"):  # noqa: A002 - PyTorch's name
    """Absolute error ``|input - target|`` (gradient 0 where they are equal), reduced as in
    :func:`mse_loss`."""
    check_reduction(reduction, "l1_loss")
    ad = _loss_adapter(input, "l1_loss")
    target = _target(ad, target, "l1_loss", "float32")
    _check_float(ad, target, "l1_loss", "target")
    _same_shape(ad, input, target, "l1_loss")
    return _reduce(ad, ad.op("abs")(_unwrap(input) - target), reduction)


def _class_dim(ad, input, what: str) -> tuple:
    shape = _shape_of(ad, input)
    if not shape:
        raise ValueError(f"{what}: the input must have a class dimension, got a 0-d tensor")
    dim = 0 if len(shape) == 1 else 1
    return shape, dim


def _nll(ad, logp, target, shape: tuple, dtype: str, reduction: str):
    """``-logp[target]`` along the class dimension, reduced: an adapter's fused
    ``nll_loss`` where it has one (PyTorch's ``F.nll_loss``; half the cost of the
    composition on torch), else the composition ``-pick``, reduced."""
    reshape = ad.op("reshape")
    if dtype != "int64":
        target = ad.op("astype")(target, "int64")
    if len(shape) == 1:  # one unbatched example: as a batch of one
        logp, target = reshape(logp, (1,) + shape), reshape(target, (1,))
    if "nll_loss" in type(ad).ops_table:
        loss = ad.op("nll_loss")(logp, target, reduction)
    else:
        loss = _reduce(ad, -ad.op("pick")(logp, target, 1), reduction)
    return reshape(loss, ()) if len(shape) == 1 and reduction == "none" else loss


def _index_target(ad, target, shape: tuple, dim: int, what: str, dtype: str):
    expected = shape[:dim] + shape[dim + 1:]
    got = _shape_of(ad, target)
    if got != expected and not (expected == () and got == (1,)):  # d2p.tensor(3) is (1,)
        raise ValueError(
            f"{what}: an input of shape {shape} takes class indices of shape {expected}, "
            f"got {got} (class probabilities would have the input's shape)"
        )
    _check_labels(_integer_labels(ad, target, what, dtype), shape[dim], what)


def cross_entropy(input, target, reduction: str = "mean",  # noqa: A002 - PyTorch's name
                  label_smoothing: float = 0.0):
    """Cross entropy between logits ``input`` (``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``;
    unnormalized: the softmax is applied here) and ``target``:

    * class indices (an int64/int32 tensor of the input's shape without ``C``, or an
      integer NumPy array): ``-log_softmax(input)[target]``;
    * class probabilities (a float32 tensor of the input's shape):
      ``-sum(target * log_softmax(input))`` over ``C``.

    ``label_smoothing`` ε mixes the target with the uniform distribution:
    ``(1 - ε) target + ε / C``. Reduced by ``reduction`` (``"mean"`` over every position,
    ``"sum"``, ``"none"``). Stable for any finite logits (±100 included): the log-softmax
    subtracts the maximum. PyTorch's ``weight`` and ``ignore_index`` are not supported.

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import ops
        >>> logits = d2p.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 100.0]], backend="torch")
        >>> labels = d2p.tensor([0, 0], dtype="int64", backend="torch")
        >>> [round(float(v), 4) for v in d2p.to_numpy(ops.cross_entropy(logits, labels, "none"))]
        [0.2395, 100.0]
    """
    what = "cross_entropy"
    check_reduction(reduction, what)
    if isinstance(label_smoothing, bool) or not _number(label_smoothing) \
            or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{what}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    ad = _loss_adapter(input, what)
    target = _target(ad, target, what)
    shape, dim = _class_dim(ad, input, what)
    eps = float(label_smoothing)
    dtype = ad.dtype(target)
    if dtype == "float32":  # class probabilities
        _same_shape(ad, input, target, what + " (class probabilities)")
        logp = ad.op("log_softmax")(_unwrap(input), dim)
        q = target if not eps else target * (1.0 - eps) + eps / shape[dim]
        loss = -ad.op("sum")(q * logp, dim, False)
    else:
        _index_target(ad, target, shape, dim, what, dtype)
        logp = ad.op("log_softmax")(_unwrap(input), dim)
        if not eps:
            return _nll(ad, logp, target, shape, dtype, reduction)
        loss = _nll(ad, logp, target, shape, dtype, "none") * (1.0 - eps) \
            - ad.op("mean")(logp, dim, False) * eps
    return _reduce(ad, loss, reduction)


def nll_loss(input, target, reduction: str = "mean"):  # noqa: A002 - PyTorch's name
    """Negative log-likelihood: ``-input[target]`` along the class dimension, for
    log-probabilities ``input`` (``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``) and class
    indices ``target``; :func:`cross_entropy` is ``nll_loss(log_softmax(x, 1), y)``.
    Only the target's entry is read, so ``-inf`` elsewhere is harmless."""
    what = "nll_loss"
    check_reduction(reduction, what)
    ad = _loss_adapter(input, what)
    target = _target(ad, target, what, "int64")
    shape, dim = _class_dim(ad, input, what)
    dtype = ad.dtype(target)
    _index_target(ad, target, shape, dim, what, dtype)
    return _nll(ad, _unwrap(input), target, shape, dtype, reduction)


def binary_cross_entropy_with_logits(input, target,  # noqa: A002 - PyTorch's name
                                     reduction: str = "mean"):
    """Binary cross entropy of ``sigmoid(input)`` against ``target`` (probabilities of the
    positive class, the input's shape), computed from the logits stably:
    ``(1 - y) x + m + log(exp(-m) + exp(-x - m))`` with ``m = max(-x, 0)`` held constant,
    so logits of ±100 give finite losses and the gradient is ``sigmoid(x) - y`` exactly.

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import ops
        >>> z = d2p.tensor([100.0, -100.0, 0.0], backend="torch")
        >>> y = d2p.tensor([0.0, 0.0, 1.0], backend="torch")
        >>> loss = ops.binary_cross_entropy_with_logits(z, y, reduction="none")
        >>> [round(float(v), 4) for v in d2p.to_numpy(loss)]
        [100.0, 0.0, 0.6931]
    """
    what = "binary_cross_entropy_with_logits"
    check_reduction(reduction, what)
    ad = _loss_adapter(input, what)
    y = _target(ad, target, what, "float32")
    _check_float(ad, y, what, "target")
    _same_shape(ad, input, y, what)
    x = _unwrap(input)
    m = ad.op("detach")(ad.op("clamp")(-x, 0.0, None))
    log_term = ad.op("log")(ad.op("exp")(-m) + ad.op("exp")(-x - m))
    return _reduce(ad, (1.0 - y) * x + m + log_term, reduction)


def binary_cross_entropy(input, target, reduction: str = "mean"):  # noqa: A002
    """Binary cross entropy of probabilities ``input`` (in ``[0, 1]``, e.g. after a sigmoid)
    against ``target`` (the input's shape): ``-(y log p + (1 - y) log(1 - p))`` with each
    log clamped at -100 and the gradient ``(p - y) / max(p (1 - p), 1e-12)``, both as
    PyTorch computes them, so ``p = 0`` or ``1`` gives finite values and gradients. Prefer
    :func:`binary_cross_entropy_with_logits` on logits.

    Raises:
        ValueError: an input value outside ``[0, 1]`` (read from the tensor).
    """
    what = "binary_cross_entropy"
    check_reduction(reduction, what)
    ad = _loss_adapter(input, what)
    y = _target(ad, target, what, "float32")
    _check_float(ad, y, what, "target")
    _same_shape(ad, input, y, what)
    p = _unwrap(input)
    values = ad.to_numpy(p)
    if values.size and not ((values >= 0) & (values <= 1)).all():
        raise ValueError(
            f"{what}: all elements of input should be between 0 and 1 (found "
            f"{values[~((values >= 0) & (values <= 1))].flat[0]!r}); apply ops.sigmoid first, "
            "or use binary_cross_entropy_with_logits on the logits"
        )
    # PyTorch's value: each log clamped at -100 (finite at p = 0 or 1) ...
    detach, clamp, log = ad.op("detach"), ad.op("clamp"), ad.op("log")
    log_p, log_q = detach(clamp(log(p), -100.0, None)), detach(clamp(log(1.0 - p), -100.0, None))
    loss = -(y * log_p + (1.0 - y) * log_q)
    # ... and PyTorch's gradient (p - y) / max(p (1 - p), 1e-12), finite too: carried by a
    # term whose value is exactly zero
    slope = detach((p - y) / clamp(p * (1.0 - p), 1e-12, None))
    loss = loss + (p * slope - detach(p * slope))
    return _reduce(ad, loss, reduction)


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
    minimum = (builtins.max(1, kernel[0] - 2 * pad[0]), builtins.max(1, kernel[1] - 2 * pad[1]))
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
    minimum = (builtins.max(1, kernel[0] - 2 * pad[0]), builtins.max(1, kernel[1] - 2 * pad[1]))
    _conv.PoolCheck(f"ops.{name}(kernel_size={kernel_size!r})", None, minimum,
                    f"the {kernel[0]}×{kernel[1]} window with padding {pad}")(_shape(input))
    return ad.op(name)(_unwrap(input), kernel, stride, pad)


def max_pool2d(input, kernel_size, stride=None, padding=0):
    """PyTorch's ``F.max_pool2d`` over ``(N, C, H, W)`` input (the padding never wins)."""
    return _pool("max_pool2d", input, kernel_size, stride, padding)


def avg_pool2d(input, kernel_size, stride=None, padding=0):
    """PyTorch's ``F.avg_pool2d`` over ``(N, C, H, W)`` input (``count_include_pad=True``)."""
    return _pool("avg_pool2d", input, kernel_size, stride, padding)
