"""Issue 2: backends, the neutral module tree and parameter access, against NumPy."""

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import nn
from d2lparams.chapter import rgnet as chapter_rgnet
from d2lparams.chapter import seed_net

from conftest import sequential_reference

SEED_REPR = """Sequential(
  (0): Linear(in_features=4, out_features=8, bias=True)
  (1): ReLU()
  (2): Linear(in_features=8, out_features=1, bias=True)
)"""

# The frameworks' own storage of Linear(4, 8).weight: the point is the native layout.
NATIVE_WEIGHT_SHAPE = {
    "torch": (8, 4),
    "tensorflow": (4, 8),
    "mxnet": (8, 4),
    "paddle": (4, 8),
    "jax": (4, 8),
}


def test_seed_network_names_shapes_repr_forward(backend):
    net = seed_net()
    assert net.backend == backend
    assert [(n, p.shape) for n, p in net.named_parameters()] == [
        ("0.weight", (4, 8)), ("0.bias", (8,)), ("2.weight", (8, 1)), ("2.bias", (1,))]
    assert repr(net) == SEED_REPR
    assert list(net.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    X = np.random.default_rng(0).random((2, 4), dtype=np.float32)
    out = net(d2p.tensor(X))
    assert d2p.backend_of(out) == backend
    ref = sequential_reference(net.state_dict(), "", ["linear", "relu", "linear"], X)
    np.testing.assert_allclose(d2p.to_numpy(out), ref, rtol=1e-5, atol=1e-6)
    # a NumPy input is accepted too
    np.testing.assert_allclose(d2p.to_numpy(net(X)), ref, rtol=1e-5, atol=1e-6)


def test_parameter_members(backend):
    net = seed_net()
    p = net[2].weight
    assert isinstance(p, nn.Parameter)
    assert p is net[2].weight and p is dict(net.named_parameters())["2.weight"]
    assert p.shape == (8, 1) and p.dtype == "float32" and p.backend == backend
    assert net[0].weight.native_shape == NATIVE_WEIGHT_SHAPE[backend]
    assert p.native is net[2].weight.native
    value = p.numpy()
    value[:] = 123.0
    assert not np.any(p.numpy() == 123.0), "numpy() must return a copy"
    np.testing.assert_array_equal(net.state_dict()["2.weight"], p.numpy())
    assert p.requires_grad is True


def test_rgnet_nested_names_and_forward(backend):
    rgnet = chapter_rgnet()
    names = [n for n, _ in rgnet.named_parameters()]
    expected = [f"0.block {i}.{j}.{w}" for i in range(4) for j in (0, 2) for w in ("weight", "bias")]
    assert names == expected + ["1.weight", "1.bias"]
    assert rgnet[0][1][0].bias.shape == (8,)
    assert rgnet[0]["block 1"][0].bias is rgnet[0][1][0].bias
    np.testing.assert_array_equal(rgnet[0][1][0].bias.numpy(), rgnet.state_dict()["0.block 1.0.bias"])
    X = np.random.default_rng(1).random((2, 4), dtype=np.float32)
    sd = rgnet.state_dict()
    h = X
    for i in range(4):
        h = sequential_reference(sd, f"0.block {i}.", ["linear", "relu", "linear", "relu"], h)
    ref = h @ sd["1.weight"] + sd["1.bias"]
    np.testing.assert_allclose(d2p.to_numpy(rgnet(d2p.tensor(X))), ref, rtol=1e-5, atol=1e-6)
    assert [n for n, _ in rgnet.named_children()] == ["0", "1"]
    assert len(list(rgnet.modules())) == 1 + 1 + 4 * 5 + 1
    assert rgnet.num_parameters() == 4 * (4 * 8 + 8 + 8 * 4 + 4) + 5
    assert "(block 0): Sequential(" in repr(rgnet)


def test_load_state_dict_is_atomic(backend):
    net = seed_net()
    before = net.state_dict()
    bad = {k: v + 1.0 for k, v in before.items()}
    bad["2.weight"] = np.zeros((1, 8), np.float32)  # transposed: wrong shape
    with pytest.raises(d2p.StateDictError) as err:
        net.load_state_dict(bad)
    assert "2.weight" in str(err.value) and "(8, 1)" in str(err.value)
    assert err.value.mismatched == {"2.weight": ((8, 1), (1, 8))}
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    missing = {k: v for k, v in bad.items() if k != "0.bias"}
    missing["2.weight"] = before["2.weight"]
    with pytest.raises(d2p.StateDictError) as err:
        net.load_state_dict(missing)
    assert err.value.missing == ["0.bias"]
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    # strict=False loads what is there, never a wrong shape
    result = net.load_state_dict(dict(missing, extra=np.ones(3)), strict=False)
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(net[0].weight.numpy(), before["0.weight"] + 1.0)
    np.testing.assert_array_equal(net[0].bias.numpy(), before["0.bias"])
    # a full round trip into a second network gives the same outputs
    twin = seed_net()
    twin.load_state_dict(net.state_dict())
    X = np.ones((3, 4), np.float32)
    np.testing.assert_allclose(d2p.to_numpy(twin(X)), d2p.to_numpy(net(X)), rtol=1e-6)


def test_lazy_linear(backend):
    net = nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.LazyLinear(1))
    assert type(net[0]) is nn.Linear
    assert repr(net[0]) == "Linear(in_features=None, out_features=8, bias=True)"
    for touch in (lambda: net[0].weight, lambda: list(net.named_parameters()),
                  lambda: net.state_dict(), lambda: net.num_parameters()):
        with pytest.raises(d2p.DeferredInitializationError) as err:
            touch()
        assert "materialize" in str(err.value)
    X = np.random.default_rng(2).random((2, 20), dtype=np.float32)
    out = d2p.to_numpy(net(X))
    assert type(net[0]) is nn.Linear
    assert net[0].weight.shape == (20, 8) and net[2].weight.shape == (8, 1)
    assert net[0].in_features == 20
    ref = sequential_reference(net.state_dict(), "", ["linear", "relu", "linear"], X)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    other = nn.Sequential(nn.LazyLinear(3)).materialize((1, 5))
    assert other[0].weight.shape == (5, 3)


