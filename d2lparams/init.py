"""Initialization: one seed, the same weights in every framework.

Every function draws from the portable generator (NumPy) in the canonical layout and writes
the result into the parameter in place, so ``d2p.seed(0); init.normal_(p, std=0.01)`` gives
the same float32 values on torch, tensorflow, mxnet and paddle. With ``native=True`` the
framework's own initializer draws instead (same distribution, the framework's RNG).

The drawing rule: every portable initializer that draws (``uniform_``, ``normal_``,
``xavier_*``, ``kaiming_*``) draws in the parameter's precision: float32 for a float32
parameter (float16 and bfloat16 are drawn in float32 and rounded), float64 for a float64 one.
With ``rng`` the portable generator (``np.random.default_rng(seed)`` after
``d2p.seed(seed)``) and ``n`` the number of values, a float32 parameter gets exactly::

    uniform_(p, a, b):
        w = rng.random(n, dtype=np.float32) * np.float32(b - a) + np.float32(a)
    normal_(p, mean, std):   # Box–Muller on the two halves of k = ceil(n/2) pairs
        k = (n + 1) // 2
        u = rng.random(2 * k, dtype=np.float32)
        r = np.sqrt(np.log(np.float32(1) - u[:k]) * np.float32(-2)) * np.float32(std)
        theta = np.float32(2 * np.pi) * u[k:]
        w = np.concatenate([r * np.cos(theta), r * np.sin(theta)])[:n]
        if mean != 0: w = w + np.float32(mean)

reshaped to ``p.shape`` in C order, except a 2-D parameter ``(in, out)``, which is filled as
``(out, in)`` (``w.reshape(out, in).T``): PyTorch's storage order of a Linear weight, so that
writing it into torch's and MXNet's ``(out, in)`` storage is a plain copy. ``xavier_uniform_`` and
``kaiming_uniform_`` are ``uniform_(p, -bound, bound)``, ``xavier_normal_`` and
``kaiming_normal_`` are ``normal_(p, 0, std)``. A float64 parameter gets
``rng.uniform(a, b, shape)`` / ``rng.normal(mean, std, shape)`` (a 2-D one drawn as
``(out, in)`` and transposed, the same order). ``reset_`` (the schemes)
and an ``Initializer`` draw float64 and round.

Examples:
    >>> import d2lparams as d2p
    >>> from d2lparams import nn, init
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1), backend="torch")
    >>> def init_normal(m):
    ...     if isinstance(m, nn.Linear):
    ...         init.normal_(m.weight, mean=0.0, std=0.01)
    ...         init.zeros_(m.bias)
    >>> _ = net.apply(init_normal)
    >>> net[0].bias.numpy().tolist()[:2]
    [0.0, 0.0]
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import _registry
from ._checks import FLOAT32_MAX, number
from ._sampling import normal as _normal32
from ._sampling import uniform as _uniform32
from ._state import check_not_recording
from ._tensor import generator
from .schemes import Scheme

__all__ = [
    "Initializer", "Scheme", "calculate_gain", "fans", "constant_", "default_scheme", "initialize_",
    "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_", "reset_", "uniform_",
    "xavier_normal_", "xavier_uniform_", "zeros_",
]


def _param(p, fn: str):
    if getattr(p, "_d2p_parameter", False):
        return p
    inner = getattr(p, "_param", None)  # p.data: initialize the parameter it shows
    if getattr(inner, "_d2p_parameter", False):
        return inner
    hint = (
        "; for a module use net.apply(fn) with a function that initializes m.weight, "
        "or init.reset_(net, scheme)"
        if hasattr(p, "named_parameters")
        else ""
    )
    raise TypeError(f"init.{fn} takes an nn.Parameter, got {type(p).__name__}{hint}")


def fans(shape: tuple, fn: str = "fans") -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a canonical weight: ``(in, out)`` for a 2-D (Linear) weight;
    PyTorch's ``(out, in/groups, kh, kw, ...)`` rule for more dimensions (a conv weight)."""
    if len(shape) < 2:
        raise ValueError(
            f"init.{fn} needs a parameter with at least 2 dimensions to compute fan_in and "
            f"fan_out, got shape {shape}; use uniform_, normal_ or constant_ for a bias"
        )
    if len(shape) == 2:
        fan_in, fan_out = shape[0], shape[1]
    else:
        receptive = math.prod(shape[2:])
        fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    if fan_in == 0 or fan_out == 0:  # the bound or std would divide by zero
        raise ValueError(
            f"init.{fn} computes its scale from fan_in = {fan_in} and fan_out = {fan_out} "
            f"(shape {shape}): a parameter needs at least one element for that; a parameter "
            "without elements has nothing to initialize"
        )
    return fan_in, fan_out


