"""Issue 5: optimizers, schedules, modes with buffers, and checkpoints that cross frameworks."""

import json
import os

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import nn, ops, optim

from conftest import cross_backends, run_python


def regression_data():
    rng = np.random.default_rng(42)
    X = rng.standard_normal((32, 4)).astype(np.float32)
    y = (X @ np.array([[2.0], [-3.4], [1.0], [0.5]]) + 4.2).astype(np.float32)
    return X, y


def numpy_training(sd, X, y, epochs):
    """Full-batch SGD on Linear(4,8)-ReLU-Linear(8,1) with MSE, the two groups of the seed."""
    p = {k: v.astype(np.float64) for k, v in sd.items()}
    groups = [(["0.weight", "0.bias"], 0.001, 0.99), (["2.weight", "2.bias"], 0.01, 0.9)]
    bufs, losses = {}, []
    for epoch in range(epochs):
        scale = 0.1 ** sum(epoch >= m for m in (10, 20))
        h = X @ p["0.weight"] + p["0.bias"]
        a = np.maximum(h, 0)
        out = a @ p["2.weight"] + p["2.bias"]
        diff = out - y
        losses.append(float((diff ** 2).mean()))
        g_out = 2 * diff / diff.size
        grads = {"2.weight": a.T @ g_out, "2.bias": g_out.sum(0)}
        g_h = (g_out @ p["2.weight"].T) * (h > 0)
        grads.update({"0.weight": X.T @ g_h, "0.bias": g_h.sum(0)})
        for names, lr, mom in groups:
            for n in names:
                bufs[n] = grads[n] if n not in bufs else mom * bufs[n] + grads[n]
                p[n] = p[n] - lr * scale * bufs[n]
    return losses, p


def test_two_groups_momentum_and_multisteplr_match_numpy(backend):
    X, y = regression_data()
    d2p.seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    start = net.state_dict()
    opt = optim.SGD([{"params": net[0].parameters(), "lr": 0.001, "momentum": 0.99},
                     {"params": net[2].parameters()}], lr=0.01, momentum=0.9)
    sched = optim.lr_scheduler.MultiStepLR(opt, milestones=[10, 20], gamma=0.1)
    Xt, yt = d2p.tensor(X), d2p.tensor(y)
    losses, lrs = [], []
    for _ in range(30):
        opt.zero_grad()
        losses.append(d2p.backward(lambda: ops.mean((net(Xt) - yt) * (net(Xt) - yt))))
        opt.step()
        lrs.append(sched.get_last_lr())
        sched.step()
    ref_losses, ref_params = numpy_training(start, X, y, 30)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    for k, v in net.state_dict().items():
        np.testing.assert_allclose(v, ref_params[k], rtol=1e-4, atol=1e-5)
    assert lrs[0] == [0.001, 0.01] and lrs[10] == pytest.approx([0.0001, 0.001])
    assert lrs[29] == pytest.approx([1e-5, 1e-4])
    state = opt.state_dict()
    assert sorted(state["state"]) == [0, 1, 2, 3]
    assert state["state"][0]["momentum_buffer"].shape == (4, 8)


def test_sgd_weight_decay_frozen_and_state_round_trip(backend):
    net = nn.Linear(3, 2, weight_init=0.5, bias_init=0.0)
    net.bias.requires_grad = False
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.5, weight_decay=0.01)
    X = np.ones((1, 3), np.float32)
    for _ in range(2):
        opt.zero_grad()
        d2p.backward(lambda: ops.sum(net(X)))
        opt.step()
    w, buf = 0.5, 0.0
    for step in range(2):
        g = 1.0 + 0.01 * w
        buf = g if step == 0 else 0.5 * buf + g
        w -= 0.1 * buf
    np.testing.assert_allclose(net.weight.numpy(), np.full((3, 2), w), rtol=1e-6)
    assert (net.bias.numpy() == 0).all()
    twin_net = nn.Linear(3, 2)
    twin = optim.SGD(twin_net.parameters(), lr=1.0, momentum=0.1)
    twin.load_state_dict(opt.state_dict())
    assert twin.param_groups[0]["lr"] == 0.1
    np.testing.assert_allclose(twin.state_dict()["state"][0]["momentum_buffer"], np.full((3, 2), buf),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="two param groups"):
        optim.SGD([{"params": [net.weight]}, {"params": [net.weight, net.bias]}], lr=0.1)
    with pytest.raises(ValueError, match="lr must be"):
        optim.SGD(net.parameters(), lr=-1)


