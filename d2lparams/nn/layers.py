"""Built-in layers and containers; each owns one real native module."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .. import _state
from .._checks import number, shown
from .._errors import DeferredInitializationError
from ..init import apply_init
from .module import Module
from .parameter import Parameter


def _positive_int(value, what: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive int, got {shown(value)}")
    return int(value)


class _Layer(Module):
    """A built-in layer: one native layer of the framework (``adapter.layer(kind)``), whose
    parameters and buffers the adapter reports under PyTorch's names."""

    _kind = ""
    #: members of ``layer_state`` that are buffers (non-trainable state), not parameters
    _buffer_names: tuple = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} overrides forward() of the built-in layer "
                f"{cls.__mro__[1].__name__}, whose native layer would ignore it (the "
                "framework's own tools call the native layer); subclass nn.Module instead "
                "and hold the built-in layer as a child"
            )

    def _build(self, **options) -> None:
        self.__dict__["_options"] = options
        self.__dict__["_native"] = self._make_native()

    def _make_native(self):
        return self._adapter.layer(self._kind, **self.__dict__["_options"])

    def _copy_own_state(self, source) -> None:
        ad = self._adapter
        theirs = source._raw_state() or {}
        mine = self._raw_state() or {}
        for name, member in theirs.items():
            if name in mine:
                dtype, where = ad.dtype(member), ad.device_of(member)
                if ad.dtype(mine[name]) != dtype or ad.device_of(mine[name]) != where:
                    ad.move(mine[name], dtype, where)
                    ad.set_layer_dtype(self.native, dtype)
                ad.assign(mine[name], ad.to_numpy(member))
                if name not in self._buffer_names:
                    ad.requires_grad(mine[name], ad.requires_grad(member))

    def _raw_state(self) -> dict | None:
        return self._adapter.layer_state(self.native, self._kind)

    def _state(self) -> dict:
        state = self._raw_state()
        if state is None:
            raise DeferredInitializationError(
                f"{self._unbuilt_text()} has no parameters yet: its input size is learnt at "
                "the first call. Call the network once on an input (net(X)) or use "
                "net.materialize(input_shape) before touching them"
            )
        return state

    def _unbuilt_text(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def _local_parameters(self):
        own = OrderedDict(
            (name, Parameter._view(self._adapter, member, self._adapter.layout(self._kind, name)))
            for name, member in self._state().items() if name not in self._buffer_names
        )
        own.update(self._parameters)  # extra parameters assigned by the user
        return own

    def _local_buffers(self):
        own = OrderedDict(
            (name, member) for name, member in self._state().items() if name in self._buffer_names
        )
        own.update(self._buffers)
        return own

    def forward(self, X):
        return self(X)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self._options.items())


class Linear(_Layer):
    """``y = X @ weight + bias`` with ``weight`` of canonical shape ``(in, out)``.

    ``in_features=None`` (or :func:`LazyLinear`) learns the input size at the first call.
    Construction uses the framework's own default initialisation; ``weight_init`` /
    ``bias_init`` (an ``init.Initializer``, a number, or a function ``f(parameter)``)
    replace it.

    Examples:
        >>> import d2lparams as d2p
        >>> lin = d2p.nn.Linear(4, 8, backend="torch")
        >>> lin.weight.shape, lin.weight.native_shape
        ((4, 8), (8, 4))
    """

    _kind = "linear"

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
        self._build(in_features=in_features, out_features=out_features, bias=bool(bias))
        d["_pending_init"] = (weight_init, bias_init) if (weight_init or bias_init) else None
        if in_features is not None:
            self._apply_pending_init()

    @property
    def in_features(self) -> int | None:
        if self._in_features is None:
            if self._adapter.layer_state(self.native, "linear") is not None:
                self.__dict__["_in_features"] = self.weight.shape[0]
        return self._in_features

    def _apply_pending_init(self) -> None:
        pending = self.__dict__.get("_pending_init")
        if pending is None:
            return
        self.__dict__["_pending_init"] = None
        weight_init, bias_init = pending
        if weight_init is not None:
            apply_init(self.weight, weight_init)
        bias = self.bias
        if bias_init is not None and bias is not None:
            apply_init(bias, bias_init)

    @property
    def weight(self) -> Parameter:
        return Parameter._view(self._adapter, self._state()["weight"],
                               self._adapter.layout("linear", "weight"))

    @property
    def bias(self) -> Parameter | None:
        bias = self._state().get("bias")
        return None if bias is None else Parameter._view(self._adapter, bias)

    def _explain_input(self, shape: tuple) -> str | None:
        if self.in_features is None or not shape or shape[-1] == self.in_features:
            return None
        return (
            f"expects inputs whose last axis has {self.in_features} features (its first "
            f"Linear is Linear(in_features={self.in_features}, out_features="
            f"{self.out_features})), got an input of shape {shape}; pass X of shape (batch, "
            f"{self.in_features}), or build the first layer as nn.LazyLinear("
            f"{self.out_features}) to take any input size"
        )

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

    def extra_repr(self) -> str:
        text = (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.use_bias}")
        activation = self.__dict__.get("_activation")  # a wrapped Dense applies its own
        return text + (f", activation={activation}" if activation else "")

    def _unbuilt_text(self) -> str:
        return f"Linear(in_features=None, out_features={self.out_features})"


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


