"""The MXNet Gluon adapter (its quirks are listed in the package docstring)."""

from __future__ import annotations

import itertools
import math
import weakref

import numpy as np

from d2lparams._conv import same_padding
from d2lparams.nn.parameter import Parameter

from ..base import defer_operators, param_hooks
from . import MXNetBackend
from . import layers as _layers
from .layers import (
    BatchNorm,
    BufferTensor,
    Custom,
    Dense,
    Identity,
    ModuleList,
    NumpyBufferTensor,
    Sequential,
    Softmax,
    autograd,
    gluon,
    in_mode,
    invalidate_graphs,
    legacy,
    mx,
    mxnp,
    nd,
    np_mode,
    split_bias,
    stored_numpy,
    sync_mode,
)


def _axes(dim):
    return tuple(dim) if isinstance(dim, (list, tuple)) else int(dim)


def _mean(self, x, dim, keepdim):
    return nd.mean(x) if dim is None else nd.mean(x, axis=_axes(dim), keepdims=keepdim)


def _sum(self, x, dim, keepdim):
    return nd.sum(x) if dim is None else nd.sum(x, axis=_axes(dim), keepdims=keepdim)


def _concat(self, tensors, dim):
    ndim = tensors[0].ndim
    return nd.concat(*tensors, dim=dim % ndim if ndim else 0)


#: reductions that give shape (1,) in legacy mode and a 0-d array in NumPy mode (dim=None)
_ZERO_D = frozenset({"sum", "mean", "amax", "amin", "argmax"})


def _legacy_args(args):
    return tuple([legacy(t) for t in a] if isinstance(a, (list, tuple)) else legacy(a)
                 for a in args)


def _numpy_mode_op(name, fn):
    """``fn`` (a legacy operation) as NumPy mode wants it: legacy views in, the result as an
    ``mx.np.ndarray`` out (shallow both ways: the memory and the autograd history are
    shared); a full reduction is 0-d, as ``mx.np.sum`` is."""
    zero_d = name in _ZERO_D

    def op(*args):
        out = fn(*_legacy_args(args))
        if isinstance(out, tuple):
            return tuple(in_mode(o, True) for o in out)
        out = in_mode(out, True)
        if (zero_d and args[1] is None) or (name == "reshape" and tuple(args[1]) == ()):
            return out.reshape(())
        return out

    op.__name__ = name
    return op