def _fans(p, fn: str) -> tuple[int, int]:
    return fans(p.shape, fn)


def _arg(value, fn: str, name: str, **bounds) -> float:
    """A finite real argument (NumPy numbers too): a NaN or inf would be written as is by
    ``native=True`` (the framework does not check) and fail late or not at all otherwise."""
    return number(value, f"init.{fn} {name}", **bounds)


def _within_float32(fn: str, reach: float, what: str) -> None:
    """Refuse arguments whose values a float32 parameter cannot hold (they would become inf);
    ``reach`` is the largest magnitude drawn (12 standard deviations for a normal)."""
    if not reach <= FLOAT32_MAX:
        raise ValueError(
            f"init.{fn}: {what} reaches {reach:.4g}, beyond float32's range "
            f"±{FLOAT32_MAX:.4g}; a parameter would hold inf. Use smaller arguments"
        )


def calculate_gain(nonlinearity: str, param=None) -> float:
    """PyTorch's recommended gain for ``nonlinearity``.

    Examples:
        >>> from d2lparams import init
        >>> round(init.calculate_gain("relu"), 4)
        1.4142
    """
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float, np.integer, np.floating)) and not isinstance(
                param, (bool, np.bool_)):
            slope = float(param)
        else:
            raise ValueError(
                f"negative_slope {param!r} not a valid number; pass a float such as 0.2"
            )
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(
        f"unsupported nonlinearity {nonlinearity!r}; use one of linear, conv1d/2d/3d, "
        "sigmoid, tanh, relu, leaky_relu, selu"
    )


def _draw(p, array: np.ndarray, *, finite: bool = False):
    """Write a drawn canonical array; ``finite=True``: it was drawn in the parameter's
    precision from finite arguments within its range (checked before drawing), so the full pass over the
    values that ``Parameter.set`` makes is skipped (it is a third of ``normal_``'s time)."""
    if finite and array.shape == p.shape and array.dtype == p._carrier:
        check_not_recording(p)
        p._write(array)  # rounds to the parameter's dtype (float16, bfloat16) if need be
    else:
        p.set(array)  # checked and converted to the parameter's dtype
    return p


def _native(p, kind: str, **spec):
    check_not_recording(p)
    p._adapter.init_native(p.native, kind, p._layout, **spec)
    return p


def _precision(dtype) -> type:
    """The precision a draw for a ``dtype`` parameter is made in: float64 for float64,
    float32 for float32, float16 and bfloat16 (these two are rounded after the draw)."""
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    if name == "float64":
        return np.float64
    if name in ("float32", "float16", "bfloat16"):
        return np.float32
    raise ValueError(f"init draws float parameters (float16/bfloat16/float32/float64), got {dtype!r}")


def _filled(shape: tuple) -> tuple:
    """The order values are drawn in: a 2-D parameter ``(in, out)`` is filled as
    ``(out, in)``, PyTorch's storage order of a Linear weight (row by row of the transpose)."""
    return shape[::-1] if len(shape) == 2 else shape


def _in_order(drawn: np.ndarray, shape: tuple) -> np.ndarray:
    """The drawn array in the canonical layout (a transposed view for a 2-D parameter)."""
    return drawn.T if len(shape) == 2 else drawn


