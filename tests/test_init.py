"""Issue 3: initialization — the chapter's scenarios, one seed = the same weights everywhere."""

import json
import math

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import init, nn
from d2lparams.chapter import ChapterInit, seed_net

from conftest import ALL, cross_backends, run_python


# The portable initializers draw float32 parameters in float32 (the rule in d2lparams.init's
# docstring); the references below apply that rule with NumPy alone.
def filled(values, shape):
    """The rule's order: a 2-D parameter (in, out) is filled as (out, in), row by row."""
    return values.reshape(shape[::-1]).T if len(shape) == 2 else values.reshape(shape)


def float32_uniform(rng, shape, a, b):
    n = math.prod(shape)
    return filled(rng.random(n, dtype=np.float32) * np.float32(b - a) + np.float32(a), shape)


def float32_normal(rng, shape, mean, std):
    """Box–Muller in float32 on the two halves of float32 uniforms."""
    n = math.prod(shape)
    k = -(-n // 2)
    u = rng.random(2 * k, dtype=np.float32)
    r = np.sqrt(np.log(np.float32(1) - u[:k]) * np.float32(-2)) * np.float32(std)
    theta = np.float32(2 * np.pi) * u[k:]
    z = np.concatenate([r * np.cos(theta), r * np.sin(theta)])[:n]
    return filled(z + np.float32(mean) if mean != 0 else z, shape)


def test_init_normal_via_apply(backend):
    net = seed_net()

    def init_normal(m):
        if type(m) is nn.Linear:
            init.normal_(m.weight, mean=0, std=0.01)
            init.zeros_(m.bias)

    d2p.seed(0)
    net.apply(init_normal)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(net[0].weight.numpy(), float32_normal(rng, (4, 8), 0, 0.01))
    np.testing.assert_array_equal(net[2].weight.numpy(), float32_normal(rng, (8, 1), 0, 0.01))
    assert not net[0].bias.numpy().any() and not net[2].bias.numpy().any()


def test_init_constant_xavier_and_42(backend):
    net = seed_net()
    net.apply(lambda m: (init.constant_(m.weight, 1), init.zeros_(m.bias))
              if isinstance(m, nn.Linear) else None)
    assert (net[0].weight.numpy() == 1).all() and (net[0].bias.numpy() == 0).all()
    d2p.seed(1)
    net[0].apply(lambda m: init.xavier_uniform_(m.weight) if isinstance(m, nn.Linear) else None)
    net[2].apply(lambda m: init.constant_(m.weight, 42) if isinstance(m, nn.Linear) else None)
    bound = math.sqrt(6 / (4 + 8))
    expected = float32_uniform(np.random.default_rng(1), (4, 8), -bound, bound)
    np.testing.assert_array_equal(net[0].weight.numpy(), expected)
    assert (net[2].weight.numpy() == 42).all()


def test_custom_initializer_and_edits(backend):
    net = seed_net()
    d2p.seed(3)
    init.initialize_(net[0].weight, ChapterInit())
    w = np.random.default_rng(3).uniform(-10, 10, (4, 8))
    np.testing.assert_array_equal(net[0].weight.numpy(), (w * (np.abs(w) >= 5)).astype(np.float32))
    before = net[0].weight.numpy()
    p = net[0].weight
    p[:] += 1
    p[0, 0] = 42
    expected = before + 1
    expected[0, 0] = 42
    np.testing.assert_array_equal(net[0].weight.numpy(), expected)
    np.testing.assert_array_equal(net.state_dict()["0.weight"], expected)
    # weight_init= / bias_init= at construction, also on a lazy layer
    lin = nn.Linear(3, 2, weight_init=ChapterInit(), bias_init=0.5)
    assert ((lin.weight.numpy() == 0) | (np.abs(lin.weight.numpy()) >= 5)).all()
    assert (lin.bias.numpy() == 0.5).all()
    lazy = nn.LazyLinear(2, weight_init=lambda p: init.ones_(p))
    lazy(np.zeros((1, 6), np.float32))
    assert lazy.weight.shape == (6, 2) and (lazy.weight.numpy() == 1).all()


def test_init_errors_change_nothing(backend):
    net = seed_net()
    before = net.state_dict()
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.xavier_uniform_(net[0].bias)
    with pytest.raises(TypeError, match="nn.Parameter"):
        init.normal_(net, std=0.01)
    with pytest.raises(ValueError, match="returned shape"):
        init.initialize_(net[0].weight, type("Bad", (init.Initializer,), {
            "__call__": lambda self, shape, rng: np.zeros((2, 2))})())
    with pytest.raises(ValueError, match="found no nn.Linear"):
        init.reset_(nn.Sequential(nn.ReLU()), "torch")
    lazy = nn.LazyLinear(3)
    with pytest.raises(d2p.DeferredInitializationError):
        init.normal_(lazy.weight)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


# Each framework's own documented default for a Linear/Dense layer: the point of this test is
# the framework's native default, so the expectation is a data table.
NATIVE_DEFAULTS = {
    "torch": {"weight": ("uniform", lambda fi, fo: 1 / math.sqrt(fi)),
              "bias": ("uniform", lambda fi, fo: 1 / math.sqrt(fi))},
    "tensorflow": {"weight": ("uniform", lambda fi, fo: math.sqrt(6 / (fi + fo))),
                   "bias": ("zeros", None)},
    "mxnet": {"weight": ("uniform", lambda fi, fo: 0.07), "bias": ("zeros", None)},
    "paddle": {"weight": ("uniform", lambda fi, fo: math.sqrt(6 / (fi + fo))),
               "bias": ("zeros", None)},
    # LeCun normal truncated at two standard deviations, rescaled to keep std √(1/fan_in)
    "jax": {"weight": ("truncated_normal", lambda fi, fo: math.sqrt(1 / fi)),
            "bias": ("zeros", None)},
}


def check_uniform(values, bound):
    assert np.abs(values).max() <= bound * (1 + 1e-6)
    # U(-b, b) has std b/sqrt(3); 10^6 draws give it to well under 1%
    assert abs(values.std() - bound / math.sqrt(3)) < 0.01 * bound / math.sqrt(3)
    assert abs(values.mean()) < 0.01 * bound


@pytest.mark.parametrize("fan_in, fan_out", [(1000, 1000), (100, 3000)])
def test_native_default_initialization(backend, fan_in, fan_out):
    d2p.seed(0)
    lin = nn.Linear(fan_in, fan_out)
    table = NATIVE_DEFAULTS[backend]
    for name in ("weight", "bias"):
        values = getattr(lin, name).numpy()
        kind, bound = table[name]
        if kind == "zeros":
            assert not values.any()
        elif kind == "truncated_normal":
            std = bound(fan_in, fan_out)
            assert np.abs(values).max() <= 2 * std / 0.87962566103423978 * (1 + 1e-6)
            assert abs(values.std() - std) < 0.01 * std and abs(values.mean()) < 0.01 * std
        elif name == "weight":
            check_uniform(values, bound(fan_in, fan_out))
        else:
            b = bound(fan_in, fan_out)
            assert np.abs(values).max() <= b and values.std() > 0.5 * b / math.sqrt(3)
    scheme = init.default_scheme(backend)
    assert scheme.name == backend


SCHEMES = [
    ("uniform_", dict(a=-0.5, b=1.5), lambda fi, fo: ("uniform", -0.5, 1.5)),
    ("normal_", dict(mean=0.5, std=0.02), lambda fi, fo: ("normal", 0.5, 0.02)),
    ("xavier_uniform_", dict(gain=2.0), lambda fi, fo: ("uniform", -2 * math.sqrt(6 / (fi + fo)),
                                                         2 * math.sqrt(6 / (fi + fo)))),
    ("xavier_normal_", dict(), lambda fi, fo: ("normal", 0.0, math.sqrt(2 / (fi + fo)))),
    # kaiming: gain·√(3/fan) and gain/√fan with gain √2, as init documents them
    ("kaiming_uniform_", dict(nonlinearity="relu"),
     lambda fi, fo: ("uniform", -math.sqrt(2) * math.sqrt(3 / fi), math.sqrt(2) * math.sqrt(3 / fi))),
    ("kaiming_normal_", dict(mode="fan_out", nonlinearity="relu"),
     lambda fi, fo: ("normal", 0.0, math.sqrt(2) / math.sqrt(fo))),
]


@pytest.mark.parametrize("native", [False, True], ids=["portable", "native"])
@pytest.mark.parametrize("fn, kwargs, dist", SCHEMES, ids=[s[0] for s in SCHEMES])
def test_initializer_distributions(backend, fn, kwargs, dist, native):
    fan_in, fan_out = 400, 2500
    lin = nn.Linear(fan_in, fan_out)
    d2p.seed(5)
    getattr(init, fn)(lin.weight, native=native, **kwargs)
    values = lin.weight.numpy().astype(np.float64)
    kind, a, b = dist(fan_in, fan_out)
    if kind == "uniform":
        assert values.min() >= a - 1e-6 and values.max() <= b + 1e-6
        assert abs(values.mean() - (a + b) / 2) < 0.01 * (b - a)
        assert abs(values.std() - (b - a) / math.sqrt(12)) < 0.01 * (b - a) / math.sqrt(12)
    else:
        assert abs(values.mean() - a) < 0.01 * b + 1e-3 * abs(a)
        assert abs(values.std() - b) < 0.01 * b
    if not native:
        # portable draws follow the float32 rule exactly (xavier/kaiming too)
        rng, shape = np.random.default_rng(5), (fan_in, fan_out)
        ref = (float32_uniform if kind == "uniform" else float32_normal)(rng, shape, a, b)
        np.testing.assert_array_equal(lin.weight.numpy(), ref)
    init.constant_(lin.bias, 3.0, native=native)
    assert (lin.bias.numpy() == 3.0).all()


def test_reset_to_any_framework_scheme(backend):
    net = nn.mlp(300, 200, 100)
    for scheme in ALL:
        d2p.seed(11)
        init.reset_(net, scheme)
        rng = np.random.default_rng(11)
        sch = init.default_scheme(scheme)
        w0 = sch.weight((300, 200), 300, 200, rng).astype(np.float32)
        np.testing.assert_array_equal(net[0].weight.numpy(), w0)


SAME_SEED_SCRIPT = """
import json, sys, numpy as np, d2lparams as d2p
from d2lparams import nn, init
d2p.set_backend(sys.argv[1] if len(sys.argv) > 1 else {backend!r})
net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
d2p.seed(0)
init.normal_(net[0].weight, std=0.01); init.zeros_(net[0].bias); init.xavier_uniform_(net[2].weight)
init.reset_(net[2], "torch")
json.dump({{k: v.tolist() for k, v in net.state_dict().items()}}, open({path!r}, "w"))
"""


def test_same_seed_identical_arrays_across_backends(tmp_path):
    names = cross_backends()
    results = {}
    for name in names:
        path = str(tmp_path / f"{name}.json")
        proc = run_python(SAME_SEED_SCRIPT.format(backend=name, path=path))
        assert proc.returncode == 0, proc.stderr[-2000:]
        results[name] = json.load(open(path))
    first = names[0]
    for name in names[1:]:
        for key in results[first]:
            np.testing.assert_array_equal(
                np.float32(results[name][key]), np.float32(results[first][key]),
                err_msg=f"{key} differs between {first} and {name}")


def test_draw_helpers_draw_in_the_target_precision():
    """float64 targets are drawn in float64 (NumPy's rng.uniform / rng.normal), not rounded;
    float32, float16 and bfloat16 ones by the float32 rule (the half precisions round it)."""
    for draw, numpy_draw, rule in ((init._draw_uniform, "uniform", float32_uniform),
                                   (init._draw_normal, "normal", float32_normal)):
        got = draw(np.random.default_rng(2), (3, 4), -1.0, 2.0, "float64")
        expected = getattr(np.random.default_rng(2), numpy_draw)(-1.0, 2.0, (4, 3)).T
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, expected)
        for dtype in ("float32", np.float32, "float16", "bfloat16"):
            single = draw(np.random.default_rng(2), (3, 5), -1.0, 2.0, dtype)
            assert single.dtype == np.float32
            np.testing.assert_array_equal(single, rule(np.random.default_rng(2), (3, 5), -1.0, 2.0))
    with pytest.raises(ValueError, match="float parameters"):
        init._draw_normal(np.random.default_rng(2), (3,), 0.0, 1.0, "int64")