def test_batchnorm_train_eval_and_running_stats(backend):
    rng = np.random.default_rng(9)
    bn = nn.BatchNorm1d(3, momentum=0.2)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var"]
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var"]
    gamma, beta = rng.random(3).astype(np.float32) + 0.5, rng.random(3).astype(np.float32)
    bn.weight.set(gamma)
    bn.bias.set(beta)
    rm, rv = np.zeros(3), np.ones(3)
    for _ in range(3):
        X = (rng.standard_normal((8, 3)) * 2 + 1).astype(np.float32)
        out = d2p.to_numpy(bn(X))
        mean, var = X.mean(0), X.var(0)
        np.testing.assert_allclose(out, (X - mean) / np.sqrt(var + 1e-5) * gamma + beta,
                                   rtol=1e-4, atol=1e-4)
        rm = 0.8 * rm + 0.2 * mean
        rv = 0.8 * rv + 0.2 * X.var(0, ddof=1)
    np.testing.assert_allclose(d2p.to_numpy(bn.running_mean), rm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dict(bn.named_buffers())["running_var"], rv, rtol=1e-5)
    bn.eval()
    X = rng.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(d2p.to_numpy(bn(X)), (X - rm) / np.sqrt(rv + 1e-5) * gamma + beta,
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(d2p.to_numpy(bn.running_mean), rm, rtol=1e-5, atol=1e-6)
    assert all(p.requires_grad for p in bn.parameters())
    # in a network, gradients reach weight and bias and never the running statistics
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 1))
    d2p.backward(lambda: ops.sum(net(d2p.tensor(rng.standard_normal((6, 3))))))
    assert net[1].weight.grad is not None and net[1].weight.grad.shape == (3,)
    assert [n for n, _ in net.named_parameters()].count("1.running_mean") == 0


def test_a_model_trained_after_another_gets_its_gradients_and_statistics_once(backend):
    """Gradients go to the parameters the loss depends on, however many other models live in
    the process and whichever was trained before (JAX, which has no tape, stops tracing the
    parameters of a model that a few calls did not use, and must notice it in use again)."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 4)).astype(np.float32)
    T = rng.standard_normal((6, 2)).astype(np.float32)
    first = nn.mlp(4, 8, 2)
    second = nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 2))
    calls = []
    for _ in range(2):
        d2p.backward(lambda: ops.sum(first(X)))
    grads = {n: p.grad.copy() for n, p in first.named_parameters()}
    assert all(p.grad is None for p in second.parameters())

    def loss():
        calls.append(1)
        return ops.sum(second(X) * d2p.tensor(T))

    d2p.backward(loss)
    d2p.backward(lambda: ops.sum(first(X)))  # the first model again, once
    normalized = (X - X.mean(0)) / np.sqrt(X.var(0) + 1e-5)
    np.testing.assert_allclose(second[1].weight.grad, normalized.T @ T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(second[1].bias.grad, T.sum(0), rtol=1e-5, atol=1e-5)
    # the running statistics moved once, whatever it took to differentiate
    np.testing.assert_allclose(d2p.to_numpy(second[0].running_mean), 0.1 * X.mean(0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d2p.to_numpy(second[0].running_var),
                               0.9 + 0.1 * X.var(0, ddof=1), rtol=1e-5)
    for n, p in first.named_parameters():
        np.testing.assert_allclose(p.grad, grads[n] * 1.5, rtol=1e-5, atol=1e-6, err_msg=n)
    assert len(calls) in (1, 2)  # JAX runs it twice the first time it finds the model idle


def test_dropout_modes(backend):
    drop = nn.Dropout(0.3)
    X = np.ones((200, 50), np.float32)
    out = d2p.to_numpy(drop(X))
    zeros = (out == 0).mean()
    assert 0.27 < zeros < 0.33
    np.testing.assert_allclose(out[out != 0], 1 / 0.7, rtol=1e-6)
    drop.eval()
    np.testing.assert_array_equal(d2p.to_numpy(drop(X)), X)
    with pytest.raises(ValueError, match="probability"):
        nn.Dropout(-0.1)


@pytest.mark.parametrize("compiled", [False, True])
def test_dropout_masks_repeat_after_seed(backend, compiled):
    # PyTorch: torch.manual_seed(n) makes nn.Dropout's masks repeat (Keras' Dropout draws
    # from a generator of its own, which d2p.seed re-seeds)
    net = nn.Sequential(nn.Linear(50, 50), nn.Dropout(0.5), nn.Dropout(0.3))
    if compiled:
        net.compile()
    X = np.ones((40, 50), np.float32)
    masks = []
    for _ in range(2):
        d2p.seed(7)
        masks.append([d2p.to_numpy(net(X)) == 0 for _ in range(2)])
    np.testing.assert_array_equal(masks[0][0], masks[1][0])
    np.testing.assert_array_equal(masks[0][1], masks[1][1])
    assert (masks[0][0] != masks[0][1]).any()  # and the next call draws anew
    d2p.seed(8)
    assert (d2p.to_numpy(net(X)) == 0).tolist() != masks[0][0].tolist()


def test_save_load_checks_and_atomic_writes(backend, tmp_path, monkeypatch):
    net = nn.mlp(4, 8, 1)
    path = tmp_path / "net.safetensors"
    d2p.save(net, path)
    twin = nn.mlp(4, 8, 1)
    d2p.load(twin, str(path))
    X = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(d2p.to_numpy(twin(X)), d2p.to_numpy(net(X)), rtol=1e-6)
    before = twin.state_dict()
    good = path.read_bytes()
    # a checkpoint of another shape leaves the target unchanged
    d2p.save(nn.mlp(4, 9, 1), tmp_path / "other.safetensors")
    with pytest.raises(d2p.StateDictError, match="shape mismatch"):
        d2p.load(twin, tmp_path / "other.safetensors")
    # a truncated file, and a file of another format
    (tmp_path / "cut.safetensors").write_bytes(good[: len(good) // 2])
    with pytest.raises(d2p.StateDictError, match="truncated"):
        d2p.load(twin, tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(d2p.StateDictError, match="safetensors"):
        d2p.load(twin, tmp_path / "junk.safetensors")
    for k, v in twin.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    # a save interrupted before the rename leaves the old file and no temporary behind
    def crash(fd):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        d2p.save(nn.mlp(4, 8, 1), path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cut.safetensors", "junk.safetensors", "net.safetensors", "other.safetensors"]


PORT_SAVE = """
import json, sys, numpy as np, d2lparams as d2p
from d2lparams import nn, init
d2p.set_backend({backend!r})
d2p.seed(1)
shared = nn.Linear(8, 8)
net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.BatchNorm1d(8),
                    nn.Linear(8, 1))
