"""The PaddlePaddle adapter (its quirks are listed in the package docstring)."""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from d2lparams._conv import same_padding
from d2lparams.nn.parameter import Parameter

from ..base import defer_operators
from . import PaddleBackend
from . import layers as _layers
from .layers import BatchNorm1D, Custom, F, LazyLinear, paddle

_ACTIVATIONS = {"relu": paddle.nn.ReLU, "sigmoid": paddle.nn.Sigmoid, "tanh": paddle.nn.Tanh,
                "identity": paddle.nn.Identity}


def _transpose(self, x, dim0, dim1):
    perm = list(range(len(x.shape)))
    perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
    return paddle.transpose(x, perm=perm)


def _log_softmax(self, x, dim):
    # F.log_softmax clamps each log-probability at -64 (x - max below -64), and
    # x - logsumexp(x) has a gradient 3x less exact than this composition
    shifted = x - paddle.max(x, axis=dim, keepdim=True).detach()
    return shifted - paddle.log(paddle.sum(paddle.exp(shifted), axis=dim, keepdim=True))

_CONV_KINDS = ("conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "batch_norm2d")


def _padding(options):
    """A conv padding for paddle: its ``"SAME"`` gives other values than PyTorch's once
    dilated, so ``"same"`` is given as explicit ``[top, bottom, left, right]``; ``"valid"``
    is paddle's own."""
    padding = options["padding"]
    if padding == "same":
        return list(same_padding(options["kernel_size"], options["dilation"]))
    return padding


def _pair_padding(padding):
    """Paddle's symmetric padding as a pair (int, [h, w], [t, b, l, r]); ``None`` otherwise."""
    if isinstance(padding, int):
        return padding, padding
    if isinstance(padding, (list, tuple)) and all(isinstance(p, int) for p in padding):
        if len(padding) == 2:
            return tuple(padding)
        if len(padding) == 4 and padding[0] == padding[1] and padding[2] == padding[3]:
            return padding[0], padding[2]
    return None


class PaddleAdapter(PaddleBackend):
    ops_namespace = paddle
    ops_table = {
        "relu": lambda self, x: F.relu(x),
        "sigmoid": lambda self, x: F.sigmoid(x),
        "softmax": lambda self, x, dim: F.softmax(x, axis=dim),
        "transpose": _transpose,
        "mean": lambda self, x, dim, keepdim: paddle.mean(x, axis=dim, keepdim=keepdim),
        "sum": lambda self, x, dim, keepdim: paddle.sum(x, axis=dim, keepdim=keepdim),
        "reshape": lambda self, x, shape: paddle.reshape(x, list(shape)),
        "concat": lambda self, tensors, dim: paddle.concat(list(tensors), axis=dim),
        # losses, operations, input gradients
        "log_softmax": _log_softmax,
        "argmax": lambda self, x, dim, keepdim: paddle.argmax(x, axis=dim, keepdim=keepdim),
        "amax": lambda self, x, dim, keepdim: paddle.max(x, axis=dim, keepdim=keepdim),
        "amin": lambda self, x, dim, keepdim: paddle.min(x, axis=dim, keepdim=keepdim),
        "pick": lambda self, x, index, dim: paddle.take_along_axis(
            x, index.unsqueeze(dim), dim).squeeze(dim),
        "nll_loss": lambda self, logp, target, reduction: F.nll_loss(logp, target,
                                                                     reduction=reduction),
        "one_hot": lambda self, x, n, dtype: F.one_hot(x, n).astype(dtype),
        "astype": lambda self, x, dtype: x.astype(dtype),
        "dropout": lambda self, x, p: F.dropout(x, p, training=True, mode="upscale_in_train"),
        "detach": lambda self, x: x.detach(),
    }

    def seed(self, n: int) -> None:
        paddle.seed(n)

    # -- tensors -------------------------------------------------------------------------------
    def is_tensor(self, x) -> bool:
        return isinstance(x, paddle.Tensor)

    def tensor(self, array, requires_grad=False):
        return paddle.to_tensor(array, stop_gradient=not requires_grad)

    def to_numpy(self, x) -> np.ndarray:
        x = x.detach()
        if x.dtype == paddle.bfloat16:  # NumPy has no bfloat16: float32 holds it exactly
            x = x.astype("float32")
        return np.array(x.numpy(), copy=True)

    # -- dtypes and devices ----------------------------------------------------------------------
    def num_gpus(self) -> int:
        return int(paddle.device.cuda.device_count()) if paddle.is_compiled_with_cuda() else 0

    def device_of(self, x) -> tuple:
        place = x.place
        return ("gpu", place.gpu_device_id()) if place.is_gpu_place() else ("cpu", 0)

    @staticmethod
    def _place(device):
        return paddle.CPUPlace() if device[0] == "cpu" else paddle.CUDAPlace(device[1])

    def convert(self, tensor, dtype=None, device=None, requires_grad=False):
        if device is not None:
            tensor = tensor._copy_to(self._place(device), True)
        out = tensor if dtype is None else tensor.astype(dtype)
        if requires_grad:
            out = out.detach()
            out.stop_gradient = False
        return out

    def move(self, param, dtype=None, device=None) -> None:
        # what paddle.nn.Layer.to does for each tensor: convert, then share the new data
        # with the same object
        if not param.stop_gradient:
            param.clear_gradient(False)
        with paddle.no_grad():
            self._mover()._transform(param, None if device is None else self._place(device),
                                     dtype, True)

    def _mover(self):
        mover = self.__dict__.get("_layer_for_transform")
        if mover is None:
            mover = self.__dict__["_layer_for_transform"] = paddle.nn.Layer()
        return mover

    # -- parameters and buffers ----------------------------------------------------------------
    def create_parameter(self, array, requires_grad=True, buffer=False):
        array = np.asarray(array)
        array = np.require(array, array.dtype if array.dtype.kind == "f" else np.float32, "C")
        dtype = array.dtype.name  # np.require keeps a 0-d array 0-d
        if buffer:
            return paddle.to_tensor(array, dtype=dtype, stop_gradient=True)
        param = paddle.create_parameter(
            shape=list(array.shape), dtype=dtype,
            default_initializer=paddle.nn.initializer.Assign(array),
        )
        param.stop_gradient = not requires_grad
        return param

    def assign(self, param, array) -> None:
        dtype = param.dtype
        carrier = np.float32 if dtype == paddle.bfloat16 else self.dtype(param)
        with paddle.no_grad():
            if dtype == paddle.bfloat16:  # set_value takes no NumPy bfloat16
                param.set_value(paddle.to_tensor(np.require(array, carrier, "C")).astype(dtype))
            else:
                param.set_value(np.require(array, carrier, "C"))

    def requires_grad(self, param, flag=None) -> bool:
        if flag is not None:
            param.stop_gradient = not flag
        return not param.stop_gradient and param.is_leaf

    def grad_tensor(self, param):
        return param.grad

    def zero_grad(self, param, set_to_none=True) -> None:
        # positional on purpose: the keyword set_to_zero=False is ignored (zeros remain)
        param.clear_gradient(not set_to_none)

    def subtract_(self, param, delta) -> None:
        # in place under no_grad: an unguarded in-place op on a leaf parameter writes and
        # then raises in paddle
        with paddle.no_grad():
            param.subtract_(delta)

    def native_parameter_names(self, native) -> dict:
        names: dict = {}
        for p in native.parameters():
            names.setdefault(id(p), p.name)
        for b in native.buffers():
            names.setdefault(id(b), b.name)
        return names

    def init_native(self, param, kind, layout, **spec) -> None:
        # ``layout`` is always None here: paddle stores the canonical layouts, and its
        # initializers take the fans explicitly.
        inits = paddle.nn.initializer
        initializer: Any
        if kind == "uniform":
            initializer = inits.Uniform(low=spec["low"], high=spec["high"])
        elif kind == "normal":
            initializer = inits.Normal(mean=spec["mean"], std=spec["std"])
        elif kind == "constant":
            initializer = inits.Constant(value=spec["value"])
        elif kind == "xavier_uniform":
            initializer = inits.XavierUniform(fan_in=spec["fan_in"], fan_out=spec["fan_out"],
                                          gain=spec["gain"])
        elif kind == "xavier_normal":
            initializer = inits.XavierNormal(fan_in=spec["fan_in"], fan_out=spec["fan_out"],
                                         gain=spec["gain"])
        elif kind in ("kaiming_uniform", "kaiming_normal"):
            initializer = self._kaiming(kind, spec)
        else:
            raise ValueError(f"unknown initializer kind {kind!r}")
        with paddle.no_grad():
            initializer(param)

    def _kaiming(self, kind, spec):
        # paddle's Kaiming takes the fan of the chosen mode as ``fan_in`` (mode "fan_in") and
        # computes the gain from (nonlinearity, negative_slope) with torch's table; when that
        # gain is not d2lparams' one, draw the same distribution with Uniform/Normal.
        inits = paddle.nn.initializer
        fan, gain = float(spec["fan"]), float(spec["gain"])
        slope = 0.01 if spec.get("a") is None else float(spec["a"])  # torch: None -> 0.01
        try:
            native_gain = inits.calculate_gain(spec["nonlinearity"], slope)
        except (ValueError, AssertionError):
            native_gain = None
        if native_gain is not None and math.isclose(native_gain, gain, rel_tol=1e-12):
            cls = inits.KaimingUniform if kind == "kaiming_uniform" else inits.KaimingNormal
            return cls(fan_in=fan, negative_slope=slope, nonlinearity=spec["nonlinearity"])
        if kind == "kaiming_uniform":
            bound = gain * math.sqrt(3.0 / fan)
            return inits.Uniform(low=-bound, high=bound)
        return inits.Normal(mean=0.0, std=gain / math.sqrt(fan))

    # -- modules -------------------------------------------------------------------------------
    def layer(self, kind, **options):
        nn = paddle.nn
        if kind == "linear":
            if options["in_features"] is None:
                return LazyLinear(options["out_features"], bias=options["bias"])
            return nn.Linear(options["in_features"], options["out_features"],
                             bias_attr=None if options["bias"] else False)
        if kind == "softmax":
            return nn.Softmax(axis=options["dim"])
        if kind == "flatten":
            return nn.Flatten(start_axis=1, stop_axis=-1)
        if kind == "dropout":
            return nn.Dropout(p=options["p"], mode="upscale_in_train")
        if kind == "batch_norm":
            # paddle's momentum weighs the running value: 1 - torch's momentum
            return BatchNorm1D(options["num_features"], momentum=1.0 - options["momentum"],
                               epsilon=options["eps"])
        if kind in _CONV_KINDS:
            native = self._conv_layer(kind, dict(options))
            native._d2p_check = options["check"]
            return native
        return _ACTIVATIONS[kind]()

    def _conv_layer(self, kind, options):
        """Paddle's own conv/pool/batch-norm layers (the subclasses call ``check`` first)."""
        if kind == "conv2d":
            conv = {"stride": options["stride"], "dilation": options["dilation"],
                    "groups": options["groups"], "padding": _padding(options),
                    "bias_attr": None if options["bias"] else False}
            if options["in_channels"] is None:
                return _layers.LazyConv2D(options["out_channels"], options["kernel_size"], **conv)
            return _layers.Conv2D(options["in_channels"], options["out_channels"],
                                  options["kernel_size"], **conv)
        if kind == "max_pool2d":
            return _layers.MaxPool2D(options["kernel_size"], options["stride"], options["padding"])
        if kind == "avg_pool2d":  # exclusive=False: the padding counts, PyTorch's default
            return _layers.AvgPool2D(options["kernel_size"], options["stride"],
                                     options["padding"], exclusive=False)
        if kind == "adaptive_avg_pool2d":
            return _layers.AdaptiveAvgPool2D(options["output_size"])
        return _layers.BatchNorm2D(options["num_features"], momentum=1.0 - options["momentum"],
                                   epsilon=options["eps"])

    def layer_state(self, native, kind):
        if kind in ("batch_norm", "batch_norm2d"):
            return {"weight": native.weight, "bias": native.bias,
                    "running_mean": native._mean, "running_var": native._variance}
        if native.weight is None:
            return None
        state = {"weight": native.weight}
        if native.bias is not None:
            state["bias"] = native.bias
        return state

    def container(self, kind, module=None):
        if kind == "sequential":
            return paddle.nn.Sequential()
        if kind == "list":
            return paddle.nn.LayerList()
        return self.native_class_for(module, Custom)(module)

    def register(self, native, name, member, kind) -> None:
        if member is None:
            table = {"child": "_sub_layers", "parameter": "_parameters", "buffer": "_buffers"}
            getattr(native, table[kind]).pop(name, None)
        elif kind == "child":
            native.add_sublayer(name, member)
        elif kind == "parameter":
            native.add_parameter(name, member)
        else:
            native.register_buffer(name, member)

    def inspect(self, native) -> dict:
        nn = paddle.nn
        if isinstance(native, (nn.Linear, LazyLinear)):
            weight, bias = native.weight, native.bias
            if isinstance(native, nn.Linear):
                out_features, use_bias = int(weight.shape[1]), bias is not None
            else:
                out_features, use_bias = native._out_features, native._use_bias
            return {"kind": "linear", "options": {
                "in_features": None if weight is None else int(weight.shape[0]),
                "out_features": out_features, "bias": use_bias}}
        for kind, klass in _ACTIVATIONS.items():
            if type(native) is klass:
                return {"kind": kind}
        if type(native) is nn.Softmax:
            return {"kind": "softmax", "options": {"dim": int(native._axis)}}
        if type(native) is nn.Flatten and native.start_axis == 1 and native.stop_axis == -1:
            return {"kind": "flatten"}
        conv = self._inspect_conv(native)
        if conv is not None:
            return conv
        children = list(native._sub_layers.items())
        if type(native) is nn.Sequential:
            return {"kind": "sequential", "children": children}
        params = [(n, p) for n, p in native._parameters.items() if p is not None]
        buffers = [(n, b) for n, b in native._buffers.items() if b is not None]
        if isinstance(native, nn.layer.norm._BatchNormBase):
            # paddle keeps the running statistics as non-trainable parameters
            stats = ("_mean", "_variance")
            buffers += [(n, p) for n, p in params if n in stats]
            params = [(n, p) for n, p in params if n not in stats]
        return {"kind": "module", "children": children, "parameters": params,
                "buffers": buffers}

    def hook_calls(self, native, pre, post) -> None:
        if "_d2p_hooks" not in native.__dict__:  # paddle's own forward hooks, installed once
            native.register_forward_pre_hook(
                lambda m, args: m.__dict__["_d2p_hooks"][0](tuple(args)))
            native.register_forward_post_hook(
                lambda m, args, out: m.__dict__["_d2p_hooks"][1](tuple(args), out))
        native.__dict__["_d2p_hooks"] = (pre, post)

    def grad_hook(self, param, fn):
        return param.register_hook(fn)

    def _inspect_conv(self, native) -> dict | None:
        """Paddle's NCHW conv/pool/BatchNorm2D layers, where their meaning is PyTorch's (a
        wrapped native layer keeps its own forward: a native ``BatchNorm2D`` its own biased
        running variance)."""
        nn = paddle.nn
        if getattr(native, "_data_format", getattr(native, "data_format", None)) != "NCHW":
            return None
        if isinstance(native, nn.Conv2D) and native._padding_mode == "zeros":
            padding = _pair_padding(native._padding)
            if isinstance(native._padding, str) and native._dilation == [1, 1]:
                padding = native._padding.lower()
            if padding is None:
                return None
            return {"kind": "conv2d", "options": {
                "in_channels": None if native.weight is None else native._in_channels,
                "out_channels": native._out_channels, "kernel_size": tuple(native._kernel_size),
                "stride": tuple(native._stride), "padding": padding,
                "dilation": tuple(native._dilation), "groups": native._groups,
                "bias": native.bias is not None}}
        pool = isinstance(native, nn.MaxPool2D) and not native.return_mask or isinstance(
            native, nn.AvgPool2D) and not native.exclusive and native.divisor is None
        if pool and not native.ceil_mode and _pair_padding(native.padding) is not None:
            kind = "max_pool2d" if isinstance(native, nn.MaxPool2D) else "avg_pool2d"
            return {"kind": kind, "options": {
                "kernel_size": native.ksize, "stride": native.stride,
                "padding": _pair_padding(native.padding)}}
        if isinstance(native, nn.AdaptiveAvgPool2D) and None not in np.ravel(
                [native._output_size]).tolist():
            size = native._output_size
            return {"kind": "adaptive_avg_pool2d", "options": {
                "output_size": size if isinstance(size, int) else tuple(size)}}
        if isinstance(native, nn.BatchNorm2D) and native.weight is not None \
                and not native._use_global_stats:
            return {"kind": "batch_norm2d", "options": {
                "num_features": native._num_features, "eps": native._epsilon,
                "momentum": round(1.0 - native._momentum, 12)}}
        return None

    def compile(self, native, options, training):
        # paddle.jit.to_static of a function that calls the layer (one per number of
        # inputs: Paddle reads the arity from the signature, and a neutral module's native
        # forward takes *args)
        graphs = {}

        def forward(args):
            graph = graphs.get(len(args))
            if graph is None:
                def call(*inputs):
                    return native(*inputs)

                call.__signature__ = inspect.Signature([
                    inspect.Parameter(f"x{i}", inspect.Parameter.POSITIONAL_OR_KEYWORD)
                    for i in range(len(args))])
                graph = graphs[len(args)] = paddle.jit.to_static(call, **options)
            return graph(*args)

        return forward

    # -- gradients -----------------------------------------------------------------------------
    def record(self):
        return paddle.enable_grad()

    def backprop(self, loss) -> None:
        loss.backward()

    def differentiate(self, loss, sources) -> list:
        return list(paddle.grad([loss], list(sources), allow_unused=True))

    def no_grad(self):
        return paddle.no_grad()


# ``tensor / Parameter`` (and //, %, <, <=, >, >=) raise TypeError in paddle instead of
# returning NotImplemented: let the Parameter's reflected operator answer (nothing else
# changes).
defer_operators(paddle.Tensor, ("__truediv__", "__div__", "__floordiv__", "__mod__", "__lt__",
                                "__le__", "__gt__", "__ge__"), Parameter)

def _conv2d(self, x, weight, bias, stride, padding, dilation, groups):
    padding = _padding({"padding": padding, "kernel_size": tuple(weight.shape[2:]),
                        "dilation": dilation})
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


# convolution and pooling ops (NCHW, canonical weight)
PaddleAdapter.ops_table = {
    **PaddleAdapter.ops_table,
    "conv2d": _conv2d,
    "max_pool2d": lambda self, x, kernel, stride, padding: F.max_pool2d(x, kernel, stride, padding),
    "avg_pool2d": lambda self, x, kernel, stride, padding: F.avg_pool2d(
        x, kernel, stride, padding, exclusive=False),
}
