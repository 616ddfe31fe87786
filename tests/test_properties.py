"""Issue 7: property-based tests (hypothesis) over random MLP shapes, on every backend."""

import inspect
import json
import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import d2lparams as d2p
from d2lparams import init, nn

from conftest import cross_backends, run_python

# an architecture: input width, hidden widths (depth 1-5 layers in all), output width,
# whether the first layer is lazy, and whether a square hidden layer is used twice (tied)
ARCH = st.fixed_dictionaries({
    "inputs": st.integers(1, 64),
    "hidden": st.lists(st.integers(1, 64), min_size=0, max_size=4),
    "outputs": st.integers(1, 64),
    "lazy": st.booleans(),
    "tied": st.booleans(),
    "batch": st.integers(1, 5),
})

def build(arch):
    sizes = [arch["inputs"], *arch["hidden"], arch["outputs"]]
    layers = []
    for i in range(len(sizes) - 1):
        lazy = arch["lazy"] and i == 0
        layers.append(nn.LazyLinear(sizes[i + 1]) if lazy else nn.Linear(sizes[i], sizes[i + 1]))
        layers.append(nn.ReLU())
        if arch["tied"] and i == 0:
            shared = nn.Linear(sizes[1], sizes[1])
            layers += [shared, nn.ReLU(), shared, nn.ReLU()]
    net = nn.Sequential(*layers[:-1])
    if arch["lazy"]:
        net.materialize((1, arch["inputs"]))
    return net


BUILD = inspect.getsource(build)  # the same builder runs in the porting subprocesses


def numpy_forward(net, sd, X):
    h = X
    for i, module in enumerate(net):  # every place, a tied module at each of its places
        name = str(i)
        if isinstance(module, nn.Linear):
            h = h @ sd[f"{name}.weight"] + sd[f"{name}.bias"]
        else:
            h = np.maximum(h, 0)
    return h


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arch=ARCH, seed=st.integers(0, 2**16))
def test_random_mlps_round_trip_and_match_numpy(backend, arch, seed):
    d2p.seed(seed)
    net = build(arch)
    for p in net.parameters():
        init.normal_(p, std=0.3)
    sd = net.state_dict()
    X = np.random.default_rng(seed).standard_normal((arch["batch"], arch["inputs"])).astype(np.float32)
    np.testing.assert_allclose(d2p.to_numpy(net(X)), numpy_forward(net, sd, X), rtol=1e-4, atol=1e-5)
    twin = build(arch)
    twin.load_state_dict(sd)
    for key, value in twin.state_dict().items():
        np.testing.assert_array_equal(value, sd[key])  # exact
    assert twin.num_parameters() == net.num_parameters()
    assert len(d2p.tied_parameters(twin)) == (2 if arch["tied"] else 0)


SAVE = BUILD + """
import json, sys, numpy as np, d2lparams as d2p
from d2lparams import nn, init
d2p.set_backend({backend!r})
out = {{}}
for i, arch in enumerate(json.loads({archs!r})):
    d2p.seed(i)
    net = build(arch)
    for p in net.parameters():
        init.normal_(p, std=0.3)
    d2p.save(net, {directory!r} + f"/{{i}}.safetensors")
    X = np.random.default_rng(i).standard_normal((arch["batch"], arch["inputs"])).astype(np.float32)
    out[i] = d2p.to_numpy(net(X)).tolist()
print(json.dumps(out))
"""

LOAD = BUILD + """
import json, sys, numpy as np, d2lparams as d2p
from d2lparams import nn
d2p.set_backend({backend!r})
worst = 0.0
for directory, expected in json.loads({sources!r}):
    for i, arch in enumerate(json.loads({archs!r})):
        net = d2p.load(build(arch), directory + f"/{{i}}.safetensors")
        X = np.random.default_rng(i).standard_normal((arch["batch"], arch["inputs"])).astype(np.float32)
        ref = np.array(expected[str(i)], np.float32)
        worst = max(worst, float(np.abs(d2p.to_numpy(net(X)) - ref).max() / max(1.0, np.abs(ref).max())))
print(worst)
"""


@settings(max_examples=2, deadline=None)
@given(archs=st.lists(ARCH, min_size=3, max_size=3))
def test_random_mlps_port_across_backends(archs):
    import tempfile

    names = cross_backends()
    archs_json = json.dumps(archs)
    saved = {}
    with tempfile.TemporaryDirectory(prefix="d2lparams-port-") as root:
        for source in names:
            directory = os.path.join(root, source)
            os.makedirs(directory)
            proc = run_python(SAVE.format(backend=source, archs=archs_json, directory=directory))
            assert proc.returncode == 0, proc.stderr[-3000:]
            saved[source] = (directory, json.loads(proc.stdout.strip().splitlines()[-1]))
        for target in names:
            sources = json.dumps([saved[s] for s in names if s != target])
            proc = run_python(LOAD.format(backend=target, archs=archs_json, sources=sources))
            assert proc.returncode == 0, proc.stderr[-3000:]
            assert float(proc.stdout.strip().splitlines()[-1]) < 1e-5, (target, archs)
