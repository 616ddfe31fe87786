"""Shared helpers. The ``backend`` fixture comes from d2lparams' own pytest plugin
(``d2lparams.testing``): each backend's tests run in a process of their own."""

import os
import subprocess
import sys

import numpy as np
import pytest

ALL = ("torch", "tensorflow", "mxnet", "paddle")


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
    env.pop("D2LPARAMS_TEST_WORKER", None)
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
