"""Looking into a network: summary, tied groups, native names, and wrapping native models."""

from __future__ import annotations

from collections import OrderedDict

from . import _registry, _state
from .nn import conv, layers
from .nn.module import Module
from .nn.parameter import Parameter


def tied_parameters(net: Module) -> list[list[str]]:
    """Groups of state names that share one storage (only groups of two or more).

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import nn
        >>> shared = nn.Linear(8, 8, backend="torch")
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared)
        >>> d2p.tied_parameters(net)
        [['2.weight', '4.weight'], ['2.bias', '4.bias']]
    """
    groups: OrderedDict[int, list[str]] = OrderedDict()
    keep = []
    for name, (member, is_param) in net._state_targets().items():
        native = member.native if is_param else member
        keep.append(native)
        groups.setdefault(id(native), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def native_names(net: Module) -> OrderedDict[str, str]:
    """``{canonical name: the framework's own name}`` for every parameter and buffer.

    Examples:
        >>> import d2lparams as d2p
        >>> net = d2p.nn.Sequential(d2p.nn.Linear(4, 8), backend="torch")
        >>> dict(d2p.native_names(net))
        {'0.weight': '0.weight', '0.bias': '0.bias'}
    """
    own = net._adapter.native_parameter_names(net.native)
    out = OrderedDict()
    for name, (member, is_param) in net._state_targets().items():
        native = member.native if is_param else member
        out[name] = own.get(id(native), name)
    return out


# -- summary ------------------------------------------------------------------------------------
def summary(net: Module, input_shape) -> str:
    """A table of every module (name, type, output shape, parameters, tied with), with
    totals; the same text on every backend.

    Examples:
        >>> import d2lparams as d2p
        >>> net = d2p.nn.mlp(4, 8, 1, backend="torch")
        >>> print(d2p.summary(net, (2, 4)).splitlines()[-2])
        Total parameters: 49
    """
    outputs: dict = {}
    token = _state.tracer.set(outputs)
    try:
        net._probe(input_shape)
    finally:
        _state.tracer.reset(token)

    tied = {}
    for group in tied_parameters(net):
        for name in group:
            tied[name] = [n for n in group if n != name]
    rows = [("Layer", "Type", "Output shape", "Params", "Tied with")]
    seen: dict = {}
    for name, module in net.named_modules(remove_duplicate=False):
        if name == "":
            continue
        own = module._local_parameters()
        count = 0
        for p in own.values():
            if id(p.native) not in seen:
                seen[id(p.native)] = p
                count += p.numel()
        ties = sorted({t.rsplit(".", 1)[0] for pn in own for t in tied.get(f"{name}.{pn}", [])})
        rows.append((name, type(module).__name__, outputs.get(id(module), "-"), f"{count:,}",
                     ", ".join(ties)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    line = "-" * (sum(widths) + 8)
    text = [line]
    for i, row in enumerate(rows):
        text.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            text.append(line)
    text.append(line)
    total = net.num_parameters()
    text.append(f"Total parameters: {total:,}")
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    text.append(f"Trainable parameters: {trainable:,}")
    return "\n".join(text)


# -- wrap ---------------------------------------------------------------------------------------
def wrap(native_model) -> Module:
    """A neutral :class:`~d2lparams.nn.Module` view over an existing native model of any of
    the four frameworks; the backend is found from its type. The view shares the native
    parameters: writes through either side are seen by both.

    Examples:
        >>> import torch, d2lparams as d2p
        >>> native = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
        >>> net = d2p.wrap(native)
        >>> [n for n, _ in net.named_parameters()], net[0].weight.shape
        (['0.weight', '0.bias'], (4, 8))
    """
    if isinstance(native_model, Module):
        return native_model
    name = _registry.backend_of_type(native_model)
    if name is None:
        raise TypeError(
            f"d2p.wrap takes a torch.nn.Module, keras Layer, gluon Block or paddle Layer, got "
            f"{type(native_model).__module__}.{type(native_model).__name__}"
        )
    ad = _registry.adapter(name)
    return _wrap(ad, native_model, {})


class Wrapped(Module):
    """A neutral view of a native module that has no neutral counterpart."""

    def __init__(self, ad, native, type_name: str):
        super().__init__(backend=ad.name)
        self.__dict__["_native"] = native
        self.__dict__["_type_name"] = type_name

    def forward(self, *args):
        return self(*args)

    def __repr__(self) -> str:
        text = super().__repr__()
        return self._type_name + text[len(type(self).__name__):]


def _wrap(ad, native, memo: dict) -> Module:
    if id(native) in memo:
        return memo[id(native)]
    info = ad.inspect(native)
    kind, options = info["kind"], info.get("options", {})
    module: Module
    if kind == "linear":
        module = layers.Linear.__new__(layers.Linear)
        Module.__init__(module, backend=ad.name)
        module.__dict__.update(
            _in_features=options.get("in_features"), out_features=options["out_features"],
            use_bias=bool(options.get("bias", True)), _native=native, _pending_init=None,
            _options=dict(options), _activation=info.get("activation"),
        )
    elif kind in conv.KINDS:
        module = conv.wrapped(ad, kind, native, options)
    elif kind in layers._STATELESS:
        cls = layers._STATELESS[kind]
        module = cls.__new__(cls)
        Module.__init__(module, backend=ad.name)
        module.__dict__.update(_options=dict(options), _native=native)
    elif kind == "sequential":
        module = layers.Sequential.__new__(layers.Sequential)
        Module.__init__(module, backend=ad.name)
        module.__dict__["_native"] = native
        for child_name, child in info["children"]:
            module._adopt_child(child_name, _wrap(ad, child, memo))
    else:
        module = Wrapped(ad, native, type(native).__name__)
        for child_name, child in info["children"]:
            module._adopt_child(child_name, _wrap(ad, child, memo))
        for pname, param in info.get("parameters", []):
            module._parameters[pname] = Parameter._view(ad, param)
        for bname, buf in info.get("buffers", []):
            module._buffers[bname] = buf
    memo[id(native)] = module
    return module


def compile(module, **options):  # noqa: A001 - PyTorch's name (torch.compile)
    """Compile ``module``'s forward with its framework's compiler and return the module (the
    same object: its parameters, names and ``state_dict`` keys do not change). See
    :meth:`Module.compile`.

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import nn
        >>> net = d2p.compile(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), backend="torch"))
        >>> tuple(net(d2p.ones(2, 4, backend="torch")).shape)
        (2, 8)
    """
    if not isinstance(module, Module):
        raise TypeError(
            f"d2p.compile takes an nn.Module, got {type(module).__module__}."
            f"{type(module).__name__}; wrap a native model first (d2p.compile(d2p.wrap(model))) "
            "or use its framework's own compiler")
    module.compile(**options)
    return module
