"""Dtypes (float32/float64/float16/bfloat16) and devices, on every backend, against NumPy."""

import copy

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import nn, optim

#: the floating dtypes each framework has for parameters (its own limits: MXNet 1.9's NDArray
#: has no bfloat16)
FLOAT_DTYPES = {
    "torch": ("float32", "float64", "float16", "bfloat16"),
    "tensorflow": ("float32", "float64", "float16", "bfloat16"),
    "mxnet": ("float32", "float64", "float16"),
    "paddle": ("float32", "float64", "float16", "bfloat16"),
    # JAX computes in 32 bits unless its switch jax_enable_x64 is on (tested in a process
    # with JAX_ENABLE_X64=1 below)
    "jax": ("float32", "float16", "bfloat16"),
}
ALL = ("float32", "float64", "float16", "bfloat16")
#: half precisions a framework holds but cannot compute in on the CPU (no CPU kernels: Paddle's
#: matmul, MXNet's FullyConnected outside cuDNN)
NO_CPU_KERNELS = {"paddle": ("float16", "bfloat16"), "mxnet": ("float16",)}
#: where NumPy holds each dtype's values (bfloat16 in float32, exactly)
CARRIER = {"float32": np.float32, "float64": np.float64, "float16": np.float16,
           "bfloat16": np.float32}


def supported(backend):
    if backend == "jax":
        import jax

        if jax.config.read("jax_enable_x64"):  # JAX's switch, on in this process
            return ("float32", "float64", "float16", "bfloat16")
    return FLOAT_DTYPES.get(backend, ALL)


def needs_float64(backend):
    """Skip where the backend has no float64 in this process (JAX without jax_enable_x64)."""
    from d2lparams import _registry

    if "float64" not in _registry.adapter(backend).float_dtypes:
        pytest.skip(f"{backend} has float64 only with its own switch on (jax_enable_x64); "
                    "test_jax_float64_with_its_switch_on runs it in a process of its own")


def mlp():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def numpy_forward_backward(sd, X):
    """Forward and gradients of Linear-ReLU-Linear with loss sum(out), in float64."""
    h = X @ sd["0.weight"] + sd["0.bias"]
    a = np.maximum(h, 0)
    out = a @ sd["2.weight"] + sd["2.bias"]
    g_out = np.ones_like(out)
    g_h = (g_out @ sd["2.weight"].T) * (h > 0)
    grads = {"2.weight": a.T @ g_out, "2.bias": g_out.sum(0), "0.weight": X.T @ g_h,
             "0.bias": g_h.sum(0)}
    return out, grads


# -- dtypes -------------------------------------------------------------------------------------

def test_float64_model_matches_numpy_in_float64(backend):
    needs_float64(backend)
    d2p.seed(0)
    net = mlp().double()
    assert [p.dtype for p in net.parameters()] == ["float64"] * 4
    rng = np.random.default_rng(1)
    sd = {k: rng.standard_normal(v.shape) for k, v in net.state_dict().items()}  # float64
    net.load_state_dict(sd)  # float64 values into a float64 model: no cast needed
    X = rng.standard_normal((5, 4))
    out, grads = numpy_forward_backward(sd, X)
    y = net(d2p.tensor(X, dtype="float64"))
    assert d2p.to_numpy(y).dtype == np.float64
    np.testing.assert_allclose(d2p.to_numpy(y), out, rtol=1e-12, atol=1e-12)
    d2p.backward(lambda: d2p.ops.sum(net(d2p.tensor(X, dtype="float64"))))
    for name, p in net.named_parameters():
        assert p.grad.dtype == np.float64
        np.testing.assert_allclose(p.grad, grads[name], rtol=1e-12, atol=1e-12)
    # one SGD step in float64
    optim.SGD(net.parameters(), lr=0.1).step()
    for name, p in net.named_parameters():
        np.testing.assert_allclose(p.numpy(), sd[name] - 0.1 * grads[name], rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_models_compute_in_their_dtype(backend, dtype):
    if dtype not in supported(backend):
        pytest.skip(f"{backend} has no {dtype}")
    d2p.seed(0)
    net = mlp()
    reference = net.state_dict()
    net.to(dtype)
    assert {p.dtype for p in net.parameters()} == {dtype}
    stored = net.state_dict()
    for k, v in reference.items():  # converting rounds each value to the nearest
        assert stored[k].dtype == CARRIER[dtype]
        np.testing.assert_allclose(stored[k], v, rtol=2 ** -7, atol=0)
    X = np.random.default_rng(0).standard_normal((3, 4))
    x = d2p.tensor(X, dtype=dtype)
    if dtype in NO_CPU_KERNELS.get(backend, ()) and d2p.num_gpus() == 0:
        with pytest.raises(RuntimeError, match=rf"holds {dtype} parameters and .* could not "
                                               rf"compute in {dtype} on the CPU.*model\.float\(\)"):
            net(x)
        return
    y = net(x)
    assert d2p.backend_of(y) == backend
    out, _ = numpy_forward_backward({k: v.astype(np.float64) for k, v in stored.items()},
                                    d2p.to_numpy(x).astype(np.float64))
    np.testing.assert_allclose(d2p.to_numpy(y).astype(np.float64), out, rtol=0.05, atol=0.05)


def test_to_keeps_identity_ties_and_values(backend):
    needs_float64(backend)
    d2p.seed(0)
    shared = nn.Linear(8, 8)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.Linear(8, 1))
    before = net.state_dict()
    params = list(net.parameters())
    natives = [p.native for p in params]
    assert net.to("float64") is net
    assert list(net.parameters()) == params
    assert all(p.native is n for p, n in zip(net.parameters(), natives))
    assert net[2].weight is net[4].weight
    after = net.state_dict()
    for k, v in before.items():
        assert after[k].dtype == np.float64
        np.testing.assert_array_equal(after[k], v.astype(np.float64))  # widening is exact
    net[2].weight.data[0, 0] = 0.1  # float64 write, seen under both names
    assert net.state_dict()["4.weight"][0, 0] == 0.1
    assert "dtype='float64', requires_grad=True" in repr(net[0].weight)
    net.float()
    assert "dtype" not in repr(net[0].weight).partition(":")[0]
    np.testing.assert_array_equal(net.state_dict()["0.weight"], before["0.weight"])
    assert copy.deepcopy(net.double())[0].weight.dtype == "float64"


