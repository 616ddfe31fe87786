"""MXNet's two array modes and Gluon's hybridize, on d2lparams-built and wrapped networks.

Every d2l MXNet chapter calls ``npx.set_np()`` (NumPy mode: ``mx.np.ndarray``); d2lparams
takes and returns the arrays of the mode in force, in NumPy mode and in legacy mode
(``mx.nd.NDArray``). ``net.native`` is a Gluon ``HybridBlock``: ``hybridize()`` gives the
same outputs and gradients. These are MXNet's own features: the tests skip elsewhere.
"""

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import init, nn, ops, optim

import numpy_conv as R
from conftest import sequential_reference

#: NumPy mode's arrays warn for the legacy names (as_in_context, context): d2lparams uses none
pytestmark = pytest.mark.filterwarnings("error:ndarray.*has been renamed:DeprecationWarning")

X = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
Y = (X @ np.array([[1.0], [-2.0], [0.5], [3.0]]) + 0.3).astype(np.float32)
MLP = ["linear", "relu", "linear"]


@pytest.fixture
def mx(backend):
    if backend != "mxnet":
        pytest.skip("NumPy mode (npx.set_np) and hybridize are MXNet Gluon's own features")
    d2p.zeros(1)  # imports mxnet the way the adapter does (numpy.bool restored first)
    import mxnet

    yield mxnet
    mxnet.npx.reset_np()  # whatever a test left in force


@pytest.fixture(params=["numpy", "legacy"])
def mode(request, mx):
    """``(mx, the array class of the mode)``: NumPy mode (``npx.set_np()``) or legacy."""
    if request.param == "numpy":
        mx.npx.set_np()
        return mx, mx.np.ndarray
    return mx, mx.nd.NDArray


def of_mode(x, mx, array):
    return isinstance(x, array) and (array is mx.np.ndarray or not isinstance(x, mx.np.ndarray))


def mlp_grads(sd, X, Y):
    """The gradients of the mean squared error of an MLP ``linear, relu, linear``."""
    h = X @ sd["0.weight"] + sd["0.bias"]
    a = np.maximum(h, 0)
    out = a @ sd["2.weight"] + sd["2.bias"]
    g = 2 * (out - Y) / out.size
    ga = g @ sd["2.weight"].T * (h > 0)
    return {"0.weight": X.T @ ga, "0.bias": ga.sum(0), "2.weight": a.T @ g, "2.bias": g.sum(0)}


def numpy_sgd(sd, steps, lr=0.05):
    sd = {k: v.copy() for k, v in sd.items()}
    for _ in range(steps):
        for k, g in mlp_grads(sd, X, Y).items():
            sd[k] -= lr * g
    return sd


def train_sgd(net, steps, lr=0.05):
    opt = optim.SGD(net.parameters(), lr=lr)
    x, y = d2p.tensor(X), d2p.tensor(Y)
    for _ in range(steps):
        opt.zero_grad()
        d2p.backward(lambda: ops.mse_loss(net(x), y))
        opt.step()


def test_tensors_outputs_and_parameters_are_the_arrays_of_the_mode(mode):
    mx, array = mode
    net = nn.mlp(4, 8, 1)
    x = d2p.tensor(X)
    for value in (x, d2p.rand(2, 3), d2p.randn(2, 3), d2p.zeros(2), net(x), net(X),
                  net[0].weight.value(), net[0].weight.native.data(), ops.sum(net(x))):
        assert of_mode(value, mx, array), type(value)
    np.testing.assert_allclose(d2p.to_numpy(net(x)),
                               sequential_reference(net.state_dict(), "", MLP, X),
                               rtol=1e-5, atol=1e-6)


