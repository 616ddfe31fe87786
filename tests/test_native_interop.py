"""Native code in, native tools out: wrapping changes nothing about a native model, and
d2lparams' gradients on a wrapped model still have PyTorch's meaning."""

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import ops

X = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
Y = (X @ np.array([[1.0], [-2.0], [0.5], [3.0]]) + 0.3).astype(np.float32)


# Each framework's own MLP and its own SGD loop, written the way its users write them (the
# point of these tests is native code, so each is that framework's code).
def torch_model_and_loop():
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))

    def train(steps):
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        x, y = torch.from_numpy(X), torch.from_numpy(Y)
        for _ in range(steps):
            opt.zero_grad()
            ((net(x) - y) ** 2).mean().backward()
            opt.step()
        return [p.detach().numpy().copy() for p in net.parameters()]

    return net, train


def tensorflow_model_and_loop():
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    net.build((None, 4))

    def train(steps):
        opt = keras.optimizers.SGD(learning_rate=0.05)
        for _ in range(steps):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((net(X) - Y) ** 2)
            opt.apply_gradients(zip(tape.gradient(loss, net.trainable_variables),
                                    net.trainable_variables))
        return [v.numpy().copy() for v in net.weights]

    return net, train


def mxnet_model_and_loop():
    import mxnet as mx
    from mxnet import autograd, gluon

    mx.random.seed(0)
    net = gluon.nn.Sequential()
    net.add(gluon.nn.Dense(8, activation="relu", in_units=4), gluon.nn.Dense(1, in_units=8))
    net.initialize()

    def train(steps):  # d2l's loop: no zero_grad, Gluon's grad_req='write' overwrites
        trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.05})
        x, y = mx.nd.array(X), mx.nd.array(Y)
        for _ in range(steps):
            with autograd.record():
                loss = ((net(x) - y) ** 2).mean()
            loss.backward()
            trainer.step(1)
        return [p.data().asnumpy().copy() for p in net.collect_params().values()]

    return net, train