_CONV_KINDS = ("conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "batch_norm2d")


class MXNetAdapter(MXNetBackend):
    ops_namespace = nd
    ops_table = {
        "softmax": lambda self, x, dim: nd.softmax(x, axis=dim),
        "transpose": "swapaxes",
        "mean": _mean,
        "sum": _sum,
        "concat": _concat,
    }

    def __init__(self) -> None:
        self._ctx = mx.cpu()
        self._names = itertools.count()
        #: every parameter the adapter created or handed out: scanned after each backward
        self._seen: weakref.WeakSet = weakref.WeakSet()
        #: id(NDArray) -> the buffer Parameter whose data it is (NDArray takes no weakref)
        self._buffers: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

    def seed(self, n: int) -> None:
        mx.random.seed(n)

    # -- tensors -------------------------------------------------------------------------------
    def is_tensor(self, x) -> bool:
        return isinstance(x, nd.NDArray)

    def tensor(self, array, requires_grad=False):
        if np_mode():  # npx.set_np() is in force: its arrays
            x = mxnp.array(array, ctx=self._ctx, dtype=array.dtype)
        else:
            x = nd.array(array, ctx=self._ctx, dtype=array.dtype)
        if requires_grad:
            x.attach_grad(grad_req="add")  # accumulates, as a parameter's gradient does
        return x

    def dtype_name(self, x) -> str:
        return np.dtype(x.dtype).name

    def to_numpy(self, x) -> np.ndarray:
        if isinstance(x, gluon.Parameter):
            value = x.list_data()[0].asnumpy()  # already a fresh copy
            return value.reshape(()) if self._is_scalar(x) else value
        return np.array(x.asnumpy(), copy=True)

    # -- parameters and buffers ----------------------------------------------------------------
    def _track(self, param):
        """Remember ``param`` (its gradient flags are scanned after each backward). Its
        ``grad_req`` stays as it is: a wrapped native model keeps Gluon's 'write' for its own
        training loop, and backprop accumulates for it (PyTorch's meaning)."""
        if param is not None:
            self._seen.add(param)
        return param

    def _accumulating(self, param):
        """Make a parameter d2lparams creates accumulate its gradient natively."""
        if param is not None and param.grad_req == "write":
            param.grad_req = "add"
        return self._track(param)

    def _new_parameter(self, array, grad_req, differentiable=True):
        array = np.asarray(array)
        if array.dtype.kind != "f":
            array = array.astype(np.float32)
        scalar = array.ndim == 0
        stored = array.reshape(1) if scalar else array
        if stored.size == 0:
            raise ValueError(
                f"MXNet Gluon cannot hold a parameter or buffer of shape {array.shape}: a 0 in "
                "a legacy Gluon shape means 'unknown size'; give every axis at least one element"
            )
        param = gluon.Parameter(
            f"d2p_param{next(self._names)}", grad_req=grad_req, shape=stored.shape,
            dtype=array.dtype.name, differentiable=differentiable,
        )
        param._d2p_provisional = True
        if scalar:
            param._d2p_shape = ()
        with autograd.pause():
            param.initialize(init=mx.init.Zero(), ctx=self._ctx)  # in the mode in force
            param.set_data(self._like(nd.array(stored, ctx=self._ctx, dtype=array.dtype.name),
                                      param))
        return param

    def create_parameter(self, array, requires_grad=True, buffer=False):
        if buffer:  # as BatchNorm's running statistics: a Parameter that never takes a gradient
            return self._new_parameter(array, "null", differentiable=False)
        param = self._new_parameter(array, "add" if requires_grad else "null")
        self._seen.add(param)
        return param

    def buffer_tensor(self, buf):
        data = in_mode(buf.data())
        view = data.reshape(() if self._is_scalar(buf) else data.shape)  # shares the memory
        # same layout: only adds __array__
        view.__class__ = NumpyBufferTensor if isinstance(view, mxnp.ndarray) else BufferTensor
        return view

    def param_value(self, param):
        return in_mode(param.data())

    def _is_scalar(self, param) -> bool:
        return getattr(param, "_d2p_shape", None) == ()

    def param_shape(self, param) -> tuple:
        if self._is_scalar(param):
            return ()
        return tuple(param.shape)

    def assign(self, param, array) -> None:
        dtype = np.dtype(param.dtype)
        array = np.asarray(array, dtype=dtype)
        if self._is_scalar(param):
            array = array.reshape(1)
        with autograd.pause():
            if (array.ndim == 2 and not array.flags.c_contiguous and array.T.flags.c_contiguous
                    and param._data is not None and getattr(param, "_trainer", None) is None
                    and all(type(arr) is nd.NDArray and arr.context == self._ctx
                            for arr in param._data)):
                # a canonical (in, out) array seen as the stored (out, in): MXNet's transpose
                # writes each storage directly, where nd.array would transpose with NumPy's
                # strided copy and set_data copy once more (a third of the time for 25M
                # values). set_data's other work only concerns a Trainer's kvstore (none here)
                source = nd.array(array.T, ctx=self._ctx, dtype=dtype)
                for arr in param._data:
                    nd.transpose(source, out=arr)
            else:
                param.set_data(self._like(nd.array(array, ctx=param.list_ctx()[0], dtype=dtype),
                                          param))

    # -- dtypes and devices ----------------------------------------------------------------------
    def num_gpus(self) -> int:
        return int(mx.context.num_gpus())

    def device_of(self, x) -> tuple:
        ctx = x.list_ctx()[0] if isinstance(x, gluon.Parameter) else x.context
        return ("gpu", ctx.device_id) if ctx.device_type == "gpu" else ("cpu", 0)

    @staticmethod
    def _context(device):
        return mx.cpu() if device[0] == "cpu" else mx.gpu(device[1])

    def convert(self, tensor, dtype=None, device=None, requires_grad=False):
        if device is not None:
            tensor = tensor.as_in_context(self._context(device))
        out = tensor if dtype is None else tensor.astype(dtype)
        if requires_grad:
            out = out.copy()
            out.attach_grad(grad_req="add")
        return out

    def move(self, param, dtype=None, device=None) -> None:
        # Gluon converts a Parameter in place (its data and gradient arrays are remade)
        with autograd.pause():
            if device is not None:
                param.reset_ctx(self._context(device))
            if dtype is not None:
                param.cast(dtype)
        if param.grad_req != "null":
            self.zero_grad(param, True)

    def requires_grad(self, param, flag=None) -> bool:
        if isinstance(param, nd.NDArray):  # a tensor: only attach_grad gives it a gradient
            return param.grad is not None
        if flag is not None:
            self._set_requires_grad(param, flag)
        return param.grad_req != "null"

    def _set_requires_grad(self, param, flag: bool) -> None:
        self._track(param)
        if (param.grad_req != "null") == flag:
            return
        if not flag:  # unfreezing restores what it was ('write' for a wrapped model)
            param._d2p_unfrozen_req = param.grad_req
        req = getattr(param, "_d2p_unfrozen_req", "add") if flag else "null"
        param.grad_req = req  # 'null' drops the gradient buffer; 'add' makes a zero one
        self._clear_mark(param)
        owner = getattr(param, "_d2p_owner", None)
        layer = owner() if owner is not None else None
        if layer is not None:
            layer._clear_cached_op()  # a hybridized Dense re-traces with the new choice
        invalidate_graphs()  # and so do the hybridized containers above it

    def _fresh(self, param) -> bool:
        # only arrays marked as autograd variables (grad_req != 'null') carry the flag
        if param._grad is None or not param._data:
            return False
        return any(arr._fresh_grad for arr in param._data)

    def _clear_mark(self, param) -> None:
        param._d2p_has_grad = False
        if param._grad is not None:
            for arr in param._data or ():
                arr._fresh_grad = False

    def grad_tensor(self, param):
        if isinstance(param, nd.NDArray):
            # backward sets _fresh_grad on the arrays it reached; zero_grad clears it
            grad = param.grad
            return grad if grad is not None and param._fresh_grad else None
        self._track(param)
        if param.grad_req == "null" or param._data is None:
            return None
        if not (getattr(param, "_d2p_has_grad", False) or self._fresh(param)):
            return None
        param._d2p_has_grad = True
        grads = [legacy(g) for g in param.list_grad()]
        g = grads[0]
        for other in grads[1:]:
            g = g + other.as_in_context(g.context)
        g = in_mode(g)
        return g.reshape(()) if self._is_scalar(param) else g

    def zero_grad(self, param, set_to_none=True) -> None:
        if isinstance(param, nd.NDArray):  # a tensor made with requires_grad=True
            grad = param.grad
            if grad is not None:
                with autograd.pause():
                    grad[:] = 0
                if set_to_none:
                    param._fresh_grad = False
            return
        had = self.grad_tensor(param) is not None
        # Parameter.zero_grad calls nd.zeros_like, which refuses NumPy-mode arrays (mxnet
        # 1.9.1): it is called here on legacy views of the same memory
        for g in param._grad or ():
            g = legacy(g)
            nd.zeros_like(g, out=g)
        if set_to_none or not had:
            self._clear_mark(param)

    def subtract_(self, param, delta) -> None:
        with autograd.pause():
            if self._is_scalar(param):
                delta = delta.reshape((1,))
            delta = legacy(delta)  # legacy views of the same memory (and no NumPy-mode
            for value in param.list_data():  # deprecation warning): in place on each context
                value = legacy(value)
                value -= delta.as_in_context(value.context)

    def native_parameter_names(self, native) -> dict:
        names: dict = {}
        for p in native.collect_params().values():
            names.setdefault(id(p), p.name)
        for p in native._collect_params_with_prefix().values():
            names.setdefault(id(p), p.name)
        return names

    def init_native(self, param, kind, layout, **spec) -> None:
        shape = tuple(param.shape)  # the stored (native) shape
        if param._data is None:
            raise ValueError(
                f"cannot initialize Gluon parameter {param.name!r} of shape {shape}: it is not "
                "materialized yet; call the network once or use net.materialize(input_shape)"
            )
        initializer = None
        value = None
        with autograd.pause():
            if kind == "uniform":
                low, high = spec["low"], spec["high"]
                if low == -high:
                    initializer = mx.init.Uniform(scale=high)
                else:
                    value = nd.random.uniform(low, high, shape=shape, ctx=self._ctx)
            elif kind == "normal":
                if spec["mean"] == 0.0:
                    initializer = mx.init.Normal(sigma=spec["std"])
                else:
                    value = nd.random.normal(spec["mean"], spec["std"], shape=shape, ctx=self._ctx)
            elif kind == "constant":
                initializer = mx.init.Constant(spec["value"])
            elif kind in ("xavier_uniform", "xavier_normal"):
                # mxnet: scale = sqrt(magnitude / ((fan_in + fan_out) / 2)); uniform bound or
                # normal std. PyTorch: bound = gain·sqrt(6/(fi+fo)), std = gain·sqrt(2/(fi+fo)).
                gain2 = spec["gain"] ** 2
                if kind == "xavier_uniform":
                    initializer = mx.init.Xavier("uniform", "avg", 3.0 * gain2)
                else:
                    initializer = mx.init.Xavier("gaussian", "avg", gain2)
            elif kind in ("kaiming_uniform", "kaiming_normal"):
                # mxnet's fans are PyTorch's rule on the native shape (fan_in = shape[1]·kh·kw):
                # right for a Linear weight stored (out, in) and a conv weight (out, in, kh,
                # kw); a 2-D parameter stored canonically (in, out) has them swapped.
                native_in = spec["mode"] == "fan_in"
                if layout is None and len(shape) == 2:
                    native_in = not native_in
                factor = "in" if native_in else "out"
                gain2 = spec["gain"] ** 2
                if kind == "kaiming_uniform":  # bound = gain·sqrt(3/fan)
                    initializer = mx.init.Xavier("uniform", factor, 3.0 * gain2)
                else:  # std = gain/sqrt(fan)
                    initializer = mx.init.Xavier("gaussian", factor, gain2)
            else:
                raise ValueError(f"unknown initializer kind {kind!r}")
            if initializer is not None:
                value = nd.zeros(shape, ctx=self._ctx, dtype="float32")
                # the '__init__' attribute makes mxnet apply this initializer whatever the
                # parameter's name or its own ``init`` (as Parameter.initialize does); it
                # fills a view in the mode in force (its random operators are that mode's)
                initializer(mx.init.InitDesc(param.name, {"__init__": initializer}),
                            in_mode(value))
            param.set_data(self._like(value, param))

    # -- modules -------------------------------------------------------------------------------
    def layer(self, kind, **options):
        nn = gluon.nn
        if kind == "linear":
            layer = Dense(options["out_features"], use_bias=options["bias"],
                          in_units=options["in_features"] or 0, flatten=False)
            for p in layer.collect_params().values():
                self._accumulating(p)
                p._d2p_owner = weakref.ref(layer)
        elif kind == "batch_norm":
            layer = BatchNorm(options["num_features"], options["eps"], options["momentum"])
            for p in (layer.gamma, layer.beta):
                self._accumulating(p)
        elif kind in ("relu", "sigmoid", "tanh"):
            return nn.Activation(kind)
        elif kind == "softmax":
            return Softmax(axis=options["dim"])
        elif kind == "flatten":
            return nn.Flatten()
        elif kind == "identity":
            return Identity()
        elif kind == "dropout":
            # inverted dropout in train_mode(), identity in predict_mode()
            return nn.Dropout(options["p"])
        elif kind in _CONV_KINDS:
            layer = self._conv_layer(kind, options)
            layer._d2p_check = options["check"]
            if kind in ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"):
                return layer
            for p in layer.collect_params().values():
                if p._differentiable:
                    self._track(p)
                    p._d2p_owner = weakref.ref(layer)
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
        # Gluon's default: U(±0.07) weight, zero bias; BatchNorm gamma 1, beta 0, mean 0, var 1
        layer.initialize(ctx=self._ctx)
        return layer

    def _conv_layer(self, kind, options):
        """Gluon's own NCHW conv/pool/batch-norm blocks (the subclasses call ``check`` first)."""
        if kind == "conv2d":
            padding, pad = options["padding"], None
            if padding == "valid":
                padding = (0, 0)
            elif padding == "same":
                t, b, left, r = same_padding(options["kernel_size"], options["dilation"])
                padding = (t, left)
                if (t, left) != (b, r):  # an odd total: pad explicitly, asymmetrically
                    padding, pad = (0, 0), (t, b, left, r)
            layer = _layers.Conv2D(
                options["out_channels"], options["kernel_size"], strides=options["stride"],
                padding=padding, dilation=options["dilation"], groups=options["groups"],
                use_bias=options["bias"], in_channels=options["in_channels"] or 0)
            layer._d2p_pad = pad
            return layer
        if kind == "max_pool2d":
            return _layers.MaxPool2D(options["kernel_size"], options["stride"], options["padding"])
        if kind == "avg_pool2d":  # count_include_pad=True: Gluon's default and PyTorch's
            return _layers.AvgPool2D(options["kernel_size"], options["stride"],
                                     options["padding"], count_include_pad=True)
        if kind == "adaptive_avg_pool2d":
            return _layers.AdaptiveAvgPool2D(options["output_size"])
        return _layers.BatchNorm2D(options["num_features"], options["eps"], options["momentum"])

    def layer_state(self, native, kind):
        if kind in ("batch_norm", "batch_norm2d"):
            return {"weight": native.gamma, "bias": native.beta,
                    "running_mean": native.running_mean, "running_var": native.running_var}
        weight = native.weight
        if weight._data is None or 0 in tuple(weight.shape):
            return None
        state = {"weight": self._track(weight)}
        if native.bias is not None:
            state["bias"] = self._track(native.bias)
        return state

    def container(self, kind, module=None):
        if kind == "sequential":
            return Sequential()
        if kind == "list":
            return ModuleList()
        return self.native_class_for(module, Custom)(module)

    def _set_attribute(self, native, name, value) -> None:
        """``native.<name> = value`` as Gluon users write it, unless it would hide a member
        of the Block class (``params``, ``name``, ``forward``, ...)."""
        if isinstance(native, gluon.nn.Sequential) or hasattr(type(native), name):
            return
        current = native.__dict__.get(name)
        if current is None or isinstance(current, (gluon.Block, gluon.Parameter)):
            object.__setattr__(native, name, value)

    def buffer_of(self, tensor):
        # a Gluon Parameter whose data IS the NDArray (shared memory), one per NDArray
        known = self._buffers.get(id(tensor))
        if known is not None and known._data[0] is tensor:  # alive: it holds the NDArray
            return known
        buf = self._new_parameter(np.zeros(tensor.shape, np.float32), "null", differentiable=False)
        buf._data = [tensor]
        self._buffers[id(tensor)] = buf
        return buf

    def register(self, native, name, member, kind) -> None:
        if member is None:
            old = (native._children if kind == "child" else native._reg_params).pop(name, None)
            if old is not None and native.__dict__.get(name) is old:
                del native.__dict__[name]
            if kind != "child" and old is not None:
                table = native.params._params
                if table.get(old.name) is old and all(p is not old for p in native._reg_params.values()):
                    del table[old.name]
            return
        if kind == "child":
            # gluon.nn.Sequential applies self._children in order; the same block under two
            # names is applied twice.
            native.register_child(member, name)
            self._set_attribute(native, name, member)
            return
        if kind == "parameter":
            self._track(member)
        self._register_param(native, name, member)

    def _register_param(self, native, name, param) -> None:
        table = native.params._params  # collect_params(): Trainer, initialize, zero_grad
        old = native._reg_params.get(name)
        if old is not None and old is not param:  # replaced: drop the old one if unused
            if not any(p is old for k, p in native._reg_params.items() if k != name):
                if table.get(old.name) is old:
                    del table[old.name]
        if getattr(param, "_d2p_provisional", False):
            # the name Gluon itself gives: self.params.get(name) -> prefix + name
            wanted = native.prefix + name
            if table.get(wanted, param) is param:
                param.name = wanted
            param._d2p_provisional = False
        if table.get(param.name, param) is not param:
            raise ValueError(
                f"{type(native).__name__} already holds a different Gluon parameter named "
                f"{param.name!r}; Gluon keys parameters by name"
            )
        native._reg_params[name] = param  # structural names, save_parameters
        table[param.name] = param
        self._set_attribute(native, name, param)

    def inspect(self, native) -> dict:
        nn = gluon.nn
        if isinstance(native, nn.Dense):
            # a Dense built with ``activation=`` keeps it as its child ``act``, applied by
            # its own forward; d2lparams sees the layer as a Linear
            state = self.layer_state(native, "linear")
            self._track(native.weight)
            self._track(native.bias)
            act = getattr(native, "act", None)
            return {"kind": "linear", "activation": getattr(act, "_act_type", None),
                    "options": {
                "in_features": None if state is None else int(native.weight.shape[1]),
                "out_features": int(native._units), "bias": native.bias is not None}}
        if type(native) is nn.Activation and native._act_type in ("relu", "sigmoid", "tanh"):
            return {"kind": native._act_type}
        if type(native) is Softmax:
            return {"kind": "softmax", "options": {"dim": native._axis}}
        if type(native) is nn.Flatten:
            return {"kind": "flatten"}
        conv = self._inspect_conv(native)
        if conv is not None:
            return conv
        identity = getattr(getattr(gluon, "contrib", None), "nn", None)
        if type(native) is Identity or (
            identity is not None and type(native) is getattr(identity, "Identity", None)
        ):
            return {"kind": "identity"}
        children = list(native._children.items())
        if type(native) in (nn.Sequential, nn.HybridSequential, Sequential):
            return {"kind": "sequential", "children": children}
        parameters, buffers = [], []
        for pname, p in native._reg_params.items():
            # non-differentiable parameters are state, as BatchNorm's running statistics
            if p._differentiable:
                parameters.append((pname, self._track(p)))
            else:
                buffers.append((pname, p))
        return {"kind": "module", "children": children, "parameters": parameters,
                "buffers": buffers}

    def _inspect_conv(self, native) -> dict | None:
        """Gluon's NCHW conv and pooling blocks and d2lparams' BatchNorm2D. A ``Conv2D`` built
        with ``activation=`` keeps it (its own forward applies it), as a ``Dense`` does. A
        plain ``gluon.nn.BatchNorm`` takes any rank: it stays a module."""
        nn = gluon.nn
        kwargs = getattr(native, "_kwargs", {})
        if kwargs.get("layout", "NCHW") != "NCHW":
            return None
        if isinstance(native, nn.Conv2D) and type(native).__name__ != "Conv2DTranspose":
            pad = getattr(native, "_d2p_pad", None)
            in_channels = native.weight.shape[1] * kwargs["num_group"]
            self._track(native.weight)
            self._track(native.bias)
            return {"kind": "conv2d", "options": {
                "in_channels": None if in_channels == 0 else in_channels,
                "out_channels": int(kwargs["num_filter"]), "kernel_size": kwargs["kernel"],
                "stride": kwargs["stride"], "padding": "same" if pad else kwargs["pad"],
                "dilation": kwargs["dilate"], "groups": int(kwargs["num_group"]),
                "bias": not kwargs["no_bias"]}}
        if isinstance(native, (nn.MaxPool2D, nn.AvgPool2D, nn.GlobalAvgPool2D)) \
                and kwargs.get("pooling_convention") in ("valid", "full"):
            if kwargs["global_pool"]:
                if kwargs["pool_type"] == "avg":
                    return {"kind": "adaptive_avg_pool2d", "options": {"output_size": (1, 1)}}
                return None
            if kwargs["pooling_convention"] != "valid" or (
                    kwargs["pool_type"] == "avg" and not kwargs.get("count_include_pad", True)):
                return None
            kind = "max_pool2d" if kwargs["pool_type"] == "max" else "avg_pool2d"
            return {"kind": kind, "options": {"kernel_size": kwargs["kernel"],
                                              "stride": kwargs["stride"], "padding": kwargs["pad"]}}
        if isinstance(native, _layers.AdaptiveAvgPool2D):
            return {"kind": "adaptive_avg_pool2d", "options": {"output_size": native._output_size}}
        if isinstance(native, _layers.BatchNorm2D):
            return {"kind": "batch_norm2d", "options": {
                "num_features": int(native.gamma.shape[0]), "eps": native._kwargs["eps"],
                "momentum": native._d2p_momentum}}
        return None

    def call(self, native, args, training):
        sync_mode(native)
        numpy = np_mode()
        args = tuple(in_mode(a, numpy) for a in args)
        if numpy and any(isinstance(a, nd.NDArray) and a.ndim and a.shape[0] == 0 for a in args):
            # NumPy mode's operators take the empty batch but fail later, asynchronously
            return self._empty_batch(native, args)
        mode = autograd.train_mode() if training else autograd.predict_mode()
        with mode:
            try:
                out = native(*args)
                if (args and isinstance(args[0], nd.NDArray) and args[0].dtype == np.float16
                        and isinstance(out, nd.NDArray) and args[0].context.device_type == "cpu"):
                    # MXNet reports a missing float16 CPU kernel only when the value is read
                    out.wait_to_read()
                return out
            except mx.base.MXNetError:
                if not any(isinstance(a, nd.NDArray) and a.ndim and a.shape[0] == 0 for a in args):
                    raise
        return self._empty_batch(native, args)

    def _empty_batch(self, native, args):
        # Legacy operators reject a batch of 0 (0 means "unknown size" to them): learn the
        # output shape from one sample, without recording or updating statistics, and
        # return an empty result of that shape.
        one = tuple(in_mode(nd.array(np.zeros((1,) + tuple(a.shape[1:]), np.float32),
                                     ctx=self._ctx)) if isinstance(a, nd.NDArray) else a
                    for a in args)
        with autograd.pause(), autograd.predict_mode():
            out = native(*one)
        return in_mode(nd.array(np.zeros((0,) + tuple(out.shape[1:]), np.float32), ctx=self._ctx))

    def compile(self, native, options, training):
        # Gluon's own hybridize, in place (net.native runs hybridized too); the containers
        # the adapter runs imperatively (Python forwards, PyTorch's BatchNorm statistics)
        # hybridize the parts below them
        if getattr(native, "_d2p_compiled", None) != options:
            native.hybridize(True, **options)
            object.__setattr__(native, "_d2p_compiled", dict(options))
        return lambda args: self.call(native, args, training)

    def set_training(self, native, mode: bool) -> None:
        # Gluon keeps no mode on a Block (``call`` enters train_mode()/predict_mode()); the
        # mode is kept for the Sequential above it, which applies each child in its own mode.
        object.__setattr__(native, "_d2p_training", bool(mode))

    # -- gradients -----------------------------------------------------------------------------
    def record(self):
        return autograd.record()

    def backprop(self, loss) -> None:
        # gradient hooks see this backward's own contribution: grad_req='add' accumulates in
        # place, so the hooked parameters' gradients are kept and subtracted
        hooked = [(p, p.list_grad()[0].copy()) for p in list(self._seen)
                  if param_hooks(p) and p.grad_req != "null" and p._data is not None]
        # a wrapped model's parameters keep grad_req='write' (its own loop overwrites): what
        # d2lparams accumulated so far is added back after this backward
        kept = [(p, p.list_grad()[0].copy()) for p in list(self._seen)
                if p.grad_req == "write" and p._data is not None and self.grad_tensor(p) is not None]
        for param, _ in hooked + kept:  # the flag then says whether THIS backward reached it
            if self._fresh(param):
                param._d2p_has_grad = True
                for arr in param._data:
                    arr._fresh_grad = False
        loss.backward()
        with autograd.pause():
            for param, before in kept:
                if self._fresh(param):
                    grad = param.list_grad()[0]
                    grad += before
                else:  # not reached: 'write' left the old gradient in place
                    param._d2p_has_grad = True
            for param, before in hooked:
                if not self._fresh(param):
                    continue
                grad = param.list_grad()[0]
                grad, before = legacy(grad), legacy(before)  # views of the same memory
                delta = in_mode(grad - before)  # hooks see the arrays of the mode in force
                for hook in list(param_hooks(param).values()):
                    replaced = hook(delta)
                    delta = delta if replaced is None else replaced
                grad[:] = before + legacy(delta).as_in_context(grad.context)
        # make "this parameter has a gradient" sticky: a native Trainer.step resets the
        # arrays' _fresh_grad flag, but the accumulated gradient is still there.
        for param in list(self._seen):
            if param.grad_req != "null" and self._fresh(param):
                param._d2p_has_grad = True

    def grad(self, fn, sources, loaded, gradient=None) -> list:
        token = split_bias.set(True)  # the oneDNN bias bug (see layers.Dense)
        try:
            return super().grad(fn, sources, loaded, gradient)
        finally:
            split_bias.reset(token)

    def differentiate(self, loss, sources) -> list:
        arrays = [s if isinstance(s, nd.NDArray) else in_mode(s.data()) for s in sources]
        try:
            grads = list(autograd.grad(loss, arrays, retain_graph=True))
        except mx.base.MXNetError as exc:
            # mxnet refuses a variable the loss does not depend on: ask one by one
            if "unreachable" not in str(exc):
                raise
            grads = [self._grad_or_none(loss, a) for a in arrays]
        grads = [in_mode(g) for g in grads]
        return [g.reshape(()) if g is not None and not isinstance(s, nd.NDArray)
                and self._is_scalar(s) else g for s, g in zip(sources, grads)]

    @staticmethod
    def _grad_or_none(loss, array):
        try:
            return autograd.grad(loss, [array], retain_graph=True)[0]
        except mx.base.MXNetError as exc:
            if "unreachable" not in str(exc):
                raise
            return None

    def no_grad(self):
        return autograd.pause()

    # -- MXNet's NumPy mode (npx.set_np()) and legacy mode ---------------------------------------
    def op(self, name: str):
        if not np_mode():
            return super().op(name)
        table = self.__dict__.setdefault("_numpy_ops", {})
        fn = table.get(name)
        if fn is None:
            fn = table[name] = _numpy_mode_op(name, super().op(name))
        return fn

    @staticmethod
    def _like(value, param):
        """``value`` as the arrays ``param`` stores (of the mode it was made in): Gluon
        writes with ``arr[:] = value``, which refuses the other mode's array."""
        return in_mode(value, stored_numpy(param))

    # -- operations ----------------------------------------------------------------------------
    def _matmul(self, a, b):
        if b.ndim <= 2:
            # dot contracts a's last axis with b's first: (..., n, k) @ (k, m) and @ (k,)
            return nd.dot(a, b)
        if a.ndim == 1:  # (k,) @ (..., k, m) -> (..., m)
            out = self.op("matmul")(a.reshape((1, a.shape[0])), b)
            return out.reshape(out.shape[:-2] + out.shape[-1:])
        batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
        a = nd.broadcast_to(a.reshape((1,) * (len(batch) + 2 - a.ndim) + a.shape),
                            batch + a.shape[-2:])
        b = nd.broadcast_to(b.reshape((1,) * (len(batch) + 2 - b.ndim) + b.shape),
                            batch + b.shape[-2:])
        n, k, m = a.shape[-2], a.shape[-1], b.shape[-1]
        out = nd.batch_dot(a.reshape((-1, n, k)), b.reshape((-1, k, m)))
        return out.reshape(batch + (n, m))

    def _reshape(self, x, shape):
        shape = tuple(int(s) for s in shape) or (1,)  # a legacy NDArray has no usable 0-d shape
        if shape.count(-1) > 1:
            raise ValueError(f"reshape takes at most one -1, got {shape}")
        if -1 in shape:
            known = math.prod(s for s in shape if s != -1)
            if known == 0 or x.size % known:
                raise ValueError(f"cannot reshape a tensor of shape {x.shape} to {shape}")
            shape = tuple(x.size // known if s == -1 else s for s in shape)
        if math.prod(shape) != x.size or any(s < 0 for s in shape):
            raise ValueError(f"cannot reshape a tensor of shape {x.shape} to {shape}")
        return nd.reshape(x, shape=shape)



MXNetAdapter.ops_table.update(matmul=MXNetAdapter._matmul, reshape=MXNetAdapter._reshape)


# -- losses, operations, input gradients ------------------------------------------------------
def _broadcast(x, shape):
    x = x.reshape((1,) * (len(shape) - x.ndim) + x.shape)
    return x if x.shape == shape else nd.broadcast_to(x, shape)


def _where(self, condition, x, y):
    # nd.where neither broadcasts nor takes numbers, and wants a numeric condition
    tensors = [t for t in (x, y) if isinstance(t, nd.NDArray)]
    dtype = tensors[0].dtype if tensors else np.float32
    shape = tuple(np.broadcast_shapes(condition.shape, *(t.shape for t in tensors)))

    def full(v):
        if isinstance(v, nd.NDArray):
            return _broadcast(v, shape)
        return nd.full(shape, v, ctx=self._ctx, dtype=dtype)

    return nd.where(_broadcast(condition.astype(dtype), shape), full(x), full(y))


def _clamp(self, x, low, high):
    if low is not None:
        x = nd.maximum(x, low)
    return x if high is None else nd.minimum(x, high)


def _reduce(fn):
    def reduce(self, x, dim, keepdim):
        return fn(x) if dim is None else fn(x, axis=_axes(dim), keepdims=keepdim)
    return reduce


def _argmax(self, x, dim, keepdim):
    if dim is None:
        return nd.argmax(x.reshape((-1,)), axis=0).astype("int64")
    return nd.argmax(x, axis=dim, keepdims=keepdim).astype("int64")


MXNetAdapter.ops_table.update(
    # nd.log_softmax is off by up to 4e-6 in float32 where the composition x - max -
    # log(sum(exp(x - max))) is off by 1e-6, but the composition costs six operations
    # (+350 us in a 5 ms training step of the classifier example): the native one is kept
    log_softmax=lambda self, x, dim: nd.log_softmax(x, axis=dim),
    where=_where,
    clamp=_clamp,
    argmax=_argmax,
    amax=_reduce(nd.max),
    amin=_reduce(nd.min),
    pick=lambda self, x, index, dim: nd.pick(x, index, axis=dim),
    one_hot=lambda self, x, n, dtype: nd.one_hot(x, n, dtype=dtype),
    astype=lambda self, x, dtype: x.astype(dtype),
    dropout=lambda self, x, p: nd.Dropout(x, p=p, mode="always"),  # also outside train_mode
    detach=lambda self, x: x.detach(),
)

# The legacy NDArray raises TypeError for an operand it does not know instead of returning
# NotImplemented, so ``tensor + Parameter`` failed: let the Parameter's reflected operator
# answer (only for Parameters; every other operand is mxnet's own business). NumPy mode's
# array does the same, and has ``@`` too.
for _cls in (nd.NDArray, mxnp.ndarray):
    defer_operators(_cls, ("__add__", "__sub__", "__mul__", "__truediv__", "__div__",
                           "__pow__", "__mod__", "__iadd__", "__isub__", "__imul__",
                           "__itruediv__", "__idiv__", "__imod__", "__lt__", "__le__",
                           "__gt__", "__ge__", "__matmul__"), Parameter)

def _conv2d(self, x, weight, bias, stride, padding, dilation, groups):
    kernel = tuple(weight.shape[2:])
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":  # symmetric where the total is even, else padded explicitly
        t, b, left, r = same_padding(kernel, dilation)
        padding = (t, left)
        if (t, left) != (b, r):
            x = nd.pad(x, mode="constant", pad_width=(0, 0, 0, 0, t, b, left, r))
            padding = (0, 0)
    options = {"kernel": kernel, "stride": stride, "dilate": dilation, "pad": padding,
               "num_filter": weight.shape[0], "num_group": groups}
    if bias is None:
        return nd.Convolution(x, weight, no_bias=True, **options)
    return nd.Convolution(x, weight, bias, **options)


# convolution and pooling ops (NCHW, canonical weight)
MXNetAdapter.ops_table = {
    **MXNetAdapter.ops_table,
    "conv2d": _conv2d,
    "max_pool2d": lambda self, x, kernel, stride, padding: nd.Pooling(
        x, kernel=kernel, stride=stride, pad=padding, pool_type="max"),
    "avg_pool2d": lambda self, x, kernel, stride, padding: nd.Pooling(
        x, kernel=kernel, stride=stride, pad=padding, pool_type="avg", count_include_pad=True),
}
