"""Flax NNX's side of d2lparams' modules, and the state the adapter keeps about NNX objects."""

from __future__ import annotations

import contextvars
import math
import weakref
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

#: every ``nnx.Variable`` the adapter created or was shown (parameters, buffers, the RNG
#: streams' state): they get the inner trace state while ``d2p.backward`` transforms ``fn``
KNOWN: weakref.WeakSet = weakref.WeakSet()
#: the trace state outside the transformation while it runs (for Variables made inside)
OUTER: contextvars.ContextVar = contextvars.ContextVar("d2p_jax_outer", default=None)
#: how many parameters lazy layers have created (a change during ``fn``: differentiate again)
CREATED = [0]

#: the adapter's random streams: ``params`` for new layers, ``dropout`` for masks
RNGS = nnx.Rngs(params=0, dropout=1)


#: ``[True]`` once a parameter that is not float32 exists (the adapter's ``call`` then
#: compares an input's dtype with the model's: JAX would promote or truncate silently)
WIDE = [False]
F32 = np.dtype("float32")


def know(var):
    """Note an ``nnx.Variable`` (and return it)."""
    KNOWN.add(var)
    if not WIDE[0] and isinstance(var, nnx.Param):
        WIDE[0] = getattr(var.raw_value, "dtype", F32) != F32
    return var


for _stream in (RNGS.params, RNGS.dropout):
    know(_stream.key)
    know(_stream.count)


def reseed(n: int) -> None:
    """Re-key the adapter's streams in place (every holder sees it)."""
    for i, stream in enumerate((RNGS.params, RNGS.dropout)):
        stream.key.value = jax.random.fold_in(jax.random.key(n), i)
        stream.count.value = jnp.zeros((), jnp.uint32)


def adopt(var):
    """A Variable made while ``fn`` is transformed belongs to the outer trace."""
    outer = OUTER.get()
    if outer is not None:
        object.__setattr__(var, "_trace_state", outer)
    return know(var)


def put(module, name: str, value) -> None:
    """``setattr(module, name, value)`` also inside a transformation (NNX refuses a write
    from another trace level; a lazy layer builds itself there)."""
    nodes = module._pytree__nodes
    if name not in nodes:
        vars(module)["_pytree__nodes"] = nodes.update({name: True})
    object.__setattr__(module, name, value)



class Leaf(nnx.Variable):
    """A tensor made with ``requires_grad=True``: its gradient accumulates on it (NNX's
    Variable has the arithmetic operators; the ordering comparisons are added)."""

    def __lt__(self, other):
        return self.value < value_of(other)

    def __le__(self, other):
        return self.value <= value_of(other)

    def __gt__(self, other):
        return self.value > value_of(other)

    def __ge__(self, other):
        return self.value >= value_of(other)


class Buffer(nnx.Variable):
    """Non-trainable state registered with ``register_buffer`` (PyTorch's buffer)."""


def value_of(x):
    return x.value if isinstance(x, nnx.Variable) else x


# -- containers ----------------------------------------------------------------------------
class Custom(nnx.Module):
    """A native module whose forward is a neutral module's forward."""

    def __call__(self, *args):
        return vars(self)["_d2p_module"]._native_forward(*args)


class ModuleList(nnx.Module):
    """Holds children (``"0"``, ``"1"``, ... or keys) and parameters; no forward."""


class Sequential(nnx.Sequential):
    """``nnx.Sequential`` whose layers also have PyTorch's names (the same layer may appear
    twice; NNX then holds it once in ``nnx.state``)."""

    def __init__(self):
        nnx.Sequential.__init__(self)
        self._d2p_names = nnx.static(())

    def __call__(self, *args):
        for layer in self.layers:
            args = (layer(*args),)
        return args[0] if len(args) == 1 else args


# -- activations and shapes ------------------------------------------------------------------
class _Function(nnx.Module):
    fn: Any = staticmethod(lambda x: x)

    def __call__(self, x):
        return type(self).fn(x)


class ReLU(_Function):
    fn = staticmethod(jax.nn.relu)


class Sigmoid(_Function):
    fn = staticmethod(jax.nn.sigmoid)


