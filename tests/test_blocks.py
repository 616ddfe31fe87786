"""Issue 4: custom blocks, tied parameters and gradients, against NumPy."""

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import nn, ops
from d2lparams.chapter import MLP, CenteredLayer, FixedHiddenMLP, MyLinear, MySequential, tied_net

from conftest import relu, sequential_reference


def test_centered_layer(backend):
    out = CenteredLayer()(d2p.tensor([1, 2, 3, 4, 5]))
    assert d2p.to_numpy(out).tolist() == [-2, -1, 0, 1, 2]
    net = nn.Sequential(nn.Linear(8, 128), CenteredLayer())
    Y = d2p.to_numpy(net(d2p.rand(4, 8)))
    assert abs(Y.mean()) < 1e-5


def test_mylinear_forward_and_gradients_flow(backend):
    layer = MyLinear(5, 3)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    W, b = layer.weight.numpy(), layer.bias.numpy()
    X = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(d2p.to_numpy(layer(X)), relu(X @ W + b), rtol=1e-5, atol=1e-5)
    loss = d2p.backward(lambda: ops.sum(layer(d2p.tensor(X))))
    np.testing.assert_allclose(loss, relu(X @ W + b).sum(), rtol=1e-5)
    mask = (X @ W + b > 0).astype(np.float32)
    np.testing.assert_allclose(layer.weight.grad, X.T @ mask, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.bias.grad, mask.sum(0), rtol=1e-5, atol=1e-5)


def test_mlp_block_and_my_sequential(backend):
    net = MLP()
    assert [n for n, _ in net.named_children()] == ["hidden", "out"]
    X = np.random.default_rng(2).random((2, 20), dtype=np.float32)
    sd = net.state_dict()
    ref = relu(X @ sd["hidden.weight"] + sd["hidden.bias"]) @ sd["out.weight"] + sd["out.bias"]
    np.testing.assert_allclose(d2p.to_numpy(net(X)), ref, rtol=1e-4, atol=1e-5)
    assert repr(net) == ("MLP(\n  (hidden): Linear(in_features=20, out_features=256, bias=True)\n"
                         "  (out): Linear(in_features=256, out_features=10, bias=True)\n)")
    seq = MySequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
    sd = seq.state_dict()
    ref = sequential_reference(sd, "", ["linear", "relu", "linear"], X)
    np.testing.assert_allclose(d2p.to_numpy(seq(X)), ref, rtol=1e-4, atol=1e-5)
    # the native object holds the same parameters, under the same structure
    view = d2p.wrap(seq.native)
    assert view is not seq and list(view.state_dict()) == list(sd)
    for name, value in view.state_dict().items():
        np.testing.assert_array_equal(value, sd[name])


def test_fixed_hidden_mlp_buffer_and_plain_attribute(backend):
    d2p.seed(4)
    net = FixedHiddenMLP()
    assert [n for n, _ in net.named_parameters()] == ["linear.weight", "linear.bias"]
    assert [n for n, _ in net.named_buffers()] == ["scale"]
    assert list(net.state_dict()) == ["scale", "linear.weight", "linear.bias"]
    R = d2p.to_numpy(net.rand_weight)
    sd = net.state_dict()
    X = np.random.default_rng(3).random((2, 20), dtype=np.float32)
    h = X @ sd["linear.weight"] + sd["linear.bias"]
    h = relu(h @ R + 1)
    ref = ((h @ sd["linear.weight"] + sd["linear.bias"]) * 2.0).sum()
    np.testing.assert_allclose(float(d2p.to_numpy(net(X))), ref, rtol=1e-4)
    np.testing.assert_array_equal(d2p.to_numpy(net.scale), np.full(20, 2.0, np.float32))


