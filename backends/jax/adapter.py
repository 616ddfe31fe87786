"""The JAX / Flax NNX adapter (its quirks are listed in the package docstring)."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import weakref
from typing import Any, cast

import flax
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.nnx import tracers
from jax import lax
from jax.custom_derivatives import SymbolicZero
from jax.experimental import enable_x64

from d2lparams._conv import same_padding

from ..base import param_hooks
from . import JaxBackend
from . import layers as L

_GRAD = "_d2p_grad"  # entry of a Variable's __dict__: its accumulated gradient
_FROZEN = "_d2p_frozen"  # entry of a Param's __dict__: requires_grad is False

#: while ``fn`` is transformed: (the Variables whose values are traced, their traced values)
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("d2p_jax_active", default=None)
#: while the backward pass runs: the indices of the traced values that got a gradient
_USED: list = []
#: Variables that have had a gradient in d2p.backward; idle ones never had one and got none
#: when last traced: they are watched, not traced (see JaxAdapter._differentiate)
_TRAINED: weakref.WeakSet = weakref.WeakSet()
_IDLE: weakref.WeakSet = weakref.WeakSet()


def _watch(read: set, metadata: dict):
    """An ``on_get_value`` hook noting that a watched Variable was read (and calling the
    Variable's own hook, if it has one)."""
    own = metadata.get("on_get_value")

    def hook(var, value):
        read.add(var)
        return value if own is None else own(var, value)

    return hook

_ACTIVATIONS = {"relu": L.ReLU, "sigmoid": L.Sigmoid, "tanh": L.Tanh, "identity": L.Identity,
                "flatten": L.Flatten}
_FUNCTIONS = {jax.nn.relu: "relu", nnx.relu: "relu", jax.nn.sigmoid: "sigmoid",
              nnx.sigmoid: "sigmoid", jnp.tanh: "tanh", nnx.tanh: "tanh"}
_CONV_KINDS = ("conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "batch_norm2d")


@jax.custom_vjp
def _mark(values: tuple) -> tuple:
    """The identity; its backward notes which values a gradient reached."""
    return values


def _mark_fwd(values):
    return tuple(v.value for v in values), None


def _mark_bwd(_, grads):
    out = []
    for i, g in enumerate(grads):
        if isinstance(g, SymbolicZero):
            out.append(None)
        else:
            _USED[-1].add(i)
            out.append(g)
    return (tuple(out),)


_mark.defvjp(_mark_fwd, _mark_bwd, symbolic_zeros=True)


def _in_dtype(dtype: str, compute):
    """``compute()`` cast to ``dtype``; a 64-bit integer type is made in a 64-bit scope
    (JAX's 32-bit mode would give int32; its operations take int64 arrays as they are)."""
    if dtype in ("int64", "uint64"):
        with enable_x64(True):
            return jnp.asarray(compute()).astype(dtype)
    return jnp.asarray(compute()).astype(dtype)


def _pick(x, index, dim):
    return jnp.squeeze(jnp.take_along_axis(x, jnp.expand_dims(index, dim), axis=dim), dim)


def _dropout(self, x, p):
    keep = jax.random.bernoulli(L.RNGS.dropout(), 1.0 - p, jnp.shape(x))
    return jnp.where(keep, x / (1.0 - p), 0.0)


def _pads(padding, kernel_size, dilation) -> tuple:
    """``((top, bottom), (left, right))`` for a pair, ``"same"`` or ``"valid"``."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        t, b, left, r = same_padding(tuple(kernel_size), tuple(dilation))
        return ((t, b), (left, r))
    return ((padding[0], padding[0]), (padding[1], padding[1]))


def _conv2d(self, x, weight, bias, stride, padding, dilation, groups):
    kernel = jnp.transpose(weight, (2, 3, 1, 0))  # canonical (out, in, kh, kw) -> HWIO
    return L.conv2d_nchw(x, kernel, bias, stride, _pads(padding, weight.shape[2:], dilation),
                         dilation, groups)


class JaxAdapter(JaxBackend):
    ops_namespace = jnp
    ops_table = {
        "relu": lambda self, x: jax.nn.relu(x),
        "sigmoid": lambda self, x: jax.nn.sigmoid(x),
        "softmax": lambda self, x, dim: jax.nn.softmax(x, axis=dim),
        "transpose": lambda self, x, dim0, dim1: jnp.swapaxes(x, dim0, dim1),
        "mean": lambda self, x, dim, keepdim: jnp.mean(x, axis=dim, keepdims=keepdim),
        "sum": lambda self, x, dim, keepdim: jnp.sum(x, axis=dim, keepdims=keepdim),
        "concat": lambda self, tensors, dim: jnp.concatenate(list(tensors), axis=dim),
        "log_softmax": lambda self, x, dim: jax.nn.log_softmax(x, axis=dim),
        "clamp": lambda self, x, low, high: jnp.clip(x, low, high),
        "argmax": lambda self, x, dim, keepdim: _in_dtype(
            "int64", lambda: jnp.argmax(x, axis=dim, keepdims=keepdim)),
        "amax": lambda self, x, dim, keepdim: jnp.max(x, axis=dim, keepdims=keepdim),
        "amin": lambda self, x, dim, keepdim: jnp.min(x, axis=dim, keepdims=keepdim),
        "pick": lambda self, x, index, dim: _pick(x, index, dim),
        "one_hot": lambda self, x, n, dtype: _in_dtype(dtype, lambda: jax.nn.one_hot(x, n)),
        "astype": lambda self, x, dtype: _in_dtype(dtype, lambda: x),
        "zeros_like": lambda self, x: _in_dtype(str(x.dtype), lambda: jnp.zeros_like(x)),
        "ones_like": lambda self, x: _in_dtype(str(x.dtype), lambda: jnp.ones_like(x)),
        "dropout": _dropout,
        "detach": lambda self, x: lax.stop_gradient(x),
        "conv2d": _conv2d,
        "max_pool2d": lambda self, x, kernel, stride, padding: L.max_pool2d(
            x, kernel, stride, padding),
        "avg_pool2d": lambda self, x, kernel, stride, padding: L.avg_pool2d(
            x, kernel, stride, padding),
    }

    def __init__(self) -> None:
        #: id(jax.Array) -> (weak reference to it, the Buffer holding it)
        self._buffers: dict = {}
        # JAX computes in 32 bits unless its own switch jax_enable_x64 is on when it is first
        # used (JAX's advice: set it at startup)
        wide = ("float64",) if jax.config.read("jax_enable_x64") else ()
        self.float_dtypes = ("float32",) + wide + ("float16", "bfloat16")

    def version(self) -> str:
        return f"{jax.__version__} (Flax {flax.__version__})"

    def seed(self, n: int) -> None:
        L.reseed(n)

    # -- tensors -------------------------------------------------------------------------------
    def is_tensor(self, x) -> bool:
        return isinstance(x, (jax.Array, L.Leaf))

    def tensor(self, array, requires_grad=False):
        if array.dtype.itemsize == 8 and array.dtype.kind in "iu":
            # int64 labels stay int64 (JAX's 32-bit mode would truncate them to int32);
            # JAX's operations take them as they are
            with enable_x64(True):
                return jnp.asarray(array)
        value = jnp.asarray(array)
        return L.know(L.Leaf(value)) if requires_grad else value

    def dtype_name(self, x) -> str:
        return str(L.value_of(x).dtype)

    def to_numpy(self, x) -> np.ndarray:
        x = L.value_of(x)
        # inside d2p.backward's transformation a value is a JVP tracer: read its primal
        # (reading a value while recording works on the tape frameworks too)
        while isinstance(x, jax.core.Tracer) and getattr(x, "primal", None) is not None:
            x = x.primal
        if x.dtype == jnp.bfloat16:  # NumPy has no bfloat16: float32 holds it exactly
            x = x.astype(jnp.float32)
        return np.array(x, copy=True)

    # -- dtypes and devices ----------------------------------------------------------------------
    def dtype_hint(self, dtype: str) -> str:
        if dtype == "float64":
            return ("; JAX has float64 when its own switch is on: "
                    "jax.config.update('jax_enable_x64', True) before building, or "
                    "JAX_ENABLE_X64=1 in the environment")
        return ""

    def num_gpus(self) -> int:
        try:
            return len(jax.devices("gpu"))
        except RuntimeError:  # no GPU backend in this jaxlib
            return 0

    def device_of(self, x) -> tuple:
        x = L.value_of(x)
        while isinstance(x, jax.core.Tracer) and getattr(x, "primal", None) is not None:
            x = x.primal
        if isinstance(x, jax.core.Tracer):  # an abstract value has no device: the default
            x = jnp.zeros(())
        device = next(iter(x.devices()))
        return ("gpu", device.id) if device.platform in ("gpu", "cuda", "rocm") else ("cpu", 0)

    def convert(self, tensor, dtype=None, device=None, requires_grad=False):
        value = L.value_of(tensor)
        if device is not None:
            target = jax.devices("cpu")[0] if device[0] == "cpu" else jax.devices("gpu")[device[1]]
            value = jax.device_put(value, target)
        if dtype is not None:
            value = value.astype(dtype)
        return L.know(L.Leaf(value)) if requires_grad else value

    def move(self, param, dtype=None, device=None) -> None:
        # a jax.Array is immutable: the Variable (the object every module holds) gets the
        # converted array
        self.zero_grad(param, True)
        param.value = self.convert(param.value, dtype, device)
        if dtype is not None and dtype != "float32":
            L.WIDE[0] = True

    # -- parameters and buffers ----------------------------------------------------------------
    def create_parameter(self, array, requires_grad=True, buffer=False):
        array = np.asarray(array)
        value = jnp.asarray(array if array.dtype.kind == "f" else array.astype(np.float32))
        if buffer:
            return L.know(L.Buffer(value))
        param = L.know(nnx.Param(value))
        if not requires_grad:
            vars(param)[_FROZEN] = True
        return param

    def buffer_of(self, tensor):
        if isinstance(tensor, nnx.Variable):
            return L.know(tensor)
        # a jax.Array is immutable: hold it in a Buffer, one per array object
        known = self._buffers.get(id(tensor))
        if known is not None and known[0]() is tensor:
            return known[1]
        buf = L.know(L.Buffer(tensor))
        self._buffers[id(tensor)] = (weakref.ref(tensor), buf)
        return buf

    def buffer_tensor(self, buf):
        return buf.value

    def param_value(self, param):
        return param.value

    def param_shape(self, param) -> tuple:
        return tuple(int(s) for s in jnp.shape(L.value_of(param)))

    def assign(self, param, array) -> None:
        dtype = L.value_of(param).dtype
        param.value = jnp.asarray(np.asarray(array), dtype=dtype)

    def requires_grad(self, param, flag=None) -> bool:
        if isinstance(param, nnx.Param):
            if flag is not None:
                vars(param)[_FROZEN] = not flag
            return not vars(param).get(_FROZEN, False)
        return isinstance(param, L.Leaf)

    def grad_tensor(self, param):
        d = getattr(param, "__dict__", None)
        return None if d is None else d.get(_GRAD)

    def zero_grad(self, param, set_to_none=True) -> None:
        d = vars(param)
        if set_to_none:
            d.pop(_GRAD, None)
        elif d.get(_GRAD) is not None:
            d[_GRAD] = jnp.zeros_like(d[_GRAD])

    def subtract_(self, param, delta) -> None:
        param.value = param.value - delta

    def native_parameter_names(self, native) -> dict:
        names: dict = {}
        for path, node in nnx.graph.iter_graph(native):
            if isinstance(node, nnx.Variable) and not isinstance(node, nnx.RngState):
                L.know(node)
                names.setdefault(id(node), "/".join(str(p) for p in path))
        return names

    def init_native(self, param, kind, layout, **spec) -> None:
        # Drawn in the stored shape with JAX's generator (the adapter's "params" stream); the
        # distributions do not depend on the axis order, and the fans come from ``spec``.
        shape = self.param_shape(param)
        key = L.RNGS.params()
        if kind == "constant":
            self.assign(param, np.full(shape, spec["value"], np.float32))
            return
        if kind == "uniform":
            low, high = spec["low"], spec["high"]
        elif kind == "normal":
            mean, std = spec["mean"], spec["std"]
        elif kind in ("xavier_uniform", "xavier_normal"):
            std = spec["gain"] * math.sqrt(2.0 / (spec["fan_in"] + spec["fan_out"]))
            low, high, mean = -math.sqrt(3.0) * std, math.sqrt(3.0) * std, 0.0
        elif kind in ("kaiming_uniform", "kaiming_normal"):
            std = spec["gain"] / math.sqrt(spec["fan"])
            low, high, mean = -math.sqrt(3.0) * std, math.sqrt(3.0) * std, 0.0
        else:
            raise ValueError(f"unknown initializer kind {kind!r}")
        if kind.endswith("uniform"):
            value = jax.random.uniform(key, shape, jnp.float32, low, high)
        else:
            value = mean + std * jax.random.normal(key, shape, jnp.float32)
        param.value = value

    # -- modules -------------------------------------------------------------------------------
    def layer(self, kind, **options):
        if kind == "linear":
            if options["in_features"] is None:
                return L.LazyLinear(options["out_features"], options["bias"])
            native = nnx.Linear(options["in_features"], options["out_features"],
                                use_bias=options["bias"], rngs=L.RNGS)
            self.layer_state(native, kind)
            return native
        if kind == "softmax":
            return L.Softmax(options["dim"])
        if kind == "dropout":
            return L.Dropout(options["p"])
        if kind == "batch_norm":
            return L.BatchNorm(options["num_features"], options["eps"], options["momentum"])
        if kind in _CONV_KINDS:
            return self._conv_layer(kind, options)
        return _ACTIVATIONS[kind]()

    def _conv_layer(self, kind, options):
        check = options["check"]
        if kind == "conv2d":
            options = {k: v for k, v in options.items() if k != "check"}
            pads = _pads(options["padding"], options["kernel_size"], options["dilation"])
            if options["in_channels"] is None:
                return L.LazyConv2d(options, check, pads)
            native = L.make_conv(options, check, pads)
            self.layer_state(native, kind)
            return native
        if kind == "max_pool2d":
            return L.MaxPool2d(options["kernel_size"], options["stride"], options["padding"],
                               check)
        if kind == "avg_pool2d":
            return L.AvgPool2d(options["kernel_size"], options["stride"], options["padding"],
                               check)
        if kind == "adaptive_avg_pool2d":
            return L.AdaptiveAvgPool2d(options["output_size"], check)
        return L.BatchNorm(options["num_features"], options["eps"], options["momentum"], check)

    def layout(self, kind, name):
        if kind == "conv2d" and name == "weight":
            return (3, 2, 0, 1)  # HWIO -> (out, in, kh, kw)
        return None

    def layer_state(self, native, kind):
        if kind in ("batch_norm", "batch_norm2d"):
            state = {"weight": native.scale, "bias": native.bias,
                     "running_mean": native.mean, "running_var": native.var}
        else:
            if native.kernel is None:
                return None
            state = {"weight": native.kernel}
            if native.bias is not None:
                state["bias"] = native.bias
        for var in state.values():
            L.know(var)
        return state

    def container(self, kind, module=None):
        if kind == "sequential":
            return L.Sequential()
        if kind == "list":
            return L.ModuleList()
        native = self.native_class_for(module, L.Custom)()
        vars(native)["_d2p_module"] = module  # not an NNX attribute: no native child
        return native

    def register(self, native, name, member, kind) -> None:
        if isinstance(member, nnx.Variable):
            L.know(member)
        if isinstance(native, L.Sequential) and kind == "child":
            names = list(native._d2p_names)
            layers = list(native.layers)
            if member is None:
                if name in names:
                    i = names.index(name)
                    del names[i], layers[i]
            else:
                names.append(name)
                layers.append(member)
            native.layers = nnx.List(layers)
            native._d2p_names = nnx.static(tuple(names))
            return
        if member is None:
            if name in vars(native):
                delattr(native, name)
            return
        setattr(native, name, member)

    def inspect(self, native) -> dict:
        if isinstance(native, nnx.Linear):
            state = self.layer_state(native, "linear")
            return {"kind": "linear", "options": {
                "in_features": None if state is None else int(native.kernel.shape[0]),
                "out_features": int(native.out_features),
                "bias": bool(native.use_bias)}}
        for kind, klass in _ACTIVATIONS.items():
            if type(native) is klass:
                return {"kind": kind}
        if not isinstance(native, (nnx.Module, nnx.List, nnx.Dict, list, tuple, dict)):
            function = _FUNCTIONS.get(native)
            if function is not None:
                return {"kind": function}
            if native in (jax.nn.softmax, nnx.softmax):
                return {"kind": "softmax", "options": {"dim": -1}}
        if type(native) is L.Softmax:
            return {"kind": "softmax", "options": {"dim": int(native.dim)}}
        if isinstance(native, nnx.Dropout):
            return {"kind": "dropout", "options": {"p": float(native.rate)}}
        if isinstance(native, nnx.Sequential):
            names = list(getattr(native, "_d2p_names", ()))
            layers = list(native.layers)
            if len(names) != len(layers):
                names = [str(i) for i in range(len(layers))]
            return {"kind": "sequential", "children": list(zip(names, layers))}
        conv = self._inspect_conv(native)
        if conv is not None:
            return conv
        return self._inspect_module(native)

    def _inspect_conv(self, native) -> dict | None:
        """d2lparams' own NCHW conv/pool/batch-norm layers (NNX's ``Conv`` is NHWC: a
        wrapped one stays a module with its own ``kernel`` and ``bias``)."""
        if isinstance(native, L.Conv2d):
            pads = native._d2p_pads
            if pads[0][0] != pads[0][1] or pads[1][0] != pads[1][1]:
                return None
            built = native.kernel is not None
            opts: dict = {} if built else native._d2p_options
            return {"kind": "conv2d", "options": {
                "in_channels": int(native.in_features) if built else None,
                "out_channels": int(native.out_features),
                "kernel_size": tuple(cast(Any, native.kernel_size)) if built else
                tuple(opts["kernel_size"]),
                "stride": tuple(cast(Any, native.strides)), "padding": (pads[0][0], pads[1][0]),
                "dilation": tuple(cast(Any, native.kernel_dilation)),
                "groups": int(native.feature_group_count),
                "bias": bool(native.use_bias) if built else bool(opts["bias"])}}
        if isinstance(native, nnx.Conv) and len(native.kernel_size) == 2 \
                and native.input_dilation in (1, (1, 1), None) and native.mask is None:
            return self._inspect_nnx_conv(native)
        if isinstance(native, functools.partial):
            return _inspect_partial(native)
        if isinstance(native, (L.MaxPool2d, L.AvgPool2d)):
            kind = "max_pool2d" if isinstance(native, L.MaxPool2d) else "avg_pool2d"
            return {"kind": kind, "options": {"kernel_size": native.kernel_size,
                                              "stride": native.stride,
                                              "padding": native.padding}}
        if isinstance(native, L.AdaptiveAvgPool2d):
            return {"kind": "adaptive_avg_pool2d",
                    "options": {"output_size": native.output_size}}
        if isinstance(native, L.BatchNorm):
            kind = "batch_norm" if native._d2p_check is None else "batch_norm2d"
            return {"kind": kind, "options": {
                "num_features": int(native.num_features), "eps": float(native.epsilon),
                "momentum": round(1.0 - float(native.momentum), 12)}}
        return None

    def _inspect_nnx_conv(self, native) -> dict | None:
        """NNX's own ``Conv`` (NHWC: a wrapped one keeps its own call) where PyTorch's meaning
        fits; its HWIO kernel reads canonically as d2lparams' own does."""
        stride, dilation = _pair(native.strides), _pair(native.kernel_dilation)
        padding = _padding(native.padding)
        if padding is None or padding == "same" and stride != (1, 1):
            return None
        return {"kind": "conv2d", "options": {
            "in_channels": int(native.in_features), "out_channels": int(native.out_features),
            "kernel_size": tuple(native.kernel_size), "stride": stride, "padding": padding,
            "dilation": dilation, "groups": int(native.feature_group_count),
            "bias": bool(native.use_bias)}}

    def _inspect_module(self, native) -> dict:
        """Any other module (or an ``nnx.List``/``nnx.Dict`` of modules): its attributes in
        assignment order; modules (and lists of them) are children, ``nnx.Param``\\ s
        parameters, other Variables buffers (RNG state is left out)."""
        if isinstance(native, (nnx.List, list, tuple)):
            items = [(str(i), v) for i, v in enumerate(native)]
        elif isinstance(native, (nnx.Dict, dict)):
            items = [(str(k), v) for k, v in native.items()]
        else:
            items = [(k, v) for k, v in vars(native).items()
                     if not k.startswith(("_pytree__", "_d2p_"))]
        children: list = []
        parameters: list = []
        buffers: list = []
        for name, value in items:
            if isinstance(value, nnx.RngState) or isinstance(value, (nnx.Rngs, nnx.RngStream)):
                continue
            if isinstance(value, nnx.Param):
                parameters.append((name, L.know(value)))
            elif isinstance(value, nnx.Variable):
                buffers.append((name, L.know(value)))
            elif isinstance(value, nnx.Module):
                children.append((name, value))
            elif isinstance(value, (nnx.List, nnx.Dict, list, tuple, dict)) and any(
                    isinstance(v, (nnx.Module, nnx.Variable))
                    for v in (value.values() if isinstance(value, (nnx.Dict, dict)) else value)):
                children.append((name, value))
            elif callable(value) and native_child(value, native):
                children.append((name, value))
        return {"kind": "module", "children": children, "parameters": parameters,
                "buffers": buffers}

    def call(self, native, args, training):
        check = L.WIDE[0]
        for a in args:
            if type(a) is L.Leaf:
                args = tuple(L.value_of(b) for b in args)
                check = True
                break
            if getattr(a, "dtype", L.F32) is not L.F32:
                check = True
        if check:
            _check_dtypes(native, args)
        return native(*args)

    def set_training(self, native, mode: bool) -> None:
        if isinstance(native, nnx.Module):
            d = vars(native)
            module: Any = native
            if "deterministic" in d:
                module.deterministic = not mode
            if "use_running_average" in d:
                module.use_running_average = not mode

    forward_method = "__call__"

    def compile(self, native, options, training):
        """``jax.jit`` of the forward as a function of the values of every Variable in the
        tree (and of the adapter's random streams): the same Variables are read at each
        call (so ``d2p.backward`` and ``no_grad`` see through it, as they see through the
        eager forward) and the values the forward wrote (BatchNorm statistics, the dropout
        stream's count) are written back."""
        variables, ids = [], set()
        nodes = [node for _, node in nnx.graph.iter_graph(native)]
        for var in nodes + [L.RNGS.params.key, L.RNGS.params.count, L.RNGS.dropout.key,
                            L.RNGS.dropout.count]:
            if isinstance(var, nnx.Variable) and id(var) not in ids:
                ids.add(id(var))
                variables.append(var)
        written = []  # the indices of the Variables the forward writes (set by a trace)

        def pure(values, args):
            with _lent(variables, variables, values):
                out = L.value_of(self.call(native, args, training))
                new = [v.raw_value for v in variables]
            written[:] = [i for i, (a, b) in enumerate(zip(values, new)) if a is not b]
            return out, [new[i] for i in written]

        jitted = jax.jit(pure, **options)

        def forward(args):
            args = tuple(L.value_of(a) for a in args)
            out, new = jitted([v.value for v in variables], args)
            for i, value in zip(written, new):
                object.__setattr__(variables[i], "raw_value", value)
            return out

        return forward

    def hook_calls(self, native, pre, post) -> None:
        if not isinstance(native, nnx.Module):
            raise TypeError(
                f"cannot hook {native!r}: a plain function inside an NNX container has no "
                "module to hook; replace it by a module (e.g. d2lparams' nn.ReLU) to hook it"
            )
        super().hook_calls(native, pre, post)

    # -- gradients -----------------------------------------------------------------------------
    def backward(self, fn, loaded, gradient=None) -> float:
        out, variables, grads = self._differentiate(fn, None, gradient, "d2p.backward")
        for var, g in zip(variables, grads):
            if g is None:
                continue
            for hook in list(param_hooks(var).values()):
                replaced = hook(g)
                if replaced is not None:
                    g = jnp.asarray(L.value_of(replaced))
            d = vars(var)
            previous = d.get(_GRAD)
            d[_GRAD] = g if previous is None else previous + g
        return float(np.asarray(out).reshape(()))

    def grad(self, fn, sources, loaded, gradient=None) -> list:
        return self._differentiate(fn, list(sources), gradient, "d2p.grad")[2]

    def _differentiate(self, fn, sources, gradient, what) -> tuple:
        """Run ``fn`` under ``jax.vjp`` with the values of ``sources`` (default: the known
        parameters and tensors that require a gradient) traced; returns ``(output,
        variables, gradients)``, a gradient ``None`` where none arrived.

        A parameter that has never had a gradient and got none in a call is *idle* (another
        model's, say): it is not traced in later calls (a traced value costs its size in
        zeros when no gradient reaches it), only watched; if ``fn`` reads it, ``fn`` runs
        again with it traced. So does a lazy layer built while ``fn`` runs, so that its new
        parameters get their gradient in that very call. A run that is repeated leaves no
        state change behind (its BatchNorm statistics and dropout draws are dropped)."""
        for attempt in range(4):
            watched: list = []
            last = attempt == 3  # (fn builds a new lazy layer every time): trace all, keep it
            if sources is not None:
                variables = sources
            else:
                variables = []
                for v in list(L.KNOWN):
                    if self._wants_grad(v):
                        (watched if v in _IDLE and not last else variables).append(v)
            result = self._vjp(fn, variables, watched, gradient, what,
                               sources is None and not last)
            if result is not None:
                return result
        raise AssertionError("unreachable: the last attempt keeps its result")

    def _wants_grad(self, var) -> bool:
        if isinstance(var, nnx.Param):
            return not vars(var).get(_FROZEN, False)
        return isinstance(var, L.Leaf)

    def _vjp(self, fn, variables, watched, gradient, what, retry) -> tuple | None:
        """One differentiation of ``fn``; ``None`` (nothing stored) when ``retry`` is set and
        ``fn`` built a lazy layer or read a ``watched`` (idle) parameter."""
        known = list(L.KNOWN)
        outer = tracers.TraceState()
        writes: list = []  # (Variable, value) written while fn ran
        read: set = set()  # the watched Variables that fn read
        created = L.CREATED[0]

        def traced(*values):
            metadata = [(v, v._var_metadata) for v in watched]
            marked = _mark(values) if values else ()
            mine = {id(v): t for v, t in zip(variables, marked)}
            token = L.OUTER.set(outer)
            active = _ACTIVE.set((variables, marked))
            try:
                with _lent(known, variables, marked) as saved:
                    for v, meta in metadata:
                        object.__setattr__(v, "_var_metadata",
                                           dict(meta, on_get_value=_watch(read, meta)))
                    out = fn()
                    for v, raw, _ in saved:
                        now = v.raw_value
                        if now is not raw and now is not mine.get(id(v)):
                            writes.append((v, now))
            finally:
                _ACTIVE.reset(active)
                L.OUTER.reset(token)
                for v, meta in metadata:
                    object.__setattr__(v, "_var_metadata", meta)
            out = L.value_of(out)
            if not isinstance(out, jax.Array):
                raise TypeError(
                    f"the function given to {what} returned {type(out).__name__}; it must "
                    "return a native tensor (for example ops.sum(net(X)))")
            shape = tuple(out.shape)
            if gradient is None:
                if out.size != 1:
                    raise ValueError(
                        f"{what} needs a scalar loss, got a tensor of shape {shape}; reduce "
                        "it first, e.g. ops.sum(...) or ops.mean(...), or pass gradient= (an "
                        "array of that shape: the vector-Jacobian product, PyTorch's "
                        "y.backward(g))")
                out = jnp.reshape(out, ())
            else:
                if tuple(gradient.shape) != shape and not gradient.size == out.size == 1:
                    raise ValueError(
                        f"{what}: gradient= has shape {tuple(gradient.shape)} but the output "
                        f"has shape {shape}; pass an array of the output's shape (e.g. "
                        f"np.ones({shape}))")
                out = jnp.sum(out * jnp.asarray(gradient, out.dtype).reshape(shape))
            return out, [value for _, value in writes]

        primals = [v.raw_value for v in variables]
        out, pullback, written = jax.vjp(traced, *primals, has_aux=True)
        if retry and (read or L.CREATED[0] != created):
            for v in read:
                _IDLE.discard(v)
            return None
        for (var, _), value in zip(writes, written):
            object.__setattr__(var, "raw_value", value)
        _USED.append(set())
        try:
            grads = pullback(jnp.ones_like(out)) if variables else ()
            used = _USED[-1]
        finally:
            _USED.pop()
        if retry:
            for i, v in enumerate(variables):
                if i in used:
                    _TRAINED.add(v)
                elif v not in _TRAINED:
                    _IDLE.add(v)
        return out, variables, [g if i in used else None for i, g in enumerate(grads)]

    @contextlib.contextmanager
    def no_grad(self):
        active = _ACTIVE.get()
        if active is None:
            yield
            return
        variables = active[0]
        saved = [(v, v.raw_value) for v in variables]
        for v, raw in saved:
            object.__setattr__(v, "raw_value", lax.stop_gradient(raw))
        try:
            yield
        finally:
            for v, raw in saved:
                object.__setattr__(v, "raw_value", raw)


@contextlib.contextmanager
def _lent(known: list, variables, values):
    """While the block runs, every Variable of ``known`` belongs to the current trace (NNX
    refuses a write from another trace level) and ``variables`` hold ``values`` (traced);
    yields ``(Variable, raw value, trace state)`` as they were, and restores them after."""
    inner = tracers.TraceState()
    saved = [(v, v.raw_value, v._trace_state) for v in known]
    try:
        for v in known:
            object.__setattr__(v, "_trace_state", inner)
        for v, value in zip(variables, values):
            object.__setattr__(v, "raw_value", value)
        yield saved
    finally:
        for v, raw, state in saved:
            object.__setattr__(v, "raw_value", raw)
            object.__setattr__(v, "_trace_state", state)


def _check_dtypes(native, args) -> None:
    """Refuse a floating input whose dtype is not the model's: JAX would promote it (or, in
    its 32-bit mode, silently truncate float64) where PyTorch raises. d2lparams' module call
    turns the error into one that names both dtypes and the fix."""
    expected = None
    for _, node in nnx.graph.iter_graph(native):
        if isinstance(node, nnx.Module) and getattr(node, "dtype", None) is not None:
            return  # NNX's own computation dtype (mixed precision): NNX casts the inputs
        if expected is None and isinstance(node, nnx.Param) and node.raw_value is not None:
            expected = node.raw_value.dtype
    if expected is None:
        return
    for a in args:
        dtype = getattr(a, "dtype", None)
        if dtype is not None and dtype != expected and jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"the model computes in {expected} and the input is {dtype}")


