"""Where to find what PyTorch has under a name that d2lparams does not provide: the text an
``AttributeError`` adds for a module or a parameter (users translate PyTorch code)."""

from __future__ import annotations

_HOOKS = ("Parameter.register_hook(fn) for a parameter's gradient, or d2p.grad(fn, inputs) "
          "for input gradients; d2lparams has no backward hooks on modules")
_STATE_HOOKS = "post-process the dict that state_dict() returns, or the one you load"

#: torch.nn.Module names -> the d2lparams way
MODULE = {
    "get_parameter": "dict(module.named_parameters())[target]",
    "get_buffer": "dict(module.named_buffers())[target]",
    "type": "module.to(dtype), or module.double() / .float() / .half()",
    "register_backward_hook": _HOOKS,
    "register_full_backward_hook": _HOOKS,
    "register_full_backward_pre_hook": _HOOKS,
    "register_state_dict_pre_hook": _STATE_HOOKS,
    "register_state_dict_post_hook": _STATE_HOOKS,
    "register_load_state_dict_pre_hook": _STATE_HOOKS,
    "register_load_state_dict_post_hook": _STATE_HOOKS,
    "get_extra_state": "module.register_buffer(name, array) for state that state_dict carries",
    "set_extra_state": "module.register_buffer(name, array) for state that state_dict carries",
    "to_empty": "module.to(device), then the init functions to fill the parameters",
    "xpu": "module.to(d2p.device('gpu', i)): d2lparams devices are 'cpu' and 'gpu'",
    "ipu": "module.to(d2p.device('gpu', i)): d2lparams devices are 'cpu' and 'gpu'",
    "mtia": "module.to(d2p.device('gpu', i)): d2lparams devices are 'cpu' and 'gpu'",
}

_NUMPY = "p.numpy().{name}(...) on a NumPy copy; inside forward p is the framework's tensor"
_MOVE = ("module.to(...) on the module that holds it (parameters move with their module), or "
         "nn.Parameter(value, dtype=...)")
_INPLACE = "p.data {op}= x (in place, not recorded)"

#: torch.nn.Parameter / torch.Tensor names -> the d2lparams way
PARAMETER = {
    "item": "float(p[index]) or p.numpy().item()",
    "tolist": "p.numpy().tolist()",
    "size": "p.shape (a tuple)",
    "dim": "p.ndim",
    "clone": "p.numpy().copy() for the values, copy.deepcopy(p) for a new Parameter",
    "detach": "p.numpy() (a NumPy copy), or d2p.detach(x) for a tensor inside forward",
    "copy_": "p.set(value) or p.data.copy_(value)",
    "fill_": "init.constant_(p, value) or p.data.fill_(value)",
    "zero_": "init.zeros_(p) or p.data.zero_()",
    "normal_": "init.normal_(p, mean, std) or p.data.normal_(mean, std)",
    "uniform_": "init.uniform_(p, a, b) or p.data.uniform_(a, b)",
    "add_": _INPLACE.format(op="+"), "sub_": _INPLACE.format(op="-"),
    "mul_": _INPLACE.format(op="*"), "div_": _INPLACE.format(op="/"),
    "to": _MOVE, "cpu": _MOVE, "cuda": _MOVE, "double": _MOVE, "float": _MOVE,
    "half": _MOVE, "bfloat16": _MOVE, "type": _MOVE,
    "is_cuda": "p.device.type == 'gpu'",
    "is_leaf": "a Parameter is always a leaf",
    "grad_fn": "a Parameter is a leaf: it has no grad_fn",
    "backward": "d2p.backward(lambda: loss(net(X), y))",
    "retain_grad": "d2p.grad(fn, [x]) for the gradient of an intermediate tensor",
}
for _name in ("t", "T", "view", "reshape", "flatten", "unsqueeze", "squeeze", "permute",
              "transpose", "contiguous", "sum", "mean", "abs", "max", "min", "norm"):
    PARAMETER.setdefault(_name, _NUMPY.format(name=_name))


def hint(table: dict, name: str, owner: str) -> str:
    """``"; for PyTorch's <owner>.<name> use <way>"``, or ``""``."""
    way = table.get(name)
    return f"; for PyTorch's {owner}.{name} use {way}" if way else ""