class Tanh(_Function):
    fn = staticmethod(jnp.tanh)


class Identity(_Function):
    pass


class Flatten(nnx.Module):
    """Every axis after the first into one (NCHW: channel-major, PyTorch's order)."""

    def __call__(self, x):
        return jnp.reshape(x, (x.shape[0], -1))


class Softmax(nnx.Module):
    def __init__(self, dim: int = -1):
        self.dim = dim

    def __call__(self, x):
        return jax.nn.softmax(x, axis=self.dim)


class Dropout(nnx.Dropout):
    """``nnx.Dropout`` drawing from the adapter's shared ``dropout`` stream (which
    ``d2p.seed`` re-keys) instead of a stream forked at construction."""

    def __init__(self, rate: float):
        nnx.Dropout.__init__(self, rate)
        self.rngs = RNGS.dropout


# -- Linear ----------------------------------------------------------------------------------
class LazyLinear(nnx.Linear):
    """``nnx.Linear`` without its input size: ``kernel`` and ``bias`` are created at the
    first call by ``nnx.Linear``'s own constructor (its default initializers)."""

    def __init__(self, out_features: int, use_bias: bool = True):
        self.kernel = nnx.data(cast(Any, None))
        self.bias = nnx.data(cast(Any, None))
        self.in_features = cast(Any, None)
        self.out_features = out_features
        self.use_bias = use_bias

    def __call__(self, inputs):
        if self.kernel is None:
            built = nnx.Linear(int(inputs.shape[-1]), self.out_features,
                               use_bias=self.use_bias, rngs=RNGS)
            _take(self, built, ("kernel", "bias"))
        return nnx.Linear.__call__(self, inputs)


def _take(module, built, params: tuple) -> None:
    """Give ``module`` every attribute of the freshly ``built`` layer."""
    for name, value in vars(built).items():
        if not name.startswith("_pytree__"):
            put(module, name, value)
    for name in params:
        var = getattr(module, name)
        if var is not None:
            adopt(var)
            CREATED[0] += 1


# -- convolution and pooling (NCHW in and out) -------------------------------------------------
_NCHW = ("NCHW", "HWIO", "NCHW")


def conv2d_nchw(x, kernel, bias, stride, pads, dilation, groups):
    """PyTorch's conv2d over NCHW ``x`` with an HWIO ``kernel`` and explicit ``pads``
    (``((top, bottom), (left, right))``)."""
    y = lax.conv_general_dilated(x, kernel, tuple(stride), pads, rhs_dilation=tuple(dilation),
                                 dimension_numbers=_NCHW, feature_group_count=groups)
    if bias is not None:
        y = y + jnp.reshape(bias, (1, -1, 1, 1))
    return y


class Conv2d(nnx.Conv):
    """``nnx.Conv`` (HWIO kernel, its default initializers) computing PyTorch's conv2d over
    NCHW input; ``_d2p_pads`` is the explicit padding, ``_d2p_check`` the input check."""

    _d2p_check: Any
    _d2p_pads: Any
    _d2p_options: Any

    def __call__(self, x):
        self._d2p_check(tuple(x.shape))
        return conv2d_nchw(x, self.kernel.value, None if self.bias is None else self.bias.value,
                           self.strides, self._d2p_pads, self.kernel_dilation,
                           self.feature_group_count)


class LazyConv2d(Conv2d):
    """``Conv2d`` whose ``in_channels`` is taken from the first input (checked first)."""

    def __init__(self, options: dict, check, pads):
        self.kernel = nnx.data(cast(Any, None))
        self.bias = nnx.data(cast(Any, None))
        self.in_features = cast(Any, None)
        self.out_features = options["out_channels"]
        self._d2p_options = options
        self._d2p_check = check
        self._d2p_pads = pads
        self.strides = tuple(options["stride"])
        self.kernel_dilation = tuple(options["dilation"])
        self.feature_group_count = options["groups"]

    def __call__(self, x):
        if self.kernel is None:
            self._d2p_check(tuple(x.shape))
            built = make_conv(dict(self._d2p_options, in_channels=int(x.shape[1])),
                              self._d2p_check, self._d2p_pads)
            _take(self, built, ("kernel", "bias"))
        return Conv2d.__call__(self, x)


