"""Initialization: one seed, the same weights in every framework.

Every function draws from the portable generator (NumPy) in the canonical layout and writes
the result into the parameter in place, so ``d2p.seed(0); init.normal_(p, std=0.01)`` gives
the same float32 values on torch, tensorflow, mxnet and paddle. With ``native=True`` the
framework's own initializer draws instead (same distribution, the framework's RNG).

The drawing rule of ``uniform_`` and ``normal_``: they draw in the parameter's precision
(float32), so that a 25M-parameter model is not drawn in float64 and then cast. With
``rng`` the portable generator (``np.random.default_rng(seed)`` after ``d2p.seed(seed)``),
the values are exactly::

    uniform_(p, a, b):       rng.random(p.shape, dtype=np.float32) * np.float32(b - a) + np.float32(a)
    normal_(p, mean, std):   rng.standard_normal(p.shape, dtype=np.float32) * np.float32(std) + np.float32(mean)

The other portable initializers (``xavier_*``, ``kaiming_*``, ``reset_``, an
``Initializer``) draw float64 with ``rng.uniform`` / ``rng.normal`` and round to float32.

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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import _registry
from ._tensor import generator
from .nn.parameter import Parameter

__all__ = [
    "Initializer", "Scheme", "calculate_gain", "constant_", "default_scheme", "initialize_",
    "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_", "reset_", "uniform_",
    "xavier_normal_", "xavier_uniform_", "zeros_",
]


def _param(p, fn: str) -> Parameter:
    if isinstance(p, Parameter):
        return p
    hint = (
        "; for a module use net.apply(fn) with a function that initializes m.weight, "
        "or init.reset_(net, scheme)"
        if hasattr(p, "named_parameters")
        else ""
    )
    raise TypeError(f"init.{fn} takes an nn.Parameter, got {type(p).__name__}{hint}")


def _fans(p: Parameter, fn: str) -> tuple[int, int]:
    shape = p.shape
    if len(shape) < 2:
        raise ValueError(
            f"init.{fn} needs a parameter with at least 2 dimensions to compute fan_in and "
            f"fan_out, got shape {shape}; use uniform_, normal_ or constant_ for a bias"
        )
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[0] * receptive, shape[1] * receptive


def calculate_gain(nonlinearity: str, param=None) -> float:
    """PyTorch's recommended gain for ``nonlinearity``.

    Examples:
        >>> from d2lparams import init
        >>> round(init.calculate_gain("relu"), 4)
        1.4142
    """
    linear = ("linear", "conv1d", "conv2d", "conv3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(
        f"unknown nonlinearity {nonlinearity!r}; use one of linear, sigmoid, tanh, relu, "
        "leaky_relu, selu"
    )


def _draw(p: Parameter, array: np.ndarray) -> Parameter:
    p.set(np.asarray(array, dtype=np.float32))
    return p


def _native(p: Parameter, kind: str, **spec) -> Parameter:
    from ._state import check_not_recording

    check_not_recording(p)
    p._adapter.init_native(p.native, kind, transposed=p._transposed, **spec)
    return p


def _draw_uniform(rng: np.random.Generator, shape: tuple, a: float, b: float,
                  dtype=np.float32) -> np.ndarray:
    """``U(a, b)`` drawn in ``dtype`` (the module docstring gives the exact rule).

    Drawing float32 directly is what makes ``uniform_`` as fast as the frameworks' own
    kernels; a float64 target keeps NumPy's float64 ``rng.uniform``, so nothing is lost
    when a parameter is double precision.
    """
    if np.dtype(dtype) == np.float64:
        return rng.uniform(a, b, shape)
    out = rng.random(shape, dtype=np.float32)
    if b - a != 1:  # each skipped pass over 25M values is ~5% of the whole call
        out *= np.float32(b - a)
    if a != 0:
        out += np.float32(a)
    return out


def _draw_normal(rng: np.random.Generator, shape: tuple, mean: float, std: float,
                 dtype=np.float32) -> np.ndarray:
    """``N(mean, std²)`` drawn in ``dtype`` (the module docstring gives the exact rule).

    NumPy's float32 ziggurat costs about half of drawing float64 and casting; float64
    targets keep ``rng.normal``.
    """
    if np.dtype(dtype) == np.float64:
        return rng.normal(mean, std, shape)
    out = rng.standard_normal(shape, dtype=np.float32)
    if std != 1:
        out *= np.float32(std)
    if mean != 0:
        out += np.float32(mean)
    return out


def uniform_(p, a: float = 0.0, b: float = 1.0, *, native: bool = False) -> Parameter:
    """Fill with ``U(a, b)``, drawn in float32 (the rule is in the module docstring).

    Raises:
        ValueError: ``a > b``; the parameter is unchanged.

    Examples:
        >>> import numpy as np, d2lparams as d2p
        >>> from d2lparams import init
        >>> p = d2p.nn.Linear(3, 2, backend="torch").weight
        >>> d2p.seed(0); _ = init.uniform_(p, -0.5, 0.5)
        >>> u = np.random.default_rng(0).random((3, 2), dtype=np.float32)
        >>> bool((p.numpy() == u * np.float32(1.0) + np.float32(-0.5)).all())
        True
    """
    p = _param(p, "uniform_")
    if not a <= b:
        raise ValueError(f"init.uniform_ needs a <= b, got a={a}, b={b}")
    if native:
        return _native(p, "uniform", low=float(a), high=float(b))
    return _draw(p, _draw_uniform(generator(), p.shape, a, b, p.dtype))


def normal_(p, mean: float = 0.0, std: float = 1.0, *, native: bool = False) -> Parameter:
    """Fill with ``N(mean, std²)``, drawn in float32 (the rule is in the module docstring).

    Raises:
        ValueError: ``std < 0``; the parameter is unchanged.

    Examples:
        >>> import numpy as np, d2lparams as d2p
        >>> from d2lparams import init
        >>> p = d2p.nn.Linear(3, 2, backend="torch").weight
        >>> d2p.seed(0); _ = init.normal_(p, mean=1.0, std=0.01)
        >>> z = np.random.default_rng(0).standard_normal((3, 2), dtype=np.float32)
        >>> bool((p.numpy() == z * np.float32(0.01) + np.float32(1.0)).all())
        True
    """
    p = _param(p, "normal_")
    if std < 0:
        raise ValueError(f"init.normal_ needs std >= 0, got {std}")
    if native:
        return _native(p, "normal", mean=float(mean), std=float(std))
    return _draw(p, _draw_normal(generator(), p.shape, mean, std, p.dtype))


def constant_(p, value: float, *, native: bool = False) -> Parameter:
    """Fill with ``value``."""
    p = _param(p, "constant_")
    if native:
        return _native(p, "constant", value=float(value))
    return _draw(p, np.full(p.shape, value))


def zeros_(p, *, native: bool = False) -> Parameter:
    """Fill with 0."""
    return constant_(p, 0.0, native=native)


def ones_(p, *, native: bool = False) -> Parameter:
    """Fill with 1."""
    return constant_(p, 1.0, native=native)


def xavier_uniform_(p, gain: float = 1.0, *, native: bool = False) -> Parameter:
    """Glorot: ``U(±gain·√(6/(fan_in+fan_out)))``."""
    p = _param(p, "xavier_uniform_")
    fan_in, fan_out = _fans(p, "xavier_uniform_")
    if native:
        return _native(p, "xavier_uniform", gain=float(gain), fan_in=fan_in, fan_out=fan_out)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _draw(p, generator().uniform(-bound, bound, p.shape))


def xavier_normal_(p, gain: float = 1.0, *, native: bool = False) -> Parameter:
    """Glorot: ``N(0, gain²·2/(fan_in+fan_out))``."""
    p = _param(p, "xavier_normal_")
    fan_in, fan_out = _fans(p, "xavier_normal_")
    if native:
        return _native(p, "xavier_normal", gain=float(gain), fan_in=fan_in, fan_out=fan_out)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return _draw(p, generator().normal(0.0, std, p.shape))


def _kaiming(p, a, mode, nonlinearity, fn):
    p = _param(p, fn)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init.{fn} mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(p, fn)
    fan = fan_in if mode == "fan_in" else fan_out
    return p, fan, calculate_gain(nonlinearity, a), fan_in, fan_out, a


def kaiming_uniform_(p, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     *, native: bool = False) -> Parameter:
    """He: ``U(±gain·√(3/fan))``."""
    p, fan, gain, fan_in, fan_out, a = _kaiming(p, a, mode, nonlinearity, "kaiming_uniform_")
    if native:
        return _native(p, "kaiming_uniform", gain=gain, fan=fan, mode=mode, fan_in=fan_in,
                       fan_out=fan_out, a=a, nonlinearity=nonlinearity)
    bound = gain * math.sqrt(3.0 / fan)
    return _draw(p, generator().uniform(-bound, bound, p.shape))


def kaiming_normal_(p, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    *, native: bool = False) -> Parameter:
    """He: ``N(0, gain²/fan)``."""
    p, fan, gain, fan_in, fan_out, a = _kaiming(p, a, mode, nonlinearity, "kaiming_normal_")
    if native:
        return _native(p, "kaiming_normal", gain=gain, fan=fan, mode=mode, fan_in=fan_in,
                       fan_out=fan_out, a=a, nonlinearity=nonlinearity)
    return _draw(p, generator().normal(0.0, gain / math.sqrt(fan), p.shape))


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


def initialize_(p, initializer: Initializer) -> Parameter:
    """Fill ``p`` with ``initializer(p.shape, rng)``; a wrong shape changes nothing."""
    p = _param(p, "initialize_")
    if not isinstance(initializer, Initializer):
        raise TypeError(
            f"init.initialize_ takes an init.Initializer, got {type(initializer).__name__}; "
            "subclass init.Initializer and implement __call__(self, shape, rng)"
        )
    value = np.asarray(initializer(p.shape, generator()), dtype=np.float32)
    if value.shape != p.shape:
        raise ValueError(
            f"{type(initializer).__name__} returned shape {value.shape} for a parameter of "
            f"shape {p.shape}; return an array of the shape it is given"
        )
    return _draw(p, value)


def _apply_init(p: Parameter, how) -> Parameter:
    if isinstance(how, Initializer):
        return initialize_(p, how)
    if isinstance(how, (int, float)) and not isinstance(how, bool):
        return constant_(p, float(how))
    if callable(how):
        how(p)
        return p
    raise TypeError(
        f"weight_init / bias_init take an init.Initializer, a number, or a function f(param), "
        f"got {type(how).__name__}"
    )


@dataclass(frozen=True)
class Scheme:
    """A framework's default initialization of a Linear layer.

    ``weight(shape, fan_in, rng)`` and ``bias(shape, fan_in, rng)`` draw canonical arrays.
    """

    name: str
    weight_description: str
    bias_description: str
    weight: Callable
    bias: Callable

    def __str__(self) -> str:
        return f"{self.name}: weight {self.weight_description}, bias {self.bias_description}"


def _u(bound_fn):
    return lambda shape, fan_in, fan_out, rng: rng.uniform(
        -bound_fn(fan_in, fan_out), bound_fn(fan_in, fan_out), shape
    )


def _zeros(shape, fan_in, fan_out, rng):
    return np.zeros(shape)


_GLOROT = _u(lambda fi, fo: math.sqrt(6.0 / (fi + fo)))
_TORCH = _u(lambda fi, fo: 1.0 / math.sqrt(fi))

#: each framework's own default for a Linear/Dense layer (see FRAMEWORKS.md)
SCHEMES = {
    "torch": Scheme("torch", "U(±1/√fan_in)", "U(±1/√fan_in)", _TORCH, _TORCH),
    "tensorflow": Scheme("tensorflow", "Glorot uniform U(±√(6/(fan_in+fan_out)))", "zeros",
                         _GLOROT, _zeros),
    "mxnet": Scheme("mxnet", "U(±0.07)", "zeros", _u(lambda fi, fo: 0.07), _zeros),
    "paddle": Scheme("paddle", "Xavier uniform U(±√(6/(fan_in+fan_out)))", "zeros",
                     _GLOROT, _zeros),
}


def default_scheme(backend: str | None = None) -> Scheme:
    """The default initialization of ``backend``'s Linear layer (current backend if omitted).

    Examples:
        >>> from d2lparams import init
        >>> print(init.default_scheme("mxnet"))
        mxnet: weight U(±0.07), bias zeros
    """
    name = backend.strip().lower() if isinstance(backend, str) else backend
    if name not in SCHEMES:
        name = _registry.canonical_name(backend) if backend else _registry.get_backend()
    if name not in SCHEMES:
        raise ValueError(f"no default scheme is known for backend {name!r}; known: {sorted(SCHEMES)}")
    return SCHEMES[name]


def reset_(module, scheme: str | Scheme | None = None):
    """Re-initialize every Linear under ``module`` with a framework's default scheme,
    drawn from the portable generator (so it is the same on every backend).

    Raises:
        ValueError: ``module`` holds no Linear layer (nothing would change).

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import init
        >>> net = d2p.nn.mlp(4, 8, 1, backend="torch")
        >>> _ = init.reset_(net, "tensorflow")
        >>> float(abs(net[0].bias.numpy()).max())
        0.0
    """
    from .nn.layers import Linear

    if not isinstance(scheme, Scheme):
        scheme = default_scheme(scheme if scheme is not None else module.backend)
    linears = [m for m in module.modules() if isinstance(m, Linear)]
    if not linears:
        raise ValueError(
            f"init.reset_ found no nn.Linear in {type(module).__name__}; nothing to initialize"
        )
    rng = generator()
    for lin in linears:
        w = lin.weight
        fan_in, fan_out = w.shape
        _draw(w, scheme.weight(w.shape, fan_in, fan_out, rng))
        if lin.bias is not None:
            _draw(lin.bias, scheme.bias(lin.bias.shape, fan_in, fan_out, rng))
    return module
