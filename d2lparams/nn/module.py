"""``nn.Module``: the neutral module tree, mirrored onto one native module tree (SPEC §3, §5)."""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy as np

from .. import _registry, _state
from .._checks import InvalidValue, count_nonfinite, finite_float32, float32_array
from .._errors import StateDictError
from .parameter import Parameter

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _addindent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


class Module:
    """Base class of every neutral module; subclass it as you would ``torch.nn.Module``.

    Assigning a :class:`Module` or a :class:`Parameter` to an attribute registers it, on the
    neutral tree and on the native one (``self.native``), so the framework's own tools see the
    same parameters. ``forward`` receives and returns native tensors; inside it, a parameter
    attribute is the native tensor itself (canonical layout).

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import nn, ops
        >>> class MLP(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.hidden = nn.Linear(20, 256)
        ...         self.out = nn.Linear(256, 10)
        ...     def forward(self, X):
        ...         return self.out(ops.relu(self.hidden(X)))
        >>> with d2p.use_backend("torch"):
        ...     net = MLP()
        >>> tuple(net(d2p.rand(2, 20, backend="torch")).shape)
        (2, 10)
        >>> [name for name, _ in net.named_parameters()]
        ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
    """

    def __init__(self, *, backend: str | None = None) -> None:
        d = self.__dict__
        d["_adapter"] = _registry.adapter(backend)
        d["_modules"] = OrderedDict()
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_native"] = None
        d["training"] = True

    # -- the native side ---------------------------------------------------------------------
    def _make_native(self):
        return self._adapter.custom(self)

    @property
    def native(self):
        """The framework's own module (``torch.nn.Module``, ``keras.layers.Layer``,
        ``gluon.Block``, ``paddle.nn.Layer``); it trains with the framework's own tools."""
        self._check_init()
        if self.__dict__["_native"] is None:
            self.__dict__["_native"] = self._make_native()
        return self.__dict__["_native"]

    @property
    def backend(self) -> str:
        """The backend this module was built on; ``set_backend`` never changes it."""
        self._check_init()
        return self._adapter.name

    def _check_init(self) -> None:
        if "_adapter" not in self.__dict__:
            raise RuntimeError(
                f"{type(self).__name__}.__init__ must call super().__init__() before it "
                "assigns modules or parameters"
            )

    # -- registration ------------------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, (Module, Parameter)) or name in self.__dict__.get("_buffers", ()):
            self._check_init()
        if isinstance(value, Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self.add_module(name, value)
        elif name in self.__dict__.get("_buffers", ()):
            self.register_buffer(name, value)
        else:
            for table in ("_parameters", "_modules"):
                if name in self.__dict__.get(table, ()):
                    raise TypeError(
                        f"cannot assign {type(value).__name__} to {type(self).__name__}.{name}, "
                        f"which holds a registered {table[1:-1]}; assign an nn.Parameter / "
                        "nn.Module, or delete the attribute first"
                    )
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        d = self.__dict__
        if "_parameters" in d:
            if name in d["_parameters"]:
                p = d["_parameters"][name]
                return p.value() if _state.in_forward.get() else p
            if name in d["_buffers"]:
                return d["_adapter"].buffer_tensor(d["_buffers"][name])
            if name in d["_modules"]:
                return d["_modules"][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for table in ("_parameters", "_modules", "_buffers"):
            if name in self.__dict__.get(table, ()):
                raise TypeError(
                    f"cannot delete the registered {table[1:-1]} {name!r}: the native module "
                    "keeps it; build a new module instead"
                )
        object.__delattr__(self, name)

    def _check_name(self, name, kind: str) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(
                f"a {kind} name must be a non-empty str without '.', got {name!r}"
            )
        if name == "__metadata__" and kind != "module":
            raise ValueError(
                f"a {kind} cannot be named '__metadata__': checkpoint files (safetensors) "
                "reserve that name for their metadata; pick another name"
            )

    def _check_same_backend(self, obj, what: str) -> None:
        if obj._adapter is not self._adapter:
            raise ValueError(
                f"cannot register {what} built on backend {obj._adapter.name!r} in "
                f"{type(self).__name__} built on {self._adapter.name!r}; build both on one "
                "backend, or port values with load_state_dict(other.state_dict())"
            )

    def add_module(self, name: str, module: Module) -> None:
        """Register ``module`` as child ``name`` (any string without a dot)."""
        self._check_init()
        self._check_name(name, "module")
        if not isinstance(module, Module):
            raise TypeError(f"add_module({name!r}, ...) takes an nn.Module, got {type(module).__name__}")
        self._check_same_backend(module, f"module {name!r}")
        if name in self._parameters or name in self._buffers:
            raise KeyError(f"attribute {name!r} already holds a parameter or buffer")
        self._register_child(name, module)
        self._modules[name] = module

    def register_module(self, name: str, module: Module) -> None:
        """Alias of :meth:`add_module`."""
        self.add_module(name, module)

    def _register_child(self, name: str, module: Module) -> None:
        self._adapter.register_child(self.native, name, module.native)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` under ``name`` (as assigning ``self.name = param`` does)."""
        self._check_init()
        self._check_name(name, "parameter")
        if not isinstance(param, Parameter):
            raise TypeError(
                f"register_parameter({name!r}, ...) takes an nn.Parameter, got "
                f"{type(param).__name__}; wrap the value: nn.Parameter(value)"
            )
        self._check_same_backend(param, f"parameter {name!r}")
        if name in self._modules or name in self._buffers:
            raise KeyError(f"attribute {name!r} already holds a module or buffer")
        self._adapter.register_parameter(self.native, name, param.native)
        self._parameters[name] = param

    def register_buffer(self, name: str, value) -> None:
        """Register non-trainable state (in ``state_dict`` and ``named_buffers``)."""
        self._check_init()
        self._check_name(name, "buffer")
        if name in self._modules or name in self._parameters:
            raise KeyError(f"attribute {name!r} already holds a module or parameter")
        array = np.array(finite_float32(value, f"register_buffer({name!r})"), copy=True)
        if name in self._buffers:
            buf = self._buffers[name]
            if tuple(self._adapter.param_shape(buf)) != array.shape:
                raise ValueError(
                    f"buffer {name!r} has shape {tuple(self._adapter.param_shape(buf))}, "
                    f"got a value of shape {array.shape}"
                )
            self._adapter.param_set(buf, array)
            return
        buf = self._adapter.create_buffer(array)
        self._adapter.register_buffer(self.native, name, buf)
        self._buffers[name] = buf

    # -- local members (built-in layers derive them from the native module) ------------------
    def _local_parameters(self) -> OrderedDict[str, Parameter]:
        return self._parameters

    def _local_buffers(self) -> OrderedDict[str, object]:
        return self._buffers

    # -- calling -----------------------------------------------------------------------------
    def forward(self, *args):
        raise TypeError(
            f"{type(self).__name__} has no forward; define forward(self, X) in the subclass"
        )

    def _as_input(self, x):
        ad = self._adapter
        if ad.is_tensor(x):
            return x
        if isinstance(x, Parameter):
            return x.value()
        if isinstance(x, (np.ndarray, list, tuple, float, int)):
            return ad.tensor(np.asarray(x, dtype=np.float32))
        other = _registry.backend_of_type(x)
        raise TypeError(
            f"{type(self).__name__} is built on backend {ad.name!r} and was called with a "
            f"{type(x).__module__}.{type(x).__name__}"
            + (f" of backend {other!r}" if other else "")
            + f"; pass a {ad.name} tensor (d2p.tensor(x, backend={ad.name!r})) or a NumPy array"
        )

    def __call__(self, *args):
        d = self.__dict__  # the hot path: plain dict reads, no properties
        ad = d["_adapter"]
        if not (len(args) == 1 and ad.is_tensor(args[0])):
            args = tuple(a if ad.is_tensor(a) else self._as_input(a) for a in args)
        if _state.tracer.get() is not None:
            return self._traced_call(args)
        try:
            return ad.call(d["_native"] or self.native, args, d["training"])
        except Exception as exc:
            self._diagnose_input(args, exc)
            raise

    def _diagnose_input(self, args, exc) -> None:
        """Turn a framework's shape error at the first layer into one that says the fix."""
        from .layers import Linear, Sequential

        if len(args) != 1:
            return
        first: Module | None = self
        while isinstance(first, Sequential) and len(first):
            first = first[0]  # the layer the input reaches first
        if not isinstance(first, Linear):
            return
        shape = tuple(int(s) for s in getattr(args[0], "shape", ()))
        if first is None or first.in_features is None or not shape:
            return
        if shape[-1] != first.in_features:
            raise ValueError(
                f"{type(self).__name__} expects inputs whose last axis has {first.in_features} "
                f"features (its first Linear is Linear(in_features={first.in_features}, "
                f"out_features={first.out_features})), got an input of shape {shape}; pass "
                f"X of shape (batch, {first.in_features}), or build the first layer as "
                f"nn.LazyLinear({first.out_features}) to take any input size"
            ) from exc

    def _traced_call(self, args):
        from ..introspect import record_output

        out = self._adapter.call(self.native, args, self.training)
        record_output(self, out)
        return out

    def _native_forward(self, *args):
        """Called by the native wrapper: runs ``forward`` with parameters as native tensors."""
        token = _state.in_forward.set(_state.in_forward.get() + 1)
        try:
            return self.forward(*args)
        finally:
            _state.in_forward.reset(token)

    # -- traversal ---------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """``(name, module)`` for this module and every descendant, pre-order."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            sub = f"{prefix}.{name}" if prefix else name
            yield from module.named_modules(memo, sub, remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, local, prefix, recurse, remove_duplicate):
        seen: dict = {}  # holds the members, so that an id is never reused meanwhile
        pairs = (
            self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
            if recurse
            else [(prefix, self)]
        )
        for mod_prefix, module in pairs:
            for name, member in local(module).items():
                if remove_duplicate:
                    if id(member) in seen:
                        continue
                    seen[id(member)] = member
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), member

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """``(dotted structural name, Parameter)``; a tied parameter is listed once.

        Examples:
            >>> import d2lparams as d2p
            >>> net = d2p.nn.Sequential(d2p.nn.Linear(4, 8), d2p.nn.ReLU(), d2p.nn.Linear(8, 1),
            ...                         backend="torch")
            >>> [(n, p.shape) for n, p in net.named_parameters()]
            [('0.weight', (4, 8)), ('0.bias', (8,)), ('2.weight', (8, 1)), ('2.bias', (1,))]
        """
        yield from self._named_members(
            lambda m: m._local_parameters(), prefix, recurse, remove_duplicate
        )

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """``(name, tensor)`` of non-trainable state such as BatchNorm's running statistics."""
        for name, buf in self._named_members(
            lambda m: m._local_buffers(), prefix, recurse, remove_duplicate
        ):
            yield name, self._adapter.buffer_tensor(buf)

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn):
        """Call ``fn`` on every child (post-order) and then on this module; returns ``self``."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def train(self, mode: bool = True):
        """Set training mode (``False``: inference) on this module and all below it."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode) takes True or False, got {mode!r}")
        for module in self.modules():
            module._set_mode(mode)
        return self

    def _set_mode(self, mode: bool) -> None:
        self.__dict__["training"] = mode
        self._adapter.set_training(self.native, mode)

    def eval(self):
        """Inference mode: ``train(False)``."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Drop every parameter's gradient (``grad`` is ``None`` again)."""
        for p in self.parameters():
            p.zero_grad()

    def num_parameters(self) -> int:
        """The number of scalars in all parameters, tied ones counted once."""
        return int(sum(p.numel() for p in self.parameters()))

    def materialize(self, input_shape):
        """Build every lazy layer by one call on zeros of ``input_shape`` (batch included),
        in inference mode and without recording; returns ``self``.

        Examples:
            >>> import d2lparams as d2p
            >>> net = d2p.nn.Sequential(d2p.nn.LazyLinear(8), backend="torch")
            >>> net.materialize((1, 20))[0].weight.shape
            (20, 8)
        """
        self._probe(input_shape)
        return self

    def _probe(self, input_shape):
        """One call on zeros of ``input_shape`` in inference mode, without recording; every
        module's mode is restored afterwards (BatchNorm statistics stay untouched)."""
        from .._tensor import zeros
        from ..autograd import no_grad

        shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            with no_grad():
                return self(zeros(*shape, backend=self.backend))
        finally:
            for m, mode in modes:
                m._set_mode(mode)

    # -- state -------------------------------------------------------------------------------
    def _state_targets(self, prefix: str = "") -> OrderedDict[str, tuple]:
        """Every state name (tied ones under each name) -> (member, is_parameter)."""
        out = OrderedDict()
        for mod_prefix, module in self.named_modules(prefix=prefix, remove_duplicate=False):
            head = f"{mod_prefix}." if mod_prefix else ""
            for name, p in module._local_parameters().items():
                out[head + name] = (p, True)
            for name, b in module._local_buffers().items():
                out[head + name] = (b, False)
        return out

    def _target_shape(self, member, is_param) -> tuple:
        return member.shape if is_param else tuple(self._adapter.param_shape(member))

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Copies of every parameter and buffer under every name, canonical layout."""
        out = OrderedDict()
        for name, (member, is_param) in self._state_targets().items():
            out[name] = member.numpy() if is_param else self._adapter.param_get(member)
        return out

    def load_state_dict(self, state: Mapping, strict: bool = True, *,
                        allow_nonfinite: bool = False) -> IncompatibleKeys:
        """Load ``state`` atomically: every key, shape and value is checked before anything
        is written.

        Values are converted to float32; they must be real numbers and, unless
        ``allow_nonfinite=True``, finite (NaN, inf and numbers beyond float32's range are
        refused, as ``Parameter.set`` refuses them). Tied names (one parameter under two
        names) may both be given: equal values load, different ones are an error.

        Args:
            state: a mapping name -> array-like (NumPy, native tensors of any backend).
            strict: ``False`` skips missing and unexpected keys (never a wrong shape).
            allow_nonfinite: load NaN and inf as they are.

        Raises:
            StateDictError: keys are missing or unexpected (``strict=True``), a shape does not
                match, a value is not numeric, complex or not finite, or two names of one tied
                parameter carry different values; the module is left exactly as it was.
        """
        if not hasattr(state, "keys"):
            raise TypeError(
                f"load_state_dict takes a mapping name -> array, got {type(state).__name__}"
            )
        _state.check_not_recording(self)
        targets = self._state_targets()
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        mismatched: dict = {}
        invalid: dict = {}
        nonfinite: list = []
        arrays: dict = {}
        for key, (member, is_param) in targets.items():
            if key not in state:
                continue
            try:
                array = float32_array(state[key])
            except InvalidValue as exc:
                invalid[key] = exc.reason
                continue
            expected = self._target_shape(member, is_param)
            if array.shape != expected:
                mismatched[key] = (expected, array.shape)
                continue
            bad = 0 if allow_nonfinite else count_nonfinite(array)
            if bad:
                nonfinite.append(key)
                invalid[key] = (
                    f"{bad} of {array.size} entries are NaN/inf or beyond float32's range"
                )
                continue
            arrays[key] = array
        conflicting = self._tie_conflicts(targets, arrays)
        if mismatched or invalid or conflicting or (strict and (missing or unexpected)):
            raise self._state_error(missing, unexpected, mismatched, invalid, nonfinite,
                                    conflicting, arrays)
        written: set = set()
        for key, array in arrays.items():
            member, is_param = targets[key]
            if id(member) in written:  # a tied parameter, given equal values under each name
                continue
            written.add(id(member))
            if is_param:
                member._write(array)
            else:
                self._adapter.param_set(member, array)
        return IncompatibleKeys(missing, unexpected)

    @staticmethod
    def _tie_conflicts(targets, arrays) -> list[list[str]]:
        """Groups of given keys that name one member but carry different values."""
        by_member: dict = {}
        for key in arrays:
            by_member.setdefault(id(targets[key][0]), []).append(key)
        return [
            keys for keys in by_member.values()
            if any(not np.array_equal(arrays[k], arrays[keys[0]], equal_nan=True) for k in keys[1:])
        ]

    def _state_error(self, missing, unexpected, mismatched, invalid, nonfinite, conflicting,
                     arrays):
        parts, fixes = [], []
        if missing:
            parts.append(f"missing keys: {missing}")
        if unexpected:
            parts.append(f"unexpected keys: {unexpected}")
        if (missing or unexpected) and not (mismatched or invalid or conflicting):
            fixes.append("build the same architecture (canonical (in, out) weight layout), or "
                         "pass strict=False to skip missing and unexpected keys")
        if mismatched:
            shown = ", ".join(f"{k}: expected {e}, got {a}" for k, (e, a) in mismatched.items())
            parts.append(f"shape mismatch: {shown}")
            fixes.append("give each key an array of the expected canonical shape (a Linear "
                         "weight is (in_features, out_features))")
        if invalid:
            parts.append("invalid values: " + "; ".join(f"{k}: {why}" for k, why in invalid.items()))
            fixes.append("give real, finite numbers"
                         + (" (np.nan_to_num(value) replaces NaN/inf), or pass "
                            "allow_nonfinite=True to load NaN/inf as they are" if nonfinite else ""))
        for keys in conflicting:
            with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: shown as nan
                gap = max(float(np.max(np.abs(arrays[k] - arrays[keys[0]]), initial=0.0))
                          for k in keys[1:])
            parts.append(
                f"tied parameter with different values: {' and '.join(keys)} name one parameter "
                f"(tied: the same storage), but the state gives them different values (largest "
                f"difference {gap:.4g})"
            )
        if conflicting:
            fixes.append("give every name of a tied parameter the same value, or load into a "
                         "network built without the tie")
        return StateDictError(
            f"{type(self).__name__}.load_state_dict: nothing was loaded; " + "; ".join(parts)
            + ". Fix: " + "; ".join(fixes),
            missing, unexpected, mismatched, invalid=invalid, conflicting=conflicting,
        )

    # -- text --------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [
            f"({key}): " + _addindent(repr(module), 2) for key, module in self._modules.items()
        ]
        lines = extra_lines + child_lines
        text = type(self).__name__ + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                text += extra_lines[0]
            else:
                text += "\n  " + "\n  ".join(lines) + "\n"
        return text + ")"

    def __dir__(self):
        return sorted(
            set(super().__dir__())
            | set(self._parameters)
            | set(self._modules)
            | set(self._buffers)
        )
