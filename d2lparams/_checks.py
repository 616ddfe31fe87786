"""Checks of numbers and arrays shared by the neutral API: one rule and one wording for every
option (``lr``, ``eps``, ``p``, ``gamma``, init arguments) and every value written into a
model (``Parameter.set``, ``register_buffer``, ``load_state_dict``).

NumPy numbers are accepted wherever Python numbers are (``np.float32(0.5)``, ``np.int64(3)``,
a 0-d array); ``bool`` is not a number here. An option is always finite.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._tensor import as_array

FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned int, float: what becomes float32 exactly enough


def shown(value) -> str:
    """``repr(value)``, with the type when the repr alone hides it (``0.5`` of a NumPy
    ``float32`` reads like a Python float, which made "must be a number, got 0.5" messages)."""
    # a NumPy scalar reads as its Python value (NumPy 2's repr is "np.True_", 1's "True")
    text = repr(value.item() if isinstance(value, np.generic) else value)
    if len(text) > 80:
        text = text[:77] + "..."
    if type(value) in (int, float, str, bool, type(None)):
        return text
    return f"{text} ({type(value).__module__}.{type(value).__name__})"


def _scalar(value):
    """A Python int/float for a real number of any kind, else ``None``."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, np.ndarray):
        if value.ndim != 0 or value.dtype.kind not in "iuf":
            return None
        value = value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return None


def _range_text(minimum, maximum, min_open, max_open) -> str:
    if minimum is not None and maximum is not None:
        return f" in {'(' if min_open else '['}{minimum:g}, {maximum:g}{')' if max_open else ']'}"
    if minimum is not None:
        return f" {'>' if min_open else '>='} {minimum:g}"
    if maximum is not None:
        return f" {'<' if max_open else '<='} {maximum:g}"
    return ""


def number(value, what: str, *, minimum: float | None = None, maximum: float | None = None,
           min_open: bool = False, max_open: bool = False, expected: str = "",
           fix: str = "") -> float:
    """``value`` as a finite Python float within the given bounds.

    Args:
        value: an int, a float, a NumPy real scalar or a 0-d real array.
        what: the option's name for the message, e.g. ``"SGD lr"``.
        minimum, maximum: bounds (inclusive unless ``min_open`` / ``max_open``).
        expected: what the message says is expected (default: "a finite number >= 0"...).
        fix: appended to the message (starts with ``"; "``).

    Raises:
        ValueError: not a real number, not finite, or out of range.
    """
    scalar = _scalar(value)
    expected = expected or "a finite number" + _range_text(minimum, maximum, min_open, max_open)
    if scalar is None:
        raise ValueError(f"{what} must be {expected}, got {shown(value)}{fix}")
    try:
        x = float(scalar)
    except OverflowError:  # a Python int beyond float's range
        x = math.inf
    bad = not math.isfinite(x)
    if minimum is not None:
        bad = bad or (x <= minimum if min_open else x < minimum)
    if maximum is not None:
        bad = bad or (x >= maximum if max_open else x > maximum)
    if bad:
        raise ValueError(f"{what} must be {expected}, got {shown(value)}{fix}")
    return x


def integer(value, what: str, *, minimum: int | None = None, fix: str = "") -> int:
    """``value`` as a Python int (``int``, NumPy integer or 0-d integer array; not ``bool``
    and not a float, even an integral one).

    Raises:
        ValueError: not an integer or below ``minimum``.
    """
    scalar = _scalar(value)
    expected = "an int" + ("" if minimum is None else f" >= {minimum}")
    if not isinstance(scalar, int) or (minimum is not None and scalar < minimum):
        raise ValueError(f"{what} must be {expected}, got {shown(value)}{fix}")
    return scalar


class InvalidValue(ValueError):
    """A value that cannot become a float32 array (the reason is the message)."""

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        #: ``"type"`` (not numeric / not convertible) or ``"complex"``
        self.kind = kind


def _describe(value) -> str:
    kind = f"{type(value).__module__}.{type(value).__name__}"
    dtype = getattr(value, "dtype", None)
    return kind if dtype is None else f"{kind} of dtype {dtype}"


def float32_array(value, dtype=np.float32) -> np.ndarray:
    """``value`` (anything array-like, a native tensor of any backend, a ``Parameter``) as a
    float32 array (or ``dtype``: the NumPy type of a float64 or float16 parameter). Values
    beyond the type's range become ``inf`` (see :func:`count_nonfinite`); nothing is dropped
    silently.

    Raises:
        InvalidValue: not numeric (text, objects, ragged lists), complex (the imaginary part
            would be lost), or a tensor NumPy cannot hold (for instance bfloat16).
    """
    try:
        array = as_array(value)
    except Exception as exc:  # a framework's own error about its tensor: say what came
        raise InvalidValue(
            f"a {_describe(value)} cannot become a NumPy array ({exc}); convert it to a float32 "
            "tensor or a NumPy array first", "type",
        ) from exc
    kind = array.dtype.kind
    if kind == "c":
        raise InvalidValue(
            f"complex values (dtype {array.dtype}) would lose their imaginary part; pass real "
            "numbers (value.real if the imaginary part is known to be 0)", "complex",
        )
    if kind not in _NUMERIC_KINDS:
        raise InvalidValue(
            f"expected a numeric array-like, got a {_describe(value)} holding {array.dtype} "
            "values; pass a NumPy array of numbers or a native tensor", "type",
        )
    if array.dtype == dtype:
        return array
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported as non-finite
        return array.astype(dtype)


def count_nonfinite(array: np.ndarray) -> int:
    """The number of NaN/inf entries of a float32 array.

    The common case (everything finite) costs one BLAS dot product, about half of an
    ``isfinite`` pass: ``a·a`` is finite only if every entry is (squares are never negative,
    so nothing cancels; NaN and inf propagate). A non-finite result (also when large finite
    values overflow the square) falls back to counting exactly.
    """
    if array.dtype.kind != "f" or array.size == 0:
        return 0
    flat = array.ravel(order="K")  # a view for C- and Fortran-ordered arrays
    if flat.dtype == np.float32 and math.isfinite(float(np.dot(flat, flat))):
        return 0
    return int(array.size - np.count_nonzero(np.isfinite(array)))


def finite_float32(value, what: str, dtype=np.float32) -> np.ndarray:
    """:func:`float32_array`, and every entry finite (NaN, inf and values beyond the range of
    float32, or of ``dtype``, are refused): the rule for every value written into a parameter
    or buffer.

    Raises:
        TypeError: not numeric (see :func:`float32_array`).
        ValueError: complex, or NaN/inf/out of float32's range.
    """
    try:
        array = float32_array(value, dtype)
    except InvalidValue as exc:
        error = ValueError if exc.kind == "complex" else TypeError
        raise error(f"{what}: {exc.reason}") from None
    bad = count_nonfinite(array)
    if bad:
        raise ValueError(
            f"{what}: the value holds NaN or inf, or numbers beyond {np.dtype(dtype).name}'s "
            f"range ±{float(np.finfo(dtype).max):.4g} ({bad} of {array.size} entries); pass "
            "finite numbers "
            "(np.nan_to_num(value) replaces them)"
        )
    return array
