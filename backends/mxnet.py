"""MXNet Gluon adapter (mxnet 1.9.1, legacy ``mx.nd`` API).

Quirks absorbed here:
    * import: mxnet 1.9.1 reads ``numpy.bool``, which numpy >= 1.24 removed; ``load`` restores
      it (as the builtin ``bool``, what it was) before importing mxnet, without touching
      ``numpy.bool`` where it exists (numpy 2), so no FutureWarning is raised.
    * layout: ``gluon.nn.Dense.weight`` is ``(out, in)``; d2lparams shows ``(in, out)``
      (``linear_weight_transposed``). ``Dense`` flattens its input by default; d2lparams builds
      it with ``flatten=False`` so that, as in PyTorch, it applies to the last axis.
    * lazy: ``Dense(in_units=0)`` has a weight of shape ``(out, 0)`` and raises mxnet's own
      ``DeferredInitializationError`` until the first call; ``linear_parameters`` reports
      ``(None, None)`` meanwhile and the neutral layer raises its own error.
    * defaults: ``initialize()`` gives ``U(±0.07)`` weights and zero biases, whatever the fan.
    * names: gluon names parameters with global counters (``dense0_weight``); those are the
      "native names". A parameter made by ``nn.Parameter`` gets a provisional unique name
      (``d2p_param3``) and, when first registered on a block, the name Gluon itself would give
      it (``block.prefix + attribute``, e.g. ``mymodule0_weight``).
    * registration: a ``gluon.Parameter`` assigned as a Block attribute lands in
      ``_reg_params`` (structural names, ``save_parameters``) but NOT in ``collect_params()``
      (``Trainer``, ``initialize``, ``zero_grad``); ``register_parameter`` / ``register_buffer``
      put it in both, so the framework's own tools train it.
    * gradients: Gluon's default ``grad_req='write'`` overwrites the gradient at every
      backward. Every parameter this adapter creates or hands out gets ``grad_req='add'``
      (frozen: ``'null'``) so gradients accumulate as in PyTorch. Gluon keeps a zero gradient
      buffer from initialisation on and cannot say "no gradient yet": the adapter uses MXNet's
      own per-array ``_fresh_grad`` flag (set by ``backward`` only on the arrays the graph
      reached, the flag ``Trainer`` uses to detect stale gradients) and makes it sticky on
      the parameter after each backward, so ``param_grad`` is ``None`` before any backward
      that reached the parameter and after ``zero_grad`` (which zeroes the buffer and clears
      both flags).
    * freezing: ``grad_req='null'`` drops the gradient buffer (mxnet re-creates a zero one on
      unfreezing); the value is shared, so nothing else changes.
    * oneDNN bug: with MKLDNN (on in the CPU wheel) ``FullyConnected``'s backward gives the
      bias a ZERO gradient when the weight has ``grad_req='null'`` (same bug class as
      apache/mxnet#15464 for Convolution). The adapter's ``Dense`` subclass adds the bias
      outside the operator in exactly that case.
    * modes: training vs inference is not stored on a Block; it comes from
      ``autograd.train_mode()`` / ``predict_mode()``, which ``call`` enters from the neutral
      module's ``training`` flag. ``set_training`` keeps the flag on the block and the adapter's
      ``Sequential`` applies each child in its own mode (``net[1].eval()``). Recording is
      ``autograd.record()``; ``backward`` outside it raises natively.
    * BatchNorm: Gluon's operator updates the running statistics in backward (never in a
      forward pass), with the biased variance and ``running = m·running + (1-m)·batch``; the
      adapter's ``BatchNorm`` subclass computes PyTorch's meaning with ``nd`` operations
      (forward update, unbiased variance, ``momentum`` as in PyTorch).
    * buffers: the legacy NDArray has no ``__array__`` (``np.asarray`` recurses and fails);
      ``buffer_tensor`` returns an NDArray subclass view of the same memory that has one.
    * scalars: a legacy gluon ``Parameter`` cannot have shape ``()`` (it means "unknown");
      a 0-d ``nn.Parameter`` is stored with shape ``(1,)`` and reported as ``()``.
    * initializers: ``mx.init.Xavier`` computes fans from the native shape ``(out, in)``
      (``fan_in = shape[1]``); ``init_native`` picks ``factor_type`` and ``magnitude`` so that the
      distribution is PyTorch's, and writes in place (``set_data``) so the gradient buffer and
      every shared place survive; a Parameter's own ``init`` attribute (``zeros`` for biases)
      would win over a global initializer, so the initializer is applied explicitly.
    * ops: ``nd.dot`` contracts the last axis of ``a`` with the first of ``b``; batched
      ``matmul`` goes through ``nd.batch_dot`` with broadcast batch axes. Legacy ``reshape``
      gives 0 and negative codes special meanings; ``reshape`` resolves ``-1`` itself.
"""

