"""Issue 13 end to end: softmax regression and an MLP trained with cross entropy and SGD on
the seeded synthetic image set give the same loss curve on every backend as a float64
NumPy implementation; the data helper itself."""

import json

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import data, init, nn, optim, scenarios

from conftest import cross_backends, run_python


def numpy_losses(params, batches, lr):
    """Float64 NumPy: forward, mean cross entropy, backward and SGD, one step per batch."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    names = sorted({k.split(".")[0] for k in p}, key=int)
    losses = []
    for X, y in batches:
        acts = [X.reshape(len(X), -1).astype(np.float64)]
        for i, n in enumerate(names):
            z = acts[-1] @ p[n + ".weight"] + p[n + ".bias"]
            acts.append(z if i == len(names) - 1 else np.maximum(z, 0))
        z = acts[-1] - acts[-1].max(1, keepdims=True)
        prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        losses.append(-np.log(prob[np.arange(len(y)), y]).mean())
        delta = (prob - np.eye(10)[y]) / len(y)
        grads = {}
        for i in reversed(range(len(names))):
            grads[names[i] + ".weight"] = acts[i].T @ delta
            grads[names[i] + ".bias"] = delta.sum(0)
            delta = (delta @ p[names[i] + ".weight"].T) * (acts[i] > 0)
        for k in p:
            p[k] -= lr * grads[k]
    return losses


@pytest.mark.parametrize("hidden,lr", [(None, 0.1), (256, 0.3)], ids=["softmax", "mlp"])
def test_training_curve_matches_numpy(backend, hidden, lr):
    X, y = data.synthetic_images(20 * 64, seed=0)
    batches = list(data.minibatches(X, y, 64))
    layers = [nn.Flatten(), nn.Linear(784, 10)] if hidden is None else [
        nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10)]
    net = nn.Sequential(*layers)
    d2p.seed(scenarios.CLASSIFIER_SEED)  # a non-chaotic run (see scenarios.classifier)
    for name, p in net.named_parameters():
        (init.normal_(p, std=0.01) if name.endswith("weight") else init.zeros_(p))
    reference = numpy_losses(net.state_dict(), batches, lr)
    loss_fn, opt = nn.CrossEntropyLoss(), optim.SGD(net.parameters(), lr=lr)
    losses = []
    for Xb, yb in batches:
        Xt, yt = d2p.tensor(Xb), d2p.tensor(yb, dtype="int64")
        opt.zero_grad()
        losses.append(d2p.backward(lambda Xt=Xt, yt=yt: loss_fn(net(Xt), yt)))
        opt.step()
    np.testing.assert_allclose(losses, reference, rtol=1e-5)
    assert reference[-1] < reference[0] - 0.5  # it learns


@pytest.mark.parametrize("name", ["softmax regression", "mlp classification"])
def test_the_compare_scenarios_pass_and_return_their_curves(backend, name):
    fn, tolerance = scenarios.SCENARIOS[name]
    result = scenarios.run(name, fn, tolerance)
    assert result["ok"], result["error"]
    curves = result["data"]
    assert len(curves["losses"]) == len(curves["reference"]) == 20
    np.testing.assert_allclose(curves["losses"], curves["reference"], rtol=1e-5)


def test_loss_curves_coincide_across_backends():
    """Each backend in its own process: the MLP's curve is the same everywhere."""
    curves = {}
    for name in cross_backends():
        proc = run_python(
            "import json, d2lparams as d2p\nfrom d2lparams import scenarios\n"
            f"d2p.set_backend({name!r})\n"
            "print(json.dumps(scenarios.train_classifier(256, lr=0.3)[0]))")
        assert proc.returncode == 0, proc.stderr[-3000:]
        curves[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    first = next(iter(curves.values()))
    for name, losses in curves.items():
        np.testing.assert_allclose(losses, first, rtol=1e-5, err_msg=name)


def test_synthetic_images_are_seeded_balanced_and_bounded():
    X, y = data.synthetic_images(200, seed=3)
    X2, y2 = data.synthetic_images(200, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(X, data.synthetic_images(200, seed=4)[0])
    assert X.shape == (200, 1, 28, 28) and X.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [20] * 10
    assert 0.0 <= X.min() and X.max() <= 1.0
    # a class is closer to its own mean image than to the others' (learnable, not trivial)
    means = np.stack([X[y == c].mean(0).ravel() for c in range(10)])
    dist = ((X.reshape(200, -1)[:, None, :] - means[None]) ** 2).sum(-1)
    assert 0.5 < (dist.argmin(1) == y).mean()
    small = data.synthetic_images(6, num_classes=3, size=8, seed=0, noise=0.0)[0]
    assert small.shape == (6, 1, 8, 8)


def test_minibatches_and_bad_arguments():
    X, y = np.arange(10).reshape(5, 2), np.arange(5)
    batches = list(data.minibatches(X, y, 2))
    assert [len(b[1]) for b in batches] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), X)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        list(data.minibatches(X, y, 0))
    with pytest.raises(ValueError, match="5 examples but 4 labels"):
        list(data.minibatches(X, y[:4], 2))
    with pytest.raises(ValueError, match="n must be a positive int"):
        data.synthetic_images(0)
    with pytest.raises(ValueError, match="noise must be a number >= 0"):
        data.synthetic_images(10, noise=-1)
