"""PyTorch adapter.

Quirks absorbed here:
    * layout: ``nn.Linear.weight`` is ``(out, in)``; d2lparams shows ``(in, out)``
      (``linear_weight_transposed``) and transposes in ``forward`` for custom modules.
    * names: torch has structural names only (``0.weight``); they are also its own names.
    * lazy: ``nn.LazyLinear`` holds ``UninitializedParameter`` until the first call and then
      turns itself into ``nn.Linear``.
    * defaults: ``U(±1/√fan_in)`` for weight and bias.
    * gradients accumulate natively in ``.grad``; ``zero_grad`` sets it to ``None``.
    * in-place writes go through ``torch.no_grad()`` (``w += 1`` on a leaf raises otherwise).
"""

from __future__ import annotations

import numpy as np

from .base import Backend


class TorchBackend(Backend):
    name = "torch"
    aliases = ("pytorch",)
    framework_name = "PyTorch"
    import_names = ("torch",)
    extra = "torch"
    distributions = ("torch",)
    tensor_modules = ("torch",)
    preload_rank = 30
    linear_weight_transposed = True

    # -- lifetime ------------------------------------------------------------------------------
    def load(self) -> None:
        import torch

        self.torch = torch
        self.nn = torch.nn

        class Custom(torch.nn.Module):
            """A native module whose forward is the neutral module's forward."""

            def __init__(self, module):
                torch.nn.Module.__init__(self)
                object.__setattr__(self, "_d2p_module", module)

            def forward(self, *args):
                return self._d2p_module._native_forward(*args)

        self._Custom = Custom

    def version(self) -> str:
        return self.torch.__version__

    def seed(self, n: int) -> None:
        self.torch.manual_seed(n)

    # -- tensors -------------------------------------------------------------------------------
    def is_tensor(self, x) -> bool:
        return isinstance(x, self.torch.Tensor)

    def tensor(self, array):
        return self.torch.tensor(array, dtype=self.torch.float32)

    def to_numpy(self, x) -> np.ndarray:
        return x.detach().cpu().numpy().copy()

    # -- parameters ----------------------------------------------------------------------------
    def create_parameter(self, array, requires_grad=True):
        return self.nn.Parameter(self.torch.tensor(array), requires_grad=requires_grad)

    def create_buffer(self, array):
        return self.torch.tensor(array)

    def buffer_tensor(self, buf):
        return buf

    def param_value(self, param):
        return param

    def param_shape(self, param) -> tuple:
        return tuple(param.shape)

    def param_get(self, param) -> np.ndarray:
        return param.detach().cpu().numpy().copy()

    def param_set(self, param, array) -> None:
        with self.torch.no_grad():
            param.copy_(self.torch.from_numpy(array))

    def param_requires_grad(self, param) -> bool:
        return param.requires_grad

    def param_set_requires_grad(self, param, flag: bool) -> None:
        param.requires_grad_(flag)

    def param_grad(self, param):
        return None if param.grad is None else param.grad.detach().cpu().numpy().copy()

    def param_has_grad(self, param) -> bool:
        return param.grad is not None

    def param_zero_grad(self, param) -> None:
        param.grad = None

    def native_parameter_names(self, native) -> dict:
        names = {}
        for name, p in native.named_parameters(remove_duplicate=False):
            names.setdefault(id(p), name)
        for name, b in native.named_buffers(remove_duplicate=False):
            names.setdefault(id(b), name)
        return names

    def init_native(self, param, kind, transposed, **spec) -> None:
        init = self.nn.init
        with self.torch.no_grad():
            if kind == "uniform":
                init.uniform_(param, spec["low"], spec["high"])
            elif kind == "normal":
                init.normal_(param, spec["mean"], spec["std"])
            elif kind == "constant":
                init.constant_(param, spec["value"])
            elif kind == "xavier_uniform":
                init.xavier_uniform_(self._as_out_in(param, transposed), gain=spec["gain"])
            elif kind == "xavier_normal":
                init.xavier_normal_(self._as_out_in(param, transposed), gain=spec["gain"])
            elif kind in ("kaiming_uniform", "kaiming_normal"):
                fn = init.kaiming_uniform_ if kind == "kaiming_uniform" else init.kaiming_normal_
                fn(self._as_out_in(param, transposed), a=spec["a"], mode=spec["mode"],
                   nonlinearity=spec["nonlinearity"])
            else:
                raise ValueError(f"unknown initializer kind {kind!r}")

    def _as_out_in(self, param, transposed):
        # torch computes fan_in from dim 1: give it an (out, in) view of a canonical param.
        return param if transposed else param.T

    # -- modules -------------------------------------------------------------------------------
    def linear(self, in_features, out_features, bias):
        if in_features is None:
            return self.nn.LazyLinear(out_features, bias=bias)
        return self.nn.Linear(in_features, out_features, bias=bias)

    def linear_parameters(self, native):
        weight = native.weight
        if isinstance(weight, self.nn.parameter.UninitializedParameter):
            return None, None
        return weight, native.bias

    def activation(self, kind, **options):
        nn = self.nn
        table = {
            "relu": nn.ReLU,
            "sigmoid": nn.Sigmoid,
            "tanh": nn.Tanh,
            "identity": nn.Identity,
            "flatten": nn.Flatten,
            "softmax": lambda dim: nn.Softmax(dim=dim),
        }
        return table[kind](**options)

    def dropout(self, p):
        return self.nn.Dropout(p)

    def batch_norm(self, num_features, eps, momentum):
        return self.nn.BatchNorm1d(num_features, eps=eps, momentum=momentum)

    def batch_norm_state(self, native) -> tuple:
        return native.weight, native.bias, native.running_mean, native.running_var

    def sequential(self):
        return self.nn.Sequential()

    def sequential_append(self, native, name, child) -> None:
        native.add_module(name, child)

    def module_list(self):
        return self.nn.ModuleList()

    def custom(self, module):
        klass = self.native_class_for(module, self._Custom)
        return klass(module)

    def register_child(self, native, name, child) -> None:
        native.add_module(name, child)

    def register_parameter(self, native, name, param) -> None:
        native.register_parameter(name, param)

    def register_buffer(self, native, name, buf) -> None:
        native.register_buffer(name, buf)

    def inspect(self, native) -> dict:
        nn = self.nn
        simple = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh",
                  nn.Identity: "identity", nn.Flatten: "flatten"}
        if isinstance(native, (nn.Linear, nn.LazyLinear)):
            weight, _ = self.linear_parameters(native)
            return {"kind": "linear", "options": {
                "in_features": None if weight is None else native.in_features,
                "out_features": native.out_features, "bias": native.bias is not None}}
        for klass, kind in simple.items():
            if type(native) is klass:
                return {"kind": kind}
        if type(native) is nn.Softmax:
            return {"kind": "softmax", "options": {"dim": -1 if native.dim is None else native.dim}}
        children = list(native._modules.items())
        if type(native) is nn.Sequential:
            return {"kind": "sequential", "children": children}
        return {
            "kind": "module",
            "children": children,
            "parameters": [(n, p) for n, p in native._parameters.items() if p is not None],
            "buffers": [(n, b) for n, b in native._buffers.items() if b is not None],
        }

    def call(self, native, args, training):
        return native(*args)

    def set_training(self, native, mode: bool) -> None:
        native.training = mode

    # -- autograd ------------------------------------------------------------------------------
    def record(self):
        return self.torch.enable_grad()

    def backward(self, loss) -> float:
        if loss.numel() != 1:
            raise ValueError(
                f"d2p.backward needs a scalar loss, got a tensor of shape {tuple(loss.shape)}; "
                "reduce it first, e.g. ops.sum(...) or ops.mean(...)"
            )
        loss.backward()
        return float(loss.detach())

    def no_grad(self):
        return self.torch.no_grad()

    def sgd_update(self, param, buf, lr, momentum, weight_decay, dampening, nesterov):
        with self.torch.no_grad():
            g = param.grad
            if weight_decay:
                g = g.add(param, alpha=weight_decay)
            if momentum:
                if buf is None:
                    buf = g.clone()
                else:
                    buf.mul_(momentum).add_(g, alpha=1 - dampening)
                g = g.add(buf, alpha=momentum) if nesterov else buf
            param.add_(g, alpha=-lr)
        return buf

    # -- operations ----------------------------------------------------------------------------
    def relu(self, x):
        return self.torch.relu(x)

    def sigmoid(self, x):
        return self.torch.sigmoid(x)

    def tanh(self, x):
        return self.torch.tanh(x)

    def softmax(self, x, dim):
        return self.torch.softmax(x, dim=dim)

    def matmul(self, a, b):
        return self.torch.matmul(a, b)

    def transpose(self, x):
        return x.T

    def mean(self, x, dim, keepdim):
        return x.mean() if dim is None else x.mean(dim=dim, keepdim=keepdim)

    def sum(self, x, dim, keepdim):
        return x.sum() if dim is None else x.sum(dim=dim, keepdim=keepdim)

    def reshape(self, x, shape):
        return self.torch.reshape(x, shape)

    def concat(self, tensors, dim):
        return self.torch.cat(tensors, dim=dim)


