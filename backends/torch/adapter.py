"""The PyTorch adapter (its quirks are listed in the package docstring)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import TorchBackend
from .layers import Custom

_ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
                "identity": nn.Identity, "flatten": nn.Flatten}


class TorchAdapter(TorchBackend):
    ops_namespace = torch
    ops_table = {
        "concat": "cat",
        # losses, operations, input gradients
        "amax": lambda self, x, dim, keepdim: torch.amax(x, () if dim is None else dim, keepdim),
        "amin": lambda self, x, dim, keepdim: torch.amin(x, () if dim is None else dim, keepdim),
        "one_hot": lambda self, x, n, dtype: F.one_hot(x.long(), n).to(getattr(torch, dtype)),
        "astype": lambda self, x, dtype: x.to(getattr(torch, dtype)),
        "dropout": lambda self, x, p: F.dropout(x, p, True),
        "pick": lambda self, x, index, dim: torch.gather(x, dim, index.unsqueeze(dim)).squeeze(dim),
        # fused: half the cost of gather + neg + mean (forward and backward)
        "nll_loss": lambda self, logp, target, reduction: F.nll_loss(logp, target,
                                                                     reduction=reduction),
    }

    def seed(self, n: int) -> None:
        torch.manual_seed(n)

    # -- tensors -------------------------------------------------------------------------------
    def is_tensor(self, x) -> bool:
        return isinstance(x, torch.Tensor)

    def tensor(self, array, requires_grad=False):
        return torch.tensor(array, requires_grad=requires_grad)

    def to_numpy(self, x) -> np.ndarray:
        return x.detach().cpu().numpy().copy()

    # -- parameters and buffers ----------------------------------------------------------------
    def create_parameter(self, array, requires_grad=True, buffer=False):
        if buffer:
            return torch.tensor(array)
        return nn.Parameter(torch.tensor(array), requires_grad=requires_grad)

    def assign(self, param, array) -> None:
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.asarray(array)))

    def requires_grad(self, param, flag=None) -> bool:
        if flag is not None:
            param.requires_grad_(flag)
        return param.requires_grad and param.is_leaf

    def grad_tensor(self, param):
        return param.grad

    def zero_grad(self, param) -> None:
        param.grad = None

    def subtract_(self, param, delta) -> None:
        with torch.no_grad():
            param.sub_(delta)

    def native_parameter_names(self, native) -> dict:
        names: dict = {}
        for name, p in native.named_parameters(remove_duplicate=False):
            names.setdefault(id(p), name)
        for name, b in native.named_buffers(remove_duplicate=False):
            names.setdefault(id(b), name)
        return names

    def init_native(self, param, kind, transposed, **spec) -> None:
        init = nn.init
        # torch computes fan_in from dim 1: give it an (out, in) view of a canonical param.
        out_in = param if transposed else param.T
        with torch.no_grad():
            if kind == "uniform":
                init.uniform_(param, spec["low"], spec["high"])
            elif kind == "normal":
                init.normal_(param, spec["mean"], spec["std"])
            elif kind == "constant":
                init.constant_(param, spec["value"])
            elif kind == "xavier_uniform":
                init.xavier_uniform_(out_in, gain=spec["gain"])
            elif kind == "xavier_normal":
                init.xavier_normal_(out_in, gain=spec["gain"])
            elif kind in ("kaiming_uniform", "kaiming_normal"):
                fn = init.kaiming_uniform_ if kind == "kaiming_uniform" else init.kaiming_normal_
                fn(out_in, a=spec["a"], mode=spec["mode"], nonlinearity=spec["nonlinearity"])
            else:
                raise ValueError(f"unknown initializer kind {kind!r}")

    # -- modules -------------------------------------------------------------------------------
    def layer(self, kind, **options):
        if kind == "linear":
            if options["in_features"] is None:
                return nn.LazyLinear(options["out_features"], bias=options["bias"])
            return nn.Linear(options["in_features"], options["out_features"],
                             bias=options["bias"])
        if kind == "softmax":
            return nn.Softmax(dim=options["dim"])
        if kind == "dropout":
            return nn.Dropout(options["p"])
        if kind == "batch_norm":
            return nn.BatchNorm1d(options["num_features"], eps=options["eps"],
                                  momentum=options["momentum"])
        return _ACTIVATIONS[kind](**options)

    def layer_state(self, native, kind):
        if kind == "batch_norm":
            return {"weight": native.weight, "bias": native.bias,
                    "running_mean": native.running_mean, "running_var": native.running_var}
        if isinstance(native.weight, nn.parameter.UninitializedParameter):
            return None
        state = {"weight": native.weight}
        if native.bias is not None:
            state["bias"] = native.bias
        return state

    def container(self, kind, module=None):
        if kind == "sequential":
            return nn.Sequential()
        if kind == "list":
            return nn.ModuleList()
        return self.native_class_for(module, Custom)(module)

    def register(self, native, name, member, kind) -> None:
        if kind == "child":
            native.add_module(name, member)
        elif kind == "parameter":
            native.register_parameter(name, member)
        else:
            native.register_buffer(name, member)

    def inspect(self, native) -> dict:
        if isinstance(native, (nn.Linear, nn.LazyLinear)):
            built = self.layer_state(native, "linear") is not None
            return {"kind": "linear", "options": {
                "in_features": native.in_features if built else None,
                "out_features": native.out_features, "bias": native.bias is not None}}
        for kind, klass in _ACTIVATIONS.items():
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

    # -- gradients -----------------------------------------------------------------------------
    def record(self):
        return torch.enable_grad()

    def backprop(self, loss) -> None:
        loss.backward()

    def differentiate(self, loss, sources) -> list:
        return list(torch.autograd.grad(loss, sources, allow_unused=True))

    def no_grad(self):
        return torch.no_grad()
