"""``module.compile()`` / ``d2p.compile(module)``: the forward through each framework's own
compiler (torch.compile, tf.function, Gluon hybridize, paddle.jit.to_static, jax.jit), with
outputs, gradients, SGD steps, ties, modes, BatchNorm statistics, hooks and changes of the
tree meaning what they mean uncompiled: against NumPy, and against the same model run
eagerly."""

import copy

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import _registry, chapter, init, nn, ops, optim

from conftest import relu, sequential_reference

RTOL, ATOL = 1e-5, 1e-5


def data(n=5, d=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_compile_returns_the_same_module_with_the_same_names(backend):
    d2p.seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    before = net.state_dict()
    assert d2p.compile(net) is net
    X = data()
    np.testing.assert_allclose(d2p.to_numpy(net(X)),
                               sequential_reference(before, "", ["linear", "relu", "linear"], X),
                               rtol=RTOL, atol=ATOL)
    after = net.state_dict()
    assert list(after) == list(before)  # no "_orig_mod." prefix
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])


def test_compiled_sgd_steps_match_numpy(backend):
    d2p.seed(1)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    p = {k: v.astype(np.float64) for k, v in net.state_dict().items()}
    net.compile()
    X, Y = data(6), data(6, 3, seed=2)
    Xt, Yt = d2p.tensor(X), d2p.tensor(Y)
    opt = optim.SGD(net.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        loss = d2p.backward(lambda: ops.mean((net(Xt) - Yt) * (net(Xt) - Yt)))
        h = X @ p["0.weight"] + p["0.bias"]
        a = relu(h)
        out = a @ p["2.weight"] + p["2.bias"]
        np.testing.assert_allclose(loss, ((out - Y) ** 2).mean(), rtol=RTOL)
        g_out = 2 * (out - Y) / out.size
        g_a = g_out @ p["2.weight"].T
        g_h = g_a * (h > 0)
        grads = {"2.weight": a.T @ g_out, "2.bias": g_out.sum(0),
                 "0.weight": X.T @ g_h, "0.bias": g_h.sum(0)}
        for name, param in net.named_parameters():
            np.testing.assert_allclose(param.grad, grads[name], rtol=1e-4, atol=ATOL,
                                       err_msg=name)
        opt.step()
        p = {k: p[k] - 0.1 * grads[k] for k in p}
    for name, value in net.state_dict().items():
        np.testing.assert_allclose(value, p[name], rtol=1e-4, atol=ATOL, err_msg=name)


class Tied(nn.Module):
    """A Python forward that uses one layer twice (the chapter's shared layer)."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(4, 6)
        self.shared = nn.Linear(6, 6)
        self.out = nn.Linear(6, 2)

    def forward(self, X):
        h = ops.relu(self.inp(X))
        h = ops.relu(self.shared(h))
        h = ops.relu(self.shared(h))
        return self.out(h) * 2.0


def test_compiled_python_forward_with_a_tied_layer_matches_numpy(backend):
    d2p.seed(2)
    net = Tied()
    sd = {k: v.astype(np.float64) for k, v in net.state_dict().items()}
    net.compile()
    X = data()
    h0 = X @ sd["inp.weight"] + sd["inp.bias"]
    a0 = relu(h0)
    h1 = a0 @ sd["shared.weight"] + sd["shared.bias"]
    a1 = relu(h1)
    h2 = a1 @ sd["shared.weight"] + sd["shared.bias"]
    a2 = relu(h2)
    out = 2 * (a2 @ sd["out.weight"] + sd["out.bias"])
    for _ in range(2):  # the second call runs the compiled graph
        np.testing.assert_allclose(d2p.to_numpy(net(X)), out, rtol=RTOL, atol=ATOL)
    d2p.backward(lambda: ops.sum(net(X)))
    g2 = 2 * np.ones_like(out) @ sd["out.weight"].T * (h2 > 0)
    g1 = g2 @ sd["shared.weight"].T * (h1 > 0)
    expected = a1.T @ g2 + a0.T @ g1  # the sum over both uses
    np.testing.assert_allclose(net.shared.weight.grad, expected, rtol=1e-4, atol=ATOL)
    np.testing.assert_allclose(net.out.bias.grad, 2 * np.ones(2) * len(X), rtol=RTOL)


def test_compiled_input_gradients_match_numpy(backend):
    d2p.seed(3)
    net = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    sd = {k: v.astype(np.float64) for k, v in net.state_dict().items()}
    net.compile()
    X = data()
    x = d2p.tensor(X, requires_grad=True)
    (gx,) = d2p.grad(lambda: ops.sum(net(x)), [x])
    t = np.tanh(X @ sd["0.weight"] + sd["0.bias"])
    np.testing.assert_allclose(d2p.to_numpy(gx), (1 - t ** 2) @ sd["0.weight"].T,
                               rtol=1e-4, atol=ATOL)
    assert net[0].weight.grad is None  # d2p.grad leaves accumulated gradients alone


def test_compiled_batchnorm_keeps_statistics_and_modes(backend):
    d2p.seed(4)
    eager = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    compiled = copy.deepcopy(eager)
    compiled.compile()
    X1, X2 = data(8, seed=5), data(8, seed=6)
    for X in (X1, X2, X1):
        np.testing.assert_allclose(d2p.to_numpy(compiled(X)), d2p.to_numpy(eager(X)),
                                   rtol=RTOL, atol=ATOL)
    for name, value in eager.state_dict().items():  # running statistics, updated alike
        np.testing.assert_allclose(compiled.state_dict()[name], value, rtol=RTOL, atol=1e-6,
                                   err_msg=name)
    mean = compiled.state_dict()["1.running_mean"]
    assert np.abs(mean).max() > 0
    for net in (eager, compiled):
        net.eval()
    for _ in range(2):
        np.testing.assert_allclose(d2p.to_numpy(compiled(X2)), d2p.to_numpy(eager(X2)),
                                   rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(compiled.state_dict()["1.running_mean"], mean)  # eval: kept
    compiled.train()
    eager.train()
    np.testing.assert_allclose(d2p.to_numpy(compiled(X2)), d2p.to_numpy(eager(X2)),
                               rtol=RTOL, atol=ATOL)
    assert not np.allclose(compiled.state_dict()["1.running_mean"], mean)


def test_a_compiled_bare_batchnorm_follows_its_mode(backend):
    net = d2p.compile(nn.BatchNorm1d(3))
    X = data(6, 3)
    out = d2p.to_numpy(net(X))
    mean, var = X.astype(np.float64).mean(0), X.astype(np.float64).var(0)
    np.testing.assert_allclose(out, (X - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-4)
    sd = net.state_dict()
    np.testing.assert_allclose(sd["running_mean"], 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sd["running_var"], 0.9 + 0.1 * X.var(0, ddof=1), rtol=1e-5)
    net.eval()
    expected = (2 * X - sd["running_mean"]) / np.sqrt(sd["running_var"] + 1e-5)
    for _ in range(2):
        np.testing.assert_allclose(d2p.to_numpy(net(2 * X)), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(net.state_dict()["running_mean"], sd["running_mean"])


@pytest.mark.parametrize("contained", [True, False])
def test_compiled_dropout_draws_anew_and_is_identity_in_eval(backend, contained):
    d2p.seed(5)
    net = d2p.compile(nn.Sequential(nn.Dropout(0.5)) if contained else nn.Dropout(0.5))
    X = np.ones((100, 40), np.float32)
    first, second = d2p.to_numpy(net(X)), d2p.to_numpy(net(X))
    for out in (first, second):
        assert set(np.unique(out)) <= {0.0, 2.0}
        assert 0.4 < (out == 0).mean() < 0.6
    assert 0.3 < (first != second).mean() < 0.7  # a new mask at every call
    net.eval()
    np.testing.assert_array_equal(d2p.to_numpy(net(X)), X)


def test_compiled_module_follows_changes_of_its_tree(backend):
    d2p.seed(6)
    net = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    net.compile()
    X = data()
    net(X)
    net[2] = nn.Linear(5, 3)  # a replaced child: compiled again
    sd = net.state_dict()
    np.testing.assert_allclose(d2p.to_numpy(net(X)),
                               sequential_reference(sd, "", ["linear", "relu", "linear"], X),
                               rtol=RTOL, atol=ATOL)
    with d2p.no_grad():  # a new value in place: the compiled forward reads it
        init.constant_(net[2].bias, 1.5)
    np.testing.assert_allclose(
        d2p.to_numpy(net(X)),
        sequential_reference(net.state_dict(), "", ["linear", "relu", "linear"], X),
        rtol=RTOL, atol=ATOL)
    net.load_state_dict({k: v * 0.5 for k, v in net.state_dict().items()})
    np.testing.assert_allclose(
        d2p.to_numpy(net(X)),
        sequential_reference(net.state_dict(), "", ["linear", "relu", "linear"], X),
        rtol=RTOL, atol=ATOL)


def test_hooks_run_on_every_call_of_a_compiled_module(backend):
    net = d2p.compile(nn.Sequential(nn.Linear(4, 3), nn.ReLU()))
    X = data()
    net(X)
    calls = []
    handle = net[0].register_forward_hook(lambda m, args, out: calls.append(out))
    replace = net.register_forward_hook(lambda m, args, out: out * 0.0)
    for _ in range(3):
        np.testing.assert_array_equal(d2p.to_numpy(net(X)), np.zeros((5, 3)))
    assert len(calls) == 3
    handle.remove()
    replace.remove()
    out = d2p.to_numpy(net(X))
    assert len(calls) == 3 and np.abs(out).max() > 0


def test_compiled_model_converts_to_float64(backend):
    if "float64" not in _registry.adapter(backend).float_dtypes:
        pytest.skip(f"{backend} has no float64 here")
    d2p.seed(7)
    net = d2p.compile(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)))
    X = data().astype(np.float64)
    net(X.astype(np.float32))
    net.double()
    out = d2p.to_numpy(net(X))
    assert out.dtype == np.float64
    sd = net.state_dict()
    np.testing.assert_allclose(out, sequential_reference(sd, "", ["linear", "relu", "linear"], X),
                               rtol=1e-12, atol=1e-12)


def test_compiled_lazy_layers_are_built_by_the_first_call(backend):
    d2p.seed(8)
    net = d2p.compile(nn.Sequential(nn.LazyLinear(5), nn.ReLU(), nn.LazyLinear(2)))
    X = data(3, 7)
    first = d2p.to_numpy(net(X))
    sd = net.state_dict()
    assert sd["0.weight"].shape == (7, 5)
    expected = sequential_reference(sd, "", ["linear", "relu", "linear"], X)
    np.testing.assert_allclose(first, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(d2p.to_numpy(net(X)), expected, rtol=RTOL, atol=ATOL)


def test_compiled_lenet_matches_eager_forward_and_gradients(backend):
    d2p.seed(9)
    eager = chapter.lenet()
    init.reset_(eager, "torch")
    compiled = d2p.compile(copy.deepcopy(eager))
    X = np.random.default_rng(3).random((4, 1, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(d2p.to_numpy(compiled(X)), d2p.to_numpy(eager(X)),
                               rtol=1e-4, atol=1e-5)
    for net in (eager, compiled):
        d2p.backward(lambda net=net: ops.sum(net(X) * net(X)))
    grads = dict(eager.named_parameters())
    for name, p in compiled.named_parameters():
        scale = np.abs(grads[name].grad).max()
        np.testing.assert_allclose(p.grad, grads[name].grad, rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=name)


def test_a_wrapped_native_model_compiles(backend):
    d2p.seed(10)
    built = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    net = d2p.compile(d2p.wrap(built.native))
    X = data()
    expected = sequential_reference(net.state_dict(), "", ["linear", "relu", "linear"], X)
    for _ in range(2):
        np.testing.assert_allclose(d2p.to_numpy(net(X)), expected, rtol=RTOL, atol=ATOL)


def test_compile_refuses_what_is_not_a_module(backend):
    with pytest.raises(TypeError, match=r"d2p.compile takes an nn.Module, got builtins.str"):
        d2p.compile("net")


def test_a_compiled_module_explains_a_wrong_input_as_the_eager_one_does(backend):
    net = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ValueError) as eager:
        net(np.ones((2, 5), np.float32))
    net.compile()
    before = net.state_dict()
    with pytest.raises(ValueError) as compiled:
        net(np.ones((2, 5), np.float32))
    assert str(compiled.value) == str(eager.value)
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


#: how often a Python ``forward`` runs in four calls of the compiled module: the tracing
#: compilers (tf.function, jax.jit) run it once; TorchDynamo and Paddle's SOT run the Python
#: around their graphs (d2lparams' forward context breaks Dynamo's graph); Gluon runs a
#: Python forward imperatively, hybridizing the layers below it
PYTHON_RUNS = {"torch": 4, "tensorflow": 1, "mxnet": 4, "paddle": 4, "jax": 1}


def test_how_often_a_python_forward_runs_compiled(backend):
    runs = []

    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, X):
            runs.append(1)
            return ops.relu(self.lin(X)) * 2.0

    net = Counting()
    sd = net.state_dict()
    net.compile()
    X = data()
    for _ in range(4):
        np.testing.assert_allclose(d2p.to_numpy(net(X)), 2 * relu(X @ sd["lin.weight"] + sd["lin.bias"]),
                                   rtol=RTOL, atol=ATOL)
    assert len(runs) == PYTHON_RUNS[backend]


#: the backends whose compiler cannot take Python control flow on a tensor's value (the
#: module then runs uncompiled, with a warning); TorchDynamo and Paddle's SOT break the graph
#: there, TensorFlow's AutoGraph does not convert a forward called through Keras
UNCOMPILABLE_BRANCH = {"tensorflow", "jax"}


def test_python_control_flow_on_values_keeps_its_meaning(backend, recwarn):
    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, X):
            h = self.lin(X)
            if ops.sum(h) > 0:
                return h * 2.0
            return h * -1.0

    net = Branch()
    sd = net.state_dict()
    net.compile()
    for sign in (1.0, -1.0, 1.0):
        X = np.full((2, 4), 10.0 * sign, np.float32)
        h = X @ sd["lin.weight"] + sd["lin.bias"]
        np.testing.assert_allclose(d2p.to_numpy(net(X)), 2 * h if h.sum() > 0 else -h,
                                   rtol=RTOL, atol=1e-4)
    ours = [w for w in recwarn.list if "could not compile the forward" in str(w.message)]
    assert len(ours) == (1 if backend in UNCOMPILABLE_BRANCH else 0)
    if ours:
        assert "Branch.compile()" in str(ours[0].message)


def test_torch_options_reach_torch_compile(backend):
    if backend != "torch":
        pytest.skip("torch.compile's backend= option")
    import torch

    torch._dynamo.reset()  # Dynamo reuses a graph of the same code across models
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    d2p.seed(11)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    sd = net.state_dict()
    net.compile(backend=counting_backend)
    X = data()
    for _ in range(2):
        np.testing.assert_allclose(d2p.to_numpy(net(X)), relu(X @ sd["0.weight"] + sd["0.bias"]),
                                   rtol=RTOL, atol=ATOL)
    assert len(graphs) == 1  # Dynamo captured the forward once and reused it


def test_mxnet_compiles_by_hybridizing_the_native_block(backend):
    if backend != "mxnet":
        pytest.skip("Gluon's hybridize")
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    net.compile(static_alloc=True)
    net(data())
    assert net.native._active and ("static_alloc", True) in net.native._flags
    assert net.native._cached_op is not None


def test_freezing_after_compile_and_checkpoints_of_a_compiled_model(backend, tmp_path):
    d2p.seed(12)
    net = d2p.compile(nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)))
    X = data(3)
    net(X)
    net[0].requires_grad_(False)
    d2p.backward(lambda: ops.sum(net(X)))
    assert net[0].weight.grad is None and net[0].bias.grad is None
    a = relu(X @ net[0].weight.numpy() + net[0].bias.numpy())
    np.testing.assert_allclose(net[2].weight.grad, a.T @ np.ones((3, 2)), rtol=1e-5, atol=ATOL)
    net[0].requires_grad_(True)
    net.zero_grad()
    d2p.backward(lambda: ops.sum(net(X)))
    assert net[0].weight.grad is not None
    d2p.save(net, tmp_path / "net.safetensors")
    other = d2p.compile(nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)))
    other(X)
    d2p.load(other, tmp_path / "net.safetensors")
    np.testing.assert_array_equal(d2p.to_numpy(other(X)), d2p.to_numpy(net(X)))