def _draw_uniform(rng: np.random.Generator, shape: tuple, a: float, b: float,
                  dtype=np.float32) -> np.ndarray:
    """``U(a, b)`` drawn in ``dtype``'s precision (the module docstring gives the exact rule).

    float32 values are NumPy's ``rng.random(dtype=np.float32)``, read in bulk
    (``d2lparams._sampling``): as fast as the frameworks' own kernels; a float64 target keeps
    NumPy's float64 ``rng.uniform``, so nothing is lost when a parameter is double precision.
    """
    if _precision(dtype) is np.float64:
        return _in_order(rng.uniform(a, b, _filled(shape)), shape)
    return _in_order(_uniform32(rng, math.prod(shape), b - a, a).reshape(_filled(shape)), shape)


def _draw_normal(rng: np.random.Generator, shape: tuple, mean: float, std: float,
                 dtype=np.float32) -> np.ndarray:
    """``N(mean, std²)`` drawn in ``dtype``'s precision (the module docstring gives the
    exact rule).

    float32: Box–Muller on float32 uniforms, computed in float32 block by block; NumPy's
    float32 ziggurat, which draws one value at a time, takes twice as long. float64 targets
    keep ``rng.normal``.
    """
    if _precision(dtype) is np.float64:
        return _in_order(rng.normal(mean, std, _filled(shape)), shape)
    return _in_order(_normal32(rng, math.prod(shape), mean, std).reshape(_filled(shape)), shape)


def uniform_(p, a: float = 0.0, b: float = 1.0, *, native: bool = False):
    """Fill with ``U(a, b)``, drawn in the parameter's precision (the rule is in the module
    docstring).

    Raises:
        ValueError: ``a > b``; the parameter is unchanged.

    Examples:
        >>> import numpy as np, d2lparams as d2p
        >>> from d2lparams import init
        >>> p = d2p.nn.Linear(3, 2, backend="torch").weight
        >>> d2p.seed(0); _ = init.uniform_(p, -0.5, 0.5)
        >>> u = np.random.default_rng(0).random((2, 3), dtype=np.float32).T  # filled as (out, in)
        >>> bool((p.numpy() == u * np.float32(1.0) + np.float32(-0.5)).all())
        True
    """
    p = _param(p, "uniform_")
    a, b = _arg(a, "uniform_", "a"), _arg(b, "uniform_", "b")
    if not a <= b:
        raise ValueError(f"init.uniform_ needs a <= b, got a={a}, b={b}")
    _within_float32("uniform_", max(abs(a), abs(b)), "U(a, b)")
    _within_float32("uniform_", b - a, "the width b - a")
    if native:
        return _native(p, "uniform", low=float(a), high=float(b))
    return _draw(p, _draw_uniform(generator(), p.shape, a, b, p.dtype), finite=True)


def normal_(p, mean: float = 0.0, std: float = 1.0, *, native: bool = False):
    """Fill with ``N(mean, std²)``, drawn in the parameter's precision (the rule is in the
    module docstring).

    Raises:
        ValueError: ``std < 0``; the parameter is unchanged.

    Examples:
        >>> import numpy as np, d2lparams as d2p
        >>> from d2lparams import init
        >>> p = d2p.nn.Linear(3, 2, backend="torch").weight
        >>> d2p.seed(0); _ = init.normal_(p, mean=1.0, std=0.01)
        >>> u = np.random.default_rng(0).random(6, dtype=np.float32)
        >>> r = np.sqrt(np.log(np.float32(1) - u[:3]) * np.float32(-2)) * np.float32(0.01)
        >>> theta = np.float32(2 * np.pi) * u[3:]
        >>> w = np.concatenate([r * np.cos(theta), r * np.sin(theta)]) + np.float32(1.0)
        >>> bool((p.numpy() == w.reshape(2, 3).T).all())
        True
    """
    p = _param(p, "normal_")
    mean = _arg(mean, "normal_", "mean")
    std = _arg(std, "normal_", "std", minimum=0, expected="a finite number >= 0 (std >= 0)")
    _within_float32("normal_", abs(mean) + 12 * std, "mean ± 12·std")
    if native:
        return _native(p, "normal", mean=float(mean), std=float(std))
    return _draw(p, _draw_normal(generator(), p.shape, mean, std, p.dtype), finite=True)


