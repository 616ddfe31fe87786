"""The TensorFlow / Keras 3 adapter (its quirks are listed in the package docstring)."""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import math
import weakref

import numpy as np

from d2lparams.nn.parameter import Parameter

from ..base import param_hooks
from . import TensorFlowBackend
from . import layers as _layers
from .layers import (
    MODE,
    BatchNorm1d,
    Container,
    Custom,
    Dense,
    ModuleList,
    Sequential,
    call_origin,
    keras,
    tf,
)

# The gradient tapes opened by ``record`` (innermost last).
_tapes: contextvars.ContextVar[tuple] = contextvars.ContextVar("d2p_tf_tapes", default=())

_GRAD = "_d2p_grad"  # attribute of a tf.Variable holding its accumulated gradient (a tensor)

_ACTIVATIONS = {
    "relu": keras.layers.ReLU,
    "sigmoid": lambda: keras.layers.Activation("sigmoid"),
    "tanh": lambda: keras.layers.Activation("tanh"),
    "identity": keras.layers.Identity,
    "flatten": keras.layers.Flatten,
}


_CONV_KINDS = ("conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "batch_norm2d")


#: the Dropout layers the adapter made (``seed`` re-seeds their generators), each with its
#: creation index as ``_d2p_index``
_DROPOUTS: weakref.WeakSet = weakref.WeakSet()
_DROPOUT_COUNT = itertools.count()


class TensorFlowAdapter(TensorFlowBackend):
    forward_method = "call"
    ops_namespace = keras.ops
    ops_table = {
        "softmax": lambda self, x, dim: keras.ops.softmax(x, axis=dim),
        "transpose": "swapaxes",
        "mean": lambda self, x, dim, keepdim: keras.ops.mean(x, axis=dim, keepdims=keepdim),
        "sum": lambda self, x, dim, keepdim: keras.ops.sum(x, axis=dim, keepdims=keepdim),
        "concat": lambda self, tensors, dim: keras.ops.concatenate(tensors, axis=dim),
        # losses, operations, input gradients
        "log_softmax": lambda self, x, dim: keras.ops.log_softmax(x, axis=dim),
        "clamp": lambda self, x, low, high: _clamp(x, low, high),
        "argmax": lambda self, x, dim, keepdim: keras.ops.cast(
            keras.ops.argmax(x, axis=dim, keepdims=keepdim), "int64"),
        "amax": lambda self, x, dim, keepdim: keras.ops.max(x, axis=dim, keepdims=keepdim),
        "amin": lambda self, x, dim, keepdim: keras.ops.min(x, axis=dim, keepdims=keepdim),
        "pick": lambda self, x, index, dim: _pick(x, index, dim),
        "one_hot": lambda self, x, n, dtype: keras.ops.one_hot(x, n, dtype=dtype),
        "astype": lambda self, x, dtype: keras.ops.cast(x, dtype),
        # keras' global SeedGenerator, which keras.utils.set_random_seed (d2p.seed) seeds
        "dropout": lambda self, x, p: keras.random.dropout(x, p),
        "detach": lambda self, x: tf.stop_gradient(x),
    }

    def __init__(self) -> None:
        # id(tf.Variable) -> its keras.Variable, for every variable this adapter has seen;
        # backward uses it to skip frozen ones.
        self._keras_of: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        #: id(tf.Tensor) -> (weak reference to it, the variable holding it as a buffer)
        self._buffers: dict = {}

    def version(self) -> str:
        return f"{tf.__version__} (Keras {keras.__version__})"

    def seed(self, n: int) -> None:
        # tf.random.set_seed alone does not make Keras initializers reproduce.
        keras.utils.set_random_seed(n)
        # A Keras Dropout draws from its own SeedGenerator, seeded when the layer was made:
        # re-seed the ones d2lparams made, so that d2p.seed(n) repeats their masks (what
        # torch.manual_seed does for nn.Dropout)
        for layer in list(_DROPOUTS):
            state = layer.seed_generator.state
            start = np.random.default_rng([n, layer._d2p_index]).integers(0, 2**31 - 1)
            state.assign(np.array([start, 0], dtype=state.dtype))

    # -- helpers -------------------------------------------------------------------------------
    def _remember(self, var):
        """Note ``var`` (a keras.Variable) so that backward can see whether it is frozen."""
        if var is not None:
            tv = self._tf_var(var)
            if tv is not None:
                self._keras_of[id(tv)] = var
        return var

    def _tf_var(self, var):
        """The tf.Variable under a keras.Variable (or ``var`` itself if it is one)."""
        tv = getattr(var, "_value", None)
        return tv if isinstance(tv, tf.Variable) else var

    # -- tensors -------------------------------------------------------------------------------
    def is_tensor(self, x) -> bool:
        return isinstance(x, (tf.Tensor, tf.Variable, keras.Variable))

    def tensor(self, array, requires_grad=False):
        if requires_grad:
            # a trainable variable: the tape watches it when it is read, and its gradient
            # accumulates on it as on a parameter's (a keras.Variable, which keras.ops take
            # everywhere, unlike a bare tf.Variable)
            return self._remember(keras.Variable(array, dtype=str(array.dtype), trainable=True))
        return tf.constant(array)

    def dtype_name(self, x) -> str:
        dtype = x.dtype  # a keras.Variable's dtype is already a name
        return dtype if isinstance(dtype, str) else dtype.name

    def to_numpy(self, x) -> np.ndarray:
        if self.dtype_name(x) == "bfloat16":  # NumPy has no bfloat16: float32 holds it exactly
            x = tf.cast(x, tf.float32)
        if hasattr(x, "numpy"):
            return np.array(x.numpy(), copy=True)
        return np.array(keras.ops.convert_to_numpy(x), copy=True)

    # -- dtypes and devices ----------------------------------------------------------------------
    def num_gpus(self) -> int:
        return len(tf.config.list_physical_devices("GPU"))

    def device_of(self, x) -> tuple:
        where = str(getattr(self._tf_var(x), "device", "") or "")
        kind, _, index = where.rpartition("device:")[2].upper().partition(":")
        return ("gpu", int(index or 0)) if kind == "GPU" else ("cpu", 0)

    @staticmethod
    def _tf_device(device) -> str:
        return "/CPU:0" if device[0] == "cpu" else f"/GPU:{device[1]}"

    def convert(self, tensor, dtype=None, device=None, requires_grad=False):
        with tf.device(self._tf_device(device or self.device_of(tensor))):
            out = tf.identity(tensor)
            out = out if dtype is None else tf.cast(out, dtype)
            if requires_grad:
                return self._remember(keras.Variable(out, dtype=out.dtype.name, trainable=True))
            return out

    def move(self, param, dtype=None, device=None) -> None:
        if not isinstance(param, keras.Variable):
            raise TypeError(f"cannot convert a {type(param).__name__} in place; d2lparams "
                            "parameters on tensorflow are keras.Variable objects")
        self.zero_grad(param)
        old = self._tf_var(param)
        value = self.convert(old.value(), dtype, device)
        # a keras.Variable's dtype is fixed when its tf.Variable is made: make a new one
        # under the same keras.Variable, which keeps its identity (layers, ties, optimizers)
        with tf.device(self._tf_device(device or self.device_of(param))):
            param._dtype = dtype or param.dtype
            param._initialize(value)
        self._keras_of.pop(id(old), None)
        self._remember(param)

    def set_layer_dtype(self, native, dtype) -> None:
        # Keras casts a layer's inputs and variables to its dtype policy when it is called
        if isinstance(native, keras.layers.Layer):
            for layer in native._flatten_layers(include_self=True):
                layer.dtype_policy = dtype

    # -- parameters and buffers ----------------------------------------------------------------
    def create_parameter(self, array, requires_grad=True, buffer=False):
        value = np.asarray(array)
        dtype = value.dtype.name if value.dtype.kind == "f" else "float32"
        if buffer:
            return keras.Variable(value, dtype=dtype, trainable=False)
        # Created trainable so that the tape watches the underlying tf.Variable; frozen after.
        var = keras.Variable(value, dtype=dtype, trainable=True)
        if not requires_grad:
            var.trainable = False
        return self._remember(var)

    def assign(self, param, array) -> None:
        dtype = param.dtype if isinstance(param.dtype, str) else param.dtype.name
        param.assign(np.asarray(array, dtype=np.float32 if dtype == "bfloat16" else dtype))

    def requires_grad(self, param, flag=None) -> bool:
        if not isinstance(param, (tf.Variable, keras.Variable)):
            return False  # a tensor: only a variable is watched and holds a gradient
        self._remember(param)
        if flag is not None:
            param.trainable = bool(flag)
        return bool(param.trainable)

    def grad_tensor(self, param):
        self._remember(param)
        return getattr(self._tf_var(param), _GRAD, None)

    def zero_grad(self, param, set_to_none=True) -> None:
        tv = self._tf_var(param)
        grad = getattr(tv, _GRAD, None)
        if grad is not None:
            if set_to_none:
                object.__delattr__(tv, _GRAD)
            else:
                object.__setattr__(tv, _GRAD, tf.zeros_like(grad))

    def subtract_(self, param, delta) -> None:
        param.assign_sub(delta)

    def native_parameter_names(self, native) -> dict:
        names: dict = {}
        for var in native.weights:
            self._remember(var)
            names.setdefault(id(var), var.path)
        return names

    def init_native(self, param, kind, layout, **spec) -> None:
        # Drawn in the native shape: the distributions do not depend on the axis order, and
        # the fans are corrected below.
        inits = keras.initializers
        shape = self.param_shape(param)
        # A fresh initializer each time: one instance draws the same values on every call.
        if kind == "uniform":
            initializer = inits.RandomUniform(minval=spec["low"], maxval=spec["high"])
        elif kind == "normal":
            initializer = inits.RandomNormal(mean=spec["mean"], stddev=spec["std"])
        elif kind == "constant":
            initializer = inits.Constant(spec["value"])
        elif kind in ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"):
            k_in, k_out = self._keras_fans(shape)
            gain = spec["gain"]
            if kind.startswith("xavier"):
                mode = "fan_avg"
                # Keras divides by its own fan; rescale so the fan is d2lparams' one.
                scale = gain**2 * (k_in + k_out) / (spec["fan_in"] + spec["fan_out"])
            else:
                mode = spec["mode"]
                scale = gain**2 * (k_in if mode == "fan_in" else k_out) / spec["fan"]
            initializer = inits.VarianceScaling(
                scale=scale,
                mode=mode,
                distribution="uniform" if kind.endswith("uniform") else "untruncated_normal",
            )
        else:
            raise ValueError(f"unknown initializer kind {kind!r}")
        param.assign(initializer(shape, dtype="float32"))

    @staticmethod
    def _keras_fans(shape) -> tuple:
        # Keras' rule (keras.src.initializers.random_initializers.compute_fans).
        if len(shape) == 1:
            return shape[0], shape[0]
        if len(shape) == 2:
            return shape[0], shape[1]
        receptive = math.prod(shape[:-2])
        return shape[-2] * receptive, shape[-1] * receptive

    # -- modules -------------------------------------------------------------------------------
    def layer(self, kind, **options):
        layers = keras.layers
        if kind == "linear":
            layer = Dense(options["out_features"], use_bias=options["bias"])
            if options["in_features"] is not None:
                layer.build((None, options["in_features"]))
                self.layer_state(layer, "linear")
            return layer
        if kind == "softmax":
            return layers.Softmax(axis=options["dim"])
        if kind == "dropout":
            # Draws from a SeedGenerator seeded at construction from Python's random, which
            # keras.utils.set_random_seed seeds.
            layer = layers.Dropout(rate=options["p"])
            object.__setattr__(layer, "_d2p_index", next(_DROPOUT_COUNT))
            _DROPOUTS.add(layer)
            return layer
        if kind == "batch_norm":
            # Keras' momentum is the weight of the old value: 1 - PyTorch's.
            num_features = options["num_features"]
            layer = BatchNorm1d(axis=1, momentum=1.0 - options["momentum"],
                                epsilon=options["eps"])
            layer.build((None, num_features))
            layer.input_spec = layers.InputSpec(min_ndim=2, max_ndim=3, axes={1: num_features})
            for var in (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance):
                self._remember(var)
            return layer
        if kind in _CONV_KINDS:
            layer = self._conv_layer(kind, options)
            layer._d2p_check = options["check"]
            if kind == "batch_norm2d":
                layer.build((None, options["num_features"], None, None))
                layer.input_spec = None  # the input check replaces Keras' fixed-rank spec
                self.layer_state(layer, kind)
            elif kind == "conv2d" and options["in_channels"] is not None:
                layer.build((None, options["in_channels"], None, None))
                self.layer_state(layer, kind)
            return layer
        return _ACTIVATIONS[kind]()

    def _conv_layer(self, kind, options):
        """Keras' conv/pool/batch-norm layers on NCHW tensors (``layers.py``)."""
        if kind == "conv2d":
            return _layers.Conv2d(options["out_channels"], options["kernel_size"],
                                  options["stride"], options["padding"], options["dilation"],
                                  options["groups"], options["bias"])
        if kind == "max_pool2d":
            return _layers.MaxPool2d(options["kernel_size"], options["stride"], options["padding"])
        if kind == "avg_pool2d":
            return _layers.AvgPool2d(options["kernel_size"], options["stride"], options["padding"])
        if kind == "adaptive_avg_pool2d":
            return _layers.AdaptiveAvgPool2d(options["output_size"])
        # Keras' momentum is the weight of the old value: 1 - PyTorch's.
        return _layers.BatchNorm2d(axis=1, momentum=1.0 - options["momentum"],
                                   epsilon=options["eps"])

    def layout(self, kind, name):
        if kind == "conv2d" and name == "weight":
            return (3, 2, 0, 1)  # Keras' kernel (kh, kw, in/groups, out) -> (out, in, kh, kw)
        return super().layout(kind, name)

    def permute(self, tensor, axes):
        return tf.transpose(tensor, axes)

    def layer_state(self, native, kind):
        if kind in ("batch_norm", "batch_norm2d"):
            return {"weight": native.gamma, "bias": native.beta,
                    "running_mean": native.moving_mean, "running_var": native.moving_variance}
        if not native.built:
            return None
        kernel = getattr(native, "_kernel", None)
        if not isinstance(kernel, keras.Variable):
            kernel = native.kernel
        state = {"weight": self._remember(kernel)}
        if native.bias is not None:
            state["bias"] = self._remember(native.bias)
        return state

    def container(self, kind, module=None):
        if kind == "sequential":
            return Sequential()
        if kind == "list":
            return ModuleList()
        layer = self.native_class_for(module, Custom)()
        # Not an attribute Keras sees: the neutral module is no native child.
        layer.__dict__["_d2p_module"] = module
        return layer

    def buffer_of(self, tensor):
        if isinstance(tensor, keras.Variable):
            return tensor
        # a tf.Tensor is immutable: hold it in a variable, one per tensor object
        known = self._buffers.get(id(tensor))
        if known is not None and known[0]() is tensor:
            return known[1]
        var = keras.Variable(tensor, trainable=False)
        self._buffers[id(tensor)] = (weakref.ref(tensor), var)
        return var

    def register(self, native, name, member, kind) -> None:
        if member is None:
            self._remove_member(native, name)
            return
        if kind == "child" and isinstance(native, Sequential):
            native._d2p_layers.append(member)
            native._d2p_names.append(name)
        elif kind != "child":
            if kind == "parameter":
                self._remember(member)
            self._adopt(native, name, member)
        self._add_member(native, name, member, kind)

    def _add_member(self, native, name, value, kind) -> None:
        if isinstance(native, Container):
            native._d2p_add(name, value, kind)
            return
        # a built Keras layer is locked against new state; d2lparams adds it as PyTorch does
        locked = native._tracker.locked
        native._tracker.unlock()
        try:
            setattr(native, name, value)
        finally:
            if locked:
                native._lock_state()

    def _remove_member(self, native, name) -> None:
        if isinstance(native, Sequential) and name in native._d2p_names:
            i = native._d2p_names.index(name)
            del native._d2p_names[i]
            del native._d2p_layers[i]
        if isinstance(native, Container):
            members = native._d2p_members
            old = members.get(name)
            if old is None:
                return
            dict.__delitem__(members, name)
            native._d2p_kinds.pop(name, None)
            if all(v is not old for v in members.values()):
                native._tracker.untrack(old)
            if name in native._d2p_attributes:
                native._d2p_attributes.discard(name)
                object.__delattr__(native, name)
            return
        old = getattr(native, name, None)
        if old is not None:
            locked = native._tracker.locked
            native._tracker.unlock()
            native._tracker.untrack(old)
            object.__delattr__(native, name)
            if locked:
                native._lock_state()

    def _adopt(self, native, name, var) -> None:
        # A free keras.Variable is named "variable"; give it the path add_weight would.
        path = getattr(var, "_path", None)
        if isinstance(path, str) and "/" not in path and hasattr(var, "_name"):
            var._name = name
            var._path = f"{native.name}/{name}"

    def inspect(self, native) -> dict:
        layers, acts = keras.layers, keras.activations
        if isinstance(native, layers.Dense):
            # A Dense with an activation stays one layer: the neutral Linear calls it whole.
            state = self.layer_state(native, "linear")
            activation = getattr(native.activation, "__name__", "linear")
            return {"kind": "linear", "activation": None if activation == "linear" else activation,
                    "options": {
                "in_features": None if state is None else int(state["weight"].shape[0]),
                "out_features": int(native.units), "bias": bool(native.use_bias)}}
        if type(native) is layers.ReLU and not native.max_value and not native.negative_slope \
                and not native.threshold:
            return {"kind": "relu"}
        if type(native) is layers.Activation:
            table = {acts.relu: "relu", acts.sigmoid: "sigmoid", acts.tanh: "tanh",
                     acts.linear: "identity"}
            if native.activation in table:
                return {"kind": table[native.activation]}
            if native.activation is acts.softmax:
                return {"kind": "softmax", "options": {"dim": -1}}
        if type(native) is layers.Identity:
            return {"kind": "identity"}
        if type(native) is layers.Flatten and native.data_format == "channels_last":
            return {"kind": "flatten"}
        if type(native) is layers.Softmax and isinstance(native.axis, int):
            return {"kind": "softmax", "options": {"dim": int(native.axis)}}
        if isinstance(native, Sequential):
            return {"kind": "sequential",
                    "children": list(zip(native._d2p_names, native._d2p_layers))}
        if isinstance(native, keras.Sequential):
            return {"kind": "sequential",
                    "children": [(str(i), layer) for i, layer in enumerate(native.layers)]}
        conv = self._inspect_conv(native)
        if conv is not None:
            return conv
        if isinstance(native, BatchNorm1d):
            # d2lparams' own BatchNorm1d: PyTorch's names, as nn.BatchNorm1d shows them.
            return {"kind": "module", "children": [],
                    "parameters": [("weight", native.gamma), ("bias", native.beta)],
                    "buffers": [("running_mean", native.moving_mean),
                                ("running_var", native.moving_variance)]}
        if isinstance(native, Container):
            members: dict[str, list] = {"child": [], "parameter": [], "buffer": []}
            for name, value in native._d2p_members.items():
                members[native._d2p_kinds.get(name, "child")].append((name, value))
            return {"kind": "module", "children": members["child"],
                    "parameters": members["parameter"], "buffers": members["buffer"]}
        return self._inspect_layer(native)

    def _inspect_conv(self, native) -> dict | None:
        """Keras' Conv2D and pooling layers where PyTorch's meaning fits (``"same"`` only at
        stride 1; pooling ``"valid"``: Keras' "same" pooling does not count the padding),
        d2lparams' own NCHW layers, and ``GlobalAveragePooling2D(keepdims=True)``. The
        wrapped layer keeps its own call: a Keras model written for NHWC input still takes
        NHWC input; its kernel is shown in the canonical layout. Keras' rank-agnostic
        ``BatchNormalization`` stays a module."""
        layers = keras.layers
        if isinstance(native, layers.Conv2D) and native.activation in (
                None, keras.activations.linear) and not native.lora_enabled:
            padding = (0, 0) if native.padding == "valid" else native.padding  # Keras' default
            pad = getattr(native, "_d2p_pad", None)
            if pad is not None:
                padding = (pad[0], pad[2])
            elif isinstance(native, _layers.Conv2d) and padding == "same":
                padding = native._d2p_padding  # as built: a pair or "same"
            stride = getattr(native, "_d2p_subsample", None) or native.strides
            if padding == "same" and tuple(stride) != (1, 1):
                return None
            state = self.layer_state(native, "conv2d")
            return {"kind": "conv2d", "options": {
                "in_channels": None if state is None else
                int(state["weight"].shape[2]) * native.groups,
                "out_channels": int(native.filters), "kernel_size": native.kernel_size,
                "stride": tuple(stride), "padding": padding,
                "dilation": native.dilation_rate, "groups": int(native.groups),
                "bias": bool(native.use_bias)}}
        if isinstance(native, (layers.MaxPooling2D, layers.AveragePooling2D)) \
                and native.padding == "valid":
            pad = getattr(native, "_d2p_pad", None)
            kind = "max_pool2d" if isinstance(native, layers.MaxPooling2D) else "avg_pool2d"
            return {"kind": kind, "options": {
                "kernel_size": tuple(native.pool_size), "stride": tuple(native.strides),
                "padding": (0, 0) if pad is None else (pad[0], pad[2])}}
        if isinstance(native, _layers.AdaptiveAvgPool2d):
            return {"kind": "adaptive_avg_pool2d",
                    "options": {"output_size": native._d2p_size}}
        if type(native) is layers.GlobalAveragePooling2D and native.keepdims:
            return {"kind": "adaptive_avg_pool2d", "options": {"output_size": (1, 1)}}
        if isinstance(native, _layers.BatchNorm2d):
            return {"kind": "batch_norm2d", "options": {
                "num_features": int(native.gamma.shape[0]), "eps": float(native.epsilon),
                "momentum": round(1.0 - float(native.momentum), 12)}}
        return None

    def _inspect_layer(self, native) -> dict:
        """Any other Keras layer: its direct sub-layers and variables in tracking order,
        named by the attribute that holds them (``attr_0`` for list items), else by their
        own name. Trainable variables are parameters, non-trainable ones buffers."""
        names: dict = {}
        members = (keras.layers.Layer, keras.Variable)
        for attr, value in vars(native).items():  # public attributes, lists and dicts first
            if attr.startswith("_"):
                continue
            if isinstance(value, members):
                names.setdefault(id(value), attr)
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    names.setdefault(id(item), f"{attr}_{i}")
            elif isinstance(value, dict):
                for key, item in value.items():
                    names.setdefault(id(item), f"{attr}_{key}")
        for attr, value in vars(native).items():  # then private ones (self._kernel -> kernel)
            if attr.startswith("_") and isinstance(value, members) and attr.strip("_"):
                names.setdefault(id(value), attr.lstrip("_"))
        used: set = set()

        def name_of(obj, fallback):
            base = names.get(id(obj)) or fallback
            base = str(base).replace(".", "_").replace("/", "_") or "member"
            name, i = base, 1
            while name in used:
                name, i = f"{base}_{i}", i + 1
            used.add(name)
            return name

        children: list = []
        parameters: list = []
        buffers: list = []
        for layer in native._layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            children.append((name_of(layer, layer.name), layer))
        seen: set = set()
        for var in list(native._trainable_variables) + list(native._non_trainable_variables):
            if id(var) in seen:
                continue
            seen.add(id(var))
            self._remember(var)
            entry = (name_of(var, var.name), var)
            (parameters if var.trainable else buffers).append(entry)
        return {"kind": "module", "children": children, "parameters": parameters,
                "buffers": buffers}

    def call(self, native, args, training):
        x = args[0] if args else None
        if getattr(x, "dtype", None) is not None:
            dtype = self.dtype_name(x)
            if "float" in dtype and dtype != native.compute_dtype:
                # Keras would cast silently: refuse, as the other frameworks do (the neutral
                # layer turns this into its own message)
                raise TypeError(f"input dtype {dtype}, layer dtype {native.compute_dtype}")
        if call_origin.get() == "native":
            # Inside a native Keras call: Keras propagates its own ``training``.
            return native(*args)
        token = call_origin.set("neutral")
        try:
            return native(*args, training=bool(training))
        finally:
            call_origin.reset(token)

    def compile(self, native, options, training):
        # a graph captures its variables: the neutral layer asks again after the tree changed
        graph = tf.function(lambda *inputs: self.call(native, inputs, training), **options)
        return lambda args: graph(*args)

    def set_training(self, native, mode: bool) -> None:
        # Keras keeps no mode; the adapter's containers read it in a neutral call.
        object.__setattr__(native, MODE, bool(mode))

    # -- gradients -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def record(self):
        tape = tf.GradientTape()  # non-persistent, watches the variables it reads
        with tape:
            token = _tapes.set(_tapes.get() + (tape,))
            try:
                yield tape
            finally:
                _tapes.reset(token)

    def backprop(self, loss) -> None:
        tapes = _tapes.get()
        if not tapes:
            raise RuntimeError(
                "tensorflow backward needs a loss computed while recording; use "
                "d2p.backward(lambda: loss_fn(net(X), y))"
            )
        tape = tapes[-1]
        sources = []
        for tv in tape.watched_variables():
            var = self._keras_of.get(id(tv))
            if var is not None and self._tf_var(var) is tv and not var.trainable:
                continue  # frozen: Keras' tape would still give it a gradient
            sources.append(tv)
        grads = tape.gradient(tf.convert_to_tensor(loss), sources) if sources else []
        for tv, g in zip(sources, grads):
            if g is None:
                continue
            g = tf.convert_to_tensor(g)
            var = self._keras_of.get(id(tv))
            for hook in list(param_hooks(var).values()) if var is not None else ():
                replaced = hook(g)
                g = g if replaced is None else tf.convert_to_tensor(replaced)
            previous = getattr(tv, _GRAD, None)
            object.__setattr__(tv, _GRAD, g if previous is None else previous + g)

    def differentiate(self, loss, sources) -> list:
        tapes = _tapes.get()
        if not tapes:
            raise RuntimeError("tensorflow d2p.grad needs a loss computed while recording")
        variables = [self._tf_var(v) for v in sources]
        return list(tapes[-1].gradient(tf.convert_to_tensor(loss), variables))

    @contextlib.contextmanager
    def no_grad(self):
        with contextlib.ExitStack() as stack:
            for tape in _tapes.get():
                try:
                    stack.enter_context(tape.stop_recording())
                except (RuntimeError, ValueError):  # this tape no longer records
                    pass
            yield


def _pick(x, index, dim):
    # tf.gather_nd on (row, index) pairs: forward and backward of a 256x10 pick take 1.3 ms
    # in eager mode, tf.gather(batch_dims=1) 10.5 ms, keras.ops.take_along_axis more
    x = tf.convert_to_tensor(x)
    rank = x.shape.rank
    dim %= rank
    if dim != rank - 1:
        x = tf.transpose(x, [i for i in range(rank) if i != dim] + [dim])
    shape = tf.shape(index)
    if rank > 2:
        x, index = tf.reshape(x, (-1, x.shape[-1])), tf.reshape(index, (-1,))
    rows = tf.range(tf.size(index, out_type=index.dtype), dtype=index.dtype)
    picked = tf.gather_nd(x, tf.stack([rows, index], axis=1))
    return picked if rank == 2 else tf.reshape(picked, shape)


def _clamp(x, low, high):
    if low is not None:
        x = keras.ops.maximum(x, low)
    return x if high is None else keras.ops.minimum(x, high)


def _parameter_to_tensor(value, dtype=None, name=None, as_ref=False):
    """``tf.convert_to_tensor`` of a d2lparams Parameter: its live variable, read on the
    tape (without this, ``tensor + Parameter`` converts it through ``__array__`` into a
    constant, which silently gets no gradient)."""
    if not isinstance(value._adapter, TensorFlowAdapter):
        return NotImplemented
    return tf.convert_to_tensor(value.value(), dtype=dtype, name=name)


tf.register_tensor_conversion_function(Parameter, _parameter_to_tensor)

def _pads(padding) -> tuple | None:
    return None if tuple(padding) == (0, 0) else (padding[0], padding[0], padding[1], padding[1])


def _conv2d(self, x, weight, bias, stride, padding, dilation, groups):
    padding, pad = _layers.conv_padding(padding, tuple(weight.shape[2:]), stride, dilation)
    subsample = None
    if max(stride) > 1 and max(dilation) > 1:  # TensorFlow refuses both at once
        subsample, stride = stride, (1, 1)
    kernel = tf.transpose(weight, (2, 3, 1, 0))  # canonical (out, in, kh, kw) -> HWIO
    return _layers.to_nchw(_layers.conv2d_nhwc(_layers.to_nhwc(x), kernel, bias, stride,
                                               padding, dilation, groups, pad, subsample))


def _pool(fill):
    def pool(self, x, kernel, stride, padding):
        return _layers.to_nchw(_layers.pool2d_nhwc(_layers.to_nhwc(x), kernel, stride,
                                                   _pads(padding), fill))
    return pool


# convolution and pooling ops (NCHW, canonical weight), computed in NHWC
TensorFlowAdapter.ops_table = {
    **TensorFlowAdapter.ops_table,
    "conv2d": _conv2d,
    "max_pool2d": _pool(-np.inf),
    "avg_pool2d": _pool(0.0),
}