def paddle_model_and_loop():
    import paddle

    paddle.seed(0)
    net = paddle.nn.Sequential(paddle.nn.Linear(4, 8), paddle.nn.ReLU(), paddle.nn.Linear(8, 1))

    def train(steps):
        opt = paddle.optimizer.SGD(learning_rate=0.05, parameters=net.parameters())
        x, y = paddle.to_tensor(X), paddle.to_tensor(Y)
        for _ in range(steps):
            loss = ((net(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            opt.clear_grad()
        return [p.numpy().copy() for p in net.parameters()]

    return net, train


def jax_model_and_loop():
    import optax
    from flax import nnx

    rngs = nnx.Rngs(0)
    net = nnx.Sequential(nnx.Linear(4, 8, rngs=rngs), nnx.relu, nnx.Linear(8, 1, rngs=rngs))

    def train(steps):
        opt = nnx.Optimizer(net, optax.sgd(0.05), wrt=nnx.Param)
        for _ in range(steps):
            grads = nnx.grad(lambda model: ((model(X) - Y) ** 2).mean())(net)
            opt.update(net, grads)
        return [np.asarray(v.value).copy() for _, v in nnx.to_flat_state(nnx.state(net, nnx.Param))]

    return net, train


NATIVE = {"torch": torch_model_and_loop, "tensorflow": tensorflow_model_and_loop,
          "mxnet": mxnet_model_and_loop, "paddle": paddle_model_and_loop,
          "jax": jax_model_and_loop}


def test_wrap_changes_nothing_about_a_native_training_loop(backend):
    _, train = NATIVE[backend]()
    untouched = train(5)
    net, train = NATIVE[backend]()
    view = d2p.wrap(net)
    view.state_dict()
    [p.requires_grad for p in view.parameters()]
    d2p.backward(lambda: ops.sum(view(X)))  # d2lparams' own use of it, too
    view.zero_grad()
    after = train(5)
    assert len(after) == len(untouched)
    for a, b in zip(after, untouched):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_gradients_accumulate_on_a_wrapped_native_model(backend):
    net, _ = NATIVE[backend]()
    view = d2p.wrap(net)
    d2p.backward(lambda: ops.sum(view(X)))
    first = {n: p.grad.copy() for n, p in view.named_parameters()}
    d2p.backward(lambda: ops.sum(view(X)))
    for name, p in view.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * first[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    view.zero_grad()
    assert all(p.grad is None for p in view.parameters())


#: the native models above: keras' and gluon's Dense carry the activation themselves
FUSED_ACTIVATION = {"torch": False, "tensorflow": True, "mxnet": True, "paddle": False,
                    "jax": False}


def test_repr_shows_a_wrapped_layers_builtin_activation(backend):
    net, _ = NATIVE[backend]()
    text = repr(d2p.wrap(net))
    expected = "activation=relu" if FUSED_ACTIVATION[backend] else "ReLU()"
    assert expected in text, text


# Each framework's own training API applied to net.native (three full-batch SGD steps on the
# mean squared error), as its users write it.
def torch_fit(native, steps):
    import torch

    opt = torch.optim.SGD(native.parameters(), lr=0.05)
    x, y = torch.from_numpy(X), torch.from_numpy(Y)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(native(x), y).backward()
        opt.step()


def tensorflow_fit(native, steps):
    import keras

    assert isinstance(native, keras.Model)
    native.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
    native.fit(X, Y, epochs=steps, batch_size=len(X), shuffle=False, verbose=0)


def mxnet_fit(native, steps):
    import mxnet as mx
    from mxnet import autograd, gluon

    params = native.collect_params()
    trainer = gluon.Trainer(params, "sgd", {"learning_rate": 0.05})
    x, y = mx.nd.array(X), mx.nd.array(Y)
    for _ in range(steps):
        with autograd.record():
            loss = ((native(x) - y) ** 2).mean()
        loss.backward()
        trainer.step(1)
        params.zero_grad()  # d2lparams' parameters accumulate (PyTorch's meaning)


def paddle_fit(native, steps):
    import paddle

    opt = paddle.optimizer.SGD(learning_rate=0.05, parameters=native.parameters())
    x, y = paddle.to_tensor(X), paddle.to_tensor(Y)
    for _ in range(steps):
        paddle.nn.functional.mse_loss(native(x), y).backward()
        opt.step()
        opt.clear_grad()


def jax_fit(native, steps):
    import optax
    from flax import nnx

    assert isinstance(native, nnx.Module)
    opt = nnx.Optimizer(native, optax.sgd(0.05), wrt=nnx.Param)
    for _ in range(steps):
        grads = nnx.grad(lambda model: optax.l2_loss(model(X), Y).mean() * 2)(native)
        opt.update(native, grads)


FIT = {"torch": torch_fit, "tensorflow": tensorflow_fit, "mxnet": mxnet_fit, "paddle": paddle_fit,
       "jax": jax_fit}


def test_the_frameworks_own_training_api_trains_net_native(backend):
    from d2lparams import nn, optim

    net = nn.mlp(4, 8, 1)
    start = net.state_dict()
    FIT[backend](net.native, 3)
    twin = nn.mlp(4, 8, 1)
    twin.load_state_dict(start)
    opt = optim.SGD(twin.parameters(), lr=0.05)
    x, y = d2p.tensor(X), d2p.tensor(Y)
    for _ in range(3):
        opt.zero_grad()
        d2p.backward(lambda: ops.mean((twin(x) - y) * (twin(x) - y)))
        opt.step()
    trained = net.state_dict()
    assert any(np.abs(trained[k] - start[k]).max() > 1e-3 for k in start)
    for key, value in twin.state_dict().items():
        np.testing.assert_allclose(trained[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_a_wrapped_native_model_converts_to_float64(backend):
    from d2lparams import _registry

    if "float64" not in _registry.adapter(backend).float_dtypes:
        pytest.skip(f"{backend} has float64 only with its own switch (jax_enable_x64)")
    net, _ = NATIVE[backend]()
    view = d2p.wrap(net)
    sd = view.state_dict()
    assert view.double() is view
    assert {p.dtype for p in view.parameters()} == {"float64"}
    X64 = X.astype(np.float64)
    h = np.maximum(X64 @ sd[list(sd)[0]] + sd[list(sd)[1]], 0)
    expected = h @ sd[list(sd)[2]] + sd[list(sd)[3]]
    out = view(d2p.tensor(X64, dtype="float64"))
    assert d2p.to_numpy(out).dtype == np.float64
    np.testing.assert_allclose(d2p.to_numpy(out), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.filterwarnings("ignore:To copy construct from a tensor:UserWarning")  # paddle.io
def test_paddle_model_fit_trains_net_native_as_optim_sgd(backend):
    """Paddle's high-level API: ``paddle.Model(net.native)``, ``prepare``, ``fit``."""
    if backend != "paddle":
        pytest.skip("paddle.Model is Paddle's own high-level training API")
    import paddle

    from d2lparams import nn, optim

    net = nn.mlp(4, 8, 1)
    start = net.state_dict()
    model = paddle.Model(net.native)
    model.prepare(optimizer=paddle.optimizer.SGD(learning_rate=0.05,
                                                 parameters=net.native.parameters()),
                  loss=paddle.nn.MSELoss())
    data = paddle.io.TensorDataset([paddle.to_tensor(X), paddle.to_tensor(Y)])
    model.fit(data, epochs=3, batch_size=len(X), shuffle=False, verbose=0)
    twin = nn.mlp(4, 8, 1)
    twin.load_state_dict(start)
    opt = optim.SGD(twin.parameters(), lr=0.05)
    for _ in range(3):
        opt.zero_grad()
        d2p.backward(lambda: ops.mse_loss(twin(X), d2p.tensor(Y)))
        opt.step()
    trained = net.state_dict()
    assert any(np.abs(trained[k] - start[k]).max() > 1e-3 for k in start)
    for key, value in twin.state_dict().items():
        np.testing.assert_allclose(trained[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_torch_autograd_sees_writes_made_through_d2lparams():
    """torch: d2lparams writes a contiguous value with NumPy into the tensor's memory (faster
    than ``copy_``); the write still counts in autograd's version counter, so a graph that
    saved the old value refuses to backpropagate, as after ``copy_``."""
    pytest.importorskip("torch")
    lin = d2p.nn.Linear(3, 2, backend="torch")
    for write in (lambda: lin.bias.set(np.ones(2, np.float32)),  # contiguous: NumPy's copy
                  lambda: lin.load_state_dict({k: v + 1 for k, v in lin.state_dict().items()}),
                  lambda: d2p.init.normal_(lin.weight)):  # (in, out) into (out, in): copy_
        loss = sum((p ** 2).sum() for p in lin.native.parameters())  # saves both values
        versions = [p._version for p in lin.native.parameters()]
        write()
        assert [p._version for p in lin.native.parameters()] != versions
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()
    np.testing.assert_array_equal(lin.native.bias.detach().numpy(), lin.bias.numpy())
