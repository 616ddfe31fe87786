"""Saving and porting checkpoints across frameworks.

A checkpoint is a safetensors file with canonical names and the canonical ``(in, out)``
layout, so a file saved from a network on one backend loads into the same architecture on
any other. Metadata: ``format`` (``d2lparams``), ``format_version``, ``layout``
(``canonical``), ``source_backend`` and ``tied`` (JSON groups of names sharing storage; a
tied tensor is stored once, under the group's first name).

Writes are atomic: the file is written to a temporary sibling, flushed to disk, then
renamed over ``path``; a crash mid-write leaves the old file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import OrderedDict
from typing import TypeVar

import numpy as np

from ._errors import StateDictError
from .introspect import tied_parameters
from .nn.module import Module

FORMAT = "d2lparams"
FORMAT_VERSION = "1"
LAYOUT = "canonical"

__all__ = ["load", "save"]

M = TypeVar("M", bound=Module)


def _path(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"a path is a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def save(module_or_state_dict, path) -> str:
    """Write a module's (or a state dict's) tensors to ``path`` atomically; returns the path.

    Examples:
        >>> import os, tempfile, d2lparams as d2p
        >>> net = d2p.nn.mlp(4, 8, 1, backend="torch")
        >>> path = d2p.save(net, os.path.join(tempfile.mkdtemp(), "mlp.safetensors"))
        >>> twin = d2p.load(d2p.nn.mlp(4, 8, 1, backend="torch"), path)
    """
    from safetensors.numpy import save as st_save

    path = _path(path)
    if isinstance(module_or_state_dict, Module):
        module = module_or_state_dict
        state = module.state_dict()
        tied = tied_parameters(module)
        source = module.backend
    elif hasattr(module_or_state_dict, "items"):
        state = OrderedDict((k, np.asarray(v, dtype=np.float32)) for k, v in module_or_state_dict.items())
        tied, source = [], "unknown"
    else:
        raise TypeError(
            f"d2p.save takes an nn.Module or a state dict, got {type(module_or_state_dict).__name__}"
        )
    for key in state:
        if not isinstance(key, str):
            raise TypeError(f"state dict keys must be str, got {key!r}")
    skip = {name for group in tied for name in group[1:]}
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items() if k not in skip}
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "layout": LAYOUT,
        "source_backend": source, "tied": json.dumps(tied),
        "order": json.dumps(list(state)),
    }
    payload = st_save(tensors, metadata=metadata)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".d2lparams-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read(path) -> tuple[OrderedDict[str, np.ndarray], dict]:
    """The full state (tied names expanded) and the metadata of a checkpoint file.

    Raises:
        StateDictError: the file is missing, truncated, not safetensors, or not a d2lparams
            checkpoint in the canonical layout.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    path = _path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise StateDictError(f"cannot read checkpoint {path!r}: {exc.strerror}") from exc
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
    except (SafetensorError, ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise StateDictError(
            f"{path!r} is not a readable safetensors file ({len(data)} bytes: truncated or "
            f"another format: {exc}); save it again with d2p.save(net, path)"
        ) from exc
    meta = header.get("__metadata__", {}) or {}
    if meta.get("format") != FORMAT or meta.get("layout") != LAYOUT:
        raise StateDictError(
            f"{path!r} is a safetensors file but not a d2lparams checkpoint in the canonical "
            f"(in, out) layout (metadata: {meta}); a native torch/mxnet file stores weights "
            "as (out, in). Load it with the framework, then port it with "
            "d2p.wrap(native).state_dict() and d2p.save"
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise StateDictError(
            f"{path!r} has format version {meta.get('format_version')!r}; this d2lparams "
            f"reads version {FORMAT_VERSION}: upgrade d2lparams"
        )
    state = OrderedDict()
    order = json.loads(meta.get("order", "[]")) or list(tensors)
    tied = json.loads(meta.get("tied", "[]"))
    alias = {name: group[0] for group in tied for name in group}
    for name in order:
        source = alias.get(name, name)
        if source not in tensors:
            raise StateDictError(f"{path!r} lacks the tensor {source!r} its metadata names")
        state[name] = tensors[source]
    return state, meta


def load(module: M, path, strict: bool = True) -> M:
    """Load a checkpoint written by :func:`save` into ``module`` (any backend); the same
    atomic checks as ``load_state_dict``. Returns the module.

    Raises:
        StateDictError: unreadable file, wrong layout, or keys/shapes that do not fit; the
            module is unchanged.
    """
    if not isinstance(module, Module):
        raise TypeError(f"d2p.load takes an nn.Module first, got {type(module).__name__}")
    state, _ = read(path)
    module.load_state_dict(state, strict=strict)
    return module
