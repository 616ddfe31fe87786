"""``nn.Module``: the neutral module tree, mirrored onto one native module tree."""

from __future__ import annotations

import copy
import weakref
from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy as np

from .. import _devices, _registry, _state, _tensor
from .._checks import InvalidValue, count_nonfinite, float32_array
from .._errors import DeferredInitializationError, StateDictError
from .._tensor import as_array, zeros
from ..autograd import no_grad
from . import _hints
from ._compile import Compiled
from .parameter import Parameter


class IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` skipped (PyTorch's ``_IncompatibleKeys``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class RemovableHandle:
    """What ``register_*_hook`` returns: ``remove()`` unregisters the hook (also as a
    context manager)."""

    _next_id = 0

    def __init__(self, table: dict) -> None:
        self._table = table
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._table.pop(self.id, None)
        _state.changed()

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class _Children(OrderedDict):
    """A module's ``_modules``: writing ``self._modules[name] = module`` (as hand-written
    containers do) registers the child exactly as ``add_module`` does, natively too, and
    ``del self._modules[name]`` removes it."""

    def __init__(self, owner, items=()):
        super().__init__()
        self._owner = weakref.ref(owner)
        for name, module in items:  # the caller registers them natively
            OrderedDict.__setitem__(self, name, module)

    def __setitem__(self, name, module) -> None:
        self._owner().add_module(name, module)

    def __delitem__(self, name) -> None:
        owner = self._owner()
        if name not in self:
            raise KeyError(name)
        owner._remove_member("_modules", name)

    def __reduce__(self):
        return OrderedDict, (list(self.items()),)


def _has_attribute(obj, name: str) -> bool:
    """``hasattr`` that also counts an attribute whose getter raises (a lazy layer's
    ``weight`` exists before it can be read)."""
    try:
        getattr(obj, name)
    except AttributeError:
        return False
    except Exception:
        return True
    return True


def _floating_dtype(value) -> str | None:
    """The floating dtype ``value`` carries (a NumPy array, a Parameter, a native tensor of
    any backend), or ``None`` (integers, lists, numbers: converted without a cast)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.dtype.name if value.dtype.kind == "f" else None
    if isinstance(value, Parameter):
        return value.dtype
    name = _registry.backend_of_type(value)
    if name is None:
        return None
    found = _registry.adapter(name).dtype(value)
    return found if found in _tensor.FLOATING else None


def _converts_exactly(value, converted: np.ndarray, target: str) -> bool:
    """Every value of ``value`` is unchanged in ``converted`` (its conversion to ``target``):
    ``np.ones`` or a float32 model's state load into a float64 model without ``cast``, a
    float64 model's state does not load into a float32 one."""
    source = as_array(value)
    with np.errstate(over="ignore", invalid="ignore"):
        back = converted.astype(source.dtype)
        same = (back == source) | ~np.isfinite(back)  # NaN/inf: the finiteness rule's
        if not same.all():
            return False
    if target == "bfloat16":  # float32 carries it: the low 16 bits of every value are zero
        bits = np.ascontiguousarray(converted, dtype=np.float32).view(np.uint32)
        return not np.any(bits & 0xFFFF)
    return True


def _missing_attribute(module, name: str) -> str:
    """The message of an AttributeError: says where the attribute is when d2lparams has no
    such name but the framework's own module has (``.native``)."""
    text = f"{type(module).__name__!r} object has no attribute {name!r}"
    way = _hints.hint(_hints.MODULE, name, "nn.Module")
    text += way
    native = module.__dict__.get("_native")
    if native is not None and not name.startswith("_") and hasattr(type(native), name):
        where = f"module.native.{name} ({type(native).__module__}.{type(native).__name__})"
        text += (f"; the framework's own module also has it: {where}" if way else
                 f"; d2lparams does not provide it, but the framework's own module does: use "
                 f"{where}")
    return text


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
        d["_modules"] = _Children(self)
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_native"] = None
        d["training"] = True

    # -- the native side ---------------------------------------------------------------------
    def _make_native(self):
        return self._adapter.container("custom", self)

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
            raise AttributeError(
                f"cannot assign modules, parameters or buffers before Module.__init__() call: "
                f"{type(self).__name__}.__init__ must call super().__init__() first"
            )

    # -- registration (PyTorch's rules) ------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        if isinstance(value, Parameter):
            self._check_init()
            self._forget(name, keep="_parameters")
            self.register_parameter(name, value)
        elif name in d.get("_parameters", ()):
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                    "(nn.Parameter or None expected); to change its value write "
                    f"{type(self).__name__.lower()}.{name}.set(value)"
                )
            self.register_parameter(name, None)
        elif isinstance(value, Module):
            self._check_init()
            self._forget(name, keep="_modules")
            self._set_child(name, value)
        elif name in d.get("_modules", ()):
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as child module '{name}' "
                    "(nn.Module or None expected)"
                )
            self._set_child(name, None)
        elif name in d.get("_buffers", ()):
            self.register_buffer(name, value)
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        d = self.__dict__
        if "_parameters" in d:
            if name in d["_parameters"]:
                p = d["_parameters"][name]
                return p.value() if p is not None and _state.in_forward.get() else p
            if name in d["_buffers"]:
                buf = d["_buffers"][name]
                return None if buf is None else d["_adapter"].buffer_tensor(buf)
            if name in d["_modules"]:
                return d["_modules"][name]
        raise AttributeError(_missing_attribute(self, name))

    def __delattr__(self, name: str) -> None:
        for table in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__.get(table, ()):
                self._remove_member(table, name)
                return
        object.__delattr__(self, name)

    def _forget(self, name: str, keep: str) -> None:
        """Before ``name`` becomes a member of table ``keep``: drop a plain attribute and a
        member of another table under that name (PyTorch's ``remove_from``)."""
        self.__dict__.pop(name, None)
        for table in ("_parameters", "_buffers", "_modules"):
            if table != keep and name in self.__dict__[table]:
                self._remove_member(table, name)

    def _remove_member(self, table: str, name: str) -> None:
        kind = {"_parameters": "parameter", "_buffers": "buffer", "_modules": "child"}[table]
        old = list(self.__dict__[table])
        OrderedDict.__delitem__(self.__dict__[table], name)
        _state.changed()
        if kind == "child":
            self._rebuild_children(old)
        else:
            self._adapter.register(self.native, name, None, kind)

    def _adopt_child(self, name: str, module: Module) -> None:
        """Record ``module`` as child ``name`` of the neutral tree only: it already is the
        native module's child (``d2p.wrap``)."""
        OrderedDict.__setitem__(self.__dict__["_modules"], name, module)
        _state.changed()

    def _check_name(self, name, kind: str, table: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}: {name!r}")
        if "." in name:
            raise KeyError(f"{kind} name must not contain a dot, got {name!r}; dots separate "
                           "the levels of a structural name")
        if name == "":
            raise KeyError(f"{kind} name must not be the empty string")
        if name not in self.__dict__[table] and _has_attribute(self, name):
            raise KeyError(
                f"attribute '{name}' already exists on {type(self).__name__}; pick another "
                f"name, or delete the attribute first (del module.{name})"
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

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` (or ``None``) as child ``name``, natively too."""
        self._check_init()
        if module is not None and not isinstance(module, Module):
            raise TypeError(
                f"{type(module).__module__}.{type(module).__name__} is not an nn.Module; "
                "wrap a native model with d2p.wrap(model)"
            )
        self._check_name(name, "module", "_modules")
        self._set_child(name, module)

    def register_module(self, name: str, module: Module | None) -> None:
        """Alias of :meth:`add_module`."""
        self.add_module(name, module)

    def _set_child(self, name: str, module: Module | None) -> None:
        if module is not None:
            self._check_same_backend(module, f"module {name!r}")
        _state.changed()
        modules = self.__dict__["_modules"]
        if name in modules:  # replaced in place: the native side keeps the order
            old = list(modules)
            OrderedDict.__setitem__(modules, name, module)
            self._rebuild_children(old)
            return
        OrderedDict.__setitem__(modules, name, module)
        if module is not None:
            self._adapter.register(self.native, name, module.native, "child")

    def _set_children(self, modules: list) -> None:
        """Make ``modules`` the children, named ``"0"``, ``"1"``, ... (containers after an
        insertion or a deletion, as PyTorch renumbers them)."""
        for module in modules:
            self._check_same_backend(module, "module")
        old = list(self._modules)
        self.__dict__["_modules"] = _Children(self, ((str(i), m) for i, m in enumerate(modules)))
        self._rebuild_children(old)

    def _rebuild_children(self, old_names) -> None:
        """Make the native children match ``_modules`` (order included) after a child was
        replaced, inserted or deleted; ``old_names`` are the native children's names."""
        ad, native = self._adapter, self.native
        _state.changed()
        for name in old_names:
            ad.register(native, name, None, "child")
        for name, module in self._modules.items():
            if module is not None:
                ad.register(native, name, module.native, "child")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or ``None``: an absent optional parameter) under ``name``, as
        assigning ``self.name = param`` does."""
        self._check_init()
        self._check_name(name, "parameter", "_parameters")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                "(nn.Parameter or None required); wrap the value: nn.Parameter(value)"
            )
        if param is not None:
            self._check_same_backend(param, f"parameter {name!r}")
        self._parameters[name] = param
        _state.changed()
        self._adapter.register(self.native, name, None if param is None else param.native,
                               "parameter")

    def register_buffer(self, name: str, tensor) -> None:
        """Register non-trainable state (in ``state_dict`` and ``named_buffers``): a native
        tensor of this backend (kept as it is: registered twice, it is one buffer), a NumPy
        array (copied), or ``None``."""
        self._check_init()
        self._check_name(name, "buffer", "_buffers")
        ad = self._adapter
        if tensor is None:
            buf = None
        elif ad.is_tensor(tensor):
            buf = ad.buffer_of(tensor)
        elif isinstance(tensor, (np.ndarray, np.generic)):
            try:  # any values, as PyTorch's buffers (a -inf mask is fine); never complex
                array = np.array(float32_array(tensor), copy=True)
            except InvalidValue as exc:
                raise TypeError(f"register_buffer({name!r}): {exc}") from None
            buf = ad.create_parameter(array, buffer=True)
        else:
            raise TypeError(
                f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' (a "
                f"{ad.name} tensor, a NumPy array or None required); for a number write "
                "np.asarray(value, dtype=np.float32)"
            )
        self._buffers[name] = buf
        _state.changed()
        ad.register(self.native, name, buf, "buffer")

    # -- local members (built-in layers derive them from the native module) ------------------
    def _local_parameters(self) -> OrderedDict[str, Parameter]:
        return self._parameters

    def _local_buffers(self) -> OrderedDict[str, object]:
        return self._buffers

    # -- calling -----------------------------------------------------------------------------
    def forward(self, *args):
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function; '
            "define forward(self, X) in the subclass"
        )

    def _as_input(self, x):
        ad = self._adapter
        if ad.is_tensor(x):
            return x
        if isinstance(x, Parameter):
            return x.value()
        if isinstance(x, (np.ndarray, list, tuple, float, int)):
            try:
                first = next(iter(self.parameters()), None)
            except DeferredInitializationError:  # a lazy layer: float32 until it is built
                first = None
            if first is None or (first.dtype == "float32" and first.device.type == "cpu"):
                return ad.tensor(np.asarray(x, dtype=np.float32))
            # NumPy input follows the model's dtype and device, as the model's own input
            return _tensor.tensor(x, backend=ad.name, dtype=first.dtype, device=first.device)
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
            compiled = d.get("_compiled")
            if compiled is not None and not _state.compiling.get():
                return compiled(self, args)
            return ad.call(d["_native"] or self.native, args, d["training"])
        except Exception as exc:
            # only on failure: turn a framework's dtype or shape error into one that says
            # the fix
            self._check_input_dtype(args, exc)
            problem = None
            if len(args) == 1:
                problem = self._explain_input(tuple(int(s) for s in getattr(args[0], "shape", ())))
            if problem:
                raise ValueError(f"{type(self).__name__} {problem}") from exc
            raise

    def _check_input_dtype(self, args, exc) -> None:
        ad = self._adapter
        try:
            first = next(iter(self.parameters()), None)
        except DeferredInitializationError:  # a lazy layer that failed before it was built
            first = None
        expected = "float32" if first is None else first.dtype
        for a in args:
            if not ad.is_tensor(a):
                continue
            got = ad.dtype_name(a)
            if "float" in got and got != expected:
                raise TypeError(
                    f"{type(self).__name__} computes in {expected} and was called with a "
                    f"{got} tensor of shape {tuple(int(n) for n in a.shape)}; convert the input "
                    f"(d2p.tensor(x, dtype={expected!r}, backend={ad.name!r})), or the model "
                    f"(model.to({got!r}))"
                ) from exc
        if expected in ("float16", "bfloat16") and first is not None and first.device == "cpu":
            # PaddlePaddle and MXNet hold half-precision parameters but have no CPU kernels
            # for some operations on them
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RuntimeError(
                f"{type(self).__name__} holds {expected} parameters and {ad.framework_name} "
                f"could not compute in {expected} on the CPU ({reason[:200]}); convert the "
                f"model to float32 (model.float()) or run it on a GPU (model.to(d2p.try_gpu()))"
            ) from exc

    def _explain_input(self, shape: tuple) -> str | None:
        """Why an input of ``shape`` does not fit this module (``None``: no known reason).
        Layers with an input contract say it; containers ask the layer the input reaches
        first."""
        return None

    def _traced_call(self, args):
        out = self._adapter.call(self.native, args, self.training)
        _state.record_shape(self, out)
        return out

    def _native_forward(self, *args):
        """Called by the native wrapper: runs ``forward`` with parameters as native tensors."""
        token = _state.in_forward.set(_state.in_forward.get() + 1)
        try:
            return self.forward(*args)
        finally:
            _state.in_forward.reset(token)

    # -- compilation -------------------------------------------------------------------------
    def compile(self, **options) -> None:
        """Run this module's forward through its framework's compiler from the next call on
        (PyTorch's ``module.compile()``; ``d2p.compile(module)`` does it and returns the
        module). Outputs, gradients, training modes, BatchNorm statistics and ties mean what
        they mean uncompiled.

        The compiler is ``torch.compile`` (torch), ``tf.function`` (tensorflow), Gluon's
        ``hybridize`` (mxnet), ``paddle.jit.to_static`` (paddle) and ``jax.jit`` (jax);
        ``options`` go to it unchanged (e.g. ``mode="reduce-overhead"``,
        ``jit_compile=True``, ``static_alloc=True``). The compiled forward follows the module:
        a replaced child or parameter, a new dtype or device and a change of training mode
        compile again, and while a forward hook is registered anywhere in the tree (or a lazy
        layer is unbuilt) the module runs uncompiled, so hooks still run on every call.

        As under every tracing compiler, Python code in a ``forward`` (a print, a counter)
        runs when the forward is traced, not on every call.
        """
        self._check_init()
        self.__dict__["_compiled"] = Compiled(options)

    # -- hooks -------------------------------------------------------------------------------
    def register_forward_pre_hook(self, hook) -> RemovableHandle:
        """Call ``hook(module, args)`` before every forward (also when a native container
        runs this module); a value it returns replaces the positional arguments (a tuple, or
        one value). Returns a handle whose ``remove()`` unregisters it.

        Examples:
            >>> import d2lparams as d2p
            >>> lin = d2p.nn.Linear(2, 1, backend="torch")
            >>> handle = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
            >>> d2p.to_numpy(lin(d2p.ones(1, 2, backend="torch"))) == d2p.to_numpy(lin.bias.value())
            array([[ True]])
            >>> handle.remove()
        """
        return self._add_hook("_forward_pre_hooks", hook)

    def register_forward_hook(self, hook) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after every forward; a value it returns
        replaces the output. Returns a handle whose ``remove()`` unregisters it."""
        return self._add_hook("_forward_hooks", hook)

    def _add_hook(self, table: str, hook) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"a hook must be callable, got {type(hook).__name__}")
        d = self.__dict__
        if "_forward_hooks" not in d:  # the first hook: the native module starts running them
            d["_forward_pre_hooks"], d["_forward_hooks"] = OrderedDict(), OrderedDict()
            self._adapter.hook_calls(self.native, self._run_pre_hooks, self._run_hooks)
        hooks = d[table]
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        _state.changed()
        return handle

    def _run_pre_hooks(self, args: tuple) -> tuple:
        for hook in list(self.__dict__["_forward_pre_hooks"].values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        return args

    def _run_hooks(self, args: tuple, output):
        for hook in list(self.__dict__["_forward_hooks"].values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

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
            if module is None:
                continue
            sub = f"{prefix}.{name}" if prefix else name
            yield from module.named_modules(memo, sub, remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
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
                if member is None:
                    continue
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
        if not isinstance(mode, (bool, np.bool_)):
            raise ValueError(f"training mode is expected to be boolean, got {mode!r}")
        for module in self.modules():
            module._set_mode(bool(mode))
        return self

    def _set_mode(self, mode: bool) -> None:
        self.__dict__["training"] = mode
        _state.changed()
        self._adapter.set_training(self.native, mode)

    def eval(self):
        """Inference mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True):
        """Freeze (``False``) or unfreeze every parameter; returns ``self``."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    # -- dtypes and devices ----------------------------------------------------------------------
    def to(self, *args, dtype=None, device=None):
        """Convert every parameter and floating buffer to a dtype and/or move it to a device,
        in place; returns ``self`` (PyTorch's ``module.to``).

        ``to("float64")``, ``to(d2p.device("gpu", 0))``, ``to("cuda:0")``,
        ``to(device, dtype)`` or the keywords. Parameters keep their identity (optimizers,
        ties and ``.native`` see the change); their gradients are dropped. A float64 model
        takes float64 input (``d2p.tensor(x, dtype="float64")``; NumPy input is converted to
        the model's dtype).

        Raises:
            TypeError: a dtype the backend does not have (MXNet: bfloat16), or not floating.
            ValueError: an unknown dtype or device name.
            RuntimeError: a GPU the backend does not see; nothing is moved.
        """
        for arg in args:
            if isinstance(arg, _devices.Device) or (
                    isinstance(arg, str) and arg.partition(":")[0].lower() in ("cpu", "gpu", "cuda")):
                if device is not None:
                    raise TypeError("to() got two devices")
                device = arg
            elif dtype is None:
                dtype = arg
            else:
                raise TypeError(f"to() takes a dtype and/or a device, got {args!r}")
        ad = self._adapter
        name = None
        if dtype is not None:
            name = _tensor.parameter_dtype(dtype, ad, f"{type(self).__name__}.to")
        where = None if device is None else _devices.resolve(device, ad)
        members = {}
        for member, is_param in self._state_targets().values():
            native = member.native if is_param else member
            if is_param or ad.dtype(native) in _tensor.FLOATING:
                members[id(native)] = native
        for member in members.values():
            change_dtype = name if name is not None and ad.dtype(member) != name else None
            change_device = where if where is not None and ad.device_of(member) != where else None
            if change_dtype or change_device:
                ad.move(member, change_dtype, change_device)
        if name is not None:
            for m in self.modules():
                if m.__dict__.get("_native") is not None:
                    ad.set_layer_dtype(m.native, name)
        _state.changed()
        return self

    def double(self):
        """``to("float64")``."""
        return self.to("float64")

    def float(self):
        """``to("float32")``."""
        return self.to("float32")

    def half(self):
        """``to("float16")``."""
        return self.to("float16")

    def bfloat16(self):
        """``to("bfloat16")`` (not on MXNet, which has no bfloat16)."""
        return self.to("bfloat16")

    def cpu(self):
        """``to("cpu")``."""
        return self.to(device="cpu")

    def cuda(self, device: int | None = None):
        """``to(d2p.device("gpu", device or 0))``: PyTorch's name, on every backend."""
        return self.to(device=_devices.device("gpu", 0 if device is None else device))

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (``grad`` is ``None`` again), or with
        ``set_to_none=False`` fill the existing gradients with zeros."""
        for p in self.parameters():
            p.zero_grad(set_to_none)

    def get_submodule(self, target: str) -> Module:
        """The module at the dotted path ``target`` (``""``: this module).

        Raises:
            AttributeError: a step of the path is no child module.
        """
        if target == "":
            return self
        module: Module = self
        for item in target.split("."):
            child = module._modules.get(item) if isinstance(module, Module) else None
            if child is None:
                raise AttributeError(
                    f"{type(module).__name__} has no attribute `{item}` (no child module "
                    f"named {item!r} on the path {target!r}); children: {list(module._modules)}"
                )
            module = child
        return module

    def set_submodule(self, target: str, module: Module) -> None:
        """Put ``module`` at the dotted path ``target`` (its parent must exist)."""
        if not isinstance(module, Module):
            raise TypeError(f"set_submodule takes an nn.Module, got {type(module).__name__}")
        if target == "":
            raise ValueError("set_submodule needs a non-empty target")
        parent_path, _, name = target.rpartition(".")
        parent = self.get_submodule(parent_path)
        parent._forget(name, keep="_modules")
        parent._set_child(name, module)

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
                if p is not None:
                    out[head + name] = (p, True)
            for name, b in module._local_buffers().items():
                if b is not None:
                    out[head + name] = (b, False)
        return out

    def _target_shape(self, member, is_param) -> tuple:
        return member.shape if is_param else tuple(self._adapter.param_shape(member))

    def _target_dtype(self, member, is_param) -> str:
        """The dtype of the parameter or buffer that a state name of this module names."""
        return member.dtype if is_param else self._adapter.dtype(member)

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Copies of every parameter and buffer under every name, canonical layout."""
        out = OrderedDict()
        for name, (member, is_param) in self._state_targets().items():
            out[name] = member.numpy() if is_param else self._adapter.to_numpy(member)
        return out

    def load_state_dict(self, state: Mapping, strict: bool = True, *,
                        allow_nonfinite: bool = False, cast: bool = False) -> IncompatibleKeys:
        """Load ``state`` atomically: every key, shape and value is checked before anything
        is written.

        Values are converted to each target's dtype where that changes no value (``np.ones``
        into a float32 model, a float32 state into a float64 model); floating values that the
        target's dtype does not hold exactly (a float64 model's state into a float32 model)
        are refused unless ``cast=True``, which rounds them. They
        must be real numbers and, unless ``allow_nonfinite=True``, finite (NaN, inf and
        numbers beyond the dtype's range are refused, as ``Parameter.set`` refuses them).
        Tied names (one parameter under two
        names) may both be given: equal values load, different ones are an error.

        Args:
            state: a mapping name -> array-like (NumPy, native tensors of any backend).
            strict: ``False`` skips missing and unexpected keys (never a wrong shape).
            allow_nonfinite: load NaN and inf as they are.
            cast: convert floating values of another dtype to the target's (float64 rounds
                to float32; float32 widens to float64 exactly).

        Raises:
            StateDictError: keys are missing or unexpected (``strict=True``), a shape does not
                match, a floating dtype differs without ``cast=True``, a value is not numeric,
                complex or not finite, or two names of one tied
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
        dtypes: dict = {}
        for key, (member, is_param) in targets.items():
            if key not in state:
                continue
            target = self._target_dtype(member, is_param)
            try:
                array = float32_array(state[key], _tensor.DTYPES.get(target, np.float32))
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
            source = _floating_dtype(state[key])
            if (source is not None and source != target and not cast
                    and not _converts_exactly(state[key], array, target)):
                dtypes[key] = (source, target)
                invalid[key] = f"{source} values that {target} does not hold exactly"
                continue
            arrays[key] = array
        conflicting = self._tie_conflicts(targets, arrays)
        if mismatched or invalid or conflicting or (strict and (missing or unexpected)):
            raise self._state_error(missing, unexpected, mismatched, invalid, nonfinite,
                                    conflicting, arrays, dtypes)
        written: set = set()
        for key, array in arrays.items():
            member, is_param = targets[key]
            if id(member) in written:  # a tied parameter, given equal values under each name
                continue
            written.add(id(member))
            if is_param:
                member._write(array)
            else:
                self._adapter.assign(member, array)
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
                     arrays, dtypes=None):
        parts, fixes = [], []
        if missing:
            parts.append(f"missing keys: {missing}")
        if unexpected:
            parts.append(f"unexpected keys: {unexpected}")
        if (missing or unexpected) and not (mismatched or invalid or conflicting):
            loadable = len(arrays)
            fix = "build the same architecture (canonical (in, out) weight layout)"
            if loadable:
                fix += (f", or pass strict=False to load the {loadable} matching tensor"
                        f"{'s' if loadable != 1 else ''} and skip {len(missing)} missing and "
                        f"{len(unexpected)} unexpected keys")
            if missing and unexpected:
                fix += ("; if only the names differ (natively built models name nested blocks "
                        "differently), copy by structure with d2p.port(source_model, "
                        f"{type(self).__name__.lower()})")
            fixes.append(fix)
        if mismatched:
            shown = ", ".join(f"{k}: expected {e}, got {a}" for k, (e, a) in mismatched.items())
            parts.append(f"shape mismatch: {shown}")
            fixes.append("give each key an array of the expected canonical shape (a Linear "
                         "weight is (in_features, out_features))")
        dtypes = dtypes or {}
        if dtypes:
            parts.append("dtype mismatch: " + ", ".join(
                f"{k}: {src} into {dst}" for k, (src, dst) in dtypes.items()))
            src, dst = next(iter(dtypes.values()))
            fixes.append(f"pass cast=True to convert the values to the model's dtype, or convert "
                         f"the model first (model.to({src!r}))")
        if len(invalid) > len(dtypes):
            parts.append("invalid values: " + "; ".join(
                f"{k}: {why}" for k, why in invalid.items() if k not in dtypes))
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
        members = set(self._parameters) | set(self._modules) | set(self._buffers)
        return sorted(set(super().__dir__()) | {m for m in members if m.isidentifier()})

    # -- copying -----------------------------------------------------------------------------
    def __deepcopy__(self, memo):
        """An independent copy on the same backend: new native objects holding copies of the
        values; ties and shared members stay shared within the copy."""
        if id(self) in memo:
            return memo[id(self)]
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        d, nd = self.__dict__, new.__dict__
        for key in ("_adapter", "training"):
            nd[key] = d[key]
        nd.update(_native=None, _modules=_Children(new), _parameters=OrderedDict(),
                  _buffers=OrderedDict())
        for key, value in d.items():
            if key not in nd:
                nd[key] = copy.deepcopy(value, memo)
        new._copy_own_state(self)
        for name, p in d["_parameters"].items():
            new.register_parameter(name, copy.deepcopy(p, memo))
        for name, buf in d["_buffers"].items():
            if buf is not None and id(buf) not in memo:
                ad = self._adapter
                memo[id(buf)] = ad.create_parameter(ad.to_numpy(buf), buffer=True)
                if (ad.dtype(buf), ad.device_of(buf)) != (ad.dtype(memo[id(buf)]), ("cpu", 0)):
                    ad.move(memo[id(buf)], ad.dtype(buf), ad.device_of(buf))
            nd["_buffers"][name] = None if buf is None else memo[id(buf)]
            self._adapter.register(new.native, name, nd["_buffers"][name], "buffer")
        for name, child in d["_modules"].items():
            new._set_child(name, None if child is None else copy.deepcopy(child, memo))
        new._set_mode(self.training)
        return new

    def _copy_own_state(self, source: Module) -> None:
        """Copy what the native module holds beyond registered members (built-in layers:
        their parameters and buffers)."""
