"""Issue 11: property tests (hypothesis) over random convolution and pooling configurations,
against the NumPy reference, on every backend."""

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import d2lparams as d2p
from d2lparams import nn, ops

import numpy_conv as R

SIZE = st.integers(1, 4)

CONV = st.fixed_dictionaries({
    "groups": st.sampled_from([1, 1, 2, 3]),
    "in_per_group": st.integers(1, 3),
    "out_per_group": st.integers(1, 3),
    "kernel": st.tuples(SIZE, SIZE),
    "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "dilation": st.tuples(st.integers(1, 2), st.integers(1, 2)),
    "padding": st.one_of(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                         st.sampled_from(["same", "valid"])),
    "bias": st.booleans(),
    "hw": st.tuples(st.integers(1, 9), st.integers(1, 9)),
    "batch": st.integers(1, 3),
})


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=CONV, seed=st.integers(0, 2**16))
def test_random_convolutions_match_numpy(backend, cfg, seed):
    stride, padding = cfg["stride"], cfg["padding"]
    if padding == "same":
        stride = (1, 1)
    kernel = tuple(d * (k - 1) + 1 for k, d in zip(cfg["kernel"], cfg["dilation"]))
    pad = R.pads(padding, cfg["kernel"], cfg["dilation"])
    assume(cfg["hw"][0] + pad[0] + pad[1] >= kernel[0] and cfg["hw"][1] + pad[2] + pad[3] >= kernel[1])
    g = cfg["groups"]
    cin, cout = g * cfg["in_per_group"], g * cfg["out_per_group"]
    conv = nn.Conv2d(cin, cout, cfg["kernel"], stride, padding, cfg["dilation"], g, cfg["bias"])
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((cfg["batch"], cin, *cfg["hw"])).astype(np.float32)
    sd = conv.state_dict()
    out, cache = R.conv2d(X, sd["weight"], sd.get("bias"), stride, padding, cfg["dilation"], g)
    np.testing.assert_allclose(d2p.to_numpy(conv(X)), out, rtol=1e-4, atol=1e-5)
    G = rng.standard_normal(out.shape).astype(np.float32)
    d2p.backward(lambda: ops.sum(conv(d2p.tensor(X)) * d2p.tensor(G)))
    _, dw, db = R.conv2d_backward(G.astype(np.float64), cache)
    np.testing.assert_allclose(conv.weight.grad, dw, rtol=1e-4, atol=1e-4)
    if cfg["bias"]:
        np.testing.assert_allclose(conv.bias.grad, db, rtol=1e-4, atol=1e-4)


POOL = st.fixed_dictionaries({
    "mode": st.sampled_from(["max", "avg"]),
    "kernel": st.tuples(SIZE, SIZE),
    "stride": st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))),
    "pad_fraction": st.tuples(st.integers(0, 2), st.integers(0, 2)),
    "hw": st.tuples(st.integers(1, 9), st.integers(1, 9)),
})


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=POOL, seed=st.integers(0, 2**16))
def test_random_pooling_matches_numpy(backend, cfg, seed):
    kernel = cfg["kernel"]
    padding = tuple(min(p, k // 2) for p, k in zip(cfg["pad_fraction"], kernel))
    stride = kernel if cfg["stride"] is None else cfg["stride"]
    assume(all(h + 2 * p >= k for h, p, k in zip(cfg["hw"], padding, kernel)))
    cls = nn.MaxPool2d if cfg["mode"] == "max" else nn.AvgPool2d
    pool = cls(kernel, cfg["stride"], padding)
    X = np.random.default_rng(seed).standard_normal((2, 3, *cfg["hw"])).astype(np.float32)
    expected = R.pool2d(X, kernel, stride, padding, cfg["mode"])[0]
    np.testing.assert_allclose(d2p.to_numpy(pool(X)), expected, rtol=1e-5, atol=1e-6)
    fn = ops.max_pool2d if cfg["mode"] == "max" else ops.avg_pool2d
    np.testing.assert_allclose(d2p.to_numpy(fn(d2p.tensor(X), kernel, cfg["stride"], padding)),
                               expected, rtol=1e-5, atol=1e-6)