def test_writes_gradients_sgd_and_checkpoints_match_numpy(mode, tmp_path):
    mx, array = mode
    net = nn.mlp(4, 8, 1)
    init.constant_(net[0].weight, 0.25)
    init.normal_(net[2].weight, 0.0, 0.5)
    net[0].weight[3, 2] = 100.0
    net[0].bias.data[1] = -1.5
    sd = net.state_dict()
    assert sd["0.weight"][3, 2] == 100.0 and sd["0.weight"][0, 0] == 0.25
    assert sd["0.bias"][1] == -1.5
    np.testing.assert_allclose(d2p.to_numpy(net(X)), sequential_reference(sd, "", MLP, X),
                               rtol=1e-5, atol=1e-4)
    seen = []
    net[2].weight.register_hook(lambda g: seen.append(g) or g * 2)
    d2p.backward(lambda: ops.mse_loss(net(d2p.tensor(X)), d2p.tensor(Y)))
    expected = mlp_grads(sd, X, Y)
    assert isinstance(seen[0], np.ndarray)  # a hook sees NumPy in the canonical layout
    for name, p in net.named_parameters():
        scale = 2 if name == "2.weight" else 1
        np.testing.assert_allclose(p.grad, scale * expected[name], rtol=1e-4, atol=1e-4,
                                   err_msg=name)
    net = nn.mlp(4, 8, 1)
    start = net.state_dict()
    train_sgd(net, 3)
    for key, value in numpy_sgd(start, 3).items():
        np.testing.assert_allclose(net.state_dict()[key], value, rtol=1e-5, atol=1e-6,
                                   err_msg=key)
    path = d2p.save(net, tmp_path / "mlp.safetensors")
    twin = d2p.load(nn.mlp(4, 8, 1), path)
    twin.load_state_dict(twin.state_dict())
    np.testing.assert_array_equal(d2p.to_numpy(twin(X)), d2p.to_numpy(net(X)))
    assert of_mode(twin(X), mx, array)