def constant_(p, value: float, *, native: bool = False):
    """Fill with ``value``."""
    p = _param(p, "constant_")
    value = _arg(value, "constant_", "value")
    _within_float32("constant_", abs(value), "value")
    if native:
        return _native(p, "constant", value=float(value))
    return _draw(p, np.full(p.shape, value))


def zeros_(p, *, native: bool = False):
    """Fill with 0."""
    return constant_(p, 0.0, native=native)


def ones_(p, *, native: bool = False):
    """Fill with 1."""
    return constant_(p, 1.0, native=native)


def xavier_uniform_(p, gain: float = 1.0, *, native: bool = False):
    """Glorot: ``U(±gain·√(6/(fan_in+fan_out)))``, drawn as ``uniform_(p, -bound, bound)``."""
    p = _param(p, "xavier_uniform_")
    gain = _arg(gain, "xavier_uniform_", "gain")
    fan_in, fan_out = _fans(p, "xavier_uniform_")
    _within_float32("xavier_uniform_", abs(gain) * math.sqrt(6.0 / (fan_in + fan_out)), "the bound")
    if native:
        return _native(p, "xavier_uniform", gain=float(gain), fan_in=fan_in, fan_out=fan_out)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _draw(p, _draw_uniform(generator(), p.shape, -bound, bound, p.dtype), finite=True)


def xavier_normal_(p, gain: float = 1.0, *, native: bool = False):
    """Glorot: ``N(0, gain²·2/(fan_in+fan_out))``, drawn as ``normal_(p, 0, std)``."""
    p = _param(p, "xavier_normal_")
    gain = _arg(gain, "xavier_normal_", "gain")
    fan_in, fan_out = _fans(p, "xavier_normal_")
    _within_float32("xavier_normal_", 12 * abs(gain) * math.sqrt(2.0 / (fan_in + fan_out)),
                    "12·std")
    if native:
        return _native(p, "xavier_normal", gain=float(gain), fan_in=fan_in, fan_out=fan_out)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return _draw(p, _draw_normal(generator(), p.shape, 0.0, std, p.dtype), finite=True)


def _kaiming(p, a, mode, nonlinearity, fn):
    p = _param(p, fn)
    a = _arg(a, fn, "a (the negative slope)")
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init.{fn} mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(p, fn)
    fan = fan_in if mode == "fan_in" else fan_out
    gain = calculate_gain(nonlinearity, a)
    _within_float32(fn, 12 * gain * math.sqrt(3.0 / fan), "the scale")
    return p, fan, gain, fan_in, fan_out, a


def kaiming_uniform_(p, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     *, native: bool = False):
    """He: ``U(±gain·√(3/fan))``, drawn as ``uniform_(p, -bound, bound)``."""
    p, fan, gain, fan_in, fan_out, a = _kaiming(p, a, mode, nonlinearity, "kaiming_uniform_")
    if native:
        return _native(p, "kaiming_uniform", gain=gain, fan=fan, mode=mode, fan_in=fan_in,
                       fan_out=fan_out, a=a, nonlinearity=nonlinearity)
    bound = gain * math.sqrt(3.0 / fan)
    return _draw(p, _draw_uniform(generator(), p.shape, -bound, bound, p.dtype), finite=True)


def kaiming_normal_(p, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    *, native: bool = False):
    """He: ``N(0, gain²/fan)`` (std ``gain/√fan``), drawn as ``normal_(p, 0, std)``."""
    p, fan, gain, fan_in, fan_out, a = _kaiming(p, a, mode, nonlinearity, "kaiming_normal_")
    if native:
        return _native(p, "kaiming_normal", gain=gain, fan=fan, mode=mode, fan_in=fan_in,
                       fan_out=fan_out, a=a, nonlinearity=nonlinearity)
    std = gain / math.sqrt(fan)
    return _draw(p, _draw_normal(generator(), p.shape, 0.0, std, p.dtype), finite=True)


