"""Every docstring example runs (they build on torch, the one backend they name)."""

import pytest

import d2lparams as d2p

from conftest import run_python

MODULES = [
    "d2lparams", "d2lparams._registry", "d2lparams._tensor", "d2lparams.nn.module",
    "d2lparams.nn.layers", "d2lparams.nn.parameter", "d2lparams.init", "d2lparams.ops",
    "d2lparams.autograd", "d2lparams.introspect", "d2lparams.io", "d2lparams.optim",
    "d2lparams.optim.lr_scheduler",
]


@pytest.mark.skipif("torch" not in d2p.available_backends(), reason="the examples use torch")
def test_docstring_examples_run():
    proc = run_python(f"""
import doctest, importlib
attempted = failed = 0
for name in {MODULES!r}:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    attempted += result.attempted
    failed += result.failed
print(attempted, failed)
""")
    assert proc.returncode == 0, proc.stderr[-3000:]
    attempted, failed = map(int, proc.stdout.strip().splitlines()[-1].split())
    assert failed == 0, proc.stdout[-5000:]
    assert attempted > 100