def test_conv_batchnorm_losses_hooks_and_diff_in_the_mode(mode):
    mx, array = mode
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    outputs = []
    conv.register_forward_hook(lambda m, args, out: outputs.append(out))
    out = conv(x)
    assert of_mode(out, mx, array) and of_mode(outputs[0], mx, array)
    sd = conv.state_dict()
    np.testing.assert_allclose(d2p.to_numpy(out), R.conv2d(x, sd["weight"], sd["bias"],
                                                           padding=(1, 1))[0],
                               rtol=1e-4, atol=1e-5)
    bn = nn.BatchNorm2d(3)
    y = bn(out)
    assert of_mode(y, mx, array)
    value = d2p.to_numpy(out)
    mean, var = value.mean((0, 2, 3)), value.var((0, 2, 3))
    np.testing.assert_allclose(
        d2p.to_numpy(y), (value - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5),
        rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(bn.state_dict()["running_mean"], 0.1 * mean, rtol=1e-4, atol=1e-6)
    logits = rng.standard_normal((4, 3)).astype(np.float32)
    target = np.array([0, 2, 1, 2])
    loss = ops.cross_entropy(d2p.tensor(logits), d2p.tensor(target, dtype="int64"))
    assert of_mode(loss, mx, array)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(float(d2p.to_numpy(loss).reshape(())),
                               -logp[np.arange(4), target].mean(), rtol=1e-5)
    a, b = nn.mlp(4, 8, 1), nn.mlp(4, 8, 1)
    report = d2p.diff(a, b, X)
    assert report.first_divergence is None and len(report.layers) == 4
    np.testing.assert_array_equal(b.state_dict()["2.weight"], a.state_dict()["2.weight"])


def d2l_seed_001_net(mx):
    """The MXNet tab of d2l's "Layers and Modules" chapter, as it is written there."""
    from mxnet import np, npx
    from mxnet.gluon import nn as gnn

    npx.set_np()
    net = gnn.Sequential()
    net.add(gnn.Dense(8, activation="relu"))
    net.add(gnn.Dense(1))
    net.initialize()
    X = np.random.uniform(size=(2, 4))
    net(X)
    return net


def test_d2l_native_code_in_numpy_mode_wrapped_inspected_written_saved_trained(mx, tmp_path):
    net = d2l_seed_001_net(mx)
    view = d2p.wrap(net)
    assert "activation=relu" in repr(view)
    sd = view.state_dict()
    assert {k: v.shape for k, v in sd.items()} == {
        "0.weight": (4, 8), "0.bias": (8,), "1.weight": (8, 1), "1.bias": (1,)}
    init.normal_(view[0].weight, 0.0, 0.5)
    init.zeros_(view[0].bias)
    view[1].weight[0, 0] = 3.0
    view[1].bias.data[0] = 0.5
    sd = view.state_dict()
    assert sd["1.weight"][0, 0] == 3.0 and sd["1.bias"][0] == 0.5 and not sd["0.bias"].any()
    native_out = net(mx.np.array(X))  # the native model sees the writes
    assert isinstance(native_out, mx.np.ndarray)
    expected = sequential_reference({k.replace("1.", "2."): v for k, v in sd.items()}, "",
                                    MLP, X)
    np.testing.assert_allclose(native_out.asnumpy(), expected, rtol=1e-5, atol=1e-5)
    assert isinstance(view(X), mx.np.ndarray)
    path = d2p.save(view, tmp_path / "d2l.safetensors")
    other = d2p.wrap(d2l_seed_001_net(mx))
    d2p.load(other, path)
    np.testing.assert_array_equal(d2p.to_numpy(other(X)), d2p.to_numpy(view(X)))
    start = {k.replace("1.", "2."): v for k, v in view.state_dict().items()}
    train_sgd(view, 3)
    trained = {k.replace("1.", "2."): v for k, v in view.state_dict().items()}
    for key, value in numpy_sgd(start, 3).items():
        np.testing.assert_allclose(trained[key], value, rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("built", ["legacy", "numpy"])
@pytest.mark.parametrize("wrapped", [False, True], ids=["d2lparams", "wrapped"])
def test_switching_mode_after_building_works(mx, built, wrapped):
    """A network built in one mode and used in the other: its parameters become the other
    mode's views of the same memory (the native Gluon model then takes that mode's arrays)."""
    modes = {"numpy": mx.npx.set_np, "legacy": mx.npx.reset_np}
    other = "legacy" if built == "numpy" else "numpy"
    modes[built]()
    if wrapped:
        native = mx.gluon.nn.Sequential()
        native.add(mx.gluon.nn.Dense(8, activation="relu", in_units=4),
                   mx.gluon.nn.Dense(1, in_units=8))
        native.initialize()
        net = d2p.wrap(native)
        key = {"0.weight": "0.weight", "0.bias": "0.bias", "1.weight": "2.weight",
               "1.bias": "2.bias"}
    else:
        net = nn.mlp(4, 8, 1)
        key = {k: k for k in ("0.weight", "0.bias", "2.weight", "2.bias")}
    start = {key[k]: v for k, v in net.state_dict().items()}
    d2p.backward(lambda: ops.mse_loss(net(X), d2p.tensor(Y)))  # a gradient made in `built`
    net.zero_grad()
    modes[other]()
    array = mx.np.ndarray if other == "numpy" else mx.nd.NDArray
    out = net(d2p.tensor(X))
    assert of_mode(out, mx, array)
    np.testing.assert_allclose(d2p.to_numpy(out), sequential_reference(start, "", MLP, X),
                               rtol=1e-5, atol=1e-6)
    train_sgd(net, 3)
    trained = {key[k]: v for k, v in net.state_dict().items()}
    for name, value in numpy_sgd(start, 3).items():
        np.testing.assert_allclose(trained[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    modes[built]()  # and back: a d2lparams-built native model switches itself; a wrapped
    if wrapped:     # one is Gluon's own, it takes the mode d2lparams last used it in
        net(X)
    native_out = net.native(d2p.tensor(X))
    assert of_mode(native_out, mx, mx.np.ndarray if built == "numpy" else mx.nd.NDArray)
    np.testing.assert_allclose(native_out.asnumpy(),
                               sequential_reference(trained, "", MLP, X), rtol=1e-5, atol=1e-6)


# -- hybridize -----------------------------------------------------------------------------------

def forward_and_grads(net, x):
    net.zero_grad()
    out = d2p.to_numpy(net(x))
    d2p.backward(lambda: ops.sum(net(x) * net(x)))
    return out, {n: p.grad for n, p in net.named_parameters()}


def assert_same(a, b):
    np.testing.assert_allclose(a[0], b[0], rtol=1e-5, atol=1e-6)
    for name in a[1]:
        assert (a[1][name] is None) == (b[1][name] is None), name
        if a[1][name] is not None:
            np.testing.assert_allclose(a[1][name], b[1][name], rtol=1e-5, atol=1e-6,
                                       err_msg=name)


def test_net_native_is_a_hybridblock_with_the_same_outputs_and_gradients(mode):
    mx, array = mode
    net = nn.mlp(4, 8, 1)
    assert isinstance(net.native, mx.gluon.HybridBlock)
    x = d2p.tensor(X)
    before = forward_and_grads(net, x)
    net.native.hybridize()
    after = forward_and_grads(net, x)
    assert net.native._cached_op is not None  # the graph ran
    assert_same(before, after)
    assert of_mode(net(x), mx, array)
    init.constant_(net[0].weight, 0.3)  # d2lparams writes: the cached graph sees them
    net[2].bias[0] = 2.0
    hybrid = forward_and_grads(net, x)
    net.native.hybridize(active=False)
    assert_same(hybrid, forward_and_grads(net, x))
    np.testing.assert_allclose(hybrid[0], sequential_reference(net.state_dict(), "", MLP, X),
                               rtol=1e-5, atol=1e-5)


def test_hybridized_freezing_hooks_and_modes_still_have_pytorchs_meaning(mode):
    """What cannot run in one cached graph runs imperatively: d2lparams' hooks fire on every
    layer, a frozen weight keeps the bias gradient, a child in eval mode stays in eval."""
    mx, array = mode
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 1))
    twin = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 1))
    twin.load_state_dict(net.state_dict())
    net.native.hybridize()
    seen = []
    handle = net[1].register_forward_hook(lambda m, args, out: seen.append(out))
    net.eval()
    twin.eval()
    assert_same(forward_and_grads(twin, X), forward_and_grads(net, X))
    assert len(seen) == 3 and of_mode(seen[0], mx, array)
    handle.remove()
    net.train()
    net[2].eval()  # dropout off inside a training network
    twin.train()
    twin[2].eval()
    assert_same(forward_and_grads(twin, X), forward_and_grads(net, X))
    net[0].weight.requires_grad = False
    twin[0].weight.requires_grad = False
    frozen = forward_and_grads(net, X)
    assert net[0].weight.grad is None and np.abs(frozen[1]["0.bias"]).sum() > 0
    assert_same(forward_and_grads(twin, X), frozen)
    net[2].train()  # dropout on again: about half the activations dropped, the rest x2
    ones = np.ones((64, 4), np.float32)
    kept = d2p.to_numpy(net[:2](ones)) > 0
    out = d2p.to_numpy(net[:3](ones))[kept]
    assert kept.sum() >= 64 and 0.35 < (out == 0).mean() < 0.65
    np.testing.assert_allclose(out[out != 0], 2 * d2p.to_numpy(net[:2](ones))[kept][out != 0],
                               rtol=1e-6)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        self.norm = nn.BatchNorm1d(4)

    def forward(self, x):
        return self.norm(x + self.body(x))


