"""Issue 11: d2l's LeNet (``chapter.lenet``) on every backend: one state dict, the same outputs
and gradients as a float64 NumPy LeNet, training steps, checkpoints that cross frameworks,
and conv networks that mix layouts (Flatten, Softmax over channels, custom blocks)."""

import json

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import chapter, init, nn, ops, optim

import numpy_conv as R
from conftest import cross_backends, run_python


def lenet_state(seed=0):
    """One state dict for every backend (PyTorch's default scheme, drawn portably)."""
    d2p.seed(seed)
    net = chapter.lenet()
    init.reset_(net, "torch")
    return net


def images(n, seed=0):
    return np.random.default_rng(seed).random((n, 1, 28, 28)).astype(np.float32)


def test_lenet_forward_and_gradients_match_numpy(backend):
    net = lenet_state()
    sd = net.state_dict()
    assert [(k, v.shape) for k, v in sd.items()][:4] == [
        ("0.weight", (6, 1, 5, 5)), ("0.bias", (6,)), ("3.weight", (16, 6, 5, 5)), ("3.bias", (16,))]
    assert sd["7.weight"].shape == (400, 120) and net.num_parameters() == 61706
    X = images(4)
    G = np.random.default_rng(1).standard_normal((4, 10))
    out, grads = R.lenet(sd, X, G)
    np.testing.assert_allclose(d2p.to_numpy(net(X)), out, rtol=1e-5, atol=1e-5)
    Gt = d2p.tensor(G.astype(np.float32))
    d2p.backward(lambda: ops.sum(net(d2p.tensor(X)) * Gt))
    for name, p in net.named_parameters():
        scale = np.abs(grads[name]).max()
        np.testing.assert_allclose(p.grad, grads[name], rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=name)


def test_lenet_sgd_steps_match_numpy(backend):
    net = lenet_state(3)
    p = {k: v.astype(np.float64) for k, v in net.state_dict().items()}
    X = images(8, 2)
    y = np.random.default_rng(5).standard_normal((8, 10))
    opt = optim.SGD(net.parameters(), lr=0.5)
    Xt, yt = d2p.tensor(X), d2p.tensor(y.astype(np.float32))
    losses, ref = [], []
    for _ in range(3):
        opt.zero_grad()
        losses.append(d2p.backward(lambda: ops.mean((net(Xt) - yt) * (net(Xt) - yt))))
        out = R.lenet(p, X)
        ref.append(float(((out - y) ** 2).mean()))
        _, g = R.lenet(p, X, 2 * (out - y) / out.size)
        p = {k: v - 0.5 * g[k] for k, v in p.items()}
        opt.step()
    np.testing.assert_allclose(losses, ref, rtol=1e-5)
    for k, v in net.state_dict().items():
        np.testing.assert_allclose(v, p[k], rtol=1e-4, atol=1e-6, err_msg=k)


def test_conv_network_that_mixes_layouts_matches_numpy(backend):
    """Channel-major Flatten, a Softmax over channels and a custom block between conv layers
    (on Keras the NHWC chain must end before each of them)."""
    rng = np.random.default_rng(7)

    class Shift(nn.Module):
        def forward(self, X):
            return X - ops.mean(X, dim=1, keepdim=True)  # over channels: NCHW is meant

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(4),
                        nn.Softmax(dim=1), nn.Conv2d(4, 5, 2), Shift(), nn.MaxPool2d(2),
                        nn.Tanh(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(20, 3))
    net.eval()
    sd = net.state_dict()
    X = rng.standard_normal((2, 3, 7, 9)).astype(np.float32)
    h = np.maximum(R.conv2d(X, sd["0.weight"], sd["0.bias"], padding=(1, 1))[0], 0)
    h = (h - sd["2.running_mean"][None, :, None, None]) / np.sqrt(
        sd["2.running_var"][None, :, None, None] + 1e-5) * sd["2.weight"][None, :, None, None] \
        + sd["2.bias"][None, :, None, None]
    e = np.exp(h - h.max(1, keepdims=True))
    h = e / e.sum(1, keepdims=True)
    h = R.conv2d(h, sd["4.weight"], sd["4.bias"])[0]
    h = h - h.mean(1, keepdims=True)
    h = np.tanh(R.pool2d(h, (2, 2), (2, 2), (0, 0), "max")[0])
    h = R.adaptive_avg_pool2d(h, (2, 2)).reshape(2, -1)
    np.testing.assert_allclose(d2p.to_numpy(net(X)), h @ sd["10.weight"] + sd["10.bias"],
                               rtol=1e-4, atol=1e-5)


def test_lenet_summary_and_repr(backend):
    net = chapter.lenet()
    lines = d2p.summary(net, (1, 1, 28, 28)).splitlines()
    assert lines[3].split() == ["0", "Conv2d", "(1,", "6,", "28,", "28)", "156"]
    assert lines[5].split() == ["2", "AvgPool2d", "(1,", "6,", "14,", "14)", "0"]
    assert lines[9].split() == ["6", "Flatten", "(1,", "400)", "0"]
    assert "Total parameters: 61,706" in lines
    assert repr(net).splitlines()[1:4] == [
        "  (0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))",
        "  (1): Sigmoid()",
        "  (2): AvgPool2d(kernel_size=2, stride=2, padding=0)",
    ]


