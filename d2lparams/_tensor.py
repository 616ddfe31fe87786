"""Tensors and the portable random generator."""

from __future__ import annotations

import numpy as np

from . import _devices, _registry

_state: dict = {"rng": np.random.default_rng(), "seed": None}


def generator() -> np.random.Generator:
    """The portable generator every d2lparams draw comes from (a NumPy ``Generator``)."""
    return _state["rng"]


def seed(n: int) -> None:
    """Seed the portable generator and the RNG of every framework already loaded.

    Examples:
        >>> import d2lparams as d2p
        >>> d2p.seed(0); a = d2p.to_numpy(d2p.rand(2, backend="torch"))
        >>> d2p.seed(0); b = d2p.to_numpy(d2p.rand(2, backend="torch"))
        >>> bool((a == b).all())
        True
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"seed must be a non-negative int, got {n!r}; for example d2p.seed(0)")
    _state["rng"] = np.random.default_rng(int(n))
    _state["seed"] = int(n)
    for ad in _registry.loaded_adapters():
        ad.seed(int(n))


def _shape(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"a shape takes non-negative ints, got {tuple(shape)!r}")
    return tuple(int(s) for s in shape)


#: the dtypes a tensor can have: neutral name -> the NumPy type that carries its values
#: (float32 is the default; NumPy has no bfloat16, so float32 carries it exactly)
DTYPES: dict = {"float32": np.float32, "float64": np.float64, "float16": np.float16,
                "bfloat16": np.float32, "int64": np.int64, "int32": np.int32, "bool": np.bool_}
#: the dtypes that can require a gradient (and that parameters can have)
FLOATING = ("float32", "float64", "float16", "bfloat16")


def dtype_name(dtype) -> str:
    """The neutral name of ``dtype`` (a name such as ``"int64"`` or a NumPy dtype).

    Raises:
        ValueError: ``dtype`` is none of :data:`DTYPES`.
    """
    if dtype is None:
        return "float32"
    if isinstance(dtype, str) and dtype in DTYPES:
        return dtype
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = getattr(dtype, "name", None) or str(dtype).rpartition(".")[2]  # a framework's
        name = str(name).lower()
    if name not in DTYPES:
        raise ValueError(
            f"unsupported dtype {dtype!r}; d2lparams tensors take one of "
            f"{', '.join(repr(d) for d in DTYPES)} (float32 is the default; integer class "
            "labels are dtype=\"int64\")"
        )
    return str(name)


def check_dtype(name: str, ad, what: str = "tensors") -> str:
    """``name`` if the backend ``ad`` has it, else a ``TypeError`` naming both."""
    if name in FLOATING and name not in ad.float_dtypes:
        raise TypeError(
            f"backend {ad.name!r} ({ad.framework_name}) has no {name} {what}: its floating "
            f"dtypes are {', '.join(ad.float_dtypes)}; choose one of those, or a backend that "
            f"has {name}{ad.dtype_hint(name)}"
        )
    return name


def parameter_dtype(dtype, ad, who: str) -> str:
    """The neutral name of ``dtype`` for parameters of backend ``ad`` (``who`` names the
    caller in the message): a ``TypeError`` unless it is a floating dtype the backend has."""
    name = dtype_name(dtype)
    if name not in FLOATING:
        raise TypeError(
            f"{who}: parameters are floating point, got dtype={dtype!r}; use 'float32', "
            "'float64', 'float16' or 'bfloat16'"
        )
    return check_dtype(name, ad, "parameters")


def _make(array: np.ndarray, backend, dtype="float32", requires_grad: bool = False,
          device=None):
    name = dtype_name(dtype)
    if not isinstance(requires_grad, (bool, np.bool_)):
        raise TypeError(f"requires_grad takes True or False, got {requires_grad!r}")
    if requires_grad and name not in FLOATING:
        raise ValueError(
            f"only floating-point tensors can require a gradient (as in PyTorch), got "
            f"dtype={name!r}; drop requires_grad=True or use dtype=\"float32\""
        )
    ad = _registry.adapter(backend)
    check_dtype(name, ad)
    where = None if device is None else _devices.resolve(device, ad)
    array = np.ascontiguousarray(array, dtype=DTYPES[name])  # a scalar becomes (1,)
    if name == "bfloat16" or (where is not None and where != ("cpu", 0)):
        return ad.convert(ad.tensor(array), name if name == "bfloat16" else None, where,
                          requires_grad=bool(requires_grad))
    if requires_grad:
        return ad.tensor(array, requires_grad=True)
    return ad.tensor(array)


def rand(*shape, backend: str | None = None, dtype=None, device=None,
         requires_grad: bool = False):
    """Uniform ``[0, 1)`` tensor from the portable generator: float32 unless ``dtype`` (the
    draw is float64 and rounds to the dtype, so every backend gets the same values), on the
    CPU unless ``device``.

    With ``requires_grad=True`` the tensor accumulates its gradient (``d2p.grad_of``), as a
    PyTorch leaf tensor does.

    Examples:
        >>> import d2lparams as d2p
        >>> tuple(d2p.rand(2, 3, backend="torch").shape)
        (2, 3)
        >>> d2p.rand(2, dtype="float64", backend="torch").dtype
        torch.float64
    """
    return _make(generator().random(_shape(shape)), backend, dtype, requires_grad, device)


def randn(*shape, backend: str | None = None, dtype=None, device=None,
          requires_grad: bool = False):
    """Standard-normal tensor from the portable generator (``dtype``, ``device`` and
    ``requires_grad`` as in :func:`rand`)."""
    return _make(generator().standard_normal(_shape(shape)), backend, dtype, requires_grad,
                 device)


def zeros(*shape, backend: str | None = None, dtype="float32", device=None,
          requires_grad: bool = False):
    """A tensor of zeros (float32 unless ``dtype``; ``device`` and ``requires_grad`` as in
    :func:`rand`)."""
    return _make(np.zeros(_shape(shape)), backend, dtype, requires_grad, device)


def ones(*shape, backend: str | None = None, dtype="float32", device=None,
         requires_grad: bool = False):
    """A tensor of ones (float32 unless ``dtype``; ``device`` and ``requires_grad`` as in
    :func:`rand`)."""
    return _make(np.ones(_shape(shape)), backend, dtype, requires_grad, device)


def tensor(data, backend: str | None = None, *, dtype="float32", device=None,
           requires_grad: bool = False):
    """A native tensor of the current backend (or ``backend=``) holding ``data``.

    ``data`` is anything array-like, including a native tensor of any backend. The dtype is
    float32 unless ``dtype`` says otherwise: ``"int64"`` (or ``"int32"``) for integer class
    labels, ``"bool"`` for masks; ``"float64"``, ``"float16"`` or ``"bfloat16"`` where the
    backend has it. ``device`` places it (``d2p.device("gpu", 0)``; the CPU by default).
    With ``requires_grad=True`` (a floating dtype only) the tensor is a
    leaf that accumulates its gradient over ``d2p.backward`` calls, read with
    ``d2p.grad_of(x)`` (PyTorch's ``x.grad``).

    Raises:
        ValueError: an unknown ``dtype``, or ``requires_grad`` with an integer or bool dtype.
        TypeError: a floating dtype the backend does not have (MXNet: bfloat16).
        RuntimeError: a GPU the backend does not see.

    Examples:
        >>> import d2lparams as d2p
        >>> d2p.to_numpy(d2p.tensor([[1, 2]], backend="torch")).tolist()
        [[1.0, 2.0]]
        >>> d2p.to_numpy(d2p.tensor([3, 0], dtype="int64", backend="torch")).dtype
        dtype('int64')
    """
    return _make(as_array(data), backend, dtype, requires_grad, device)


def as_array(data) -> np.ndarray:
    """``data`` as a NumPy array, whatever framework it comes from."""
    if isinstance(data, np.ndarray):
        return data
    if hasattr(data, "numpy") and hasattr(data, "_d2p_parameter"):
        return data.numpy()
    name = _registry.backend_of_type(data)
    if name is not None:
        return _registry.adapter(name).to_numpy(data)
    array: np.ndarray | None = None
    cause: Exception | None = None
    try:
        array = np.asarray(data)
    except Exception as exc:
        cause = exc
    if array is None or array.dtype == object:
        raise TypeError(
            f"expected an array-like of numbers (NumPy array, list, or a native tensor), got "
            f"{type(data).__name__}; convert it first, or make a tensor with d2p.tensor(values)"
        ) from cause
    return array


def to_numpy(x) -> np.ndarray:
    """A NumPy copy of a native tensor of any backend, a ``Parameter`` or a buffer.

    Examples:
        >>> import d2lparams as d2p
        >>> d2p.to_numpy(d2p.ones(2, backend="torch")).tolist()
        [1.0, 1.0]
    """
    return np.array(as_array(x), copy=True)