class Initializer:
    """Base class of a custom scheme: implement ``__call__(self, shape, rng)``.

    ``shape`` is the canonical shape and ``rng`` the portable NumPy generator; return an
    array of that shape.

    Examples:
        >>> import numpy as np, d2lparams as d2p
        >>> from d2lparams import init
        >>> class MyInit(init.Initializer):
        ...     def __call__(self, shape, rng):
        ...         w = rng.uniform(-10, 10, shape)
        ...         return w * (np.abs(w) >= 5)
        >>> lin = d2p.nn.Linear(4, 8, weight_init=MyInit(), backend="torch")
        >>> bool(((lin.weight.numpy() == 0) | (abs(lin.weight.numpy()) >= 5)).all())
        True
    """

    def __call__(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        raise TypeError(f"{type(self).__name__} must implement __call__(self, shape, rng)")


def initialize_(p, initializer: Initializer):
    """Fill ``p`` with ``initializer(p.shape, rng)``; a wrong shape changes nothing."""
    p = _param(p, "initialize_")
    if not isinstance(initializer, Initializer):
        raise TypeError(
            f"init.initialize_ takes an init.Initializer, got {type(initializer).__name__}; "
            "subclass init.Initializer and implement __call__(self, shape, rng)"
        )
    value = np.asarray(initializer(p.shape, generator()))
    if value.shape != p.shape:
        raise ValueError(
            f"{type(initializer).__name__} returned shape {value.shape} for a parameter of "
            f"shape {p.shape}; return an array of the shape it is given"
        )
    return _draw(p, value)


def apply_init(p, how):
    """Apply a ``weight_init`` / ``bias_init`` argument: an :class:`Initializer`, a number,
    or a function ``f(parameter)``."""
    if isinstance(how, Initializer):
        return initialize_(p, how)
    if isinstance(how, numbers.Real) and not isinstance(how, (bool, np.bool_)):
        return constant_(p, float(how))
    if callable(how):
        how(p)
        return p
    raise TypeError(
        f"weight_init / bias_init take an init.Initializer, a number, or a function f(param), "
        f"got {type(how).__name__}"
    )


def default_scheme(backend: str | None = None) -> Scheme:
    """The default initialization of ``backend``'s layers (current backend if omitted), as
    the backend declares it.

    Examples:
        >>> from d2lparams import init
        >>> print(init.default_scheme("mxnet"))
        mxnet: weight U(±0.07), bias zeros; conv2d: weight U(±0.07), bias zeros
    """
    cls = _registry.adapter_class(backend if backend is not None else _registry.get_backend())
    scheme = cls.default_init
    if scheme is None:
        raise ValueError(f"backend {cls.name!r} declares no default initialization scheme")
    return scheme if scheme.name == cls.name else scheme.renamed(cls.name)


def reset_(module, scheme: str | Scheme | None = None):
    """Re-initialize every layer with weights under ``module`` (Linear, Conv2d) with a
    backend's default scheme, drawn from the portable generator (so it is the same on every
    backend). ``scheme`` is a backend name (any registered one) or a :class:`Scheme`; the
    module's own backend when omitted.

    Raises:
        ValueError: ``module`` holds no layer with weights (nothing would change).

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import init
        >>> net = d2p.nn.mlp(4, 8, 1, backend="torch")
        >>> _ = init.reset_(net, "tensorflow")
        >>> float(abs(net[0].bias.numpy()).max())
        0.0
    """
    if not isinstance(scheme, Scheme):
        scheme = default_scheme(scheme if scheme is not None else module.backend)
    layers = [m for m in module.modules() if getattr(type(m), "_kind", None) in _WEIGHTED]
    if not layers:
        raise ValueError(
            f"init.reset_ found no nn.Linear (nor another layer with weights, like nn.Conv2d) in "
            f"{type(module).__name__}; nothing to initialize"
        )
    rng = generator()
    for layer in layers:
        weight_rule, bias_rule = scheme.rule(layer._kind)
        w = layer.weight
        fan_in, fan_out = fans(w.shape)
        _draw(w, weight_rule(w.shape, fan_in, fan_out, rng))
        if layer.bias is not None:
            _draw(layer.bias, bias_rule(layer.bias.shape, fan_in, fan_out, rng))
    return module


#: layer kinds whose weight and bias follow a framework's default scheme
_WEIGHTED = ("linear", "conv2d")