def test_wrap_of_the_native_lenet_gives_the_neutral_layers(backend):
    net = lenet_state()
    view = d2p.wrap(net.native)
    assert [type(m).__name__ for m in view] == [type(m).__name__ for m in net]
    assert repr(view[0]) == repr(net[0]) and repr(view[7]) == repr(net[7])
    assert repr(view[2]) == "AvgPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))"
    for (name, p), (_, q) in zip(view.named_parameters(), net.named_parameters()):
        assert p is q, name  # the same native parameter, the same view
    X = images(2)
    np.testing.assert_array_equal(d2p.to_numpy(view(X)), d2p.to_numpy(net(X)))
    bn = d2p.wrap(nn.Sequential(nn.BatchNorm2d(3), nn.MaxPool2d(3, 1, 1),
                                nn.AdaptiveAvgPool2d((2, 1))).native)
    assert repr(bn[0]) == repr(nn.BatchNorm2d(3)) and [n for n, _ in bn.named_buffers()] == [
        "0.running_mean", "0.running_var"]
    assert repr(bn[1]) == ("MaxPool2d(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), "
                           "dilation=1, ceil_mode=False)")
    assert repr(bn[2]) == "AdaptiveAvgPool2d(output_size=(2, 1))"


@pytest.mark.parametrize("scheme", ["torch", "tensorflow", "mxnet", "paddle"])
def test_reset_gives_lenet_the_same_weights_on_every_backend(backend, scheme):
    d2p.seed(5)
    net = init.reset_(chapter.lenet(), scheme)
    rng = np.random.default_rng(5)
    rules = init.default_scheme(scheme)
    for i, fans in ((0, (25, 150)), (3, (150, 400)), (7, (400, 120))):
        w_rule, b_rule = rules.rule(net[i]._kind)
        w = np.asarray(w_rule(net[i].weight.shape, *fans, rng), np.float32)
        b = np.asarray(b_rule(net[i].bias.shape, *fans, rng), np.float32)
        np.testing.assert_array_equal(net[i].weight.numpy(), w)
        np.testing.assert_array_equal(net[i].bias.numpy(), b)


# Runs in the main process (not per backend): kept last in the module, after the tests that
# the backend workers run.
PORT_SAVE = """
import json, numpy as np, d2lparams as d2p
from d2lparams import chapter, init, nn
d2p.set_backend({backend!r})
d2p.seed(1)
net = chapter.lenet()
for p in net.parameters():
    init.normal_(p, std=0.3)
bn = nn.Sequential(nn.Conv2d(1, 3, 3, padding="same"), nn.BatchNorm2d(3), nn.MaxPool2d(2))
X = np.random.default_rng(0).random((3, 1, 28, 28)).astype(np.float32)
bn(X)  # updates the running statistics
bn.eval()
d2p.save(net, {path!r})
d2p.save(bn, {path!r} + ".bn")
json.dump([d2p.to_numpy(net(X)).tolist(), d2p.to_numpy(bn(X)).tolist()], open({path!r} + ".json", "w"))
"""

PORT_LOAD = """
import json, numpy as np, d2lparams as d2p
from d2lparams import chapter, nn
d2p.set_backend({backend!r})
X = np.random.default_rng(0).random((3, 1, 28, 28)).astype(np.float32)
worst = {{}}
for path in {paths!r}:
    net = d2p.load(chapter.lenet(), path)
    bn = nn.Sequential(nn.Conv2d(1, 3, 3, padding="same"), nn.BatchNorm2d(3), nn.MaxPool2d(2)).eval()
    d2p.load(bn, path + ".bn")
    ref, ref_bn = (np.array(r, np.float32) for r in json.load(open(path + ".json")))
    worst[path] = max(float(np.abs(d2p.to_numpy(net(X)) - ref).max() / np.abs(ref).max()),
                      float(np.abs(d2p.to_numpy(bn(X)) - ref_bn).max() / np.abs(ref_bn).max()))
print(json.dumps(worst))
"""


def test_lenet_checkpoint_ports_across_every_ordered_pair_of_backends(tmp_path):
    names = cross_backends()
    paths = {}
    for name in names:
        paths[name] = str(tmp_path / f"{name}.safetensors")
        proc = run_python(PORT_SAVE.format(backend=name, path=paths[name]))
        assert proc.returncode == 0, proc.stderr[-3000:]
    for target in names:
        sources = [paths[s] for s in names if s != target]
        proc = run_python(PORT_LOAD.format(backend=target, paths=sources))
        assert proc.returncode == 0, proc.stderr[-3000:]
        worst = json.loads(proc.stdout.strip().splitlines()[-1])
        for path, deviation in worst.items():
            assert deviation < 1e-5, f"{path} loaded on {target}: relative deviation {deviation}"


def test_float64_lenet_matches_numpy_in_float64(backend):
    from d2lparams import _registry

    if "float64" not in _registry.adapter(backend).float_dtypes:
        pytest.skip(f"{backend} has float64 only with its own switch (jax_enable_x64)")
    """Conv, pooling, Flatten and Linear all compute in float64 after ``double()``."""
    net = lenet_state().double()
    sd = net.state_dict()
    assert {v.dtype for v in sd.values()} == {np.dtype(np.float64)}
    X = np.random.default_rng(0).random((2, 1, 28, 28))  # float64
    G = np.random.default_rng(1).standard_normal((2, 10))
    out, grads = R.lenet(sd, X, G)
    y = net(d2p.tensor(X, dtype="float64"))
    assert d2p.to_numpy(y).dtype == np.float64
    np.testing.assert_allclose(d2p.to_numpy(y), out, rtol=1e-10, atol=1e-12)
    Gt = d2p.tensor(G, dtype="float64")
    d2p.backward(lambda: ops.sum(net(d2p.tensor(X, dtype="float64")) * Gt))
    for name, p in net.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name], rtol=1e-9,
                                   atol=1e-12 * np.abs(grads[name]).max(), err_msg=name)