def test_nested_blocks_and_module_list(backend):
    class NestMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
            self.layers = nn.ModuleList([nn.Linear(32, 16), nn.Linear(16, 16)])

        def forward(self, X):
            X = self.net(X)
            for layer in self.layers:
                X = ops.relu(layer(X))
            return X

    net = nn.Sequential(NestMLP(), nn.Linear(16, 20), CenteredLayer())
    names = [n for n, _ in net.named_parameters()]
    assert names[:2] == ["0.net.0.weight", "0.net.0.bias"] and "0.layers.1.bias" in names
    X = np.random.default_rng(5).random((3, 20), dtype=np.float32)
    sd = net.state_dict()
    h = sequential_reference(sd, "0.net.", ["linear", "relu", "linear", "relu"], X)
    for i in range(2):
        h = relu(h @ sd[f"0.layers.{i}.weight"] + sd[f"0.layers.{i}.bias"])
    h = h @ sd["1.weight"] + sd["1.bias"]
    np.testing.assert_allclose(d2p.to_numpy(net(X)), h - h.mean(), rtol=1e-4, atol=1e-5)


def tied_reference(sd, X):
    h1 = X @ sd["0.weight"] + sd["0.bias"]
    a1 = relu(h1)
    h2 = a1 @ sd["2.weight"] + sd["2.bias"]
    a2 = relu(h2)
    h3 = a2 @ sd["2.weight"] + sd["2.bias"]
    a3 = relu(h3)
    out = a3 @ sd["6.weight"] + sd["6.bias"]
    # gradients of sum(out)
    g_a3 = np.ones_like(out) @ sd["6.weight"].T
    g_h3 = g_a3 * (h3 > 0)
    g_a2 = g_h3 @ sd["2.weight"].T
    g_h2 = g_a2 * (h2 > 0)
    g_w = a1.T @ g_h2 + a2.T @ g_h3
    g_b = g_h2.sum(0) + g_h3.sum(0)
    return out, g_w, g_b


