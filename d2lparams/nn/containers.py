"""Containers of named parameters and modules: ``ParameterList``, ``ParameterDict`` and
``ModuleDict``, PyTorch's meaning. Their members are registered on the native module too, so
the framework's own optimizers and checkpoints see them."""

from __future__ import annotations

from .. import _state
from .module import Module
from .parameter import Parameter


def _as_parameter(value, backend: str) -> Parameter:
    return value if isinstance(value, Parameter) else Parameter(value, backend=backend)


class _Container(Module):
    """A module that holds members and has no forward."""

    def _make_native(self):
        return self._adapter.container("list")

    def __call__(self, *args):
        return self.forward(*args)  # no forward: PyTorch's NotImplementedError


class ParameterList(_Container):
    """A list of parameters, registered as ``"0"``, ``"1"``, ...; a value that is not a
    ``Parameter`` (a NumPy array, a native tensor) becomes one.

    Inside a module's ``forward`` an item is the native tensor, as an attribute is.

    Examples:
        >>> import numpy as np, d2lparams as d2p
        >>> params = d2p.nn.ParameterList([np.ones((2, 2)), np.zeros(2)], backend="torch")
        >>> [(n, p.shape) for n, p in params.named_parameters()]
        [('0', (2, 2)), ('1', (2,))]
    """

    def __init__(self, values=None, *, backend: str | None = None) -> None:
        values = list(values or ())
        if values and backend is None and isinstance(values[0], Parameter):
            backend = values[0].backend
        super().__init__(backend=backend)
        self.extend(values)

    def append(self, value) -> ParameterList:
        self.register_parameter(str(len(self)), _as_parameter(value, self.backend))
        return self

    def extend(self, values) -> ParameterList:
        for value in values:
            self.append(value)
        return self

    def __iadd__(self, values) -> ParameterList:
        return self.extend(values)

    def _item(self, p):
        return p.value() if _state.in_forward.get() else p

    def __getitem__(self, index):
        items = list(self._parameters.values())
        if isinstance(index, slice):
            return ParameterList(items[index], backend=self.backend)
        return self._item(items[index])

    def __setitem__(self, index, value) -> None:
        index = range(len(self))[index]  # IndexError for a bad index, as a list
        self.register_parameter(str(index), _as_parameter(value, self.backend))

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self):
        return (self._item(p) for p in self._parameters.values())

    def extra_repr(self) -> str:
        return "\n".join(
            f"({name}): Parameter containing: [{p.dtype} of size {p.shape}]"
            for name, p in self._parameters.items()
        )


class ParameterDict(_Container):
    """An ordered dict of parameters keyed by name (a mapping: ``[]``, ``in``, ``keys``,
    ``items``, ``values``, ``update``, ``pop``, ``get``, ``clear``).

    Examples:
        >>> import numpy as np, d2lparams as d2p
        >>> params = d2p.nn.ParameterDict({"scale": np.ones(3)}, backend="torch")
        >>> params["shift"] = np.zeros(3)
        >>> list(params)
        ['scale', 'shift']
    """

    def __init__(self, parameters=None, *, backend: str | None = None) -> None:
        items = list((parameters or {}).items())
        if items and backend is None and isinstance(items[0][1], Parameter):
            backend = items[0][1].backend
        super().__init__(backend=backend)
        self.update(items)

    def __getitem__(self, key: str):
        p = self._parameters[key]
        return p.value() if _state.in_forward.get() else p

    def __setitem__(self, key: str, value) -> None:
        self.register_parameter(key, _as_parameter(value, self.backend))

    def __delitem__(self, key: str) -> None:
        delattr(self, key)

    def __contains__(self, key) -> bool:
        return key in self._parameters

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self):
        return iter(list(self._parameters))

    def keys(self):
        return list(self._parameters.keys())

    def values(self):
        return [self[k] for k in self._parameters]

    def items(self):
        return [(k, self[k]) for k in self._parameters]

    def get(self, key: str, default=None):
        return self[key] if key in self else default

    def pop(self, key: str):
        value = self._parameters[key]
        del self[key]
        return value

    def update(self, parameters) -> None:
        """Add or replace the given ``(name, value)`` pairs (a mapping or an iterable)."""
        pairs = parameters.items() if hasattr(parameters, "items") else parameters
        for key, value in pairs:
            self[key] = value

    def clear(self) -> None:
        for key in list(self._parameters):
            del self[key]

    def extra_repr(self) -> str:
        return "\n".join(
            f"({name}): Parameter containing: [{p.dtype} of size {p.shape}]"
            for name, p in self._parameters.items()
        )


class ModuleDict(_Container):
    """An ordered dict of child modules keyed by name, registered as children (natively
    too); a mapping like :class:`ParameterDict`.

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import nn
        >>> heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.Linear(4, 3)}, backend="torch")
        >>> [n for n, _ in heads.named_parameters()]
        ['a.weight', 'a.bias', 'b.weight', 'b.bias']
    """

    def __init__(self, modules=None, *, backend: str | None = None) -> None:
        items = list((modules or {}).items())
        if items and backend is None and isinstance(items[0][1], Module):
            backend = items[0][1].backend
        super().__init__(backend=backend)
        self.update(items)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        delattr(self, key)

    def __contains__(self, key) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules))

    def keys(self):
        return list(self._modules.keys())

    def values(self):
        return list(self._modules.values())

    def items(self):
        return list(self._modules.items())

    def pop(self, key: str) -> Module:
        value = self._modules[key]
        del self[key]
        return value

    def update(self, modules) -> None:
        """Add or replace the given ``(name, module)`` pairs (a mapping or an iterable)."""
        pairs = modules.items() if hasattr(modules, "items") else modules
        for key, module in pairs:
            self[key] = module

    def clear(self) -> None:
        for key in list(self._modules):
            del self[key]


__all__ = ["ModuleDict", "ParameterDict", "ParameterList"]