def test_moving_a_model_drops_gradients_and_keeps_training(backend):
    needs_float64(backend)
    net = mlp()
    X = d2p.rand(3, 4)
    d2p.backward(lambda: d2p.ops.sum(net(X)))
    assert net[0].weight.grad is not None
    net.double()
    assert net[0].weight.grad is None
    d2p.backward(lambda: d2p.ops.sum(net(d2p.tensor(d2p.to_numpy(X), dtype="float64"))))
    assert net[0].weight.grad.dtype == np.float64


def test_numpy_input_follows_the_model_dtype_and_a_wrong_tensor_dtype_is_explained(backend):
    needs_float64(backend)
    net = mlp().double()
    assert d2p.to_numpy(net(np.ones((2, 4)))).dtype == np.float64
    with pytest.raises(TypeError, match=r"computes in float64 and was called with a float32 "
                                        r"tensor.*dtype='float64'.*model\.to\('float32'\)"):
        net(d2p.ones(2, 4))


def test_tensor_factories_take_a_dtype(backend):
    for dtype in supported(backend):
        made = [d2p.zeros(2, 3, dtype=dtype), d2p.ones(2, 3, dtype=dtype),
                d2p.tensor([[1.5, 2]], dtype=dtype), d2p.rand(2, 3, dtype=dtype),
                d2p.randn(2, 3, dtype=dtype)]
        for x in made:
            assert d2p.backend_of(x) == backend
            assert d2p.to_numpy(x).dtype == CARRIER[dtype]
        assert d2p.nn.Parameter(np.ones(2), dtype=dtype).dtype == dtype
    # the portable generator: draws in float64, rounds to the dtype: the same on every backend
    needs_float64(backend)
    d2p.seed(3)
    x = d2p.to_numpy(d2p.rand(4, 5, dtype="float64"))
    np.testing.assert_array_equal(x, np.random.default_rng(3).random((4, 5)))
    d2p.seed(3)
    z = d2p.to_numpy(d2p.randn(4, 5, dtype="float64", requires_grad=True))
    np.testing.assert_array_equal(z, np.random.default_rng(3).standard_normal((4, 5)))


def test_a_dtype_the_backend_lacks_is_a_type_error_naming_both(backend):
    missing = [d for d in ALL if d not in supported(backend)]
    if not missing:
        pytest.skip(f"{backend} has every floating dtype")
    net = mlp()
    before = net.state_dict()
    for dtype in missing:
        with pytest.raises(TypeError, match=rf"backend '{backend}' .* has no {dtype}"):
            net.to(dtype)
        with pytest.raises(TypeError, match=rf"backend '{backend}' .* has no {dtype}"):
            d2p.zeros(2, dtype=dtype)
    assert all(p.dtype == "float32" for p in net.parameters())
    np.testing.assert_array_equal(net.state_dict()["0.weight"], before["0.weight"])