X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
net(X)  # updates the BatchNorm running statistics
net.eval()
for p in net.parameters():
    init.normal_(p, std=0.5)
d2p.save(net, {path!r})
json.dump(d2p.to_numpy(net(X)).tolist(), open({path!r} + ".json", "w"))
"""

PORT_LOAD = """
import json, sys, numpy as np, d2lparams as d2p
from d2lparams import nn
d2p.set_backend({backend!r})
X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
worst = {{}}
for path in {paths!r}:
    shared = nn.Linear(8, 8)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.BatchNorm1d(8),
                        nn.Linear(8, 1)).eval()
    d2p.load(net, path)
    assert net[2].weight is net[4].weight
    ref = np.array(json.load(open(path + ".json")), np.float32)
    worst[path] = float(np.abs(d2p.to_numpy(net(X)) - ref).max() / np.abs(ref).max())
print(json.dumps(worst))
"""


def test_port_every_ordered_pair_of_backends(tmp_path):
    names = cross_backends()
    paths = {}
    for name in names:
        paths[name] = str(tmp_path / f"{name}.safetensors")
        proc = run_python(PORT_SAVE.format(backend=name, path=paths[name]))
        assert proc.returncode == 0, proc.stderr[-3000:]
    for target in names:
        sources = [paths[s] for s in names if s != target]
        if not sources:
            continue
        proc = run_python(PORT_LOAD.format(backend=target, paths=sources))
        assert proc.returncode == 0, proc.stderr[-3000:]
        worst = json.loads(proc.stdout.strip().splitlines()[-1])
        for path, deviation in worst.items():
            assert deviation < 1e-6, f"{path} loaded on {target}: relative deviation {deviation}"


@pytest.mark.parametrize("layer", ["linear", "conv", "batchnorm"])
def test_a_backward_through_one_model_leaves_another_models_gradients_alone(backend, layer):
    # (MXNet: a layer whose parameters keep Gluon's grad_req='write' had its gradient added
    # to itself again by a later backward that did not reach it)
    def make():
        if layer == "linear":
            return nn.Sequential(nn.Linear(3, 2))
        if layer == "conv":
            return nn.Sequential(nn.Conv2d(1, 2, 3))
        return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))

    X = np.random.default_rng(0).random((2, 3) if layer == "linear" else (2, 1, 5, 5))
    X = X.astype(np.float32)
    a, b = make(), make()
    d2p.backward(lambda: ops.sum(a(X) * a(X)))
    first = {name: p.grad.copy() for name, p in a.named_parameters()}
    d2p.backward(lambda: ops.sum(b(X)))
    for name, p in a.named_parameters():
        np.testing.assert_array_equal(p.grad, first[name], err_msg=name)
    d2p.backward(lambda: ops.sum(a(X) * a(X)))  # and a second backward through it adds
    for name, p in a.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * first[name], rtol=1e-5, atol=1e-6, err_msg=name)
