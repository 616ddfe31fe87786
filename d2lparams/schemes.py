"""Default-initialization schemes as data: what a framework draws for a new layer.

Each backend declares its framework's defaults with these classes (``Backend.default_init``),
so that ``init.default_scheme`` and ``init.reset_`` work for any registered backend, a
third-party one included. A distribution draws a canonical array from the portable
generator, given the layer's fans (PyTorch's: for a ``(in, out)`` Linear weight
``fan_in = in``; for a conv weight ``(out, in/groups, kh, kw)`` ``fan_in = in/groups·kh·kw``).

This module imports neither NumPy nor any framework (the backends' metadata import it).

Examples:
    >>> from d2lparams.schemes import Scheme, VarianceScaling, Constant
    >>> s = Scheme("glorot", linear=(VarianceScaling(1.0, "fan_avg", "uniform"), Constant(0.0)))
    >>> print(s)
    glorot: weight Glorot uniform U(±√(6/(fan_in+fan_out))), bias zeros
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Constant", "Distribution", "Scheme", "Uniform", "VarianceScaling"]


class Distribution:
    """A distribution of initial values; call it as ``dist(shape, fan_in, fan_out, rng)``."""

    def __call__(self, shape: tuple, fan_in: int, fan_out: int, rng):
        raise TypeError(f"{type(self).__name__} must implement __call__")

    def describe(self) -> str:
        return type(self).__name__

    def support(self, fan_in: int, fan_out: int) -> tuple | None:
        """``(low, high)``: the interval every draw lies in, or ``None`` where it is not
        bounded (a normal distribution)."""
        return None


@dataclass(frozen=True)
class Uniform(Distribution):
    """``U(±bound)``, whatever the fans (MXNet's ``U(±0.07)``)."""

    bound: float

    def __call__(self, shape, fan_in, fan_out, rng):
        return rng.uniform(-self.bound, self.bound, shape)

    def describe(self) -> str:
        return f"U(±{self.bound:g})"

    def support(self, fan_in, fan_out):
        return (-float(self.bound), float(self.bound))


@dataclass(frozen=True)
class Constant(Distribution):
    """Every entry ``value`` (``0.0``: zeros)."""

    value: float = 0.0

    def __call__(self, shape, fan_in, fan_out, rng):
        import numpy as np

        return np.full(shape, self.value, dtype=np.float64)

    def describe(self) -> str:
        return "zeros" if self.value == 0 else f"constant {self.value:g}"

    def support(self, fan_in, fan_out):
        return (float(self.value), float(self.value))


_FAN_TEXT = {"fan_in": "fan_in", "fan_out": "fan_out", "fan_avg": "(fan_in+fan_out)/2"}


@dataclass(frozen=True)
class VarianceScaling(Distribution):
    """Variance ``scale / fan`` (Keras' ``VarianceScaling``): ``fan`` is ``fan_in``,
    ``fan_out`` or their mean ``fan_avg``; ``distribution`` is ``"uniform"`` (bound
    ``√(3·scale/fan)``), ``"normal"``, or ``"truncated_normal"`` (cut at two standard
    deviations and rescaled to keep the variance, as Keras and Flax do).

    PyTorch's Linear default ``U(±1/√fan_in)`` is ``VarianceScaling(1/3, "fan_in",
    "uniform")``; Glorot uniform is ``VarianceScaling(1, "fan_avg", "uniform")``.
    """

    scale: float
    mode: str = "fan_in"
    distribution: str = "uniform"
    #: how the framework's documentation names it (``describe`` otherwise derives a text)
    label: str = ""

    def _variance(self, fan_in: int, fan_out: int) -> float:
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        return self.scale / max(1.0, fan)

    def __call__(self, shape, fan_in, fan_out, rng):
        variance = self._variance(fan_in, fan_out)
        if self.distribution == "uniform":
            bound = math.sqrt(3.0 * variance)
            return rng.uniform(-bound, bound, shape)
        if self.distribution == "normal":
            return rng.normal(0.0, math.sqrt(variance), shape)
        # truncated at ±2 std; 0.87962566103423978 is the std of N(0, 1) cut at ±2
        import numpy as np

        std = math.sqrt(variance) / 0.87962566103423978
        out = rng.normal(0.0, 1.0, shape)
        bad = np.abs(out) > 2
        while bad.any():
            out[bad] = rng.normal(0.0, 1.0, int(bad.sum()))
            bad = np.abs(out) > 2
        return out * std

    def support(self, fan_in, fan_out):
        variance = self._variance(fan_in, fan_out)
        if self.distribution == "uniform":
            bound = math.sqrt(3.0 * variance)
        elif self.distribution == "truncated_normal":
            bound = 2.0 * math.sqrt(variance) / 0.87962566103423978
        else:
            return None
        return (-bound, bound)

    def describe(self) -> str:
        if self.label:
            return self.label
        fan = _FAN_TEXT[self.mode]
        if self.distribution == "uniform":
            if math.isclose(self.scale, 1 / 3) and self.mode == "fan_in":
                return "U(±1/√fan_in)"
            if math.isclose(self.scale, 1.0) and self.mode == "fan_avg":
                return "Glorot uniform U(±√(6/(fan_in+fan_out)))"
            return f"U(±√({3 * self.scale:g}/{fan}))"
        kind = "N" if self.distribution == "normal" else "truncated N"
        return f"{kind}(0, {self.scale:g}/{fan})"


@dataclass(frozen=True)
class Scheme:
    """A framework's default initialization: per layer kind, ``(weight, bias)``
    distributions. ``scheme.weight`` and ``scheme.bias`` are the Linear layer's.

    Examples:
        >>> from d2lparams import init
        >>> print(init.default_scheme("mxnet"))
        mxnet: weight U(±0.07), bias zeros; conv2d: weight U(±0.07), bias zeros
    """

    name: str
    linear: tuple
    others: dict = field(default_factory=dict)

    def rule(self, kind: str) -> tuple:
        """``(weight, bias)`` distributions for a layer kind (``"linear"``, ...)."""
        if kind == "linear":
            return self.linear
        if kind not in self.others:
            raise ValueError(
                f"the {self.name!r} scheme has no rule for {kind!r} layers; known: "
                f"{['linear', *self.others]}"
            )
        return self.others[kind]

    @property
    def weight(self) -> Distribution:
        return self.linear[0]

    @property
    def bias(self) -> Distribution:
        return self.linear[1]

    @property
    def weight_description(self) -> str:
        return self.linear[0].describe()

    @property
    def bias_description(self) -> str:
        return self.linear[1].describe()

    def renamed(self, name: str) -> Scheme:
        """The same rules under another name."""
        return Scheme(name, self.linear, dict(self.others))

    def __str__(self) -> str:
        text = f"{self.name}: weight {self.weight_description}, bias {self.bias_description}"
        for kind, (w, b) in self.others.items():
            text += f"; {kind}: weight {w.describe()}, bias {b.describe()}"
        return text
