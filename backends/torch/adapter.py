"""The PyTorch adapter (its quirks are listed in the package docstring)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import TorchBackend
from . import layers as _layers
from .layers import Custom

_ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
                "identity": nn.Identity, "flatten": nn.Flatten}


_CONV_KINDS = {"conv2d": _layers.Conv2d, "max_pool2d": _layers.MaxPool2d,
               "avg_pool2d": _layers.AvgPool2d, "adaptive_avg_pool2d": _layers.AdaptiveAvgPool2d,
               "batch_norm2d": _layers.BatchNorm2d}


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
        x = x.detach()
        if x.dtype == torch.bfloat16:  # NumPy has no bfloat16: float32 holds it exactly
            x = x.float()
        return x.cpu().numpy().copy()

    # -- dtypes and devices ----------------------------------------------------------------------
    def num_gpus(self) -> int:
        return int(torch.cuda.device_count())

    def device_of(self, x) -> tuple:
        device = x.device
        return ("gpu", device.index or 0) if device.type == "cuda" else ("cpu", 0)

    @staticmethod
    def _torch_device(device):
        return torch.device("cpu") if device[0] == "cpu" else torch.device("cuda", device[1])

    def convert(self, tensor, dtype=None, device=None, requires_grad=False):
        out = tensor.to(device=None if device is None else self._torch_device(device),
                        dtype=None if dtype is None else getattr(torch, dtype))
        return out.detach().requires_grad_() if requires_grad else out

    def move(self, param, dtype=None, device=None) -> None:
        # what nn.Module.to does: the same object, new data (the gradient is dropped)
        param.grad = None
        param.data = self.convert(param.data, dtype, device)

    # -- parameters and buffers ----------------------------------------------------------------
    def create_parameter(self, array, requires_grad=True, buffer=False):
        if buffer:
            return torch.tensor(array)
        return nn.Parameter(torch.tensor(array), requires_grad=requires_grad)

    def assign(self, param, array) -> None:
        # torch's own copy (threaded; it also counts the write in the version counter, so
        # autograd refuses a graph that saved the old value)
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.asarray(array)))

    def requires_grad(self, param, flag=None) -> bool:
        if flag is not None:
            param.requires_grad_(flag)
        return param.requires_grad and param.is_leaf

    def grad_tensor(self, param):
        return param.grad

    def zero_grad(self, param, set_to_none=True) -> None:
        if set_to_none:
            param.grad = None
        elif param.grad is not None:
            param.grad.detach_().zero_()

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

    def init_native(self, param, kind, layout, **spec) -> None:
        init = nn.init
        # torch computes its fans from its own layout, (out, in) or (out, in, kh, kw): give it
        # that view of the canonical parameter ((in, out) for a 2-D one).
        canonical = param if layout is None else param.permute(layout)
        out_in = canonical.T if canonical.ndim == 2 else canonical
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
        if kind in _CONV_KINDS:
            return self._conv_layer(kind, options)
        return _ACTIVATIONS[kind](**options)

    def _conv_layer(self, kind, options):
        """PyTorch's own conv/pool/batch-norm layers (the subclasses call ``check`` first)."""
        options = dict(options)
        check = options.pop("check")
        if kind == "conv2d":
            in_channels = options.pop("in_channels")
            if in_channels is None:
                native = _layers.LazyConv2d(**options)
            else:
                native = _layers.Conv2d(in_channels, **options)
        elif kind == "batch_norm2d":
            native = _layers.BatchNorm2d(**options)
        else:
            native = _CONV_KINDS[kind](**options)
        native._d2p_check = check
        return native

    def layer_state(self, native, kind):
        if kind in ("batch_norm", "batch_norm2d"):
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
        if member is None:
            table = {"child": "_modules", "parameter": "_parameters", "buffer": "_buffers"}
            getattr(native, table[kind]).pop(name, None)
        elif kind == "child":
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
        conv = self._inspect_conv(native)
        if conv is not None:
            return conv
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

    def hook_calls(self, native, pre, post) -> None:
        if "_d2p_hooks" not in native.__dict__:  # torch's own forward hooks, installed once
            native.register_forward_pre_hook(lambda m, args: m.__dict__["_d2p_hooks"][0](args))
            native.register_forward_hook(
                lambda m, args, out: m.__dict__["_d2p_hooks"][1](args, out))
        native.__dict__["_d2p_hooks"] = (pre, post)

    def grad_hook(self, param, fn):
        return param.register_hook(fn)

    def _inspect_conv(self, native) -> dict | None:
        """PyTorch's conv/pool/BatchNorm2d layers where their meaning is d2lparams' one."""
        if isinstance(native, (nn.Conv2d, nn.LazyConv2d)) and native.padding_mode == "zeros":
            built = self.layer_state(native, "conv2d") is not None
            return {"kind": "conv2d", "options": {
                "in_channels": native.in_channels if built else None,
                "out_channels": native.out_channels, "kernel_size": native.kernel_size,
                "stride": native.stride, "padding": native.padding,
                "dilation": native.dilation, "groups": native.groups,
                "bias": native.bias is not None}}
        if isinstance(native, nn.MaxPool2d) and not native.return_indices \
                and not native.ceil_mode and native.dilation in (1, (1, 1)):
            return {"kind": "max_pool2d", "options": {
                "kernel_size": native.kernel_size, "stride": native.stride,
                "padding": native.padding}}
        if isinstance(native, nn.AvgPool2d) and native.count_include_pad \
                and not native.ceil_mode and native.divisor_override is None:
            return {"kind": "avg_pool2d", "options": {
                "kernel_size": native.kernel_size, "stride": native.stride,
                "padding": native.padding}}
        if isinstance(native, nn.AdaptiveAvgPool2d) and None not in (
                native.output_size if isinstance(native.output_size, tuple) else ()):
            return {"kind": "adaptive_avg_pool2d",
                    "options": {"output_size": native.output_size}}
        if isinstance(native, nn.BatchNorm2d) and native.affine and native.track_running_stats \
                and native.momentum is not None:
            return {"kind": "batch_norm2d", "options": {
                "num_features": native.num_features, "eps": native.eps,
                "momentum": native.momentum}}
        return None

    def permute(self, tensor, axes):
        return tensor.permute(axes)

    def compile(self, native, options, training):
        # torch.compile of the module (an OptimizedModule over the same parameters): torch's
        # in-place Module.compile() compiles _call_impl, which Dynamo skips as a torch.nn file,
        # so a built-in module's forward would never be captured
        compiled = torch.compile(native, **options)
        return lambda args: compiled(*args)

    # -- gradients -----------------------------------------------------------------------------
    def record(self):
        return torch.enable_grad()

    def backprop(self, loss) -> None:
        loss.backward()

    def differentiate(self, loss, sources) -> list:
        return list(torch.autograd.grad(loss, sources, allow_unused=True))

    def no_grad(self):
        return torch.no_grad()


# convolution and pooling ops: PyTorch's own functions (NCHW, canonical weight)
TorchAdapter.ops_table = {
    **TorchAdapter.ops_table,
    "conv2d": lambda self, x, w, b, stride, padding, dilation, groups: F.conv2d(
        x, w, b, stride, padding, dilation, groups),
    "max_pool2d": lambda self, x, kernel, stride, padding: F.max_pool2d(x, kernel, stride, padding),
    "avg_pool2d": lambda self, x, kernel, stride, padding: F.avg_pool2d(x, kernel, stride, padding),
}
