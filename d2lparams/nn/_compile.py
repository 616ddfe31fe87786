"""``Module.compile``: a module's forward through its framework's compiler, with d2lparams'
meaning kept (hooks run, changes are seen, lazy layers are built first)."""

from __future__ import annotations

import warnings

from .. import _state
from .._errors import DeferredInitializationError


class Compiled:
    """What ``module.compile()`` leaves on a module: the framework's compiled forward for each
    combination of training modes, made again when the module tree changes.

    The module runs its ordinary (eager) forward while a hook is registered anywhere in its
    tree (PyTorch runs hooks on every call; a trace would run them once) and while a lazy
    layer is unbuilt (its first call builds it, outside the trace)."""

    __slots__ = ("options", "seen", "structure", "forwards", "forward", "modes")

    def __init__(self, options: dict) -> None:
        self.options = options
        self.seen = -1
        self.structure: tuple | None = None
        self.forwards: dict = {}
        self.forward = None
        self.modes: tuple = ()

    def __deepcopy__(self, memo):  # a copied module compiles its own natives afresh
        return Compiled(dict(self.options))

    def __call__(self, module, args):
        if self.seen != _state.changes[0]:
            self._refresh(module)
        ad = module.__dict__["_adapter"]
        if self.forward is None:
            return ad.call(module.native, args, module.training)
        token = _state.compiling.set(_state.compiling.get() + 1)
        try:
            return self.forward(args)
        except Exception as exc:
            failure = exc
        finally:
            _state.compiling.reset(token)
        # the compiler could not take this forward (JAX: Python control flow on a traced
        # value), or the input is wrong: the uncompiled call says which
        out = ad.call(module.native, args, module.training)
        first = (str(failure).strip().splitlines() or [""])[0].strip()
        reason = type(failure).__name__ + (f": {first[:200]}" if first and first[-1] != ":" else "")
        warnings.warn(
            f"{type(module).__name__}.compile(): {ad.framework_name} could not "
            f"compile the forward ({reason}), and it runs uncompiled: something in it needs "
            "values while tracing, such as Python control flow on a tensor's value. It stays "
            "uncompiled until the module changes", RuntimeWarning, stacklevel=3)
        self.forwards[self.modes] = self.forward = None
        return out

    def _refresh(self, module) -> None:
        modules = list(module.modules())
        try:
            params = list(module.parameters())
        except DeferredInitializationError:
            self.forward = None  # eager until the lazy layer is built; look again next call
            return
        seen = _state.changes[0]
        structure = (tuple((id(m), id(m.native)) for m in modules),
                     tuple((id(p.native), p.dtype, str(p.device)) for p in params))
        if structure != self.structure:
            self.forwards.clear()
            self.structure = structure
        hooked = any(m.__dict__.get("_forward_hooks") or m.__dict__.get("_forward_pre_hooks")
                     for m in modules)
        if hooked:
            self.forward = None
        else:
            self.modes = modes = tuple(m.training for m in modules)
            if modes not in self.forwards:  # (None: the compiler could not take it)
                self.forwards[modes] = module._adapter.compile(
                    module.native, dict(self.options), module.training)
            self.forward = self.forwards[modes]
        self.seen = seen
