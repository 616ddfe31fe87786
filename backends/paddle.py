"""PaddlePaddle adapter.

Quirks absorbed here:
    * import order: importing ``paddle`` after ``tensorflow`` segfaults the process (exit
      139, measured with paddle 3.3.1 / tensorflow-cpu 2.21); ``unsafe_after`` makes the
      registry raise ``BackendConflict`` instead, and ``preload_rank`` 20 loads paddle
      before tensorflow (30+) in ``d2p.preload``.
    * import noise: ``import paddle`` emits a "No ccache found" ``UserWarning``; it is
      silenced during the import only.
    * layout: ``nn.Linear.weight`` is already ``(in, out)``, d2lparams' canonical layout.
    * names: paddle's own names come from global counters (``linear_0.w_0``,
      ``create_parameter_3.w_0``); structural names (``0.weight``) are what
      ``named_parameters``/``state_dict`` report, as in torch.
    * lazy: paddle has no lazy layer (``Linear(None, 8)`` raises ``TypeError``), so a small
      ``Layer`` of ours creates ``weight``/``bias`` at its first call with the very same
      ``create_parameter`` calls (and hence default initializers) as ``nn.Linear``.
    * defaults: Xavier-uniform weight, zero bias (``nn.Linear``'s own).
    * gradients accumulate natively in ``.grad`` (``None`` before any backward). The
      keyword form ``clear_gradient(set_to_zero=False)`` is silently ignored and leaves a
      zero tensor; only the positional ``clear_gradient(False)`` gives ``None`` back.
    * freezing is ``stop_gradient = True`` (``trainable`` follows it).
    * in-place writes go through ``set_value`` / the initializers (unguarded ``w.add_(1)``
      on a parameter adds and then raises); the Python object keeps its identity.
    * ``paddle.nn.Linear(..., bias=...)`` is a forbidden keyword in paddle 3; ``bias_attr``
      is the switch (``False``: no bias).
    * BatchNorm keeps its running statistics as non-trainable *parameters* (``_mean``,
      ``_variance``; ``named_buffers()`` is empty): ``inspect`` reports them as buffers. Its
      momentum weighs the running value (paddle 0.9 = torch 0.1), it folds the *biased*
      batch variance into ``_variance`` (torch: unbiased; our subclass adds the
      difference), and it warns "When training, we now always track global mean and
      variance" on every training forward (silenced there).
    * ``paddle.var`` logs a C++ "run type promotion" warning; the BatchNorm fix avoids it.
    * ``loss.backward()`` on a loss that needs no gradient (everything frozen) silently does
      nothing, where torch raises; d2lparams inherits paddle's silence (no grads appear).
"""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np

from .base import Backend

_CONFLICT = (
    "cannot use the 'paddle' backend in this process: tensorflow is already imported, and "
    "importing paddle after tensorflow crashes the process (segmentation fault). Fix: load "
    "paddle before tensorflow in a fresh process, with d2p.preload(\"paddle\", \"tensorflow\") "
    "or by selecting the paddle backend before the tensorflow one; or run the two backends "
    "in separate processes"
)