def test_modules_apply_train_eval(backend):
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 2), nn.Tanh()))
    assert [n for n, _ in net.named_modules()] == ["", "0", "1", "2", "2.0", "2.1"]
    visited = []
    assert net.apply(lambda m: visited.append(type(m).__name__)) is net
    assert visited == ["Linear", "ReLU", "Linear", "Tanh", "Sequential", "Sequential"]
    assert net.training and net[2][0].training
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    assert net.num_parameters() == 4 * 8 + 8 + 8 * 2 + 2
    assert len(list(net.buffers())) == 0


def test_activations_and_containers(backend):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3, 2, 4)).astype(np.float32)
    flat = d2p.to_numpy(nn.Flatten()(X))
    np.testing.assert_array_equal(flat, X.reshape(3, 8))
    np.testing.assert_allclose(d2p.to_numpy(nn.Sigmoid()(X)), 1 / (1 + np.exp(-X)), rtol=1e-5)
    np.testing.assert_allclose(d2p.to_numpy(nn.Tanh()(X)), np.tanh(X), rtol=1e-5, atol=1e-6)
    e = np.exp(X - X.max(-1, keepdims=True))
    np.testing.assert_allclose(d2p.to_numpy(nn.Softmax()(X)), e / e.sum(-1, keepdims=True),
                               rtol=1e-5, atol=1e-6)
    e1 = np.exp(X - X.max(1, keepdims=True))
    np.testing.assert_allclose(d2p.to_numpy(nn.Softmax(dim=1)(X)), e1 / e1.sum(1, keepdims=True),
                               rtol=1e-5, atol=1e-6)
    # Linear acts on the last axis of a 3-D input, as in PyTorch
    lin = nn.Linear(4, 5)
    sd = lin.state_dict()
    np.testing.assert_allclose(d2p.to_numpy(lin(X)), X @ sd["weight"] + sd["bias"], rtol=1e-5,
                               atol=1e-6)
    layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 3)])
    assert len(layers) == 2 and [n for n, _ in layers.named_parameters()][-1] == "1.bias"
    net = nn.mlp(4, [16, 8], 2)
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    net.append(nn.Softmax())
    assert len(net) == 6


def test_tensors_come_from_the_portable_generator(backend):
    d2p.seed(7)
    a = d2p.to_numpy(d2p.rand(3, 4))
    b = d2p.to_numpy(d2p.randn(2, 2))
    ref = np.random.default_rng(7)
    np.testing.assert_array_equal(a, ref.random((3, 4)).astype(np.float32))
    np.testing.assert_array_equal(b, ref.standard_normal((2, 2)).astype(np.float32))
    assert d2p.to_numpy(d2p.zeros(2, 3)).sum() == 0 and d2p.to_numpy(d2p.ones(4)).sum() == 4
    t = d2p.tensor([[1, 2], [3, 4]])
    assert d2p.backend_of(t) == backend
    assert d2p.to_numpy(t).dtype == np.float32
    assert d2p.to_numpy(t).tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_wrong_inputs_raise_clear_errors(backend):
    net = seed_net()
    before = net.state_dict()
    with pytest.raises(ValueError, match=r"expected a value of shape \(4, 8\), got \(8, 4\)"):
        net[0].weight.set(np.zeros((8, 4)))
    with pytest.raises(TypeError, match="nn.Parameter"):
        net.register_parameter("w", np.zeros(3))
    with pytest.raises(ValueError, match="positive int"):
        nn.Linear(0, 3)
    with pytest.raises(IndexError, match="out of range"):
        net[7]
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_backend_alone_in_a_fresh_process(backend):
    """Each backend works with no other framework imported."""
    from conftest import ALL, run_python

    code = f"""
import sys, numpy as np, d2lparams as d2p
from d2lparams import nn
from d2lparams.chapter import rgnet as chapter_rgnet
from d2lparams.chapter import seed_net
assert not any(m in sys.modules for m in {ALL!r}), "import d2lparams imported a framework"
d2p.set_backend({backend!r})
net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
X = np.ones((2, 4), np.float32)
sd = net.state_dict()
ref = np.maximum(X @ sd['0.weight'] + sd['0.bias'], 0) @ sd['2.weight'] + sd['2.bias']
assert np.allclose(d2p.to_numpy(net(X)), ref, rtol=1e-5, atol=1e-6)
# Keras 3 imports jax itself when jax is installed (its own doing, not d2lparams')
keras_own = ('jax',) if {backend!r} == 'tensorflow' else ()
others = [m for m in {ALL!r} if m != {backend!r} and m not in keras_own and m in sys.modules]
others += [m for m in ('keras',) if {backend!r} != 'tensorflow' and m in sys.modules]
print('OTHERS', others)
"""
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OTHERS []" in proc.stdout, proc.stdout