class _Stateless(_Layer):
    def __init__(self, *, backend: str | None = None, **options) -> None:
        super().__init__(backend=backend)
        self._build(**options)

    def _raw_state(self) -> dict:
        return {}


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


class Dropout(_Stateless):
    """Zeroes each entry with probability ``p`` in training mode (the rest scaled by
    ``1/(1-p)``); the identity in inference mode (``eval()``). Draws from the framework's RNG.

    Examples:
        >>> import d2lparams as d2p
        >>> drop = d2p.nn.Dropout(0.5, backend="torch").eval()
        >>> d2p.to_numpy(drop(d2p.ones(3, backend="torch"))).tolist()
        [1.0, 1.0, 1.0]
    """

    _kind = "dropout"

    def __init__(self, p: float = 0.5, *, backend: str | None = None) -> None:
        p = number(p, "Dropout p", minimum=0, maximum=1, max_open=True,
                   expected="a probability in [0, 1)")
        super().__init__(backend=backend, p=float(p))
        self.__dict__["p"] = float(p)


class BatchNorm1d(_Layer):
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

    _kind = "batch_norm"
    _buffer_names = ("running_mean", "running_var")

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
        self._build(num_features=num_features, eps=float(eps), momentum=float(momentum))

    @property
    def weight(self) -> Parameter:
        return self._local_parameters()["weight"]

    @property
    def bias(self) -> Parameter:
        return self._local_parameters()["bias"]

    @property
    def running_mean(self):
        return self._adapter.buffer_tensor(self._state()["running_mean"])

    @property
    def running_var(self):
        return self._adapter.buffer_tensor(self._state()["running_var"])

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


def _index(key, size: int, what: str) -> int:
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
        raise TypeError(f"{what} indices must be integers or slices, got {type(key).__name__}")
    index = int(key)
    if not -size <= index < size:
        raise IndexError(f"index {index} is out of range for a {what} of {size}")
    return index % size if size else index


