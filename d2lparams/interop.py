"""Porting between models whose names differ, and a layer-by-layer diff of two models.

Natively built networks name the same parameter differently (``0.block 0.0.weight`` on
torch and paddle, ``0.0.0.weight`` on keras and mxnet). :func:`port` maps members by their
order in the module tree and their canonical shapes; :func:`diff` ports, runs both models
on the same input and reports, layer by layer, where their outputs, states and gradients
part.

Examples:
    >>> import numpy as np, d2lparams as d2p
    >>> from d2lparams import nn
    >>> a = nn.mlp(4, 8, 1, backend="torch")
    >>> b = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1), backend="torch")
    >>> list(d2p.port(a, b).items())[:2]
    [('0.weight', '0.weight'), ('0.bias', '0.bias')]
"""

from __future__ import annotations

import html
from collections import OrderedDict
from dataclasses import asdict, dataclass, field

import numpy as np

from . import ops
from ._errors import StateDictError
from ._tensor import tensor, to_numpy
from .autograd import backward
from .io import read
from .nn.module import Module

__all__ = ["DiffReport", "diff", "diff_traces", "load_trace", "port", "save_trace", "trace"]


def _members(module: Module) -> list[tuple[str, tuple, str, int]]:
    """``(first name, canonical shape, kind, identity)`` of every distinct parameter and
    buffer, in module-tree order (a tied member once, under its first name)."""
    out, seen = [], set()
    for name, (member, is_param) in module._state_targets().items():
        native = member.native if is_param else member
        if id(native) in seen:
            continue
        seen.add(id(native))
        shape = member.shape if is_param else tuple(module._adapter.param_shape(member))
        out.append((name, tuple(shape), "parameter" if is_param else "buffer", id(native)))
    return out


def _side_by_side(a: list, b: list) -> str:
    rows = [("#", "source", "shape", "destination", "shape")]
    for i in range(max(len(a), len(b))):
        left = a[i] if i < len(a) else ("-", "", "", 0)
        right = b[i] if i < len(b) else ("-", "", "", 0)
        mark = "" if (i < len(a) and i < len(b) and left[1:3] == right[1:3]) else "  <-"
        rows.append((str(i), f"{left[0]} ({left[2]})" if left[2] else left[0], str(left[1]),
                     f"{right[0]} ({right[2]})" if right[2] else right[0], str(right[1]) + mark))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def port(src, dst, by: str = "structure") -> OrderedDict[str, str]:
    """Copy every parameter and buffer of ``src`` into ``dst`` (models of any backends, or
    wrapped native models) matched by their order in the module tree and their canonical
    shapes, whatever their names; atomic. Returns ``{source name: destination name}``.

    Raises:
        StateDictError: the two structures do not match one to one (another number of
            members, a shape or a kind that differs at some position); both structures are
            shown side by side and ``dst`` is unchanged.
    """
    if by != "structure":
        raise ValueError(f"port matches by='structure' only, got by={by!r}")
    for what, model in (("src", src), ("dst", dst)):
        if not isinstance(model, Module):
            raise TypeError(
                f"d2p.port {what} must be an nn.Module (wrap a native model with "
                f"d2p.wrap(model)), got {type(model).__name__}"
            )
    mapping, first_of = _match(src, dst)
    source_state = src.state_dict()
    state = OrderedDict()
    for name, (member, is_param) in dst._state_targets().items():
        native = member.native if is_param else member
        state[name] = source_state[first_of[id(native)]]
    dst.load_state_dict(state)
    return mapping


def _match(src: Module, dst: Module) -> tuple[OrderedDict, dict]:
    """``({source name: destination name}, {id(destination member): source name})``."""
    a, b = _members(src), _members(dst)
    if len(a) != len(b) or any(x[1:3] != y[1:3] for x, y in zip(a, b)):
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x[1:3] != y[1:3]), min(len(a), len(b)))
        raise StateDictError(
            f"d2p.port: the structures differ ({len(a)} members in the source, {len(b)} in "
            f"the destination; first difference at position {first}); nothing was copied. "
            "Members in module-tree order (a tied member once):\n" + _side_by_side(a, b)
            + "\nFix: build the same architecture on both sides (the same layers in the "
            "same order, the same ties)"
        )
    return (OrderedDict((x[0], y[0]) for x, y in zip(a, b)),
            {y[3]: x[0] for x, y in zip(a, b)})