from __future__ import annotations

import itertools
import math
import warnings
import weakref

import numpy as np

from .base import Backend


class MXNetBackend(Backend):
    name = "mxnet"
    aliases = ("gluon",)
    framework_name = "MXNet Gluon"
    import_names = ("mxnet",)
    extra = "mxnet"
    distributions = ("mxnet",)
    tensor_modules = ("mxnet",)
    preload_rank = 40
    linear_weight_transposed = True

    @classmethod
    def hazards(cls) -> list[str]:
        from importlib import metadata

        try:
            major, minor = (int(x) for x in metadata.version("numpy").split(".")[:2])
        except (metadata.PackageNotFoundError, ValueError):
            return []
        if major >= 2:
            return ['numpy >= 2 is installed but mxnet 1.9.1 needs numpy < 2: pip install "numpy<2"']
        if (major, minor) >= (1, 24):
            return ["numpy >= 1.24 removed numpy.bool, which mxnet needs: the mxnet adapter "
                    "restores it itself (nothing to do)"]
        return []

    # -- lifetime ------------------------------------------------------------------------------
    def load(self) -> None:
        if "bool" not in np.__dict__:  # numpy >= 1.24 removed the alias mxnet 1.9.1 reads
            np.bool = bool
        with warnings.catch_warnings():
            # mxnet's import touches numpy functions removed in 1.20 (np.mirr, ...) and
            # distutils' LooseVersion: DeprecationWarnings a user can do nothing about
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mxnet(\.|$)")
            import mxnet as mx
            from mxnet import autograd, gluon, nd

        self.mx = mx
        self.nd = nd
        self.autograd = autograd
        self.gluon = gluon
        self.NDArray = nd.NDArray
        self.Parameter = gluon.Parameter
        self._ctx = mx.cpu()
        self._names = itertools.count()
        #: every parameter the adapter created or handed out: scanned after each backward
        self._seen: weakref.WeakSet = weakref.WeakSet()

        class Custom(gluon.Block):
            """A native block whose forward is the neutral module's forward."""

            def __init__(self, module):
                gluon.Block.__init__(self)
                object.__setattr__(self, "_d2p_module", module)

            def forward(self, *args):
                return self._d2p_module._native_forward(*args)

        class ModuleList(gluon.Block):
            """A container of child blocks; like ``torch.nn.ModuleList`` it has no forward."""

            def __repr__(self):
                lines = [f"  ({key}): " + repr(block).replace("\n", "\n  ")
                         for key, block in self._children.items()]
                return "ModuleList(\n" + "\n".join(lines) + "\n)"

        class Identity(gluon.HybridBlock):
            """Returns its input."""

            def hybrid_forward(self, F, x):
                return F.identity(x)

        class Softmax(gluon.HybridBlock):
            """Softmax over one axis."""

            def __init__(self, axis=-1):
                gluon.HybridBlock.__init__(self)
                self._axis = axis

            def hybrid_forward(self, F, x):
                return F.softmax(x, axis=self._axis)

            def __repr__(self):
                return f"Softmax(axis={self._axis})"

        class Dense(gluon.nn.Dense):
            """``gluon.nn.Dense`` with one fix: with oneDNN (MKLDNN, on in the CPU wheels),
            FullyConnected's backward gives the bias a ZERO gradient when the weight does not
            require one (grad_req='null'). Then the bias is added outside the operator."""

            def hybrid_forward(self, F, x, weight, bias=None):
                if (
                    bias is not None
                    and self.weight.grad_req == "null"
                    and self.bias.grad_req != "null"
                ):
                    out = F.FullyConnected(x, weight, no_bias=True, num_hidden=self._units,
                                           flatten=self._flatten, name="fwd")
                    out = F.broadcast_add(out, bias)
                    return self.act(out) if self.act is not None else out
                return gluon.nn.Dense.hybrid_forward(self, F, x, weight, bias)

        class Sequential(gluon.nn.Sequential):
            """``gluon.nn.Sequential`` whose children keep the mode d2lparams gave them
            (``net[1].eval()``): Gluon itself has one global mode, from autograd."""

            def forward(self, x, *args):
                for block in self._children.values():
                    mode = block.__dict__.get("_d2p_training")
                    if mode is None or mode == autograd.is_training():
                        x = block(x, *args)
                    else:
                        with autograd.train_mode() if mode else autograd.predict_mode():
                            x = block(x, *args)
                    args = []
                    if isinstance(x, (tuple, list)):
                        args = x[1:]
                        x = x[0]
                if args:
                    x = tuple([x] + list(args))
                return x

        class BatchNorm(gluon.nn.BatchNorm):
            """``gluon.nn.BatchNorm`` with PyTorch's meaning (imperative calls). Natively
            Gluon updates the running statistics in BACKWARD (not in a forward pass), with
            the biased batch variance and ``running = m·running + (1-m)·batch``; here the
            forward pass in training mode updates them with ``momentum`` as in PyTorch and the
            unbiased variance. A hybridized (symbolic) block runs Gluon's own operator."""

            def __init__(self, num_features, eps, momentum):
                gluon.nn.BatchNorm.__init__(
                    self, axis=1, momentum=1.0 - momentum, epsilon=eps,
                    in_channels=num_features,
                )
                self._d2p_momentum = momentum

            def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
                if F is not nd:
                    return gluon.nn.BatchNorm.hybrid_forward(
                        self, F, x, gamma, beta, running_mean, running_var)
                if x.ndim not in (2, 3):
                    raise ValueError(
                        f"BatchNorm1d expects (N, C) or (N, C, L) input, got shape {x.shape}")
                axes = (0,) if x.ndim == 2 else (0, 2)
                shape = (1, -1) if x.ndim == 2 else (1, -1, 1)
                eps = self._kwargs["eps"]
                if autograd.is_training():
                    n = x.size // x.shape[1]
                    if n < 2:
                        raise ValueError(
                            "BatchNorm1d in training mode needs more than 1 value per channel, "
                            f"got input of shape {x.shape}; use a larger batch or eval()")
                    mean = nd.mean(x, axis=axes)
                    centered = nd.broadcast_sub(x, mean.reshape(shape))
                    var = nd.mean(nd.square(centered), axis=axes)  # biased, to normalize
                    m = self._d2p_momentum
                    with autograd.pause():
                        running_mean[:] = (1 - m) * running_mean + m * mean.detach()
                        running_var[:] = (1 - m) * running_var + m * var.detach() * (n / (n - 1))
                else:
                    centered = nd.broadcast_sub(x, running_mean.reshape(shape))
                    var = running_var
                scale = gamma / nd.sqrt(var + eps)
                return nd.broadcast_add(nd.broadcast_mul(centered, scale.reshape(shape)),
                                        beta.reshape(shape))

        class NDArray(nd.NDArray):
            """What ``named_buffers`` yields: an NDArray sharing the buffer's memory that
            NumPy can also read (``np.asarray``), as torch/tf/paddle tensors can; the legacy
            NDArray has no ``__array__``."""

            __slots__ = ()

            def __array__(self, dtype=None, copy=None):
                value = self.asnumpy()
                return value if dtype is None else value.astype(dtype)

        self._Custom = Custom
        self._Dense = Dense
        self._BufferTensor = NDArray
        self._Sequential = Sequential
        self._BatchNorm = BatchNorm
        self._ModuleList = ModuleList
        self._Identity = Identity
        self._Softmax = Softmax

    def version(self) -> str:
        return self.mx.__version__

    def seed(self, n: int) -> None:
        self.mx.random.seed(n)

    # -- tensors -------------------------------------------------------------------------------
    def is_tensor(self, x) -> bool:
        return isinstance(x, self.NDArray)

    def tensor(self, array):
        return self.nd.array(np.asarray(array, dtype=np.float32), ctx=self._ctx, dtype="float32")

    def to_numpy(self, x) -> np.ndarray:
        if isinstance(x, self.Parameter):
            return self.param_get(x)
        return np.array(x.asnumpy(), copy=True)

    # -- parameters ----------------------------------------------------------------------------
    def _track(self, param):
        """Remember ``param`` and make its gradient accumulate (PyTorch's meaning)."""
        if param is not None:
            if param.grad_req == "write":
                param.grad_req = "add"
            self._seen.add(param)
        return param

    def _new_parameter(self, array, grad_req, differentiable=True):
        array = np.asarray(array, dtype=np.float32)
        scalar = array.ndim == 0
        stored = array.reshape(1) if scalar else array
        if stored.size == 0:
            raise ValueError(
                f"MXNet Gluon cannot hold a parameter or buffer of shape {array.shape}: a 0 in "
                "a legacy Gluon shape means 'unknown size'; give every axis at least one element"
            )
        param = self.Parameter(
            f"d2p_param{next(self._names)}", grad_req=grad_req, shape=stored.shape,
            dtype="float32", differentiable=differentiable,
        )
        param._d2p_provisional = True
        if scalar:
            param._d2p_shape = ()
        with self.autograd.pause():
            param.initialize(init=self.mx.init.Zero(), ctx=self._ctx)
            param.set_data(self.nd.array(stored, ctx=self._ctx, dtype="float32"))
        return param

    def create_parameter(self, array, requires_grad=True):
        param = self._new_parameter(array, "add" if requires_grad else "null")
        self._seen.add(param)
        return param

    def create_buffer(self, array):
        # as BatchNorm's running statistics: a Parameter that never takes a gradient
        return self._new_parameter(array, "null", differentiable=False)

    def buffer_tensor(self, buf):
        data = buf.data()
        view = data.reshape(() if self._is_scalar(buf) else data.shape)  # shares the memory
        view.__class__ = self._BufferTensor  # same layout: only adds __array__
        return view

    def param_value(self, param):
        return param.data()

    def _is_scalar(self, param) -> bool:
        return getattr(param, "_d2p_shape", None) == ()

    def param_shape(self, param) -> tuple:
        if self._is_scalar(param):
            return ()
        return tuple(param.shape)

    def param_get(self, param) -> np.ndarray:
        value = param.list_data()[0].asnumpy()  # already a fresh float32 copy
        return value.reshape(()) if self._is_scalar(param) else value

    def param_set(self, param, array) -> None:
        array = np.asarray(array, dtype=np.float32)
        if self._is_scalar(param):
            array = array.reshape(1)
        with self.autograd.pause():
            param.set_data(self.nd.array(array, ctx=self._ctx, dtype="float32"))

    def param_requires_grad(self, param) -> bool:
        return param.grad_req != "null"

    def param_set_requires_grad(self, param, flag: bool) -> None:
        self._track(param)
        req = "add" if flag else "null"
        if param.grad_req == req:
            return
        param.grad_req = req  # 'null' drops the gradient buffer; 'add' makes a zero one
        self._clear_mark(param)
        owner = getattr(param, "_d2p_owner", None)
        layer = owner() if owner is not None else None
        if layer is not None:
            layer._clear_cached_op()  # a hybridized Dense re-traces with the new choice

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

    def param_grad(self, param):
        if not self.param_has_grad(param):
            return None
        param._d2p_has_grad = True
        grads = param.list_grad()
        value = grads[0].asnumpy().astype(np.float32, copy=True)
        for g in grads[1:]:
            value += g.asnumpy()
        return value.reshape(()) if self._is_scalar(param) else value

    def param_has_grad(self, param) -> bool:
        self._track(param)
        if param.grad_req == "null" or param._data is None:
            return False
        return bool(getattr(param, "_d2p_has_grad", False) or self._fresh(param))

    def param_zero_grad(self, param) -> None:
        param.zero_grad()
        self._clear_mark(param)

    def native_parameter_names(self, native) -> dict:
        names = {}
        for p in native.collect_params().values():
            names.setdefault(id(p), p.name)
        for p in native._collect_params_with_prefix().values():
            names.setdefault(id(p), p.name)
        return names

    def init_native(self, param, kind, transposed, **spec) -> None:
        mx, nd = self.mx, self.nd
        shape = tuple(param.shape)  # the stored (native) shape
        if param._data is None:
            raise ValueError(
                f"cannot initialize Gluon parameter {param.name!r} of shape {shape}: it is not "
                "materialized yet; call the network once or use net.materialize(input_shape)"
            )
        initializer = None
        value = None
        with self.autograd.pause():
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
                # mxnet's fan_in is the native shape[1]: the canonical fan_in when the native
                # layout is the transpose (a Linear weight), the canonical fan_out otherwise.
                native_in = spec["mode"] == "fan_in"
                if not transposed:
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
                # parameter's name or its own ``init`` (as Parameter.initialize does)
                initializer(mx.init.InitDesc(param.name, {"__init__": initializer}), value)
            param.set_data(value)

    # -- modules -------------------------------------------------------------------------------
    def linear(self, in_features, out_features, bias):
        layer = self._Dense(
            out_features, use_bias=bias, in_units=in_features or 0, flatten=False
        )
        for p in layer.collect_params().values():
            self._track(p)
            p._d2p_owner = weakref.ref(layer)
        layer.initialize(ctx=self._ctx)  # Gluon's default: U(±0.07) weight, zero bias
        return layer

    def linear_parameters(self, native):
        weight = native.weight
        if weight._data is None or 0 in tuple(weight.shape):
            return None, None
        return self._track(weight), self._track(native.bias)

    def activation(self, kind, **options):
        nn = self.gluon.nn
        if kind in ("relu", "sigmoid", "tanh"):
            return nn.Activation(kind, **options)
        if kind == "softmax":
            return self._Softmax(axis=options.get("dim", -1))
        if kind == "flatten":
            return nn.Flatten(**options)
        if kind == "identity":
            return self._Identity(**options)
        raise ValueError(f"unknown activation kind {kind!r}")

    def dropout(self, p):
        # inverted dropout in train_mode(), identity in predict_mode(); rate 0 is identity
        return self.gluon.nn.Dropout(p)

    def batch_norm(self, num_features, eps, momentum):
        layer = self._BatchNorm(num_features, eps, momentum)
        for p in (layer.gamma, layer.beta):
            self._track(p)
        layer.initialize(ctx=self._ctx)  # gamma 1, beta 0, running mean 0, running var 1
        return layer

    def batch_norm_state(self, native) -> tuple:
        return native.gamma, native.beta, native.running_mean, native.running_var

    def sequential(self):
        return self._Sequential()

    def sequential_append(self, native, name, child) -> None:
        # gluon.nn.Sequential applies self._children in order; the same block under two
        # names is applied twice.
        native.register_child(child, name)

    def module_list(self):
        return self._ModuleList()

    def custom(self, module):
        klass = self.native_class_for(module, self._Custom)
        return klass(module)

    def _set_attribute(self, native, name, value) -> None:
        """``native.<name> = value`` as Gluon users write it, unless it would hide a member
        of the Block class (``params``, ``name``, ``forward``, ...)."""
        if isinstance(native, self.gluon.nn.Sequential) or hasattr(type(native), name):
            return
        current = native.__dict__.get(name)
        if current is None or isinstance(current, (self.gluon.Block, self.Parameter)):
            object.__setattr__(native, name, value)

    def register_child(self, native, name, child) -> None:
        native.register_child(child, name)
        self._set_attribute(native, name, child)

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

    def register_parameter(self, native, name, param) -> None:
        self._track(param)
        self._register_param(native, name, param)

    def register_buffer(self, native, name, buf) -> None:
        self._register_param(native, name, buf)

    def inspect(self, native) -> dict:
        gluon = self.gluon
        nn = gluon.nn
        if isinstance(native, nn.Dense):
            # a Dense built with ``activation=`` keeps it as its child ``act``, applied by
            # its own forward; d2lparams sees the layer as a Linear
            weight, _ = self.linear_parameters(native)
            self._track(native.weight)
            self._track(native.bias)
            return {"kind": "linear", "options": {
                "in_features": None if weight is None else int(weight.shape[1]),
                "out_features": int(native._units), "bias": native.bias is not None}}
        if type(native) is nn.Activation and native._act_type in ("relu", "sigmoid", "tanh"):
            return {"kind": native._act_type}
        if type(native) is self._Softmax:
            return {"kind": "softmax", "options": {"dim": native._axis}}
        if type(native) is nn.Flatten:
            return {"kind": "flatten"}
        identity = getattr(getattr(self.mx.gluon, "contrib", None), "nn", None)
        if type(native) is self._Identity or (
            identity is not None and type(native) is getattr(identity, "Identity", None)
        ):
            return {"kind": "identity"}
        children = list(native._children.items())
        if type(native) in (nn.Sequential, nn.HybridSequential, self._Sequential):
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

    def call(self, native, args, training):
        mode = self.autograd.train_mode() if training else self.autograd.predict_mode()
        with mode:
            return native(*args)

    def set_training(self, native, mode: bool) -> None:
        # Gluon keeps no mode on a Block (``call`` enters train_mode()/predict_mode()); the
        # mode is kept for the Sequential above it, which applies each child in its own mode.
        object.__setattr__(native, "_d2p_training", bool(mode))

    # -- autograd ------------------------------------------------------------------------------
    def record(self):
        return self.autograd.record()

    def backward(self, loss) -> float:
        if not isinstance(loss, self.NDArray):
            raise TypeError(
                f"d2p.backward needs an MXNet NDArray loss, got {type(loss).__name__}"
            )
        if loss.size != 1:
            raise ValueError(
                f"d2p.backward needs a scalar loss, got a tensor of shape {tuple(loss.shape)}; "
                "reduce it first, e.g. ops.sum(...) or ops.mean(...)"
            )
        loss.backward()
        # make "this parameter has a gradient" sticky: a native Trainer.step resets the
        # arrays' _fresh_grad flag, but the accumulated gradient is still there.
        for param in list(self._seen):
            if param.grad_req != "null" and self._fresh(param):
                param._d2p_has_grad = True
        return float(loss.asnumpy().reshape(-1)[0])

    def no_grad(self):
        return self.autograd.pause()

    def sgd_update(self, param, buf, lr, momentum, weight_decay, dampening, nesterov):
        with self.autograd.pause():
            grads = param.list_grad()
            g = grads[0]
            for other in grads[1:]:
                g = g + other.as_in_context(g.context)
            value = param.list_data()[0]
            if weight_decay:
                g = g + weight_decay * value
            if momentum:
                if buf is None:
                    buf = g.copy()
                else:  # in place: no new buffer per step
                    buf *= momentum
                    buf += (1 - dampening) * g if dampening else g
                g = g + momentum * buf if nesterov else buf
            if len(param.list_data()) == 1:
                value -= lr * g  # in place on the parameter's own storage
            else:
                param.set_data(value - lr * g)  # every context
        return buf

    # -- operations ----------------------------------------------------------------------------
    def relu(self, x):
        return self.nd.relu(x)

    def sigmoid(self, x):
        return self.nd.sigmoid(x)

    def tanh(self, x):
        return self.nd.tanh(x)

    def softmax(self, x, dim):
        return self.nd.softmax(x, axis=dim)

    def matmul(self, a, b):
        nd = self.nd
        if b.ndim <= 2:
            # dot contracts a's last axis with b's first: (..., n, k) @ (k, m) and @ (k,)
            return nd.dot(a, b)
        if a.ndim == 1:  # (k,) @ (..., k, m) -> (..., m)
            out = self.matmul(a.reshape((1, a.shape[0])), b)
            return out.reshape(out.shape[:-2] + out.shape[-1:])
        batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
        a = nd.broadcast_to(a.reshape((1,) * (len(batch) + 2 - a.ndim) + a.shape),
                            batch + a.shape[-2:])
        b = nd.broadcast_to(b.reshape((1,) * (len(batch) + 2 - b.ndim) + b.shape),
                            batch + b.shape[-2:])
        n, k, m = a.shape[-2], a.shape[-1], b.shape[-1]
        out = nd.batch_dot(a.reshape((-1, n, k)), b.reshape((-1, k, m)))
        return out.reshape(batch + (n, m))

    def transpose(self, x):
        return self.nd.transpose(x)

    def _axes(self, dim):
        return tuple(dim) if isinstance(dim, (list, tuple)) else int(dim)

    def mean(self, x, dim, keepdim):
        if dim is None:
            return self.nd.mean(x)
        return self.nd.mean(x, axis=self._axes(dim), keepdims=keepdim)

    def sum(self, x, dim, keepdim):
        if dim is None:
            return self.nd.sum(x)
        return self.nd.sum(x, axis=self._axes(dim), keepdims=keepdim)

    def reshape(self, x, shape):
        shape = tuple(int(s) for s in shape)
        if shape.count(-1) > 1:
            raise ValueError(f"reshape takes at most one -1, got {shape}")
        if -1 in shape:
            known = math.prod(s for s in shape if s != -1)
            if known == 0 or x.size % known:
                raise ValueError(f"cannot reshape a tensor of shape {x.shape} to {shape}")
            shape = tuple(x.size // known if s == -1 else s for s in shape)
        if math.prod(shape) != x.size or any(s < 0 for s in shape):
            raise ValueError(f"cannot reshape a tensor of shape {x.shape} to {shape}")
        return self.nd.reshape(x, shape=shape)

    def concat(self, tensors, dim):
        ndim = tensors[0].ndim
        return self.nd.concat(*tensors, dim=dim % ndim if ndim else 0)