class Sequential(Module):
    """Applies its children in order; the same module may appear twice (tied).

    Takes modules, or one ``OrderedDict`` of named modules. Indexing, slicing (a new
    ``Sequential`` of the same modules), ``net[i] = m``, ``del net[i]``, ``insert``,
    ``append``, ``extend`` and ``pop`` behave as in PyTorch, natively too.

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1), backend="torch")
        >>> net[2].bias.shape, len(net), [type(m).__name__ for m in net[1:]]
        ((1,), 3, ['ReLU', 'Linear'])
    """

    def __init__(self, *modules, backend: str | None = None) -> None:
        named = list(modules[0].items()) if len(modules) == 1 and isinstance(
            modules[0], OrderedDict) else [(str(i), m) for i, m in enumerate(modules)]
        if named and backend is None and isinstance(named[0][1], Module):
            backend = named[0][1].backend
        super().__init__(backend=backend)
        for name, module in named:
            self.add_module(name, module)

    def _make_native(self):
        # a subclass with its own forward gets a native module that runs that forward
        if type(self).forward is Sequential.forward:
            return self._adapter.container("sequential")
        return super()._make_native()

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end under the name ``str(len(self))``."""
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules) -> Sequential:
        """Append every module of ``modules``."""
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> Sequential:
        """Put ``module`` at position ``index``; later children move one place up (PyTorch:
        children are renumbered ``"0"``, ``"1"``, ...)."""
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.insert takes an nn.Module, got {type(module).__name__}")
        n = len(self._modules)
        if not -n <= index <= n:
            raise IndexError(f"index {index} is out of range for a Sequential of {n}")
        index = index % (n + 1) if index < 0 else index
        items = list(self._modules.values())
        items.insert(index, module)
        self._set_children(items)
        return self

    def pop(self, key):
        """Remove and return the child at ``key`` (an index or a slice)."""
        value = self[key]
        del self[key]
        return value

    def __getitem__(self, key):
        if isinstance(key, slice):
            return type(self)(OrderedDict(list(self._modules.items())[key]), backend=self.backend)
        if isinstance(key, str):
            if key not in self._modules:
                raise KeyError(f"no child named {key!r}; children: {list(self._modules)}")
            return self._modules[key]
        items = list(self._modules.values())
        return items[_index(key, len(items), "Sequential")]

    def __setitem__(self, key, module: Module) -> None:
        names = list(self._modules)
        name = key if isinstance(key, str) else names[_index(key, len(names), "Sequential")]
        setattr(self, name, module)

    def __delitem__(self, key) -> None:
        items = list(self._modules.values())
        if isinstance(key, slice):
            drop = set(range(len(items))[key])
        else:
            drop = {_index(key, len(items), "Sequential")}
        self._set_children([m for i, m in enumerate(items) if i not in drop])

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, X):
        for module in self._modules.values():
            X = module(X)
        return X

    def _traced_call(self, args):
        out = self.forward(*args)  # through the children, so that each one is traced
        _state.record_shape(self, out)
        return out

    def _explain_input(self, shape: tuple) -> str | None:
        return self[0]._explain_input(shape) if len(self) else None


class ModuleList(Module):
    """A list of modules, registered as children ``"0"``, ``"1"``, ...; it has no forward.
    Indexing, slicing, ``ml[i] = m``, ``del ml[i]``, ``insert``, ``append``, ``extend``,
    ``pop`` and ``+=`` behave as in PyTorch, natively too.

    Examples:
        >>> import d2lparams as d2p
        >>> layers = d2p.nn.ModuleList([d2p.nn.Linear(2, 2, backend="torch")])
        >>> layers += [d2p.nn.ReLU(backend="torch")]
        >>> len(layers)
        2
    """

    def __init__(self, modules=(), *, backend: str | None = None) -> None:
        modules = list(modules)
        if modules and backend is None and isinstance(modules[0], Module):
            backend = modules[0].backend
        super().__init__(backend=backend)
        for module in modules:
            self.append(module)

    def _make_native(self):
        if type(self).forward is ModuleList.forward:
            return self._adapter.container("list")
        return super()._make_native()

    def __call__(self, *args):
        if type(self).forward is ModuleList.forward:
            self.forward(*args)  # a ModuleList has no forward: PyTorch's error
        return super().__call__(*args)

    def append(self, module: Module) -> ModuleList:
        """Add ``module`` at the end under the name ``str(len(self))``."""
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules) -> ModuleList:
        """Append every module of ``modules``."""
        for module in modules:
            self.append(module)
        return self

    def __iadd__(self, modules) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other) -> ModuleList:
        return ModuleList([*self, *other], backend=self.backend)

    def insert(self, index: int, module: Module) -> None:
        """Put ``module`` at position ``index``; later ones move one place up."""
        items = list(self._modules.values())
        items.insert(index, module)
        self._set_children(items)

    def pop(self, key):
        """Remove and return the module at ``key``."""
        value = self[key]
        del self[key]
        return value

    def __getitem__(self, key):
        items = list(self._modules.values())
        if isinstance(key, slice):
            return type(self)(items[key], backend=self.backend)
        return items[_index(key, len(items), "ModuleList")]

    def __setitem__(self, key, module: Module) -> None:
        setattr(self, str(_index(key, len(self._modules), "ModuleList")), module)

    def __delitem__(self, key) -> None:
        items = list(self._modules.values())
        drop = set(range(len(items))[key]) if isinstance(key, slice) else {
            _index(key, len(items), "ModuleList")}
        self._set_children([m for i, m in enumerate(items) if i not in drop])

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