def make_conv(options: dict, check, pads) -> Conv2d:
    conv = Conv2d(options["in_channels"], options["out_channels"], tuple(options["kernel_size"]),
                  strides=tuple(options["stride"]), padding=list(pads),
                  kernel_dilation=tuple(options["dilation"]),
                  feature_group_count=options["groups"], use_bias=options["bias"], rngs=RNGS)
    conv._d2p_check = check
    conv._d2p_pads = tuple(tuple(p) for p in pads)
    return conv


def _window(x, init, op, kernel, stride, padding):
    return lax.reduce_window(x, init, op, (1, 1, *kernel), (1, 1, *stride),
                             ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])))


def max_pool2d(x, kernel, stride, padding):
    return _window(x, -jnp.inf, lax.max, kernel, stride, padding)


def avg_pool2d(x, kernel, stride, padding):
    # the zero padding counts (PyTorch's count_include_pad=True)
    return _window(x, 0.0, lax.add, kernel, stride, padding) / (kernel[0] * kernel[1])


class _Pool(nnx.Module):
    def __init__(self, kernel_size, stride, padding, check):
        self.kernel_size = tuple(kernel_size)
        self.stride = tuple(stride)
        self.padding = tuple(padding)
        self._d2p_check = check


class MaxPool2d(_Pool):
    def __call__(self, x):
        self._d2p_check(tuple(x.shape))
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool):
    def __call__(self, x):
        self._d2p_check(tuple(x.shape))
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class AdaptiveAvgPool2d(nnx.Module):
    """PyTorch's bins ``[floor(i·H/out), ceil((i+1)·H/out))``."""

    def __init__(self, output_size, check):
        self.output_size = tuple(output_size)
        self._d2p_check = check

    def __call__(self, x):
        self._d2p_check(tuple(x.shape))
        (oh, ow), (h, w) = self.output_size, x.shape[2:]
        if h % oh == 0 and w % ow == 0:
            return jnp.mean(jnp.reshape(x, (*x.shape[:2], oh, h // oh, ow, w // ow)), (3, 5))
        rows = []
        for i in range(oh):
            r0, r1 = (i * h) // oh, math.ceil((i + 1) * h / oh)
            cols = [jnp.mean(x[:, :, r0:r1, (j * w) // ow:math.ceil((j + 1) * w / ow)], (2, 3))
                    for j in range(ow)]
            rows.append(jnp.stack(cols, -1))
        return jnp.stack(rows, -2)


# -- batch norm --------------------------------------------------------------------------------
class BatchNorm(nnx.BatchNorm):
    """``nnx.BatchNorm`` (its variables, its momentum meaning: the weight of the running
    value) computing PyTorch's statistics over axis 1: the running variance takes the
    *unbiased* batch variance."""

    def __init__(self, num_features: int, eps: float, momentum: float, check=None):
        nnx.BatchNorm.__init__(self, num_features, axis=1, momentum=1.0 - momentum,
                               epsilon=eps, use_running_average=False, rngs=RNGS)
        self._d2p_check = check
        for var in (self.scale, self.bias, self.mean, self.var):
            know(var)

    def __call__(self, x, use_running_average=None):
        if self._d2p_check is not None:
            self._d2p_check(tuple(x.shape))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        axes = (0,) + tuple(range(2, x.ndim))
        running = self.use_running_average if use_running_average is None else use_running_average
        if running:
            mean, var = self.mean.value, self.var.value
        else:
            mean = jnp.mean(x, axes)
            var = jnp.mean(jnp.square(x - jnp.reshape(mean, shape)), axes)
            n = x.size // x.shape[1]
            m = self.momentum
            self.mean.value = m * self.mean.value + (1 - m) * lax.stop_gradient(mean)
            unbiased = lax.stop_gradient(var) * (n / max(n - 1, 1))
            self.var.value = m * self.var.value + (1 - m) * unbiased
        y = (x - jnp.reshape(mean, shape)) * jnp.reshape(lax.rsqrt(var + self.epsilon), shape)
        return y * jnp.reshape(self.scale.value, shape) + jnp.reshape(self.bias.value, shape)