@pytest.mark.parametrize("before", [0, 1, 2, 3])
@pytest.mark.parametrize("n", [1, 2, 7, 1000, 2 * 256 + 1, 5 * 256 + 2])
def test_bulk_float32_draws_follow_the_rule_and_leave_the_generator_as_numpy_would(
        monkeypatch, before, n):
    """The float32 draws read the generator's words in bulk, in blocks, split between
    threads: the values and the generator's state afterwards are those of the rule computed
    with ``rng.random`` (also after an odd number of float32 draws, which leaves a word in
    NumPy's buffer), whatever the block size and the number of threads."""
    from d2lparams import _sampling

    monkeypatch.setattr(_sampling, "BLOCK", 256)
    monkeypatch.setattr(_sampling, "PER_THREAD", 300)
    monkeypatch.setattr(_sampling, "_cores", lambda: 3)
    for draw, rule in ((init._draw_uniform, float32_uniform), (init._draw_normal, float32_normal)):
        ours, numpy_rng = np.random.default_rng(9), np.random.default_rng(9)
        ours.random(before, dtype=np.float32), numpy_rng.random(before, dtype=np.float32)
        np.testing.assert_array_equal(draw(ours, (n,), 0.25, 3.0), rule(numpy_rng, (n,), 0.25, 3.0))
        # the generator continues where the rule left it, in float32 and in 64-bit draws
        np.testing.assert_array_equal(ours.random(3, dtype=np.float32),
                                      numpy_rng.random(3, dtype=np.float32))
        assert ours.integers(2**62) == numpy_rng.integers(2**62)


def test_bulk_float32_draws_of_another_bit_generator_follow_the_rule():
    ours, numpy_rng = (np.random.Generator(np.random.MT19937(4)) for _ in range(2))
    np.testing.assert_array_equal(init._draw_normal(ours, (5, 3), 1.0, 0.5),
                                  float32_normal(numpy_rng, (5, 3), 1.0, 0.5))
    np.testing.assert_array_equal(init._draw_uniform(ours, (4,), -1.0, 1.0),
                                  float32_uniform(numpy_rng, (4,), -1.0, 1.0))


def test_bulk_draws_use_no_more_threads_than_omp_num_threads(monkeypatch):
    from d2lparams import _sampling

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _sampling._cores() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "")  # unset or empty: the process's cores
    assert _sampling._cores() >= 1
