"""Issue 2: backend selection, lazy imports, conflicts — each case in a fresh interpreter."""

import pytest

import d2lparams as d2p

from conftest import ALL, run_python


def check(code, env=None):
    proc = run_python(code, env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout


def test_import_d2lparams_imports_no_framework():
    out = check(
        "import sys, time; t = time.perf_counter(); import d2lparams as d2p; "
        "d2p.list_backends(); d2p.available_backends(); "
        f"print([m for m in {ALL!r} + ('keras',) if m in sys.modules])"
    )
    assert out.strip() == "[]"


def test_list_and_aliases():
    assert d2p.list_backends() == sorted(ALL)
    from d2lparams._registry import canonical_name

    for alias, name in [("pytorch", "torch"), ("tf", "tensorflow"), ("keras", "tensorflow"),
                        ("gluon", "mxnet"), ("paddlepaddle", "paddle"), ("TORCH", "torch"),
                        ("flax", "jax"), ("nnx", "jax")]:
        assert canonical_name(alias) == name
    with pytest.raises(ValueError, match="unknown backend 'theano'.*'torch'"):
        d2p.set_backend("theano")


def test_precedence_env_set_use_and_restore_on_error():
    names = d2p.available_backends()
    if len(names) < 2:
        pytest.skip("needs two installed frameworks")
    first, second = names[0], names[1]
    out = check(f"""
import d2lparams as d2p
print(d2p.get_backend())
d2p.set_backend({first!r}); print(d2p.get_backend())
try:
    with d2p.use_backend({second!r}):
        print(d2p.get_backend()); raise KeyError
except KeyError:
    pass
print(d2p.get_backend())
print(d2p.nn.Linear(2, 2, backend={second!r}).backend)
""", {"D2LPARAMS_BACKEND": second})
    assert out.split() == [second, first, second, first, second]


def test_default_order_without_choice():
    expected = [n for n in ("torch", "tensorflow", "paddle", "mxnet", "jax")
                if n in d2p.available_backends()]
    out = check("import d2lparams as d2p; print(d2p.get_backend())", {"D2LPARAMS_BACKEND": ""})
    assert out.strip() == expected[0]


def test_missing_framework_says_how_to_install():
    out = check("""
import sys
sys.modules['mxnet'] = None   # as if mxnet were not installed
import d2lparams as d2p
print('mxnet' in d2p.available_backends())
try:
    d2p.set_backend('mxnet')
except d2p.BackendNotAvailable as e:
    print(isinstance(e, ImportError), e)
""")
    lines = out.strip().splitlines()
    assert lines[0] == "False"
    assert lines[1].startswith("True") and 'pip install "d2lparams[mxnet]"' in lines[1]


@pytest.mark.skipif(not {"tensorflow", "paddle"} <= set(d2p.available_backends()),
                    reason="needs tensorflow and paddle installed")
def test_paddle_after_tensorflow_is_a_conflict_not_a_segfault():
    out = check("""
import d2lparams as d2p, sys
d2p.set_backend('tensorflow')
try:
    d2p.set_backend('paddle')
except d2p.BackendConflict as e:
    print('conflict', 'paddle' in sys.modules, 'preload' in str(e))
""")
    assert out.strip().splitlines()[-1] == "conflict False True"
    out = check("""
import d2lparams as d2p
print(d2p.preload('tensorflow', 'paddle'))
a = d2p.nn.Linear(2, 3, backend='paddle'); b = d2p.nn.Linear(2, 3, backend='tensorflow')
b.load_state_dict(a.state_dict())
import numpy as np
X = np.ones((1, 2), np.float32)
print(np.allclose(d2p.to_numpy(a(X)), d2p.to_numpy(b(X)), atol=1e-6))
""")
    assert out.strip().splitlines()[-2:] == ["['paddle', 'tensorflow']", "True"]


def test_modules_keep_their_backend_in_a_mixed_process():
    names = [n for n in ("torch", "mxnet") if n in d2p.available_backends()]
    if len(names) < 2:
        pytest.skip("needs torch and mxnet")
    out = check("""
import numpy as np, d2lparams as d2p
d2p.set_backend('torch')
net = d2p.nn.mlp(3, 4, 2)
d2p.set_backend('mxnet')
print(net.backend, d2p.backend_of(net(np.ones((1, 3), np.float32))), d2p.nn.Linear(1, 1).backend)
""")
    assert out.split() == ["torch", "torch", "mxnet"]