@dataclass
class DiffRow:
    """One layer or parameter of a :class:`DiffReport`."""

    name: str
    kind: str
    max_abs: float
    relative: float
    other_name: str = ""

    @property
    def diverges(self) -> bool:
        return self.relative > 1e-4 and self.max_abs > 1e-6


@dataclass
class DiffReport:
    """What :func:`diff` found: ``layers`` (every module's output, and its state after the
    call, in call order), ``parameters`` (every parameter's gradient), and
    ``first_divergence``, the structural name (in the first model) of the first layer whose
    output or state deviates beyond tolerance (``None`` when none does)."""

    layers: list = field(default_factory=list)
    parameters: list = field(default_factory=list)
    first_divergence: str | None = None
    backends: tuple = ()
    tolerance: str = "relative 1e-4 (and absolute 1e-6)"
    note: str = ""

    def __str__(self) -> str:
        head = f"d2p.diff {self.backends[0]} -> {self.backends[1]} ({self.tolerance})"
        rows = [("", "layer / parameter", "compares", "max abs dev", "relative dev")]
        for r in self.layers + self.parameters:
            rows.append(("!!" if r.diverges else "", r.name or "(root)", r.kind,
                         f"{r.max_abs:.3e}", f"{r.relative:.3e}"))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = [head] + ([self.note] if self.note else []) + [
            "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        lines.append(
            "first divergence: " + (self.first_divergence if self.first_divergence is not None
                                    else "none: the models agree")
        )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The report as JSON-ready data (:meth:`from_dict` reads it back)."""
        return {"backends": list(self.backends), "tolerance": self.tolerance, "note": self.note,
                "first_divergence": self.first_divergence,
                "layers": [asdict(r) for r in self.layers],
                "parameters": [asdict(r) for r in self.parameters]}

    @classmethod
    def from_dict(cls, data: dict) -> DiffReport:
        return cls(layers=[DiffRow(**r) for r in data["layers"]],
                   parameters=[DiffRow(**r) for r in data["parameters"]],
                   first_divergence=data["first_divergence"], backends=tuple(data["backends"]),
                   tolerance=data["tolerance"], note=data["note"])

    def to_html(self) -> str:
        """The report as an HTML fragment: a table row per layer and per parameter (a
        divergent row has the class ``fail``), then the first divergence. No script, no
        external resource."""
        a, b = (html.escape(str(x)) for x in self.backends)
        rows = []
        for r in self.layers + self.parameters:
            other = "" if r.other_name == r.name else html.escape(r.other_name)
            rows.append(
                f'<tr class="{"fail" if r.diverges else "ok"}"><td>{html.escape(r.name or "(root)")}'
                f"</td><td>{other}</td><td>{html.escape(r.kind)}</td>"
                f"<td>{r.max_abs:.3e}</td><td>{r.relative:.3e}</td></tr>")
        first = (f'<span class="fail">{html.escape(self.first_divergence or "(root)")}</span>'
                 if self.first_divergence is not None else "none: the models agree")
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        return (f'<div class="diff" data-backends="{a} {b}"><h3>{a} &rarr; {b}</h3>{note}'
                f'<table class="diff"><tr><th>layer / parameter</th><th>name in {b}</th>'
                f"<th>compares</th><th>max abs dev</th><th>relative dev</th></tr>"
                f'{"".join(rows)}</table><p>First divergence: {first} '
                f"({html.escape(self.tolerance)}).</p></div>")


def _deviation(x, y) -> tuple[float, float]:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape:
        return float("inf"), float("inf")
    dev = float(np.abs(x - y).max(initial=0.0))
    return dev, dev / max(1e-12, float(np.abs(x).max(initial=0.0)))


def _record(model: Module) -> tuple[OrderedDict, list]:
    outputs: OrderedDict = OrderedDict()
    handles = []
    for name, module in model.named_modules():
        def hook(m, args, out, name=name):
            outputs.setdefault(name, to_numpy(out) if not isinstance(out, (tuple, list))
                               else to_numpy(out[0]))
        handles.append(module.register_forward_hook(hook))
    return outputs, handles


def trace(model: Module, X, *, train: bool = True) -> dict:
    """What :func:`diff` compares of one model, as NumPy: run ``model`` on ``X`` (NumPy; in
    training mode unless ``train=False``) and differentiate the sum of its outputs, after
    clearing its gradients.

    Returns:
        ``{"modules": [every module's name], "outputs": {name: output} (call order),
        "buffers": {name: value after the call}, "grads": {name: gradient or None}}``.
        :func:`save_trace` writes it to a file (one backend's process), :func:`diff_traces`
        compares two (in any process: no framework is needed).
    """
    X = np.asarray(X, dtype=np.float32)
    model.train(train)
    model.zero_grad()
    outputs, handles = _record(model)
    try:
        x = tensor(X, backend=model.backend)
        backward(lambda: _sum(model(x)), backend=model.backend)
    finally:
        for h in handles:
            h.remove()
    return {"backend": model.backend, "modules": [n for n, _ in model.named_modules()],
            "outputs": outputs,
            "buffers": OrderedDict((n, to_numpy(b)) for n, b in model.named_buffers()),
            "grads": OrderedDict((n, p.grad) for n, p in model.named_parameters())}


def save_trace(path, result: dict) -> None:
    """Write a :func:`trace` to ``path`` (``.npz``; no pickle)."""
    arrays = {"backend": np.array(result["backend"]), "modules": np.array(result["modules"])}
    for part in ("outputs", "buffers", "grads"):
        arrays[f"{part}:names"] = np.array(list(result[part]))
        for i, value in enumerate(result[part].values()):
            if value is not None:
                arrays[f"{part}:{i}"] = np.asarray(value)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def load_trace(path) -> dict:
    """Read a file written by :func:`save_trace`."""
    with np.load(path, allow_pickle=False) as data:
        result: dict = {"backend": str(data["backend"]),
                        "modules": [str(n) for n in data["modules"]]}
        for part in ("outputs", "buffers", "grads"):
            result[part] = OrderedDict(
                (str(name), data[f"{part}:{i}"] if f"{part}:{i}" in data.files else None)
                for i, name in enumerate(data[f"{part}:names"]))
    return result


def diff(model_a: Module, model_b: Module, X, *, port: bool = True, train: bool = True
         ) -> DiffReport:
    """Compare two models (any two backends, or wrapped native models) layer by layer.

    Copies ``model_a``'s weights into ``model_b`` by structure (unless ``port=False``), runs
    both on ``X`` (NumPy; in training mode unless ``train=False``), and reports every
    layer's output deviation, every buffer's deviation after the call (BatchNorm's running
    statistics), every parameter's gradient deviation (of the sum of the outputs), and the
    first layer where they part beyond tolerance. Both models' gradients are cleared first.

    Examples:
        >>> import numpy as np, d2lparams as d2p
        >>> a = d2p.nn.mlp(4, 8, 1, backend="torch")
        >>> b = d2p.nn.mlp(4, 8, 1, backend="torch")
        >>> print(d2p.diff(a, b, np.ones((2, 4), np.float32)).first_divergence)
        None
    """
    mapping = _port(model_a, model_b) if port else _match(model_a, model_b)[0]
    return diff_traces(trace(model_a, X, train=train), trace(model_b, X, train=train), mapping)


def diff_traces(trace_a: dict, trace_b: dict, mapping: dict | None = None) -> DiffReport:
    """The :class:`DiffReport` of two :func:`trace` results (of the same architecture).

    Args:
        trace_a: the reference model's trace.
        trace_b: the other model's.
        mapping: ``{name in a: name in b}`` of the parameters and buffers (what :func:`port`
            returns); default: by order, for traces of models built alike.
    """
    names_a, names_b = trace_a["modules"], trace_b["modules"]
    if mapping is None:
        members_a = list(trace_a["grads"]) + list(trace_a["buffers"])
        members_b = list(trace_b["grads"]) + list(trace_b["buffers"])
        mapping = OrderedDict(zip(members_a, members_b))
    note = ""
    if len(names_a) == len(names_b):
        to_b = dict(zip(names_a, names_b))
    else:  # one side fuses layers (a keras Dense with its activation): only the whole
        # model's output, the states and the gradients still correspond
        to_b = {"": ""}
        note = (f"layer outputs not compared: {len(names_a)} and {len(names_b)} modules (one "
                "model fuses layers, e.g. a Dense with its activation)")
    out_a, buf_a, grad_a = trace_a["outputs"], trace_a["buffers"], trace_a["grads"]
    out_b, buf_b, grad_b = trace_b["outputs"], trace_b["buffers"], trace_b["grads"]
    report = DiffReport(backends=(trace_a["backend"], trace_b["backend"]), note=note)
    buffer_owner: dict = {}
    for name in buf_a:
        buffer_owner.setdefault(name.rpartition(".")[0], []).append(name)
    buffer_map = {a: b for a, b in mapping.items() if a in buf_a}
    for name, value in out_a.items():  # call order
        if name not in to_b:
            continue
        other = to_b[name]
        if other not in out_b:
            continue
        dev, rel = _deviation(value, out_b.get(other))
        row = DiffRow(name, "output", dev, rel, other)
        report.layers.append(row)
        state = [DiffRow(bn, "state after", *_deviation(buf_a[bn], buf_b[buffer_map[bn]]),
                         buffer_map[bn]) for bn in buffer_owner.get(name, []) if bn in buffer_map]
        report.layers.extend(state)
        if report.first_divergence is None and (row.diverges or any(r.diverges for r in state)):
            report.first_divergence = name
    for name, other in mapping.items():
        if name not in grad_a or other not in grad_b:
            continue
        g, gb = grad_a[name], grad_b[other]
        if g is None or gb is None:
            dev, rel = (0.0, 0.0) if g is None and gb is None else (float("inf"), float("inf"))
        else:
            dev, rel = _deviation(g, gb)
        report.parameters.append(DiffRow(name, "gradient", dev, rel, other))
    return report


def diff_checkpoints(path_a, path_b) -> DiffReport:
    """Compare two checkpoint files tensor by tensor (``d2lparams diff a b``): by name where
    both hold the same names, else by order and shape (files saved from natively built
    models of two frameworks). ``first_divergence`` names the first tensor that differs
    beyond tolerance.

    Raises:
        StateDictError: a file is unreadable, or the two do not match one to one.
    """
    state_a, meta_a = read(path_a)
    state_b, meta_b = read(path_b)
    if list(state_a) == list(state_b):
        pairs = [(k, k) for k in state_a]
    else:
        a = [(k, v.shape) for k, v in state_a.items()]
        b = [(k, v.shape) for k, v in state_b.items()]
        if len(a) != len(b) or any(x[1] != y[1] for x, y in zip(a, b)):
            rows = [(k, s, "", 0) for k, s in a], [(k, s, "", 0) for k, s in b]
            raise StateDictError(
                f"{path_a} and {path_b} hold other tensors ({len(a)} and {len(b)}), by name and "
                "by order and shape:\n" + _side_by_side(*rows)
            )
        pairs = [(x[0], y[0]) for x, y in zip(a, b)]
    report = DiffReport(backends=(meta_a.get("source_backend", "?"),
                                  meta_b.get("source_backend", "?")))
    for name_a, name_b in pairs:
        row = DiffRow(name_a, "tensor", *_deviation(state_a[name_a], state_b[name_b]), name_b)
        report.parameters.append(row)
        if report.first_divergence is None and row.diverges:
            report.first_divergence = name_a
    return report


def _sum(out):
    return ops.sum(out[0] if isinstance(out, (tuple, list)) else out)


_port = port
