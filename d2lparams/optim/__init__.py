"""Optimizers with PyTorch's meaning on every backend.

A param group's ``lr`` and ``momentum`` are absolute, as in PyTorch (paddle and mxnet
natively treat a group's rate as a multiplier; keras has no groups). The update is
PyTorch's ``v = μ·v + g``, ``p -= lr·v`` (``g`` includes ``weight_decay·p``), done by each
framework's own tensor operations in place.

Examples:
    >>> import numpy as np, d2lparams as d2p
    >>> from d2lparams import nn, ops, optim
    >>> net = nn.Linear(2, 1, weight_init=1.0, bias_init=0.0, backend="torch")
    >>> opt = optim.SGD(net.parameters(), lr=0.1)
    >>> _ = d2p.backward(lambda: ops.sum(net(d2p.ones(1, 2, backend="torch"))))
    >>> opt.step(); net.weight.numpy().ravel().tolist()
    [0.8999999761581421, 0.8999999761581421]
"""

from __future__ import annotations

import numpy as np

from .. import _checks, _state
from .._errors import StateDictError
from ..nn.parameter import Parameter

__all__ = ["SGD", "Optimizer", "lr_scheduler"]

_REQUIRED = object()


class Optimizer:
    """Base class: param groups, state, ``zero_grad`` and ``state_dict``."""

    def __init__(self, params, defaults: dict) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict = {}  # id(param) -> {"momentum_buffer": native tensor or None}
        groups = list(params) if not isinstance(params, dict) else [params]
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group ``{"params": [...], "lr": ..., ...}``; missing options take the
        defaults. A parameter may belong to one group only."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError("a param group is a dict with a 'params' key")
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"{type(self).__name__} optimizes nn.Parameter objects, got "
                    f"{type(p).__name__}; pass net.parameters()"
                )
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(
                f"unknown option(s) {sorted(unknown)} in a param group; known: "
                f"{sorted(self.defaults)}"
            )
        existing = {id(p.native): i for i, g in enumerate(self.param_groups) for p in g["params"]}
        seen = set()
        for p in params:
            if id(p.native) in existing or id(p.native) in seen:
                where = existing.get(id(p.native), len(self.param_groups))
                raise ValueError(
                    f"a parameter of shape {p.shape} appears in two param groups (group "
                    f"{where} and group {len(self.param_groups)}, or twice in one); give each "
                    "parameter to one group only"
                )
            seen.add(id(p.native))
        full = {k: group.get(k, v) for k, v in self.defaults.items()}
        missing = [k for k, v in full.items() if v is _REQUIRED]
        if missing:
            raise ValueError(f"param group lacks required option(s) {missing}")
        self._check_options(full)
        full["params"] = params
        self.param_groups.append(full)

    def _check_options(self, options: dict) -> None:
        """Check (and normalize in place) a group's options; raise ``ValueError``."""

    def zero_grad(self) -> None:
        """Drop the gradient of every parameter this optimizer holds."""
        for group in self.param_groups:
            for p in group["params"]:
                p.zero_grad()

    def state_dict(self) -> dict:
        """``{"state": {index: {name: np.ndarray}}, "param_groups": [...]}``, PyTorch's form:
        a parameter's index is its place of first appearance over the groups; buffers are in
        the canonical layout."""
        index_of: dict = {}
        state, groups, start = {}, [], 0
        for group in self.param_groups:
            for i, p in enumerate(group["params"], start):
                index_of.setdefault(id(p.native), i)
            ids = [index_of[id(p.native)] for p in group["params"]]
            start += len(ids)
            for p, index in zip(group["params"], ids):
                entry = self.state.get(id(p.native))
                if entry and entry.get("momentum_buffer") is not None:
                    buf = p._adapter.to_numpy(entry["momentum_buffer"])
                    # the parameter's own shape: mxnet holds a 0-d value as (1,)
                    state[index] = {"momentum_buffer": np.reshape(p._canonical(buf), p.shape)}
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore options and buffers saved by :meth:`state_dict`; everything is checked
        before anything changes (PyTorch's meaning: saved parameter indices map to this
        optimizer's parameters in group order).

        Raises:
            StateDictError: the groups or their sizes differ, an option is unknown or out of
                range, or a buffer is not a finite array of its parameter's shape; the
                optimizer is unchanged.
        """
        def refuse(why: str) -> StateDictError:
            return StateDictError(
                f"{type(self).__name__}.load_state_dict: nothing was loaded; {why}. Fix: pass "
                "the dict an optimizer of the same parameters and groups returned from "
                "state_dict()"
            )

        if not isinstance(state_dict, dict):
            raise TypeError(
                f"{type(self).__name__}.load_state_dict takes the dict state_dict() returned, "
                f"got {type(state_dict).__name__}"
            )
        extra = set(state_dict) - {"state", "param_groups"}
        if extra:
            raise refuse(f"unknown top-level key(s) {sorted(map(str, extra))}; expected 'state' "
                         "and 'param_groups'")
        groups = state_dict.get("param_groups")
        if not isinstance(groups, list) or len(groups) != len(self.param_groups):
            raise refuse(
                f"the state has {len(groups) if isinstance(groups, list) else 'no'} param "
                f"groups, this optimizer {len(self.param_groups)}"
            )
        allowed = set(self.defaults) | {"params", "initial_lr"}
        options: list = []
        index_of: dict = {}  # a saved parameter index -> its position here
        params = [p for g in self.param_groups for p in g["params"]]
        for gi, (mine, theirs) in enumerate(zip(self.param_groups, groups)):
            if not isinstance(theirs, dict) or not isinstance(theirs.get("params"), list):
                raise refuse(f"param group {gi} is not a dict with a 'params' list")
            if len(mine["params"]) != len(theirs["params"]):
                raise refuse(
                    f"param group {gi} holds {len(theirs['params'])} parameters in the "
                    f"state, {len(mine['params'])} here"
                )
            unknown = set(theirs) - allowed
            if unknown:
                raise refuse(
                    f"unknown option(s) {sorted(map(str, unknown))} in param group {gi}; "
                    f"known: {sorted(allowed - {'params'})}"
                )
            merged = {k: theirs.get(k, mine.get(k)) for k in self.defaults}
            try:
                self._check_options(merged)
                if "initial_lr" in theirs:
                    merged["initial_lr"] = _checks.number(theirs["initial_lr"], "initial_lr",
                                                          minimum=0)
            except ValueError as exc:
                raise refuse(f"param group {gi}: {exc}") from None
            options.append(merged)
            for saved in theirs["params"]:
                if isinstance(saved, bool) or not isinstance(saved, (int, np.integer)) or saved in index_of:
                    raise refuse(f"param group {gi} lists the parameter index {saved!r} "
                                 "twice or as a non-int")
                index_of[saved] = len(index_of)
        state = state_dict.get("state", {})
        if not isinstance(state, dict):
            raise refuse(f"'state' is a {type(state).__name__}, expected a dict")
        buffers = {}
        for key, entry in state.items():
            try:
                saved = int(key)
            except (TypeError, ValueError):
                raise refuse(f"state key {key!r} is not a parameter index") from None
            if saved not in index_of:
                raise refuse(f"state refers to parameter {key!r}, which no param group lists")
            if not isinstance(entry, dict) or set(entry) != {"momentum_buffer"}:
                raise refuse(f"state of parameter {key!r} must be {{'momentum_buffer': array}}, "
                             f"got {str(entry)[:100]}")
            p = params[index_of[saved]]
            try:
                buf = _checks.finite_float32(entry["momentum_buffer"], f"momentum buffer {key!r}")
            except (TypeError, ValueError) as exc:
                raise refuse(str(exc)) from None
            if buf.shape != p.shape:
                raise refuse(f"momentum buffer {key!r} has shape {buf.shape}, its parameter {p.shape}")
            buffers[index_of[saved]] = buf
        for mine, merged in zip(self.param_groups, options):
            mine.update(merged)
        self.state = {}
        for i, buf in buffers.items():
            p = params[i]
            # the shape of the native value it is combined with: () for a 0-d parameter,
            # (1,) on mxnet, which holds a 0-d value as (1,)
            value = p._adapter.param_value(p.native)
            native = np.require(p._native_layout(buf), np.float32, "C").reshape(tuple(value.shape))
            self.state[id(p.native)] = {"momentum_buffer": p._adapter.tensor(native)}


class SGD(Optimizer):
    """Stochastic gradient descent with momentum and weight decay, PyTorch's formula.

    ``params`` is an iterable of Parameters or a list of group dicts; a group's ``lr`` is
    absolute. Frozen parameters and parameters without a gradient are skipped.

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import nn, optim
        >>> net = nn.mlp(4, 8, 1, backend="torch")
        >>> opt = optim.SGD([{"params": net[0].parameters(), "lr": 0.001, "momentum": 0.99},
        ...                  {"params": net[2].parameters()}], lr=0.01, momentum=0.9)
        >>> [g["lr"] for g in opt.param_groups]
        [0.001, 0.01]
    """

    def __init__(self, params, lr=_REQUIRED, momentum: float = 0.0, weight_decay: float = 0.0,
                 dampening: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      dampening=dampening, nesterov=nesterov))

    def _check_options(self, o: dict) -> None:
        for key in ("lr", "momentum", "weight_decay", "dampening"):
            # finite: a NaN lr passes "value < 0" and turns every weight into NaN at one step
            o[key] = _checks.number(o[key], f"SGD {key}", minimum=0)
        if not isinstance(o["nesterov"], (bool, np.bool_)):
            raise ValueError(f"SGD nesterov must be True or False, got {_checks.shown(o['nesterov'])}")
        o["nesterov"] = bool(o["nesterov"])
        if o["nesterov"] and (o["momentum"] <= 0 or o["dampening"] != 0):
            raise ValueError("SGD nesterov needs momentum > 0 and dampening 0")

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        if _state.recording.get():
            raise RuntimeError("optimizer.step() inside d2p.backward: step after backward returns")
        for group in self.param_groups:
            # param_groups is mutable (schedulers write lr): a NaN written there is caught here,
            # before any parameter changes
            self._check_options(group)
        for group in self.param_groups:
            lr, mom, wd = float(group["lr"]), float(group["momentum"]), float(group["weight_decay"])
            damp, nesterov = float(group["dampening"]), bool(group["nesterov"])
            for p in group["params"]:
                ad, native = p._adapter, p.native
                if not ad.requires_grad(native):
                    continue
                grad = ad.grad_tensor(native)
                if grad is None:
                    continue
                entry = self.state.setdefault(id(native), {"momentum_buffer": None})
                with ad.no_grad():
                    direction, entry["momentum_buffer"] = sgd_direction(
                        grad, ad.param_value(native), entry["momentum_buffer"], mom, wd, damp,
                        nesterov)
                    ad.subtract_(native, direction * lr)


def sgd_direction(grad, value, buf, momentum: float, weight_decay: float, dampening: float,
                  nesterov: bool):
    """PyTorch's SGD direction from native tensors (any framework: operators only)::

        g = grad + weight_decay * p
        if momentum: buf = g (first step) or momentum * buf + (1 - dampening) * g
                     g = g + momentum * buf if nesterov else buf

    Returns ``(g, buf)``; the step is ``p -= lr * g``. ``buf`` never aliases ``grad``.
    """
    g = grad + value * weight_decay if weight_decay else grad
    if momentum:
        if buf is None:
            buf = g * 1.0  # a copy: the gradient's storage keeps accumulating
        elif dampening:
            buf = buf * momentum + g * (1.0 - dampening)
        else:
            buf = buf * momentum + g
        g = g + buf * momentum if nesterov else buf
    return g, buf


from . import lr_scheduler  # noqa: E402,F401  (optim.lr_scheduler)
