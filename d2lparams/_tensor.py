"""Tensors and the portable random generator (SPEC §2)."""

from __future__ import annotations

import numpy as np

from . import _registry

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


def _make(array: np.ndarray, backend):
    return _registry.adapter(backend).tensor(np.ascontiguousarray(array, dtype=np.float32))


def rand(*shape, backend: str | None = None):
    """Uniform ``[0, 1)`` float32 tensor from the portable generator.

    Examples:
        >>> import d2lparams as d2p
        >>> tuple(d2p.rand(2, 3, backend="torch").shape)
        (2, 3)
    """
    return _make(generator().random(_shape(shape)), backend)


def randn(*shape, backend: str | None = None):
    """Standard-normal float32 tensor from the portable generator."""
    return _make(generator().standard_normal(_shape(shape)), backend)


def zeros(*shape, backend: str | None = None):
    """A float32 tensor of zeros."""
    return _make(np.zeros(_shape(shape)), backend)


def ones(*shape, backend: str | None = None):
    """A float32 tensor of ones."""
    return _make(np.ones(_shape(shape)), backend)


def tensor(data, backend: str | None = None):
    """A native float32 tensor of the current backend (or ``backend=``) holding ``data``.

    ``data`` is anything array-like, including a native tensor of any backend.

    Examples:
        >>> import d2lparams as d2p
        >>> d2p.to_numpy(d2p.tensor([[1, 2]], backend="torch")).tolist()
        [[1.0, 2.0]]
    """
    return _make(as_array(data), backend)


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