def _pair(value) -> tuple:
    if value is None:
        return (1, 1)
    return (value, value) if isinstance(value, int) else tuple(value)


def _padding(padding):
    """A flax padding as d2lparams' one (a symmetric pair, ``"same"``), else ``None``."""
    if isinstance(padding, str):
        return {"VALID": (0, 0), "SAME": "same"}.get(padding.upper())
    if isinstance(padding, int):
        return (padding, padding)
    pads = [(p, p) if isinstance(p, int) else tuple(p) for p in padding]
    if len(pads) == 2 and all(len(p) == 2 and p[0] == p[1] for p in pads):
        return (pads[0][0], pads[1][0])
    return None


def _inspect_partial(native) -> dict | None:
    """Flax's pooling functions and a global mean, as NNX models write them in a
    ``Sequential`` (``partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2))``); they
    keep their own NHWC call."""
    kw, func = native.keywords, native.func
    if func in (nnx.max_pool, nnx.avg_pool) and not native.args and "window_shape" in kw:
        window = tuple(kw["window_shape"])
        padding = _padding(kw.get("padding", "VALID"))
        if len(window) != 2 or padding in (None, "same") or not kw.get("count_include_pad", True):
            return None
        kind = "max_pool2d" if func is nnx.max_pool else "avg_pool2d"
        return {"kind": kind, "options": {"kernel_size": window,
                                          "stride": _pair(kw.get("strides")),
                                          "padding": padding}}
    if func is jnp.mean and not native.args and tuple(kw.get("axis", ())) == (1, 2) \
            and kw.get("keepdims"):
        return {"kind": "adaptive_avg_pool2d", "options": {"output_size": (1, 1)}}
    return None


def native_child(value, owner) -> bool:
    """A callable attribute that is a layer of ``owner`` (a known activation function)."""
    return value in _FUNCTIONS