def test_tied_sequential(backend):
    net = tied_net()
    assert net[2].weight is net[4].weight
    assert [n for n, _ in net.named_parameters()] == [
        "0.weight", "0.bias", "2.weight", "2.bias", "6.weight", "6.bias"]
    assert net.num_parameters() == 121
    assert len(net.state_dict()) == 8
    assert d2p.tied_parameters(net) == [["2.weight", "4.weight"], ["2.bias", "4.bias"]]
    net[2].weight[0, 0] = 100.0
    assert net[4].weight[0, 0] == 100.0
    assert net.state_dict()["4.weight"][0, 0] == 100.0
    X = np.random.default_rng(6).standard_normal((3, 4)).astype(np.float32)
    sd = net.state_dict()
    out, g_w, g_b = tied_reference(sd, X)
    np.testing.assert_allclose(d2p.to_numpy(net(X)), out, rtol=1e-4, atol=1e-4)
    d2p.backward(lambda: ops.sum(net(d2p.tensor(X))))
    np.testing.assert_allclose(net[2].weight.grad, g_w, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(net[4].bias.grad, g_b, rtol=1e-4, atol=1e-4)


def test_same_parameter_in_two_modules(backend):
    class Half(nn.Module):
        def __init__(self, weight):
            super().__init__()
            self.weight = weight

        def forward(self, X):
            return ops.matmul(X, self.weight)

    w = nn.Parameter(np.eye(3) * 2)
    net = nn.Sequential(Half(w), Half(w))
    assert net[0].weight is net[1].weight is w
    assert [n for n, _ in net.named_parameters()] == ["0.weight"]
    assert d2p.tied_parameters(net) == [["0.weight", "1.weight"]]
    X = np.ones((1, 3), np.float32)
    np.testing.assert_allclose(d2p.to_numpy(net(X)), X @ (4 * np.eye(3)), rtol=1e-6)
    d2p.backward(lambda: ops.sum(net(d2p.tensor(X))))
    # d/dW sum(X W W) = X^T 1 W^T + (X W)^T 1
    W = 2 * np.eye(3)
    expected = X.T @ np.ones((1, 3)) @ W.T + (X @ W).T @ np.ones((1, 3))
    np.testing.assert_allclose(w.grad, expected, rtol=1e-6)


def test_gradients_accumulate_zero_grad_freeze(backend):
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    assert all(p.grad is None for p in net.parameters())
    X = np.random.default_rng(7).standard_normal((5, 4)).astype(np.float32)
    sd = net.state_dict()
    h = X @ sd["0.weight"] + sd["0.bias"]
    g_out = np.ones((5, 1))
    g_w2 = relu(h).T @ g_out
    g_h = (g_out @ sd["2.weight"].T) * (h > 0)
    g_w0 = X.T @ g_h
    loss = d2p.backward(lambda: ops.sum(net(d2p.tensor(X))))
    ref_loss = (relu(h) @ sd["2.weight"] + sd["2.bias"]).sum()
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    np.testing.assert_allclose(net[2].weight.grad, g_w2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net[0].weight.grad, g_w0, rtol=1e-5, atol=1e-5)
    d2p.backward(lambda: ops.sum(net(d2p.tensor(X))))
    np.testing.assert_allclose(net[0].weight.grad, 2 * g_w0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net[2].bias.grad, [10.0], rtol=1e-6)
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net[0].weight.requires_grad = False
    assert net[0].weight.requires_grad is False
    d2p.backward(lambda: ops.sum(net(d2p.tensor(X))))
    assert net[0].weight.grad is None
    np.testing.assert_allclose(net[0].bias.grad, g_h.sum(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net[2].weight.grad, g_w2, rtol=1e-5, atol=1e-5)


def test_no_grad_and_writes_while_recording(backend):
    net = nn.Linear(3, 2)
    X = d2p.ones(2, 3)
    before = net.state_dict()
    with pytest.raises(RuntimeError, match="recording"):
        d2p.backward(lambda: (net.weight.set(np.zeros((3, 2))), ops.sum(net(X)))[1])
    with pytest.raises(RuntimeError, match="recording"):
        d2p.backward(lambda: net.weight.__setitem__((0, 0), 1.0) or ops.sum(net(X)))
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    net.zero_grad()

    def fn():
        with d2p.no_grad():
            frozen = net(X)
        return ops.sum(net(X)) + ops.sum(frozen) * 0.0

    d2p.backward(fn)
    np.testing.assert_allclose(net.weight.grad, np.full((3, 2), 2.0), rtol=1e-6)
    with pytest.raises(TypeError, match="function"):
        d2p.backward(ops.sum(net(X)))


def test_summary_and_native_names(backend):
    net = tied_net()
    text = d2p.summary(net, (2, 4))
    expected = "\n".join([
        "-" * 46,
        "Layer  Type    Output shape  Params  Tied with",
        "-" * 46,
        "0      Linear  (2, 8)        40",
        "1      ReLU    (2, 8)        0",
        "2      Linear  (2, 8)        72      4",
        "3      ReLU    (2, 8)        0",
        "4      Linear  (2, 8)        0       2",
        "5      ReLU    (2, 8)        0",
        "6      Linear  (2, 1)        9",
        "-" * 46,
        "Total parameters: 121",
        "Trainable parameters: 121",
    ])
    assert text == expected
    names = d2p.native_names(net)
    assert list(names) == list(net.state_dict())
    params = dict(net.named_parameters(remove_duplicate=False))
    for name, native_name in names.items():
        assert native_name == NATIVE_NAME[backend](net.native, params[name].native), name


# How each framework itself names a parameter (what native_names must report): torch has
# structural names only (a tied one under its first name); the others keep a name on the
# parameter object.
NATIVE_NAME = {
    "torch": lambda root, p: next(n for n, q in root.named_parameters(remove_duplicate=False)
                                  if q is p),
    "tensorflow": lambda root, p: p.path,
    "mxnet": lambda root, p: p.name,
    "paddle": lambda root, p: p.name,
    "jax": lambda root, p: next("/".join(map(str, path)) for path, v in _nnx_graph(root)
                                if v is p),
}


def _nnx_graph(root):
    from flax import nnx
    return nnx.graph.iter_graph(root)


# The chapter's network written in each framework's own code (the point is native code).
def native_seed_net(backend):
    if backend == "torch":
        import torch
        return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    if backend == "tensorflow":
        import keras
        net = keras.Sequential([keras.layers.Dense(8), keras.layers.ReLU(), keras.layers.Dense(1)])
        net.build((None, 4))
        return net
    if backend == "mxnet":
        from mxnet.gluon import nn as gnn
        net = gnn.Sequential()
        net.add(gnn.Dense(8, in_units=4), gnn.Activation("relu"), gnn.Dense(1, in_units=8))
        net.initialize()
        return net
    if backend == "paddle":
        import paddle
        return paddle.nn.Sequential(paddle.nn.Linear(4, 8), paddle.nn.ReLU(), paddle.nn.Linear(8, 1))
    if backend == "jax":
        from flax import nnx
        rngs = nnx.Rngs(0)
        return nnx.Sequential(nnx.Linear(4, 8, rngs=rngs), nnx.relu, nnx.Linear(8, 1, rngs=rngs))
    raise AssertionError(backend)


def test_wrap_native_model(backend):
    native = native_seed_net(backend)
    net = d2p.wrap(native)
    assert net.backend == backend and net.native is native
    twin = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    assert repr(net) == repr(twin)
    assert [(n, p.shape) for n, p in net.named_parameters()] == [
        (n, p.shape) for n, p in twin.named_parameters()]
    twin.load_state_dict(net.state_dict())
    X = np.random.default_rng(8).random((3, 4), dtype=np.float32)
    ref = sequential_reference(net.state_dict(), "", ["linear", "relu", "linear"], X)
    np.testing.assert_allclose(d2p.to_numpy(net(X)), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d2p.to_numpy(twin(X)), ref, rtol=1e-5, atol=1e-6)
    net[0].bias.set(np.arange(8, dtype=np.float32))  # the view shares the native parameters
    np.testing.assert_array_equal(d2p.wrap(native)[0].bias.numpy(), np.arange(8))


def test_operators_between_tensors_and_parameters_in_forward(backend):
    class Affine(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(np.array([2.0, 3.0]))
            self.bias = nn.Parameter(np.array([1.0, -1.0]))

        def forward(self, X):
            return (self.bias + X) * self.scale - X / self.scale + (X - self.bias)

    layer = Affine()
    X = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    s, b = np.array([2.0, 3.0]), np.array([1.0, -1.0])
    np.testing.assert_allclose(d2p.to_numpy(layer(X)), (b + X) * s - X / s + (X - b), rtol=1e-6)
    d2p.backward(lambda: ops.sum(layer(d2p.tensor(X))))
    np.testing.assert_allclose(layer.scale.grad, (b + X).sum(0) + (X / s**2).sum(0), rtol=1e-6)
    np.testing.assert_allclose(layer.bias.grad, s * 2 - 2, rtol=1e-6)
    # outside forward a Parameter on the left works with native tensors too
    np.testing.assert_allclose(d2p.to_numpy(layer.bias + d2p.tensor(X)), b + X, rtol=1e-6)


def test_a_builtin_layer_rejects_a_forward_override(backend):
    with pytest.raises(TypeError, match="overrides forward.*subclass nn.Module"):
        class Doubling(d2p.nn.Linear):  # noqa: F841 - the class statement is the test
            def forward(self, X):
                return 2 * X


def test_a_sequential_subclass_runs_its_own_forward(backend):
    class Residual(nn.Sequential):
        def forward(self, X):
            return X + super().forward(X)

    net = Residual(nn.Linear(3, 3), nn.ReLU())
    X = np.random.default_rng(0).random((2, 3)).astype(np.float32)
    sd = net.state_dict()
    ref = X + np.maximum(X @ sd["0.weight"] + sd["0.bias"], 0)
    np.testing.assert_allclose(d2p.to_numpy(net(X)), ref, rtol=1e-5, atol=1e-6)
    # the native module runs the same forward under the framework's own call
    native_out = d2p.to_numpy(net._adapter.call(net.native, (d2p.tensor(X),), False))
    np.testing.assert_allclose(native_out, ref, rtol=1e-5, atol=1e-6)
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias"]
    loss = d2p.backward(lambda: ops.sum(net(X)))
    np.testing.assert_allclose(loss, ref.sum(), rtol=1e-5)
    active = (X @ sd["0.weight"] + sd["0.bias"] > 0).astype(np.float32)
    np.testing.assert_allclose(net[0].bias.grad, active.sum(0), rtol=1e-5)