def test_bad_dtype_arguments(backend):
    net = mlp()
    with pytest.raises(TypeError, match="floating point"):
        net.to("int64")
    with pytest.raises(ValueError, match="unsupported dtype 'float8'"):
        net.to("float8")
    assert all(p.dtype == "float32" for p in net.parameters())


# -- state dicts and checkpoints keep dtypes ----------------------------------------------------

def test_state_dict_save_and_load_keep_dtypes(backend, tmp_path):
    for dtype in supported(backend):
        d2p.seed(0)
        net = mlp().to(dtype)
        path = d2p.save(net, tmp_path / f"{dtype}.safetensors")
        twin = mlp().to(dtype)
        d2p.load(twin, path)
        for (k, a), b in zip(net.state_dict().items(), twin.state_dict().values()):
            assert b.dtype == CARRIER[dtype], k
            np.testing.assert_array_equal(a, b)
        if dtype == "float32":
            continue
        plain = mlp()
        before = plain.state_dict()
        with pytest.raises(d2p.StateDictError, match=rf"stored as {dtype}, the model holds "
                                                     r"float32.*cast=True"):
            d2p.load(plain, path)
        np.testing.assert_array_equal(plain.state_dict()["0.weight"], before["0.weight"])
        d2p.load(plain, path, cast=True)
        np.testing.assert_array_equal(plain.state_dict()["0.weight"],
                                      net.state_dict()["0.weight"].astype(np.float32))


def test_load_state_dict_refuses_rounding_unless_cast(backend):
    needs_float64(backend)
    d2p.seed(0)
    wide = mlp().double()
    rng = np.random.default_rng(0)
    state = {k: rng.standard_normal(v.shape) for k, v in wide.state_dict().items()}
    wide.load_state_dict(state)
    net = mlp()
    before = net.state_dict()
    with pytest.raises(d2p.StateDictError, match=r"dtype mismatch: 0\.weight: float64 into "
                                                 r"float32.*cast=True.*model\.to\('float64'\)"):
        net.load_state_dict(wide.state_dict())
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    net.load_state_dict(wide.state_dict(), cast=True)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, state[k].astype(np.float32))
    # exact values need no cast: np.ones (float64), and a float32 state into a float64 model
    net.load_state_dict({**net.state_dict(), "0.bias": np.ones(8)})
    wide.load_state_dict(before)
    np.testing.assert_array_equal(wide.state_dict()["0.weight"], before["0.weight"])


# -- devices ------------------------------------------------------------------------------------

def test_device_names():
    assert d2p.device("cuda:1") == d2p.device("gpu", 1) == d2p.device("GPU:1") == "gpu:1"
    assert d2p.device("cpu") == d2p.device() == "cpu"
    assert str(d2p.device("cuda")) == "gpu:0" and repr(d2p.device("cpu")) == "device('cpu')"
    assert len({d2p.device("gpu:0"), d2p.device("cuda", 0)}) == 1
    for bad, match in [("tpu", "unknown device 'tpu'"), ("gpu:x", "must be a number"),
                       (("cpu", 1), "one CPU device"), (("gpu", -1), "non-negative")]:
        args = bad if isinstance(bad, tuple) else (bad,)
        with pytest.raises(ValueError, match=match):
            d2p.device(*args)


def test_d2l_gpu_helpers_and_cpu_placement(backend):
    n = d2p.num_gpus()
    assert isinstance(n, int) and n >= 0
    assert d2p.try_gpu() == (d2p.device("gpu", 0) if n else d2p.device("cpu"))
    assert d2p.try_gpu(n) == d2p.device("cpu")  # one past the last GPU
    assert d2p.try_all_gpus() == ([d2p.device("gpu", i) for i in range(n)] or [d2p.device("cpu")])
    net = mlp()
    before = net.state_dict()
    assert net.to(d2p.device("cpu")) is net and net.cpu() is net
    assert all(p.device == d2p.device("cpu") for p in net.parameters())
    assert d2p.device_of(net) == "cpu"
    x = d2p.rand(2, 4, device="cpu")
    assert d2p.device_of(x) == "cpu" and d2p.device_of(net(x)) == "cpu"
    np.testing.assert_array_equal(net.state_dict()["0.weight"], before["0.weight"])


def test_a_missing_gpu_is_a_runtime_error_naming_the_backend(backend):
    n = d2p.num_gpus()
    net = mlp()
    before = net.state_dict()
    pattern = rf"backend '{backend}' .*found {n} GPU.*'gpu:{n}' is not available.*try_gpu"
    with pytest.raises(RuntimeError, match=pattern):
        net.to(d2p.device("gpu", n))
    with pytest.raises(RuntimeError, match=pattern):
        d2p.rand(2, device=f"cuda:{n}")
    with pytest.raises(RuntimeError, match=pattern):
        net.cuda(n)
    assert all(p.device == "cpu" for p in net.parameters())
    np.testing.assert_array_equal(net.state_dict()["0.weight"], before["0.weight"])