def test_a_custom_module_and_batchnorm_under_hybridize_run_imperatively(mode):
    mx, array = mode
    net = nn.Sequential(Residual(), nn.Linear(4, 1))
    twin = nn.Sequential(Residual(), nn.Linear(4, 1))
    twin.load_state_dict(net.state_dict())
    net.native.hybridize()  # no error: the Python forward runs, the parts that can are traced
    assert net[0].body.native._active
    assert_same(forward_and_grads(twin, X), forward_and_grads(net, X))
    for key, value in twin.state_dict().items():  # PyTorch's running statistics
        np.testing.assert_allclose(net.state_dict()[key], value, rtol=1e-5, atol=1e-6,
                                   err_msg=key)
    assert of_mode(net(X), mx, array)


def test_gluon_trainer_on_a_hybridized_net_native_equals_optim_sgd(mode):
    mx, array = mode
    net = nn.mlp(4, 8, 1)
    start = net.state_dict()
    native = net.native
    native.hybridize()
    params = native.collect_params()
    trainer = mx.gluon.Trainer(params, "sgd", {"learning_rate": 0.05})
    x, y = d2p.tensor(X), d2p.tensor(Y)  # the arrays of the mode, as native code makes them
    for _ in range(3):
        with mx.autograd.record():
            loss = ((native(x) - y) ** 2).mean()
        loss.backward()
        trainer.step(1)
        params.zero_grad()  # d2lparams' parameters accumulate (PyTorch's meaning)
    assert native._cached_op is not None
    for key, value in numpy_sgd(start, 3).items():
        np.testing.assert_allclose(net.state_dict()[key], value, rtol=1e-5, atol=1e-6,
                                   err_msg=key)