class PaddleBackend(Backend):
    name = "paddle"
    aliases = ("paddlepaddle",)
    framework_name = "PaddlePaddle"
    import_names = ("paddle",)
    extra = "paddle"
    distributions = ("paddlepaddle",)
    tensor_modules = ("paddle",)
    unsafe_after = {"tensorflow": _CONFLICT}
    preload_rank = 20
    linear_weight_transposed = False

    # -- lifetime ------------------------------------------------------------------------------
    def load(self) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ccache.*", category=UserWarning)
            import paddle

        self.paddle = paddle
        self.nn = paddle.nn
        self.F = paddle.nn.functional
        self.initializers = paddle.nn.initializer
        F = self.F

        class Custom(paddle.nn.Layer):
            """A native layer whose forward is the neutral module's forward."""

            def __init__(self, module):
                paddle.nn.Layer.__init__(self)
                object.__setattr__(self, "_d2p_module", module)

            def forward(self, *args):
                return self._d2p_module._native_forward(*args)

        class LazyLinear(paddle.nn.Layer):
            """``paddle.nn.Linear`` whose ``in_features`` is taken at the first call.

            ``weight`` (``(in, out)``) and ``bias`` are created by the same
            ``create_parameter`` calls as ``paddle.nn.Linear``, so they get its default
            initializers (Xavier uniform, zeros) and its names (``linear_N.w_0``).
            """

            def __init__(self, out_features, bias=True):
                paddle.nn.Layer.__init__(self, name_scope="linear")
                self._out_features = out_features
                self._use_bias = bias
                self._dtype = self._helper.get_default_dtype()
                self.add_parameter("weight", None)
                self.add_parameter("bias", None)

            def _build(self, in_features):
                self.add_parameter("weight", self.create_parameter(
                    shape=[in_features, self._out_features], dtype=self._dtype, is_bias=False))
                if self._use_bias:
                    self.add_parameter("bias", self.create_parameter(
                        shape=[self._out_features], dtype=self._dtype, is_bias=True))

            def forward(self, input):
                if self.weight is None:
                    self._build(int(input.shape[-1]))
                return F.linear(x=input, weight=self.weight, bias=self.bias)

            def extra_repr(self):
                in_features = None if self.weight is None else self.weight.shape[0]
                return f"in_features={in_features}, out_features={self._out_features}"

        class BatchNorm1D(paddle.nn.BatchNorm1D):
            """``paddle.nn.BatchNorm1D`` with PyTorch's running variance.

            Paddle folds the *biased* batch variance into ``_variance``; torch folds the
            unbiased one. After paddle's own training forward this adds the difference,
            ``(1 - paddle_momentum) * var_biased / (n - 1)``, so the statistics are torch's.
            The output, the gradients and the mean are paddle's kernel, unchanged.
            """

            def forward(self, input):
                if not self.training:
                    return paddle.nn.BatchNorm1D.forward(self, input)
                axes = [0] if len(input.shape) == 2 else [0, 2]
                n = int(np.prod([input.shape[a] for a in axes]))
                if n < 2:
                    raise ValueError(
                        f"BatchNorm1d in training mode needs more than 1 value per channel, "
                        f"got input of shape {tuple(input.shape)}; use a larger batch or eval()"
                    )
                with paddle.no_grad():
                    x = input.detach()  # paddle.var logs a dtype-promotion warning
                    var = paddle.mean(paddle.square(x - paddle.mean(x, axis=axes, keepdim=True)),
                                      axis=axes)
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="When training, we now always")
                    out = paddle.nn.BatchNorm1D.forward(self, input)
                with paddle.no_grad():
                    self._variance.set_value(
                        self._variance + var * ((1.0 - self._momentum) / (n - 1)))
                return out

        self._Custom = Custom
        self._LazyLinear = LazyLinear
        self._BatchNorm1D = BatchNorm1D

    def version(self) -> str:
        return self.paddle.__version__

    def seed(self, n: int) -> None:
        self.paddle.seed(n)

    # -- tensors -------------------------------------------------------------------------------
    def is_tensor(self, x) -> bool:
        return isinstance(x, self.paddle.Tensor)

    def tensor(self, array):
        return self.paddle.to_tensor(np.asarray(array, dtype=np.float32), dtype="float32")

    def to_numpy(self, x) -> np.ndarray:
        return np.array(x.detach().numpy(), copy=True)

    # -- parameters ----------------------------------------------------------------------------
    def create_parameter(self, array, requires_grad=True):
        array = np.ascontiguousarray(array, dtype=np.float32)
        param = self.paddle.create_parameter(
            shape=list(array.shape),
            dtype="float32",
            default_initializer=self.initializers.Assign(array),
        )
        param.stop_gradient = not requires_grad
        return param

    def create_buffer(self, array):
        return self.paddle.to_tensor(np.ascontiguousarray(array, dtype=np.float32),
                                     dtype="float32", stop_gradient=True)

    def buffer_tensor(self, buf):
        return buf

    def param_value(self, param):
        return param

    def param_shape(self, param) -> tuple:
        return tuple(int(s) for s in param.shape)

    def param_get(self, param) -> np.ndarray:
        return np.array(param.detach().numpy(), dtype=np.float32, copy=True)

    def param_set(self, param, array) -> None:
        with self.paddle.no_grad():
            param.set_value(np.ascontiguousarray(array, dtype=np.float32))

    def param_requires_grad(self, param) -> bool:
        return not param.stop_gradient

    def param_set_requires_grad(self, param, flag: bool) -> None:
        param.stop_gradient = not flag

    def param_grad(self, param):
        grad = param.grad
        return None if grad is None else np.array(grad.numpy(), dtype=np.float32, copy=True)

    def param_has_grad(self, param) -> bool:
        return param.grad is not None

    def param_zero_grad(self, param) -> None:
        # positional on purpose: the keyword set_to_zero=False is ignored (zeros remain)
        param.clear_gradient(False)

    def native_parameter_names(self, native) -> dict:
        names = {}
        for p in native.parameters():
            names.setdefault(id(p), p.name)
        for b in native.buffers():
            names.setdefault(id(b), b.name)
        return names

    def init_native(self, param, kind, transposed, **spec) -> None:
        # ``transposed`` is always False here: paddle stores the canonical (in, out) layout.
        inits = self.initializers
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
        with self.paddle.no_grad():
            initializer(param)

    def _kaiming(self, kind, spec):
        # paddle's Kaiming takes the fan of the chosen mode as ``fan_in`` (mode "fan_in") and
        # computes the gain from (nonlinearity, negative_slope) with torch's table; when that
        # gain is not d2lparams' one, draw the same distribution with Uniform/Normal.
        inits = self.initializers
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
    def linear(self, in_features, out_features, bias):
        if in_features is None:
            return self._LazyLinear(out_features, bias=bias)
        return self.nn.Linear(in_features, out_features, bias_attr=None if bias else False)

    def linear_parameters(self, native):
        weight = native.weight
        if weight is None:
            return None, None
        return weight, native.bias

    def activation(self, kind, **options):
        nn = self.nn
        table = {
            "relu": nn.ReLU,
            "sigmoid": nn.Sigmoid,
            "tanh": nn.Tanh,
            "identity": nn.Identity,
            "flatten": lambda: nn.Flatten(start_axis=1, stop_axis=-1),
            "softmax": lambda dim: nn.Softmax(axis=dim),
        }
        return table[kind](**options)

    def dropout(self, p):
        return self.nn.Dropout(p=p, mode="upscale_in_train")

    def batch_norm(self, num_features, eps, momentum):
        # paddle's momentum weighs the running value: 1 - torch's momentum
        return self._BatchNorm1D(num_features, momentum=1.0 - momentum, epsilon=eps)

    def batch_norm_state(self, native) -> tuple:
        return native.weight, native.bias, native._mean, native._variance

    def sequential(self):
        return self.nn.Sequential()

    def sequential_append(self, native, name, child) -> None:
        native.add_sublayer(name, child)

    def module_list(self):
        return self.nn.LayerList()

    def custom(self, module):
        klass = self.native_class_for(module, self._Custom)
        return klass(module)

    def register_child(self, native, name, child) -> None:
        native.add_sublayer(name, child)

    def register_parameter(self, native, name, param) -> None:
        native.add_parameter(name, param)

    def register_buffer(self, native, name, buf) -> None:
        native.register_buffer(name, buf)

    def inspect(self, native) -> dict:
        nn = self.nn
        simple = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh",
                  nn.Identity: "identity"}
        if isinstance(native, (nn.Linear, self._LazyLinear)):
            weight, bias = self.linear_parameters(native)
            if isinstance(native, nn.Linear):
                out_features, use_bias = int(weight.shape[1]), bias is not None
            else:
                out_features, use_bias = native._out_features, native._use_bias
            return {"kind": "linear", "options": {
                "in_features": None if weight is None else int(weight.shape[0]),
                "out_features": out_features, "bias": use_bias}}
        for klass, kind in simple.items():
            if type(native) is klass:
                return {"kind": kind}
        if type(native) is nn.Softmax:
            return {"kind": "softmax", "options": {"dim": int(native._axis)}}
        if type(native) is nn.Flatten and native.start_axis == 1 and native.stop_axis == -1:
            return {"kind": "flatten"}
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

    def call(self, native, args, training):
        return native(*args)

    def set_training(self, native, mode: bool) -> None:
        native.training = mode

    # -- autograd ------------------------------------------------------------------------------
    def record(self):
        enable = getattr(self.paddle, "enable_grad", None)
        return enable() if enable is not None else contextlib.nullcontext()

    def backward(self, loss) -> float:
        if int(np.prod(loss.shape, dtype=np.int64)) != 1:
            raise ValueError(
                f"d2p.backward needs a scalar loss, got a tensor of shape {tuple(loss.shape)}; "
                "reduce it first, e.g. ops.sum(...) or ops.mean(...)"
            )
        loss.backward()
        return float(loss.detach().numpy().reshape(()))

    def no_grad(self):
        return self.paddle.no_grad()

    def sgd_update(self, param, buf, lr, momentum, weight_decay, dampening, nesterov):
        # in place under no_grad: an unguarded in-place op on a leaf parameter writes and
        # then raises in paddle
        with self.paddle.no_grad():
            g = param.grad
            if weight_decay:
                g = g + param * weight_decay
            if momentum:
                if buf is None:
                    buf = g.clone()
                else:
                    buf = buf * momentum + g * (1.0 - dampening)
                g = g + buf * momentum if nesterov else buf
            param.subtract_(g * lr)
        return buf

    # -- operations ----------------------------------------------------------------------------
    def relu(self, x):
        return self.F.relu(x)

    def sigmoid(self, x):
        return self.F.sigmoid(x)

    def tanh(self, x):
        return self.paddle.tanh(x)

    def softmax(self, x, dim):
        return self.F.softmax(x, axis=dim)

    def matmul(self, a, b):
        return self.paddle.matmul(a, b)

    def transpose(self, x):
        return self.paddle.transpose(x, perm=[1, 0])

    def mean(self, x, dim, keepdim):
        return self.paddle.mean(x, axis=dim, keepdim=keepdim)

    def sum(self, x, dim, keepdim):
        return self.paddle.sum(x, axis=dim, keepdim=keepdim)

    def reshape(self, x, shape):
        return self.paddle.reshape(x, list(shape))

    def concat(self, tensors, dim):
        return self.paddle.concat(list(tensors), axis=dim)
