"""Shared helpers. The ``backend`` fixture comes from d2lparams' own pytest plugin
(``d2lparams.testing``): each backend's tests run in a process of their own."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ALL = ("torch", "tensorflow", "mxnet", "paddle", "jax")


def relu(x):
    return np.maximum(x, 0)


def sequential_reference(sd, prefix, kinds, X):
    """NumPy forward of a Sequential whose children are ``kinds`` ("linear"/"relu")."""
    for i, kind in enumerate(kinds):
        if kind == "linear":
            X = X @ sd[f"{prefix}{i}.weight"] + sd[f"{prefix}{i}.bias"]
        elif kind == "relu":
            X = relu(X)
    return X


def run_python(code: str, env_extra=None, timeout=300):
    """Run ``code`` in a fresh interpreter (cwd is not on sys.path) and return the result."""
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-P", "-c", code], capture_output=True, text=True, env=env,
        timeout=timeout, cwd=os.path.dirname(__file__), stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def available():
    import d2lparams as d2p

    return d2p.available_backends()


def cross_backends(minimum: int = 2) -> list:
    """The installed backends, for a test that compares backends with each other; skips
    (with the reason) where fewer than ``minimum`` are installed, instead of passing on one."""
    names = available()
    if len(names) < minimum:
        pytest.skip(f"compares backends: needs {minimum} installed, found {names}")
    return names


def other_backend_tensor(backend, array=None):
    """A native tensor of another backend than ``backend`` (skips if none is installed)."""
    import d2lparams as d2p

    other = "mxnet" if backend == "torch" else "torch"
    if other not in d2p.available_backends():
        pytest.skip(f"needs {other} installed to make a foreign tensor")
    return d2p.tensor(np.ones((2, 4)) if array is None else array, backend=other)


#: the metadata d2p.save writes (order and tied are added per file)
D2P_METADATA = {"format": "d2lparams", "format_version": "1", "layout": "canonical",
                "source_backend": "test"}


def write_safetensors(path, tensors, metadata=None, order=None, tied="[]"):
    """Write a safetensors file by hand, so that a test controls every byte of it.

    ``tensors`` maps a name to ``(dtype, shape, raw bytes)``, e.g.
    ``("BF16", [2], b"...")``; ``metadata`` defaults to a d2lparams checkpoint's, with
    ``order`` (default: the tensor names) and ``tied`` as given (``None`` leaves one out).
    """
    meta = dict(D2P_METADATA) if metadata is None else dict(metadata)
    if metadata is None:
        if order is not False:
            meta["order"] = order if isinstance(order, str) else json.dumps(order or list(tensors))
        if tied is not None:
            meta["tied"] = tied
    header, data = {"__metadata__": meta}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    with open(path, "wb") as fh:
        fh.write(len(text).to_bytes(8, "little") + text + data)
    return path
