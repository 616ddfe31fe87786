"""TensorFlow / Keras 3 adapter.

Quirks absorbed here:
    * layout: ``keras.layers.Dense.kernel`` is already ``(in, out)``, the canonical layout;
      nothing is transposed.
    * lazy: a ``Dense`` without an input size has no weights until its first call (or
      ``build``); ``linear`` builds it at once when the size is known, so parameters exist
      right after construction.
    * names: Keras names variables by global counters (``sequential/dense/kernel``); those
      are its own names. A free ``keras.Variable`` is just ``variable``: when it is first
      registered on a layer it takes the path ``<layer>/<attribute>`` as ``add_weight`` would
      give it.
    * containers: ``keras.Sequential`` is not used. It builds a functional graph by tracing
      every layer symbolically at the first call (a custom forward with Python control flow
      on values fails there, and its side effects run twice), and it inserts an
      ``InputLayer`` with a fixed batch shape into ``layers``. A small ``Layer`` that applies
      an ordered list of layers replaces it (the same layer may appear twice; layers can be
      added after the first call).
    * build/lock: a Keras layer whose ``build`` runs is *locked* (no new variable or
      sub-layer afterwards) and an unbuilt layer with unbuilt children is traced
      symbolically before its first call. The adapter's own layers are marked built at
      construction, which avoids both.
    * attributes: registering a child by ``setattr`` only when the name is a free Python
      identifier (``output``, ``input``, ``weights``, ``name``, ``trainable``, ``call`` ... are
      Keras' own); every member is also kept in a Keras-tracked dict, so any name works.
    * modes: Keras has no train/eval state, only ``training=`` per call (default inference).
      A neutral call passes each module's mode explicitly (d2lparams' containers pass each
      child's own mode, as PyTorch does); a native call keeps Keras' own propagation.
    * gradients: nothing is stored natively. ``record`` opens a ``tf.GradientTape``;
      ``backward`` differentiates w.r.t. the variables the tape watched and *adds* each
      gradient into an accumulator kept on the underlying ``tf.Variable`` (a ``keras.Variable``
      is unhashable, so no dict/WeakKeyDictionary keyed by it).
    * freezing: ``keras.Variable.trainable = False`` does not change the underlying
      ``tf.Variable`` (its ``trainable`` is fixed at creation), so the tape still watches and
      differentiates it. Frozen variables are skipped explicitly. Conversely a variable created
      with ``trainable=False`` is never watched, so parameters are always created trainable and
      frozen afterwards (unfreezing then works).
    * randomness: only ``keras.utils.set_random_seed`` makes Keras initializers reproduce; a
      fresh initializer instance is made for every native init (one instance reused draws the
      same values every time). ``VarianceScaling`` computes fans from the last two axes; the
      scale is corrected so that the fan is d2lparams' one (they agree for 2-D weights).
    * batch norm: ``keras.layers.BatchNormalization`` updates the moving variance with the
      *biased* batch variance, its ``momentum`` is ``1 -`` PyTorch's, and a built layer accepts
      one input rank only. A subclass keeps its variables (``gamma``, ``beta``,
      ``moving_mean``, ``moving_variance``) and replaces ``call`` with PyTorch's statistics.
    * SGD: no ``.grad`` exists, so ``sgd_update`` applies PyTorch's formula to the
      accumulator with TF ops and ``assign_sub`` (in place, the Variable keeps its identity).
    * wrap: ``keras.Sequential`` and d2lparams' containers are sequentials; a ``Dense`` is a
      linear layer even with a fused activation (the native call keeps it); any other layer is
      a module whose members are named by the attribute that holds them.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import weakref

import numpy as np

from .base import Backend

# None: no d2lparams-driven call is running; "neutral": a neutral module was called (each
# module's own mode applies); "native": a native Keras call reached a custom forward (Keras'
# own ``training`` propagation applies).
_call_origin: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "d2p_tf_call_origin", default=None
)
# The gradient tapes opened by ``record`` (innermost last).
_tapes: contextvars.ContextVar[tuple] = contextvars.ContextVar("d2p_tf_tapes", default=())

_GRAD = "_d2p_grad"  # attribute of a tf.Variable holding its accumulated gradient (NumPy)
_MODE = "_d2p_training"  # attribute of a native layer holding its neutral mode


class TensorFlowBackend(Backend):
    name = "tensorflow"
    aliases = ("tf", "keras")
    framework_name = "TensorFlow/Keras 3"
    import_names = ("tensorflow", "keras")
    extra = "tensorflow"
    distributions = ("tensorflow-cpu", "tensorflow", "keras")
    tensor_modules = ("tensorflow", "keras")
    preload_rank = 60
    linear_weight_transposed = False

    # -- lifetime ------------------------------------------------------------------------------
    def load(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import keras
        import tensorflow as tf

        if not keras.__version__.startswith("3.") or not hasattr(keras, "Variable"):
            raise ImportError(
                f"d2lparams needs Keras 3, found keras {keras.__version__}; "
                "install tensorflow >= 2.16 (it ships Keras 3)"
            )
        if keras.backend.backend() != "tensorflow":
            raise ImportError(
                f"Keras runs on the {keras.backend.backend()!r} backend here; set the "
                "environment variable KERAS_BACKEND=tensorflow before anything imports keras"
            )
        self.tf = tf
        self.keras = keras
        self.ops = keras.ops
        # id(tf.Variable) -> its keras.Variable, for every variable this adapter has seen;
        # backward uses it to skip frozen ones.
        self._keras_of: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        adapter = self

        class _Container(keras.layers.Layer):
            """A Keras layer that holds d2lparams members under any name."""

            def __init__(self, **kwargs):
                keras.layers.Layer.__init__(self, **kwargs)
                # Nothing to build: marking it built keeps Keras from tracing ``call``
                # symbolically and from locking the layer (members may come later).
                self.built = True
                self._d2p_members = {}  # Keras tracks the layers and variables inside
                self._d2p_kinds = {}  # name -> "child" | "parameter" | "buffer"
                self._d2p_attributes = set()

            def _d2p_add(self, name, value, kind="child"):
                self._d2p_kinds[name] = kind
                members = self._d2p_members
                old = members.get(name)
                if old is not None and old is not value:
                    dict.__delitem__(members, name)
                    if all(v is not old for v in members.values()):
                        self._tracker.untrack(old)
                members[name] = value
                if name in self._d2p_attributes or (
                    name.isidentifier()
                    and not name.startswith("_")
                    and not hasattr(type(self), name)
                    and name not in self.__dict__
                ):
                    setattr(self, name, value)
                    self._d2p_attributes.add(name)

        class Custom(_Container):
            """A Keras layer whose call is a neutral module's forward."""

            def call(self, *args, training=None):
                module = self.__dict__["_d2p_module"]
                if _call_origin.get() is None:
                    token = _call_origin.set("native")
                    try:
                        return module._native_forward(*args)
                    finally:
                        _call_origin.reset(token)
                return module._native_forward(*args)

        class Sequential(_Container):
            """Applies its layers in order; the same layer may appear twice (tied)."""

            def __init__(self, **kwargs):
                _Container.__init__(self, **kwargs)
                self._d2p_layers = []
                self._d2p_names = []

            @property
            def layers(self):
                return list(self._d2p_layers)

            def call(self, inputs, training=None):
                x = inputs
                for layer in self._d2p_layers:
                    x = layer(x, training=adapter._child_mode(layer, training))
                return x

        class ModuleList(_Container):
            """Holds layers; it has no call of its own."""

            @property
            def layers(self):
                return list(self._d2p_members.values())

            def call(self, *args, training=None):
                raise TypeError(
                    f"{self.name} is a ModuleList: it holds layers but has no call; call its "
                    "layers instead"
                )

        class BatchNorm1d(keras.layers.BatchNormalization):
            """``keras.layers.BatchNormalization`` over axis 1 with PyTorch's statistics: the
            running variance is updated with the unbiased batch variance (Keras: biased),
            and one built layer takes ``(N, C)`` and ``(N, C, L)`` input alike."""

            def call(self, inputs, training=None, mask=None):
                ops = keras.ops
                x = ops.cast(inputs, "float32")
                if training and self.trainable:
                    axes = [i for i in range(len(x.shape)) if i != 1]
                    count = 1
                    for i in axes:
                        count *= int(x.shape[i])
                    if count < 2:
                        raise ValueError(
                            f"{self.name}: batch normalization in training mode needs more "
                            f"than 1 value per channel, got input of shape {tuple(x.shape)}; "
                            "use a larger batch or eval() mode"
                        )
                    mean, variance = ops.moments(x, axes=axes)
                    unbiased = variance * (count / (count - 1))
                    self.moving_mean.assign(
                        self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
                    self.moving_variance.assign(
                        self.moving_variance * self.momentum + unbiased * (1.0 - self.momentum))
                else:
                    mean, variance = self.moving_mean, self.moving_variance
                return ops.batch_normalization(
                    x, mean, variance, axis=1, offset=self.beta, scale=self.gamma,
                    epsilon=self.epsilon,
                )

        self._BatchNorm1d = BatchNorm1d
        self._Custom = Custom
        self._Sequential = Sequential
        self._ModuleList = ModuleList
        self._Container = _Container

    def version(self) -> str:
        return f"{self.tf.__version__} (Keras {self.keras.__version__})"

    def seed(self, n: int) -> None:
        # tf.random.set_seed alone does not make Keras initializers reproduce.
        self.keras.utils.set_random_seed(n)

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
        return tv if isinstance(tv, self.tf.Variable) else var

    def _child_mode(self, layer, training):
        if _call_origin.get() == "neutral":
            return getattr(layer, _MODE, training)
        return training

    # -- tensors -------------------------------------------------------------------------------
    def is_tensor(self, x) -> bool:
        tf = self.tf
        return isinstance(x, (tf.Tensor, tf.Variable, self.keras.Variable))

    def tensor(self, array):
        return self.tf.constant(np.asarray(array, dtype=np.float32))

    def to_numpy(self, x) -> np.ndarray:
        if hasattr(x, "numpy"):
            return np.array(x.numpy(), copy=True)
        return np.array(self.ops.convert_to_numpy(x), copy=True)

    # -- parameters ----------------------------------------------------------------------------
    def create_parameter(self, array, requires_grad=True):
        # Created trainable so that the tape watches the underlying tf.Variable; frozen after.
        var = self.keras.Variable(np.asarray(array, dtype=np.float32), dtype="float32",
                                  trainable=True)
        if not requires_grad:
            var.trainable = False
        return self._remember(var)

    def create_buffer(self, array):
        return self.keras.Variable(np.asarray(array, dtype=np.float32), dtype="float32",
                                   trainable=False)

    def buffer_tensor(self, buf):
        return buf

    def param_value(self, param):
        return param

    def param_shape(self, param) -> tuple:
        return tuple(int(s) for s in param.shape)

    def param_get(self, param) -> np.ndarray:
        return np.array(param.numpy(), dtype=np.float32, copy=True)

    def param_set(self, param, array) -> None:
        param.assign(np.asarray(array, dtype=np.float32))

    def param_requires_grad(self, param) -> bool:
        self._remember(param)
        return bool(param.trainable)

    def param_set_requires_grad(self, param, flag: bool) -> None:
        self._remember(param)
        param.trainable = bool(flag)

    def param_grad(self, param):
        self._remember(param)
        g = getattr(self._tf_var(param), _GRAD, None)
        return None if g is None else g.copy()

    def param_has_grad(self, param) -> bool:
        return getattr(self._tf_var(param), _GRAD, None) is not None

    def param_zero_grad(self, param) -> None:
        tv = self._tf_var(param)
        if getattr(tv, _GRAD, None) is not None:
            object.__delattr__(tv, _GRAD)

    def native_parameter_names(self, native) -> dict:
        names = {}
        for var in native.weights:
            self._remember(var)
            names.setdefault(id(var), var.path)
        return names

    def init_native(self, param, kind, transposed, **spec) -> None:
        inits = self.keras.initializers
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
    def linear(self, in_features, out_features, bias):
        layer = self.keras.layers.Dense(out_features, use_bias=bias)
        if in_features is not None:
            layer.build((None, in_features))
            self.linear_parameters(layer)
        return layer

    def linear_parameters(self, native):
        if not native.built:
            return None, None
        kernel = getattr(native, "_kernel", None)
        if not isinstance(kernel, self.keras.Variable):
            kernel = native.kernel
        return self._remember(kernel), self._remember(native.bias)

    def activation(self, kind, **options):
        layers = self.keras.layers
        table = {
            "relu": layers.ReLU,
            "sigmoid": lambda: layers.Activation("sigmoid"),
            "tanh": lambda: layers.Activation("tanh"),
            "identity": layers.Identity,
            "flatten": layers.Flatten,
            "softmax": lambda dim: layers.Softmax(axis=dim),
        }
        return table[kind](**options)

    def dropout(self, p):
        # Draws from a SeedGenerator seeded at construction from Python's random, which
        # keras.utils.set_random_seed seeds.
        return self.keras.layers.Dropout(rate=p)

    def batch_norm(self, num_features, eps, momentum):
        # Keras' momentum is the weight of the old value: 1 - PyTorch's.
        layer = self._BatchNorm1d(axis=1, momentum=1.0 - momentum, epsilon=eps)
        layer.build((None, num_features))
        layer.input_spec = self.keras.layers.InputSpec(
            min_ndim=2, max_ndim=3, axes={1: num_features}
        )
        for var in (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance):
            self._remember(var)
        return layer

    def batch_norm_state(self, native) -> tuple:
        return native.gamma, native.beta, native.moving_mean, native.moving_variance

    def sequential(self):
        return self._Sequential()

    def sequential_append(self, native, name, child) -> None:
        native._d2p_layers.append(child)
        native._d2p_names.append(name)
        native._d2p_add(name, child, "child")

    def module_list(self):
        return self._ModuleList()

    def custom(self, module):
        klass = self.native_class_for(module, self._Custom)
        layer = klass()
        # Not an attribute Keras sees: the neutral module is no native child.
        layer.__dict__["_d2p_module"] = module
        return layer

    def _add_member(self, native, name, value, kind) -> None:
        if isinstance(native, self._Container):
            native._d2p_add(name, value, kind)
        else:
            setattr(native, name, value)

    def register_child(self, native, name, child) -> None:
        self._add_member(native, name, child, "child")

    def _adopt(self, native, name, var) -> None:
        # A free keras.Variable is named "variable"; give it the path add_weight would.
        path = getattr(var, "_path", None)
        if isinstance(path, str) and "/" not in path and hasattr(var, "_name"):
            var._name = name
            var._path = f"{native.name}/{name}"

    def register_parameter(self, native, name, param) -> None:
        self._remember(param)
        self._adopt(native, name, param)
        self._add_member(native, name, param, "parameter")

    def register_buffer(self, native, name, buf) -> None:
        self._adopt(native, name, buf)
        self._add_member(native, name, buf, "buffer")

    def inspect(self, native) -> dict:
        keras = self.keras
        layers, acts = keras.layers, keras.activations
        if isinstance(native, layers.Dense):
            # A Dense with an activation stays one layer: the neutral Linear calls it whole.
            weight, _ = self.linear_parameters(native)
            return {"kind": "linear", "options": {
                "in_features": None if weight is None else int(weight.shape[0]),
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
        if isinstance(native, self._Sequential):
            return {"kind": "sequential",
                    "children": list(zip(native._d2p_names, native._d2p_layers))}
        if isinstance(native, keras.Sequential):
            return {"kind": "sequential",
                    "children": [(str(i), layer) for i, layer in enumerate(native.layers)]}
        if isinstance(native, self._BatchNorm1d):
            # d2lparams' own BatchNorm1d: PyTorch's names, as nn.BatchNorm1d shows them.
            return {"kind": "module", "children": [],
                    "parameters": [("weight", native.gamma), ("bias", native.beta)],
                    "buffers": [("running_mean", native.moving_mean),
                                ("running_var", native.moving_variance)]}
        if isinstance(native, self._Container):
            members = {"child": [], "parameter": [], "buffer": []}
            for name, value in native._d2p_members.items():
                members[native._d2p_kinds.get(name, "child")].append((name, value))
            return {"kind": "module", "children": members["child"],
                    "parameters": members["parameter"], "buffers": members["buffer"]}
        return self._inspect_layer(native)

    def _inspect_layer(self, native) -> dict:
        """Any other Keras layer: its direct sub-layers and variables in tracking order,
        named by the attribute that holds them (``attr_0`` for list items), else by their
        own name. Trainable variables are parameters, non-trainable ones buffers."""
        keras = self.keras
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

        children, parameters, buffers = [], [], []
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
        if _call_origin.get() == "native":
            # Inside a native Keras call: Keras propagates its own ``training``.
            return native(*args)
        token = _call_origin.set("neutral")
        try:
            return native(*args, training=bool(training))
        finally:
            _call_origin.reset(token)

    def set_training(self, native, mode: bool) -> None:
        # Keras keeps no mode; the adapter's containers read it in a neutral call.
        object.__setattr__(native, _MODE, bool(mode))

    # -- autograd ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def record(self):
        tape = self.tf.GradientTape()  # non-persistent, watches the variables it reads
        with tape:
            token = _tapes.set(_tapes.get() + (tape,))
            try:
                yield tape
            finally:
                _tapes.reset(token)

    def backward(self, loss) -> float:
        tapes = _tapes.get()
        if not tapes:
            raise RuntimeError(
                "tensorflow backward needs a loss computed while recording; use "
                "d2p.backward(lambda: loss_fn(net(X), y))"
            )
        loss = self.tf.convert_to_tensor(loss)
        if loss.shape.num_elements() != 1:
            raise ValueError(
                f"d2p.backward needs a scalar loss, got a tensor of shape {tuple(loss.shape)}; "
                "reduce it first, e.g. ops.sum(...) or ops.mean(...)"
            )
        tape = tapes[-1]
        sources = []
        for tv in tape.watched_variables():
            var = self._keras_of.get(id(tv))
            if var is not None and self._tf_var(var) is tv and not var.trainable:
                continue  # frozen: Keras' tape would still give it a gradient
            sources.append(tv)
        grads = tape.gradient(loss, sources) if sources else []
        for tv, g in zip(sources, grads):
            if g is None:
                continue
            g = np.asarray(self.tf.convert_to_tensor(g).numpy(), dtype=np.float32)
            previous = getattr(tv, _GRAD, None)
            object.__setattr__(tv, _GRAD, g if previous is None else previous + g)
        return float(np.asarray(loss.numpy()).reshape(()))

    @contextlib.contextmanager
    def no_grad(self):
        with contextlib.ExitStack() as stack:
            for tape in _tapes.get():
                try:
                    stack.enter_context(tape.stop_recording())
                except (RuntimeError, ValueError):  # this tape no longer records
                    pass
            yield

    def sgd_update(self, param, buf, lr, momentum, weight_decay, dampening, nesterov):
        tf = self.tf
        with self.no_grad():
            g = tf.constant(getattr(self._tf_var(param), _GRAD))
            if weight_decay:
                g = g + weight_decay * tf.convert_to_tensor(param)
            if momentum:
                if buf is None:
                    buf = tf.identity(g)
                else:
                    buf = momentum * tf.convert_to_tensor(buf) + (1 - dampening) * g
                g = g + momentum * buf if nesterov else buf
            param.assign_sub(lr * g)
        return buf

    # -- operations ----------------------------------------------------------------------------
    def relu(self, x):
        return self.ops.relu(x)

    def sigmoid(self, x):
        return self.ops.sigmoid(x)

    def tanh(self, x):
        return self.ops.tanh(x)

    def softmax(self, x, dim):
        return self.ops.softmax(x, axis=dim)

    def matmul(self, a, b):
        return self.ops.matmul(a, b)

    def transpose(self, x):
        return self.ops.transpose(x)

    def mean(self, x, dim, keepdim):
        return self.ops.mean(x, axis=dim, keepdims=keepdim)

    def sum(self, x, dim, keepdim):
        return self.ops.sum(x, axis=dim, keepdims=keepdim)

    def reshape(self, x, shape):
        return self.ops.reshape(x, shape)

    def concat(self, tensors, dim):
        return self.ops.concatenate(tensors, axis=dim)
