"""Built-in layers and containers; each owns one real native module."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .._checks import number, shown
from .._errors import DeferredInitializationError
from .module import Module
from .parameter import Parameter


def _positive_int(value, what: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive int, got {shown(value)}")
    return int(value)


class Linear(Module):
    """``y = X @ weight + bias`` with ``weight`` of canonical shape ``(in, out)``.

    ``in_features=None`` (or :func:`LazyLinear`) learns the input size at the first call.
    Construction uses the framework's own default initialisation; ``weight_init`` /
    ``bias_init`` (an ``init.Initializer`` or a function ``f(parameter)``) replace it.

    Examples:
        >>> import d2lparams as d2p
        >>> lin = d2p.nn.Linear(4, 8, backend="torch")
        >>> lin.weight.shape, lin.weight.native_shape
        ((4, 8), (8, 4))
    """

    def __init__(self, in_features, out_features, bias: bool = True, weight_init=None,
                 bias_init=None, *, backend: str | None = None) -> None:
        super().__init__(backend=backend)
        in_features = _positive_int(in_features, "Linear in_features", allow_none=True)
        out_features = _positive_int(out_features, "Linear out_features")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"Linear bias takes True or False, got {bias!r}")
        d = self.__dict__
        d["_in_features"] = in_features
        d["out_features"] = out_features
        d["use_bias"] = bool(bias)
        d["_native"] = self._adapter.linear(in_features, out_features, bool(bias))
        d["_pending_init"] = (weight_init, bias_init) if (weight_init or bias_init) else None
        if in_features is not None:
            self._apply_pending_init()

    @property
    def in_features(self) -> int | None:
        if self._in_features is None:
            weight, _ = self._adapter.linear_parameters(self.native)
            if weight is not None:
                self.__dict__["_in_features"] = self.weight.shape[0]
        return self._in_features

    def _apply_pending_init(self) -> None:
        pending = self.__dict__.get("_pending_init")
        if pending is None:
            return
        self.__dict__["_pending_init"] = None
        from ..init import _apply_init

        weight_init, bias_init = pending
        if weight_init is not None:
            _apply_init(self.weight, weight_init)
        bias = self.bias
        if bias_init is not None and bias is not None:
            _apply_init(bias, bias_init)

    def _natives(self):
        weight, bias = self._adapter.linear_parameters(self.native)
        if weight is None:
            raise DeferredInitializationError(
                f"Linear(in_features=None, out_features={self.out_features}) has no parameters "
                "yet: its input size is learnt at the first call. Call the network once on an "
                "input (net(X)) or use net.materialize(input_shape) before touching them"
            )
        return weight, bias

    @property
    def weight(self) -> Parameter:
        weight, _ = self._natives()
        return Parameter._view(self._adapter, weight, self._adapter.linear_weight_transposed)

    @property
    def bias(self) -> Parameter | None:
        _, bias = self._natives()
        return None if bias is None else Parameter._view(self._adapter, bias)

    def _local_parameters(self):
        out = OrderedDict(weight=self.weight)
        if self.use_bias:
            out["bias"] = self.bias
        return out

    def __setattr__(self, name, value):
        if name in ("weight", "bias"):
            raise AttributeError(
                f"Linear.{name} cannot be replaced; write its value with "
                f"linear.{name}.set(value) or tie whole layers by reusing the module"
            )
        super().__setattr__(name, value)

    def __call__(self, *args):
        out = super().__call__(*args)
        if self.__dict__["_pending_init"] is not None:
            self._apply_pending_init()
        return out

    def forward(self, X):
        return self(X)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.use_bias}"
        )


def LazyLinear(out_features, bias: bool = True, weight_init=None, bias_init=None, *,
               backend: str | None = None) -> Linear:
    """A :class:`Linear` whose ``in_features`` is learnt at the first call.

    Examples:
        >>> import d2lparams as d2p
        >>> lin = d2p.nn.LazyLinear(8, backend="torch")
        >>> type(lin) is d2p.nn.Linear
        True
    """
    return Linear(None, out_features, bias, weight_init, bias_init, backend=backend)


class _Stateless(Module):
    _kind = ""

    def __init__(self, *, backend: str | None = None, **options) -> None:
        super().__init__(backend=backend)
        self.__dict__["_options"] = options
        self.__dict__["_native"] = self._adapter.activation(self._kind, **options)

    def forward(self, X):
        return self(X)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self._options.items())


class ReLU(_Stateless):
    """``max(x, 0)``."""

    _kind = "relu"


class Sigmoid(_Stateless):
    """``1 / (1 + exp(-x))``."""

    _kind = "sigmoid"


class Tanh(_Stateless):
    """``tanh(x)``."""

    _kind = "tanh"


class Identity(_Stateless):
    """Returns its input."""

    _kind = "identity"


class Softmax(_Stateless):
    """Softmax over ``dim`` (default: the last axis)."""

    _kind = "softmax"

    def __init__(self, dim: int = -1, *, backend: str | None = None) -> None:
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"Softmax dim must be an int, got {shown(dim)}")
        super().__init__(backend=backend, dim=int(dim))


class Flatten(_Stateless):
    """Flattens every axis after the first (batch) one."""

    _kind = "flatten"


class Dropout(Module):
    """Zeroes each entry with probability ``p`` in training mode (the rest scaled by
    ``1/(1-p)``); the identity in inference mode (``eval()``). Draws from the framework's RNG.

    Examples:
        >>> import d2lparams as d2p
        >>> drop = d2p.nn.Dropout(0.5, backend="torch").eval()
        >>> d2p.to_numpy(drop(d2p.ones(3, backend="torch"))).tolist()
        [1.0, 1.0, 1.0]
    """

    def __init__(self, p: float = 0.5, *, backend: str | None = None) -> None:
        p = number(p, "Dropout p", minimum=0, maximum=1, max_open=True,
                   expected="a probability in [0, 1)")
        super().__init__(backend=backend)
        self.__dict__["p"] = float(p)
        self.__dict__["_native"] = self._adapter.dropout(float(p))

    def forward(self, X):
        return self(X)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class BatchNorm1d(Module):
    """Batch normalization over axis 1 with PyTorch's meaning on every backend: parameters
    ``weight`` and ``bias``; buffers ``running_mean`` and ``running_var``, updated in the
    forward pass in training mode (``running = (1-momentum)·running + momentum·batch``,
    unbiased variance) and used in inference mode.

    Examples:
        >>> import d2lparams as d2p
        >>> bn = d2p.nn.BatchNorm1d(3, backend="torch")
        >>> [n for n, _ in bn.named_buffers()]
        ['running_mean', 'running_var']
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, *,
                 backend: str | None = None) -> None:
        num_features = int(_positive_int(num_features, "BatchNorm1d num_features") or 0)
        eps = number(eps, "BatchNorm1d eps", minimum=0, min_open=True,
                     fix="; the usual value is 1e-5")
        momentum = number(momentum, "BatchNorm1d momentum", minimum=0, maximum=1,
                          fix="; PyTorch's meaning: running = (1-momentum)·running + "
                          "momentum·batch, default 0.1")
        super().__init__(backend=backend)
        d = self.__dict__
        d.update(num_features=num_features, eps=float(eps), momentum=float(momentum))
        d["_native"] = self._adapter.batch_norm(num_features, float(eps), float(momentum))

    def _state(self):
        return self._adapter.batch_norm_state(self.native)

    @property
    def weight(self) -> Parameter:
        return Parameter._view(self._adapter, self._state()[0])

    @property
    def bias(self) -> Parameter:
        return Parameter._view(self._adapter, self._state()[1])

    @property
    def running_mean(self):
        return self._adapter.buffer_tensor(self._state()[2])

    @property
    def running_var(self):
        return self._adapter.buffer_tensor(self._state()[3])

    def _local_parameters(self):
        return OrderedDict(weight=self.weight, bias=self.bias)

    def _local_buffers(self):
        state = self._state()
        return OrderedDict(running_mean=state[2], running_var=state[3])

    def forward(self, X):
        return self(X)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class Sequential(Module):
    """Applies its children in order; the same module may appear twice (tied).

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1), backend="torch")
        >>> net[2].bias.shape, len(net)
        ((1,), 3)
    """

    def __init__(self, *modules: Module, backend: str | None = None) -> None:
        if modules and backend is None and isinstance(modules[0], Module):
            backend = modules[0].backend
        super().__init__(backend=backend)
        self.__dict__["_native"] = self._adapter.sequential()
        for module in modules:
            self.append(module)

    def _register_child(self, name, module):
        self._adapter.sequential_append(self.native, name, module.native)

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end under the name ``str(len(self))``."""
        self.add_module(str(len(self._modules)), module)
        return self

    def add_module(self, name: str, module: Module) -> None:
        if name in self._modules:
            raise KeyError(
                f"Sequential already has a child named {name!r}; pick another name"
            )
        super().add_module(name, module)

    def _by_index(self, index: int) -> Module:
        items = list(self._modules.values())
        if not -len(items) <= index < len(items):
            raise IndexError(f"index {index} is out of range for a Sequential of {len(items)}")
        return items[index]

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return self._by_index(int(key))
        if isinstance(key, str):
            if key not in self._modules:
                raise KeyError(f"no child named {key!r}; children: {list(self._modules)}")
            return self._modules[key]
        raise TypeError(f"Sequential indices are ints or child names, got {type(key).__name__}")

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, X):
        for module in self._modules.values():
            X = module(X)
        return X

    def _traced_call(self, args):
        from ..introspect import record_output

        out = self.forward(*args)  # through the children, so that each one is traced
        record_output(self, out)
        return out


class ModuleList(Module):
    """A list of modules, registered as children ``"0"``, ``"1"``, ...; it has no forward.

    Examples:
        >>> import d2lparams as d2p
        >>> layers = d2p.nn.ModuleList([d2p.nn.Linear(2, 2, backend="torch")])
        >>> len(layers)
        1
    """

    def __init__(self, modules=(), *, backend: str | None = None) -> None:
        modules = list(modules)
        if modules and backend is None and isinstance(modules[0], Module):
            backend = modules[0].backend
        super().__init__(backend=backend)
        self.__dict__["_native"] = self._adapter.module_list()
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def __getitem__(self, index: int) -> Module:
        items = list(self._modules.values())
        return items[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


_ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}
_STATELESS = {cls._kind: cls for cls in (ReLU, Sigmoid, Tanh, Identity, Softmax, Flatten)}


def mlp(in_features, hidden, out_features, activation: str = "relu", *,
        backend: str | None = None) -> Sequential:
    """``Sequential(Linear, act, ..., Linear)``; ``hidden`` is an int or a list of widths;
    ``in_features=None`` makes the first layer lazy.

    Examples:
        >>> import d2lparams as d2p
        >>> net = d2p.nn.mlp(4, [8], 1, backend="torch")
        >>> [type(m).__name__ for m in net]
        ['Linear', 'ReLU', 'Linear']
    """
    if not isinstance(activation, str) or activation not in _ACTIVATIONS:
        raise ValueError(
            f"mlp activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
        )
    if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
        widths = [hidden]
    else:
        try:
            widths = list(hidden)
        except TypeError:
            raise TypeError(
                f"mlp hidden takes an int or a list of ints (the hidden widths), got "
                f"{shown(hidden)}; for no hidden layer pass []"
            ) from None
    for width in widths:
        _positive_int(width, "mlp hidden width")
    sizes = [in_features, *widths, out_features]
    layers: list[Module] = []
    for i in range(len(sizes) - 1):
        layers.append(Linear(sizes[i], sizes[i + 1], backend=backend))
        if i < len(sizes) - 2:
            layers.append(_ACTIVATIONS[activation](backend=backend))
    return Sequential(*layers, backend=backend)