@pytest.mark.gpu
def test_a_model_on_the_gpu_computes_what_it_computes_on_the_cpu(backend):
    if d2p.num_gpus() == 0:
        pytest.skip(f"{backend} sees no GPU here")
    d2p.seed(0)
    net = mlp()
    X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    expected = d2p.to_numpy(net(X))
    params = list(net.parameters())
    net.to(d2p.try_gpu())
    assert list(net.parameters()) == params
    assert all(p.device == "gpu:0" for p in net.parameters())
    x = d2p.tensor(X, device=d2p.try_gpu())
    assert d2p.device_of(x) == "gpu:0"
    y = net(x)
    assert d2p.device_of(y) == "gpu:0"
    np.testing.assert_allclose(d2p.to_numpy(y), expected, rtol=1e-5, atol=1e-6)
    d2p.backward(lambda: d2p.ops.sum(net(x)))
    assert net[0].weight.grad.shape == (4, 8)
    net.cpu()
    assert d2p.device_of(net) == "cpu"
    np.testing.assert_allclose(d2p.to_numpy(net(X)), expected, rtol=1e-5, atol=1e-6)


def test_a_name_only_the_framework_has_points_to_native(backend):
    from d2lparams.nn._hints import PARAMETER

    p = mlp()[0].weight
    name = next(a for a in dir(p.native) if not a.startswith("_") and not hasattr(type(p), a)
                and a not in PARAMETER)
    with pytest.raises(AttributeError, match=rf"framework's own parameter does: use "
                                             rf"p\.native\.{name} "):
        getattr(p, name)


def test_jax_float64_with_its_switch_on(backend):
    """JAX's float64 exists with JAX_ENABLE_X64=1: the float64 test in a process of its own."""
    if backend != "jax":
        pytest.skip("JAX's own switch; the other backends have float64 in every process")
    import os
    import subprocess
    import sys

    env = {**os.environ, "JAX_ENABLE_X64": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--backends", "jax",
         "--d2p-workers", "1", f"{__file__}::test_float64_model_matches_numpy_in_float64",
         f"{__file__}::test_to_keeps_identity_ties_and_values",
         f"{__file__}::test_numpy_input_follows_the_model_dtype_and_a_wrong_tensor_dtype_is_explained"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0 and "3 passed" in result.stdout, result.stdout[-3000:]


def test_init_draws_float64_parameters_in_float64_the_same_on_every_backend(backend):
    needs_float64(backend)
    net = mlp().double()
    w = net[0].weight
    d2p.seed(0)
    d2p.init.normal_(w, mean=0.5, std=0.01)
    # the rule for float64 parameters: NumPy's own float64 draw, a 2-D (in, out) parameter
    # filled as (out, in) (PyTorch's storage order of a Linear weight)
    expected = np.random.default_rng(0).normal(0.5, 0.01, size=(8, 4)).T
    np.testing.assert_array_equal(w.numpy(), expected)
    assert w.numpy().dtype == np.float64
    d2p.seed(1)
    d2p.init.uniform_(w, -2, 3)
    np.testing.assert_array_equal(w.numpy(), np.random.default_rng(1).uniform(-2, 3, (8, 4)).T)
    d2p.init.constant_(net[0].bias, 0.1)
    assert net[0].bias.numpy()[0] == 0.1  # the float64 nearest to 0.1, not float32's


def test_jax_mixed_precision_nnx_model_takes_the_input_its_dtype_names(backend):
    """NNX's own computation dtype (``dtype=float32`` over bfloat16 parameters) casts the
    input itself, so a wrapped model takes float32; a model without one refuses it."""
    if backend != "jax":
        pytest.skip("NNX's dtype= argument")
    import jax.numpy as jnp
    from flax import nnx

    mixed = d2p.wrap(nnx.Sequential(nnx.Linear(4, 3, dtype=jnp.float32,
                                               param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))))
    X = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
    w = np.asarray(mixed[0].weight.numpy(), np.float32)
    out = d2p.to_numpy(mixed(d2p.tensor(X)))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, X @ w + mixed[0].bias.numpy(), rtol=1e-2, atol=1e-2)
    plain = mlp().bfloat16()
    with pytest.raises(TypeError, match="computes in bfloat16 and was called with a float32"):
        plain(d2p.ones(2, 4))
