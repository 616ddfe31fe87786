"""Overhead of d2lparams over each native framework, as ratios measured in one run.

    python benchmarks/run.py [--backends torch paddle] [--quick] [--lenet]
                             [--only losses|state|init ... [--repeat 3]]

Each backend runs in a process of its own. Every measurement times the d2lparams call and
the native equivalent alternately (interleaved rounds, the median of each), so that a ratio
compares the two under the same machine load. Results: a table on stdout and
``docs/benchmarks.md``.

Native equivalents are, by necessity, written per framework: they are what a user of that
framework would write without d2lparams.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

JIT_ROW = "SGD training step vs native nnx.jit"
TARGETS = {
    "call overhead (nn.Identity)": None,
    "forward, batch 1": 1.05,
    "forward, batch 256": 1.01,
    "state_dict (25M)": 1.5,
    "load_state_dict (25M)": 1.5,
    "init.normal_ (25M)": 1.5,
    "init.uniform_ (25M)": 1.5,
    "SGD training step": 1.10,
    "cross-entropy training step": 1.10,
    "cross-entropy loss: neutral vs native": None,
    # JAX only: d2lparams' eager step against the same native step compiled with nnx.jit
    JIT_ROW: None,
    # net.compile() against the framework's compiler on the native model
    "compiled forward, batch 256": None,
    # JAX only: a d2lparams step whose forward is compiled, against the nnx.jit step
    "SGD training step, net.compile() vs native nnx.jit": None,
}
LOSS_ROWS = ["cross-entropy training step", "cross-entropy loss: neutral vs native"]
STATE_ROWS = ["state_dict (25M)", "load_state_dict (25M)"]
INIT_ROWS = ["init.normal_ (25M)", "init.uniform_ (25M)"]
#: ``--only`` groups: the rows each one measures (and rewrites in docs/benchmarks.md)
COMPILE_ROWS = ["compiled forward, batch 256", "SGD training step, net.compile() vs native nnx.jit"]
ONLY = {"losses": LOSS_ROWS, "state": STATE_ROWS, "init": INIT_ROWS, "compile": COMPILE_ROWS}


SYNC = [lambda: None]  # waits for queued work (mxnet computes asynchronously)
FINISH: list = [None]  # wraps a timed function so that it waits for its own result (jax)


def interleaved(ours, native, rounds: int, number: int) -> tuple[float, float]:
    """Seconds per call of each: the best of ``rounds`` alternating rounds (as ``timeit``
    recommends: slower rounds measure the machine's other load, not the code); queued work
    is waited for."""
    sync = SYNC[0]
    if FINISH[0] is not None:  # JAX dispatches asynchronously: each call waits for its result
        ours, native = FINISH[0](ours), FINISH[0](native)
    ours(), native(), sync()  # warm up
    a, b = [], []
    for _ in range(rounds):
        for fn, out in ((ours, a), (native, b)):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            sync()
            out.append((time.perf_counter() - start) / number)
    return min(a), min(b)


# -- what a user of each framework writes ---------------------------------------------------
def native_export(backend, native):
    if backend == "jax":
        return jax_export(native)
    if backend == "torch":
        return {k: v.detach().cpu().numpy().copy() for k, v in native.state_dict().items()}
    if backend == "tensorflow":
        return [np.array(v) for v in native.weights]
    if backend == "mxnet":
        return {k: p.data().asnumpy() for k, p in native.collect_params().items()}
    return {k: v.numpy() for k, v in native.state_dict().items()}


def native_import(backend, native, exported):
    if backend == "jax":
        return jax_import(native, exported)
    if backend == "torch":
        import torch

        native.load_state_dict({k: torch.from_numpy(v) for k, v in exported.items()})
    elif backend == "tensorflow":
        native.set_weights(exported)
    elif backend == "mxnet":
        import mxnet as mx

        for k, p in native.collect_params().items():
            p.set_data(mx.nd.array(exported[k]))
    else:
        native.set_state_dict(exported)


def native_normal(backend, net):
    if backend == "jax":
        return jax_init(net, "normal")
    ps = [p.native for p in net.parameters()]
    if backend == "torch":
        import torch

        def run():
            with torch.no_grad():
                for p in ps:
                    torch.nn.init.normal_(p, std=0.01)
    elif backend == "tensorflow":
        import keras

        def run():
            for p in ps:
                p.assign(keras.initializers.RandomNormal(stddev=0.01)(p.shape, "float32"))
    elif backend == "mxnet":
        import mxnet as mx

        def run():
            for p in ps:
                p.set_data(mx.nd.random.normal(0, 0.01, shape=p.shape))
    else:
        import paddle

        def run():
            for p in ps:
                paddle.nn.initializer.Normal(0.0, 0.01)(p)
    return run


def native_uniform(backend, net):
    if backend == "jax":
        return jax_init(net, "uniform")
    ps = [p.native for p in net.parameters()]
    if backend == "torch":
        import torch

        def run():
            with torch.no_grad():
                for p in ps:
                    torch.nn.init.uniform_(p, -0.1, 0.1)
    elif backend == "tensorflow":
        import keras

        def run():
            for p in ps:
                p.assign(keras.initializers.RandomUniform(-0.1, 0.1)(p.shape, "float32"))
    elif backend == "mxnet":
        import mxnet as mx

        def run():
            for p in ps:
                p.set_data(mx.nd.random.uniform(-0.1, 0.1, shape=p.shape))
    else:
        import paddle

        def run():
            for p in ps:
                paddle.nn.initializer.Uniform(-0.1, 0.1)(p)
    return run


def native_forward(backend, native, X):
    """Calling the native module directly, in inference mode."""
    if backend == "tensorflow":
        return lambda: native(X, training=False)
    if backend == "mxnet":
        from mxnet import autograd

        def call():
            with autograd.predict_mode():
                return native(X)

        return call
    return lambda: native(X)


def native_compiled_forward(backend, native, X):
    """The framework's own compiler on the native model, in inference mode."""
    if backend == "torch":
        import torch

        compiled = torch.compile(native)
        return lambda: compiled(X)
    if backend == "tensorflow":
        import tensorflow as tf

        graph = tf.function(lambda x: native(x, training=False))
        return lambda: graph(X)
    if backend == "mxnet":  # net.compile() hybridized this very block in place
        from mxnet import autograd

        def call():
            with autograd.predict_mode():
                return native(X)

        return call
    if backend == "paddle":
        import paddle

        def forward(x):
            return native(x)

        static = paddle.jit.to_static(forward)
        return lambda: static(X)
    from flax import nnx

    jitted = nnx.jit(lambda model, x: model(x))
    return lambda: jitted(native, X)


def bench_compile(backend: str, rounds: int) -> dict:
    """``net.compile()`` against the framework's own compiler (forward), and on JAX a step
    with a compiled forward against the whole step under ``nnx.jit``."""
    import d2lparams as d2p
    from d2lparams import nn

    out = {}
    net = nn.mlp(784, [256, 256], 10).eval()
    X = d2p.randn(256, 784)
    native = native_compiled_forward(backend, net.native, X)
    net.compile()
    out["compiled forward, batch 256"] = interleaved(lambda: net(X), native, rounds, 40)
    if backend == "jax":
        net, X, y, ours_step = mlp_step(compiled=True)
        out["SGD training step, net.compile() vs native nnx.jit"] = interleaved(
            ours_step, jax_train_step(net.native, X, y, 0.01, jax_mse, jit=True), rounds, 10)
    return out


def mlp_step(compiled: bool = False) -> tuple:
    """The *SGD training step* measured: ``mlp(784, [256, 256], 10)`` at batch 64, MSE,
    ``d2p.backward`` and ``optim.SGD`` (lr 0.01); returns ``(net, X, y, step)``."""
    import d2lparams as d2p
    from d2lparams import nn, ops, optim

    d2p.seed(0)
    net = nn.mlp(784, [256, 256], 10)
    X, y = d2p.randn(64, 784), d2p.randn(64, 10)
    opt = optim.SGD(net.parameters(), lr=0.01)
    if compiled:
        net.compile()

    def step():
        opt.zero_grad()

        def loss():
            diff = net(X) - y
            return ops.mean(diff * diff)

        d2p.backward(loss)
        opt.step()

    return net, X, y, step


def native_train_step(backend, net, X, y, lr):
    """A plain SGD step written natively on net.native (same loss, same update)."""
    native = net.native
    if backend == "jax":
        return jax_train_step(native, X, y, lr, jax_mse)
    if backend == "torch":
        import torch

        opt = torch.optim.SGD(native.parameters(), lr=lr)

        def step():
            opt.zero_grad()
            loss = ((native(X) - y) ** 2).mean()
            loss.backward()
            opt.step()
            return float(loss)  # d2p.backward returns the loss as a float too
    elif backend == "tensorflow":
        import keras
        import tensorflow as tf

        opt = keras.optimizers.SGD(learning_rate=lr)
        variables = native.trainable_variables

        def step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((native(X, training=True) - y) ** 2)
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return float(loss)
    elif backend == "mxnet":
        from mxnet import autograd, gluon

        params = native.collect_params()
        trainer = gluon.Trainer(params, "sgd", {"learning_rate": lr})

        def step():
            with autograd.record():
                loss = ((native(X) - y) ** 2).mean()
            loss.backward()
            trainer.step(1)
            params.zero_grad()  # d2lparams gives gluon parameters grad_req='add'
            return float(loss.asscalar())
    else:
        import paddle

        opt = paddle.optimizer.SGD(learning_rate=lr, parameters=native.parameters())

        def step():
            loss = ((native(X) - y) ** 2).mean()
            loss.backward()
            opt.step()
            opt.clear_grad()
            return float(loss)
    return step


def native_cross_entropy_step(backend, net, X, y, lr):
    """The same SGD step with the framework's own cross-entropy loss on its logits."""
    native = net.native
    if backend == "jax":
        return jax_train_step(native, X, y, lr, jax_cross_entropy)
    if backend == "torch":
        import torch

        opt = torch.optim.SGD(native.parameters(), lr=lr)

        def step():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(native(X), y)
            loss.backward()
            opt.step()
            return float(loss)
    elif backend == "tensorflow":
        import keras
        import tensorflow as tf

        opt = keras.optimizers.SGD(learning_rate=lr)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        variables = native.trainable_variables

        def step():
            with tf.GradientTape() as tape:
                loss = loss_fn(y, native(X, training=True))
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return float(loss)
    elif backend == "mxnet":
        from mxnet import autograd, gluon

        params = native.collect_params()
        trainer = gluon.Trainer(params, "sgd", {"learning_rate": lr})
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

        def step():
            with autograd.record():
                loss = loss_fn(native(X), y).mean()
            loss.backward()
            trainer.step(1)
            params.zero_grad()  # d2lparams gives gluon parameters grad_req='add'
            return float(loss.asscalar())
    else:
        import paddle

        opt = paddle.optimizer.SGD(learning_rate=lr, parameters=native.parameters())

        def step():
            loss = paddle.nn.functional.cross_entropy(native(X), y)
            loss.backward()
            opt.step()
            opt.clear_grad()
            return float(loss)
    return step


def native_cross_entropy(backend):
    """The framework's own cross-entropy loss as ``fn(logits, labels)`` (mean)."""
    if backend == "jax":
        return jax_cross_entropy
    if backend == "torch":
        import torch

        return torch.nn.functional.cross_entropy
    if backend == "tensorflow":
        import keras

        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return lambda logits, labels: loss(labels, logits)
    if backend == "mxnet":
        from mxnet import gluon

        loss = gluon.loss.SoftmaxCrossEntropyLoss()
        return lambda logits, labels: loss(logits, labels).mean()
    import paddle

    return paddle.nn.functional.cross_entropy


# -- JAX / Flax NNX: what an NNX user writes ---------------------------------------------------
def jax_setup():
    """JAX dispatches work asynchronously: every timed call waits for its result (for a call
    that returns nothing, such as ``load_state_dict``, for every array there is)."""
    import jax

    def finish(fn):
        def call():
            out = fn()
            return jax.block_until_ready(jax.live_arrays() if out is None else out)
        return call

    FINISH[0] = finish


def jax_export(native):
    """``nnx.state`` of the parameters, as NumPy copies (a State, as NNX checkpoints hold)."""
    import jax
    from flax import nnx

    return jax.tree.map(np.array, nnx.state(native, nnx.Param))


def jax_import(native, exported):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    state = jax.tree.map(jnp.asarray, exported)
    nnx.update(native, state)
    return state


def jax_init(net, kind):
    """``jax.random`` draws written into each ``nnx.Param`` (JAX's arrays are immutable)."""
    import jax

    ps = [p.native for p in net.parameters()]
    key = [jax.random.key(0)]

    def run():
        for p in ps:
            key[0], sub = jax.random.split(key[0])
            if kind == "normal":
                p.value = 0.01 * jax.random.normal(sub, p.value.shape)
            else:
                p.value = jax.random.uniform(sub, p.value.shape, minval=-0.1, maxval=0.1)
        return [p.value for p in ps]
    return run


def jax_mse(out, y):
    return ((out - y) ** 2).mean()


def jax_cross_entropy(logits, labels):
    import optax

    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def jax_train_step(native, X, y, lr, loss_fn, jit=False):
    """``nnx.value_and_grad`` and ``nnx.Optimizer`` with ``optax.sgd``: eager, or the whole
    step under ``nnx.jit`` (how NNX's tutorials train)."""
    import optax
    from flax import nnx

    opt = nnx.Optimizer(native, optax.sgd(lr), wrt=nnx.Param)

    def train(model, optimizer, X, y):
        loss, grads = nnx.value_and_grad(lambda m: loss_fn(m(X), y))(model)
        optimizer.update(model, grads)
        return loss

    compiled = nnx.jit(train) if jit else train

    def step():
        return float(compiled(native, opt, X, y))
    return step


def jax_lenet(sd):
    """d2l's LeNet in NNX as its users write it: NHWC images, ``nnx.Conv``, ``nnx.avg_pool``
    (NHWC's Flatten orders the features (h, w, c): the first Linear's rows follow)."""
    from functools import partial

    import jax
    import jax.numpy as jnp
    from flax import nnx

    rngs = nnx.Rngs(0)
    pool = partial(nnx.avg_pool, window_shape=(2, 2), strides=(2, 2))
    model = nnx.Sequential(
        nnx.Conv(1, 6, (5, 5), padding=2, rngs=rngs), nnx.sigmoid, pool,
        nnx.Conv(6, 16, (5, 5), padding="VALID", rngs=rngs), nnx.sigmoid, pool,
        lambda x: x.reshape(x.shape[0], -1),
        nnx.Linear(400, 120, rngs=rngs), nnx.sigmoid, nnx.Linear(120, 84, rngs=rngs),
        nnx.sigmoid, nnx.Linear(84, 10, rngs=rngs))
    w7 = sd["7.weight"].reshape(16, 5, 5, 120).transpose(1, 2, 0, 3).reshape(400, 120)
    values = {0: (sd["0.weight"].transpose(2, 3, 1, 0), sd["0.bias"]),
              3: (sd["3.weight"].transpose(2, 3, 1, 0), sd["3.bias"]), 7: (w7, sd["7.bias"]),
              9: (sd["9.weight"], sd["9.bias"]), 11: (sd["11.weight"], sd["11.bias"])}
    for i, (kernel, bias) in values.items():
        model.layers[i].kernel.value = jnp.asarray(kernel)
        model.layers[i].bias.value = jnp.asarray(bias)
    return model, lambda X: jax.device_put(X.transpose(0, 2, 3, 1))


def bench_cross_entropy(backend: str, rounds: int, number: int) -> dict:
    """One SGD step of the 784-256-10 MLP on a batch of 256 synthetic images (the classifier
    example): with nn.CrossEntropyLoss against the framework's own loop and loss; and, to
    isolate the loss, d2lparams' step with the neutral loss against the same step with the
    framework's own loss."""
    import d2lparams as d2p
    from d2lparams import data, nn, optim

    X_np, y_np = data.synthetic_images(256, seed=0)
    d2p.seed(0)
    net = nn.mlp(784, 256, 10)
    X, y = d2p.tensor(X_np.reshape(256, 784)), d2p.tensor(y_np, dtype="int64")
    opt = optim.SGD(net.parameters(), lr=0.1)

    def step_with(loss_fn):
        def step():
            opt.zero_grad()
            d2p.backward(lambda: loss_fn(net(X), y))
            opt.step()
        return step

    ours = step_with(nn.CrossEntropyLoss())
    return {
        LOSS_ROWS[0]: interleaved(ours, native_cross_entropy_step(backend, net, X, y, 0.1),
                                  rounds, number),
        LOSS_ROWS[1]: interleaved(ours, step_with(native_cross_entropy(backend)), rounds, number),
    }


# -- LeNet (convolution) ---------------------------------------------------------------------
LENET_TARGETS = {
    "LeNet forward, batch 1": None,
    "LeNet forward, batch 256": 1.05,
    "LeNet training step, batch 256": 1.05,
}


def native_lenet(backend, sd):
    """d2l's LeNet written with the framework's own layers as its users write it (Keras and
    Gluon fuse the activations; Keras takes NHWC images), holding the weights of the
    canonical state dict ``sd``. Returns ``(model, to_input)`` where ``to_input`` turns an
    NCHW NumPy batch into the model's own input tensor."""
    if backend == "jax":
        return jax_lenet(sd)
    if backend == "torch":
        import torch
        from torch import nn as tnn

        model = tnn.Sequential(
            tnn.Conv2d(1, 6, kernel_size=5, padding=2), tnn.Sigmoid(),
            tnn.AvgPool2d(kernel_size=2, stride=2), tnn.Conv2d(6, 16, kernel_size=5),
            tnn.Sigmoid(), tnn.AvgPool2d(kernel_size=2, stride=2), tnn.Flatten(),
            tnn.Linear(16 * 5 * 5, 120), tnn.Sigmoid(), tnn.Linear(120, 84), tnn.Sigmoid(),
            tnn.Linear(84, 10))
        native = {k: torch.from_numpy(v.T.copy() if k.endswith("weight") and v.ndim == 2 else v)
                  for k, v in sd.items()}
        model.load_state_dict(native)
        return model, lambda X: torch.from_numpy(X)
    if backend == "tensorflow":
        import keras
        import tensorflow as tf

        L = keras.layers
        model = keras.Sequential([
            keras.Input((28, 28, 1)),
            L.Conv2D(6, 5, activation="sigmoid", padding="same"), L.AveragePooling2D(2, 2),
            L.Conv2D(16, 5, activation="sigmoid"), L.AveragePooling2D(2, 2), L.Flatten(),
            L.Dense(120, activation="sigmoid"), L.Dense(84, activation="sigmoid"), L.Dense(10)])
        # NHWC Flatten orders the features (h, w, c): the first Dense's rows follow
        w7 = sd["7.weight"].reshape(16, 5, 5, 120).transpose(1, 2, 0, 3).reshape(400, 120)
        model.set_weights([sd["0.weight"].transpose(2, 3, 1, 0), sd["0.bias"],
                           sd["3.weight"].transpose(2, 3, 1, 0), sd["3.bias"], w7, sd["7.bias"],
                           sd["9.weight"], sd["9.bias"], sd["11.weight"], sd["11.bias"]])
        return model, lambda X: tf.constant(X.transpose(0, 2, 3, 1))
    if backend == "mxnet":
        import mxnet as mx
        from mxnet.gluon import nn as gnn

        model = gnn.Sequential()
        model.add(gnn.Conv2D(6, kernel_size=5, padding=2, activation="sigmoid"),
                  gnn.AvgPool2D(pool_size=2, strides=2),
                  gnn.Conv2D(16, kernel_size=5, activation="sigmoid"),
                  gnn.AvgPool2D(pool_size=2, strides=2),
                  gnn.Dense(120, activation="sigmoid"), gnn.Dense(84, activation="sigmoid"),
                  gnn.Dense(10))
        model.initialize()
        model(mx.nd.zeros((1, 1, 28, 28)))
        order = ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias", "9.weight",
                 "9.bias", "11.weight", "11.bias"]
        for key, p in zip(order, model.collect_params().values()):
            value = sd[key].T if sd[key].ndim == 2 else sd[key]
            p.set_data(mx.nd.array(np.ascontiguousarray(value)))
        return model, lambda X: mx.nd.array(X)
    import paddle
    from paddle import nn as pnn

    model = pnn.Sequential(
        pnn.Conv2D(1, 6, 5, padding=2), pnn.Sigmoid(), pnn.AvgPool2D(2, 2),
        pnn.Conv2D(6, 16, 5), pnn.Sigmoid(), pnn.AvgPool2D(2, 2), pnn.Flatten(),
        pnn.Linear(400, 120), pnn.Sigmoid(), pnn.Linear(120, 84), pnn.Sigmoid(),
        pnn.Linear(84, 10))
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in sd.items()})
    return model, lambda X: paddle.to_tensor(X)


def median_run(runs: list) -> dict:
    """One result from several runs of a worker: per measurement, the run whose ratio is the
    median."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, list):
            pairs = sorted((run[key] for run in runs), key=lambda p: p[0] / p[1])
            out[key] = pairs[len(pairs) // 2]
    return out


def median_of(repeats: int, ours, native, rounds: int, number: int) -> tuple[float, float]:
    """:func:`interleaved` ``repeats`` times; the pair whose ratio is the median (a burst of
    another job's load moves one repetition, not the median)."""
    pairs = sorted((interleaved(ours, native, rounds, number) for _ in range(repeats)),
                   key=lambda p: p[0] / p[1])
    return pairs[len(pairs) // 2]


def bench_lenet(backend: str, quick: bool) -> dict:
    import d2lparams as d2p
    from d2lparams import chapter, init, ops, optim

    d2p.set_backend(backend)
    # one intra-op thread on both sides (the worker also runs with OMP_NUM_THREADS=1): on a
    # shared machine a second OpenMP thread waiting for a busy core costs more than it gains
    if backend == "torch":
        import torch

        torch.set_num_threads(1)
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    elif backend == "mxnet":
        import mxnet as mx

        SYNC[0] = mx.nd.waitall
    elif backend == "jax":
        jax_setup()
    rounds, repeats = (3, 1) if quick else (7, 3)
    d2p.seed(0)
    net = init.reset_(chapter.lenet(), "torch").eval()
    model, to_input = native_lenet(backend, net.state_dict())
    rng = np.random.default_rng(0)
    out: dict = {}
    for batch, key, number in ((1, "LeNet forward, batch 1", 50), (256, "LeNet forward, batch 256", 3)):
        X = rng.random((batch, 1, 28, 28), dtype=np.float32)
        ours, theirs = d2p.tensor(X), to_input(X)
        # one function, two layouts: the outputs agree (Keras' Flatten order is absorbed)
        assert np.allclose(d2p.to_numpy(net(ours)), d2p.to_numpy(
            native_forward(backend, model, theirs)()), atol=1e-5), "native LeNet differs"
        out[key] = median_of(repeats, lambda ours=ours: net(ours),
                             native_forward(backend, model, theirs), rounds, number)
        if backend == "tensorflow" and batch == 256:
            # the same layers called one by one: each conv/pool layer transposes NCHW<->NHWC
            # itself (what a custom forward pays); the Sequential chains them in NHWC instead
            def one_by_one(x=ours):
                for module in net:
                    x = module(x)
                return x

            out["LeNet forward, batch 256, layers called one by one"] = median_of(
                repeats, one_by_one, lambda x=ours: net(x), rounds, number)
    net.train()
    X = rng.random((256, 1, 28, 28), dtype=np.float32)
    y = rng.standard_normal((256, 10)).astype(np.float32)
    opt = optim.SGD(net.parameters(), lr=0.1)
    Xt, yt = d2p.tensor(X), d2p.tensor(y)

    def ours_step():
        opt.zero_grad()

        def loss():
            diff = net(Xt) - yt
            return ops.mean(diff * diff)

        return d2p.backward(loss)

    def ours_train():
        loss = ours_step()
        opt.step()
        return loss

    out["LeNet training step, batch 256"] = median_of(
        repeats, ours_train, native_lenet_step(backend, model, to_input(X), yt, 0.1), rounds, 2)
    return out


def native_lenet_step(backend, model, X, y, lr):
    """One SGD step of the native LeNet, as its users write it (MSE to ``y``)."""
    if backend == "mxnet":
        from mxnet import autograd, gluon

        trainer = gluon.Trainer(model.collect_params(), "sgd", {"learning_rate": lr})

        def step():
            with autograd.record():
                loss = ((model(X) - y) ** 2).mean()
            loss.backward()
            trainer.step(1)
            return float(loss.asscalar())

        return step

    class Holder:  # native_train_step reads ``net.native``
        native = model

    return native_train_step(backend, Holder, X, y, lr)


def bench_big(backend: str, rounds: int, groups: list) -> dict:
    """state_dict / load_state_dict and init.normal_ / init.uniform_ of a 27.3M-parameter MLP
    (``groups``: "state", "init")."""
    from d2lparams import init, nn

    out: dict = {}
    big = nn.mlp(4096, [4096, 2048], 1024)  # 27.3M parameters
    out["parameters (big)"] = big.num_parameters()
    if "state" in groups:
        out["state_dict (25M)"] = interleaved(big.state_dict,
                                              lambda: native_export(backend, big.native),
                                              max(3, rounds // 3), 1)
        sd, exported = big.state_dict(), native_export(backend, big.native)
        out["load_state_dict (25M)"] = interleaved(
            lambda: big.load_state_dict(sd), lambda: native_import(backend, big.native, exported),
            max(3, rounds // 3), 1)
    if "init" in groups:
        def ours_normal():
            for p in big.parameters():
                init.normal_(p, std=0.01)

        def ours_uniform():
            for p in big.parameters():
                init.uniform_(p, -0.1, 0.1)

        out["init.normal_ (25M)"] = interleaved(ours_normal, native_normal(backend, big), 5, 1)
        out["init.uniform_ (25M)"] = interleaved(ours_uniform, native_uniform(backend, big), 5, 1)
    return out


def bench_backend(backend: str, quick: bool, only: list | None = None) -> dict:
    import d2lparams as d2p
    from d2lparams import nn

    d2p.set_backend(backend)
    ad = d2p._registry.adapter(backend)
    if backend == "mxnet":
        import mxnet as mx

        SYNC[0] = mx.nd.waitall
    if backend == "jax":
        jax_setup()
    rounds = 5 if quick else 31
    out = {"version": ad.version()}
    # the loss rows: shorter, more numerous rounds (their best is less hostage to the load
    # of a shared machine)
    loss_rounds = 5 if quick else 61
    if only:
        if "losses" in only:
            out.update(bench_cross_entropy(backend, loss_rounds, 3))
        if "state" in only or "init" in only:
            out.update(bench_big(backend, rounds, only))
        if "compile" in only:
            out.update(bench_compile(backend, rounds))
        return out

    ident = nn.Identity().eval()
    Xs = d2p.randn(1, 4)
    out["call overhead (nn.Identity)"] = interleaved(lambda: ident(Xs), native_forward(backend, ident.native, Xs),
                                                     rounds, 1000)
    net = nn.mlp(784, [256, 256], 10).eval()
    for batch, key, number in ((1, "forward, batch 1", 500), (256, "forward, batch 256", 40)):
        X = d2p.randn(batch, 784)
        out[key] = interleaved(lambda X=X: net(X), native_forward(backend, net.native, X), rounds,
                               number // (4 if quick else 1))
    out.update(bench_big(backend, rounds, ["state", "init"]))

    net, X, y, ours_step = mlp_step()
    out["SGD training step"] = interleaved(ours_step, native_train_step(backend, net, X, y, 0.01),
                                           rounds, 10)
    if backend == "jax":
        out[JIT_ROW] = interleaved(ours_step, jax_train_step(net.native, X, y, 0.01, jax_mse,
                                                             jit=True), rounds, 10)
    out.update(bench_cross_entropy(backend, loss_rounds, 3))
    out.update(bench_compile(backend, rounds))
    return out


def import_times(backend: str, repeats: int = 3) -> dict:
    """Fresh interpreters: import d2lparams alone, d2lparams + select backend, framework alone."""
    import d2lparams as d2p

    module = d2p._registry.adapter_class(backend).import_names[0]
    codes = {
        "import d2lparams": "import d2lparams, sys; assert not {m} & set(sys.modules)",
        "d2lparams + set_backend": f"import d2lparams; d2lparams.set_backend({backend!r})",
        # mxnet 1.9.1 needs numpy.bool (removed in numpy 1.24) before its import
        "framework alone": ("import numpy; numpy.bool = bool; " if module == "mxnet" else "")
        + f"import {module}",
    }
    frameworks = {"torch", "tensorflow", "mxnet", "paddle", "keras", "jax", "flax"}
    res = {}
    for name, code in codes.items():
        code = code.replace("{m}", repr(frameworks))
        times = []
        for _ in range(repeats):
            script = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
            proc = subprocess.run([sys.executable, "-P", "-c", script], capture_output=True, text=True,
                                  env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-2000:])
            times.append(float(proc.stdout.strip().splitlines()[-1]))
        res[name] = statistics.median(times)
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (for a smoke test)")
    parser.add_argument("--lenet", action="store_true",
                        help="only the LeNet measurements (rewrites their section of the doc)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--only", nargs="+", choices=list(ONLY),
                        help="measure these rows only (losses: the cross-entropy rows; state: "
                        "state_dict and load_state_dict; init: init.normal_ and init.uniform_; "
                        "compile: net.compile() against the framework's compiler) "
                        "and update just them in docs/benchmarks.md")
    parser.add_argument("--repeat", type=int, default=1,
                        help="with --only: run each backend's worker this many times and keep, "
                        "per row, the run whose ratio is the median (a shared machine's load "
                        "moves one run, not the median); the load average is printed")
    args = parser.parse_args()
    if args.worker:
        if args.lenet:
            print(json.dumps(bench_lenet(args.worker, args.quick)))
        else:
            print(json.dumps(bench_backend(args.worker, args.quick, args.only)))
        return 0
    import d2lparams as d2p

    names = args.backends or d2p.available_backends()
    results: dict = {}
    lenet: dict = {}
    for name in names:
        if args.only:
            extra = (["--quick"] if args.quick else []) + ["--only", *args.only]
            runs = []
            for _ in range(max(1, args.repeat)):
                load = os.getloadavg()[0]
                proc = subprocess.run([sys.executable, "-P", __file__, "--worker", name] + extra,
                                      capture_output=True, text=True,
                                      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
                if proc.returncode != 0:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    return 1
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                shown = ", ".join(f"{k} {v[0] / v[1]:.2f}x" for k, v in runs[-1].items()
                                  if isinstance(v, list))
                print(f"{name} (load {load:.2f}): {shown}", file=sys.stderr)
            results[name] = median_run(runs)
            print(f"measured {name}", file=sys.stderr)
            continue
        for only_lenet in ([True] if args.lenet else [False, True]):
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
            if only_lenet:
                env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
                if name == "jax":  # XLA's CPU thread pool, one thread as the others
                    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen"
                                        "=false intra_op_parallelism_threads=1").strip()
            proc = subprocess.run(
                [sys.executable, "-P", __file__, "--worker", name]
                + (["--quick"] if args.quick else []) + (["--lenet"] if only_lenet else []),
                capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            (lenet if only_lenet else results)[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        if not args.lenet:
            results[name]["imports"] = import_times(name, 1 if args.quick else 3)
        print(f"measured {name}", file=sys.stderr)
    if args.only:
        path = os.path.join(ROOT, "docs", "benchmarks.md")
        with open(path) as fh:
            text = update_rows(fh.read(), results, [row for g in args.only for row in ONLY[g]])
        print(text)
        if not args.no_write:
            with open(path, "w") as fh:
                fh.write(text)
        return 0
    path = os.path.join(ROOT, "docs", "benchmarks.md")
    section = lenet_report(lenet)
    if args.lenet:
        with open(path) as fh:
            text = replace_section(fh.read(), section)
    else:
        text = report(results).replace(NOTES, section + "\n" + NOTES)
    print(text)
    if not args.no_write:
        with open(path, "w") as fh:
            fh.write(text)
    return 0


NOTES = """## Reading the numbers

- **Call overhead** calls `nn.Identity` on a 1×4 tensor: it isolates d2lparams' fixed cost
  per call (a dict read, a type check, the adapter call), about 0.5 µs. Everything else in a
  forward pass is the framework's own module, so at batch 1 the ratio is within the noise
  of this 2-core machine and at batch 256 it is 1.00.
- **state_dict / load_state_dict** move 27.3 M parameters (`mlp(4096, [4096, 2048], 1024)`).
  torch and mxnet store Linear weights as `(out, in)`: d2lparams makes one native-layout copy
  and returns its transposed view, so the canonical array costs a single memory copy, and
  `load_state_dict` of such an array is a plain copy again. `load_state_dict` also checks
  that every value is finite (one BLAS dot product per array, `allow_nonfinite=True` skips
  it). Both the check and the copy are passes over memory, so where the framework's copy is
  itself one fast pass the check shows. On torch (`copy_`, two threads) `load_state_dict`
  misses its target on a quiet machine: 1.81-2.16× (median 1.86×, load average 1), and
  ~1.0× with `allow_nonfinite=True`. It measured 0.87-1.09× under load from other jobs.
  The check reads every value once more (64 MB per 16 M values), which bounds the ratio from
  below at about 1.5×; d2lparams keeps it, since it is what stops a NaN from entering a model
  silently.
- **init.normal_ / init.uniform_** draw from the portable NumPy generator by the drawing rule
  of the Initialization guide (float32 uniforms, Box–Muller in float32 for the normal), so
  that one seed gives bit-identical weights on all four frameworks, then copy the canonical
  array into the framework's tensor. A 2-D parameter is filled in `(out, in)` order (the
  Initialization guide's rule), so writing it into torch's and mxnet's `(out, in)` storage
  is a plain copy; tensorflow and paddle, which store `(in, out)`, make the transposing
  copy instead and stay within target (their own initializers are slower). The
  generator's words are read in bulk, computed in cache-sized blocks and split between
  threads (one per 1 M values, at most one per core). On torch `normal_` is at 1.38-1.62×
  (median of three 1.48× at a load average of 3, 1.38× at 2.2): NumPy's float32 `log`,
  `sin` and `cos` are one pass each, where torch's kernel draws and transforms in one
  vectorized pass; it was 3.15× with float64 draws and 1.7-2.4× with the transposing copy.
  The other frameworks' own
  initializers are slower than NumPy's draw. `native=True` uses the framework's
  initializer when speed matters more than the same values everywhere.
- The init rows (every backend) and torch's state-dict rows were re-measured with `--only
  init state --repeat 3` (each cell the median of three runs) at a load average of 3-4 on
  the 2 cores, from other jobs.
- **SGD training step**: forward, `d2p.backward`, `optim.SGD.step` on `mlp(784, [256, 256],
  10)`, batch 64, against the framework's own loop (its optimizer, reading the loss as a
  float as `d2p.backward` does). The update runs in place with the framework's own tensor
  operations.
- **Cross-entropy training step**: the classifier example's MLP (784-256-10, batch 256 of
  the synthetic images) with `nn.CrossEntropyLoss`, `d2p.backward` and `optim.SGD`, against
  the framework's own loop with its own loss (`F.cross_entropy`, Keras'
  `SparseCategoricalCrossentropy(from_logits=True)`, Gluon's `SoftmaxCrossEntropyLoss`,
  Paddle's `F.cross_entropy`). **Neutral vs native** isolates the loss: the same d2lparams
  step with the neutral loss and with the framework's own. The loss rows use 61 rounds of 3
  steps; on a shared 2-core machine the same row moved by ±15 % between runs (PyTorch's,
  whose step is ~2 ms, the most), so read them with that margin. Measured alone (one thread,
  256×10 logits, forward and backward), PyTorch's `F.cross_entropy` takes ~86 µs and the
  neutral loss ~138 µs, its checks of the labels included: ~2 % of the ~2 ms step.
- The native baselines are what a user of each framework writes (`benchmarks/run.py`).
  mxnet computes asynchronously: every timed round waits for its queue on both sides.
- **JAX** is measured eagerly on both sides: d2lparams runs JAX op by op as PyTorch runs,
  and the baseline is NNX's own eager code (`nnx.value_and_grad` with
  `nnx.Optimizer(optax.sgd)`, `optax`'s integer-label cross-entropy, `nnx.state`/`nnx.update`
  for the state rows, `jax.random` draws written into each `nnx.Param` for the init rows).
  JAX dispatches asynchronously: every timed call waits for its result
  (`jax.block_until_ready`). Eager JAX is slow for small steps (~35 ms for the MLP step,
  where PyTorch takes ~8 ms); *SGD training step vs native nnx.jit* is d2lparams' eager step
  against the same NNX step compiled with `nnx.jit`: 15-30× faster. That is compilation, not
  d2lparams' overhead: `net.compile()` brings d2lparams' step to ~3× the `nnx.jit` step
  (below). `set_backend` imports flax too (the framework-alone column is `import jax`).
- **Compiled forward**: `net.compile()` (d2lparams' model, `eval()`, batch 256 of
  `mlp(784, [256, 256], 10)`) against the framework's compiler on the native model, as its
  users call it: `torch.compile(net.native)`, `tf.function` around the Keras call, the same
  hybridized Gluon block, `paddle.jit.to_static` of a function that calls the layer, and
  `nnx.jit(lambda model, x: model(x))`. d2lparams' JAX forward is a `jax.jit` of the
  variables' values, which skips the graph split that `nnx.jit` makes at every call (hence
  below 1). *SGD training step, net.compile()* is d2lparams' step (forward compiled,
  `d2p.backward` and `optim.SGD` as always) against the whole NNX step under `nnx.jit`: about
  3×, where the eager step is 15-30×; the rest is the loss, the backward pass and the
  update dispatched from Python.
"""


def _cell(results: dict, name: str, key: str) -> str:
    if key not in results.get(name, {}):
        return "—"
    ours, native = results[name][key]
    ratio, target = ours / native, TARGETS[key]
    mark = "" if target is None or ratio <= target else " (missed)"
    return f"{ratio:.2f}× ({ours * 1e3:.3g} ms vs {native * 1e3:.3g} ms){mark}"


def _row(key: str, cells: list) -> str:
    target = TARGETS[key]
    return f"| {key} | {'≤ ' + format(target, '.2f') + '×' if target else '—'} | " + " | ".join(cells) + " |"


def update_rows(text: str, results: dict, keys: list) -> str:
    """``text`` (docs/benchmarks.md) with the rows ``keys`` replaced (or added at the end of
    the table) by the new measurements; other rows and backends keep their numbers."""
    lines = text.split("\n")
    header = next(i for i, line in enumerate(lines) if line.startswith("| measurement |"))
    columns = [c.strip() for c in lines[header].strip("|").split("|")][2:]
    end = header + 2
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    for key in keys:
        old = next((i for i in range(header + 2, end) if lines[i].startswith(f"| {key} |")), None)
        cells = [_cell(results, name, key) for name in columns]
        if old is not None:
            previous = [c.strip() for c in lines[old].strip("|").split("|")][2:]
            cells = [new if new != "—" else before for new, before in zip(cells, previous)]
            lines[old] = _row(key, cells)
        else:
            lines.insert(end, _row(key, cells))
            end += 1
    text = "\n".join(lines)
    notes = text.find("## Reading the numbers")
    return text if notes < 0 else text[:notes] + NOTES


LENET_BEGIN, LENET_END = "<!-- lenet: benchmarks/run.py --lenet -->", "<!-- /lenet -->"

LENET_NOTES = """- d2lparams' `chapter.lenet()` (NCHW input on every backend) against d2l's LeNet written
  with the framework's own layers as its users write it: PyTorch and Paddle as above, Gluon
  and Keras with the activations fused into `Conv2D`/`Dense`, Keras on NHWC images (its
  native layout). Both hold the same weights and give the same outputs. The training step
  is forward, backward (MSE) and SGD at batch 256.
- Keras: TensorFlow's CPU kernels have no NCHW convolution or pooling at all ("The Conv2D op
  currently only supports the NHWC tensor format on the CPU"), so d2lparams' Keras layers
  transpose NCHW to NHWC around their kernel. Inside a `Sequential`, consecutive
  conv/pool/BatchNorm2d layers and the element-wise activations between them exchange NHWC
  tensors directly, so LeNet pays two transposes in all (the 1-channel input, and the
  16×5×5 maps before `Flatten`). *layers called one by one* calls the same layers
  separately, each transposing its input and output (what a custom `forward` calling
  conv layers pays); its ratio is against the chained `Sequential`.
- Measured on a 2-core machine shared with other jobs (LeNet only: `python benchmarks/run.py
  --lenet`); each cell is the median of three repetitions of 7 alternating rounds, each
  framework with one intra-op thread on both sides
  (`OMP_NUM_THREADS=1`, `torch.set_num_threads(1)`, TensorFlow's threading config): with
  two threads on a busy machine, an OpenMP thread waiting for the other core made torch's
  batch-1 forward 100× slower, on both sides alike. Even so, successive runs of one
  measurement differ by up to ±15% here (other jobs share the cores): a ratio that misses
  its target by less than that is not a measured overhead; rerun it on a quiet machine.
- JAX: the NNX LeNet takes NHWC images and calls `nnx.Conv`/`nnx.avg_pool`; d2lparams'
  conv and pooling layers give NCHW dimension numbers to the same XLA convolution
  (`lax.conv_general_dilated`), with no transposes of their own. XLA runs with one thread
  (`XLA_FLAGS`) on both sides. The batch-256 forward's 1.07× is within this machine's noise
  (a lone NCHW against NHWC convolution measured 0.85-1.2× in successive runs).
- Batch 1 has no target: d2lparams' LeNet has twelve layers where Gluon's and Keras' fused
  activations make eight, and a Keras layer call costs about half a millisecond eagerly.
- MXNet's training step is a measured overhead, not noise (a profile of ten steps): per step
  about 9 ms of Python on top of Gluon's ~90 ms: four more blocks in `autograd.record()`
  (the unfused sigmoids, ~0.7 ms each), PyTorch's gradients that accumulate until
  `zero_grad` (Gluon zeroes each parameter with an operator call, ~0.2 ms each; d2l's Gluon
  code overwrites instead) and one update per parameter where `Trainer.step` fuses them.
  None of it is convolution's; the conv and pooling layers are Gluon's own.
"""


def lenet_report(results: dict) -> str:
    names = list(results)
    lines = [LENET_BEGIN, "## LeNet (convolution)", "",
             "| measurement | target | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    keys = list(LENET_TARGETS) + ["LeNet forward, batch 256, layers called one by one"]
    for key in keys:
        if not any(key in results[n] for n in names):
            continue
        target = LENET_TARGETS.get(key)
        cells = []
        for n in names:
            if key not in results[n]:
                cells.append("—")
                continue
            ours, native = results[n][key]
            ratio = ours / native
            mark = "" if target is None or ratio <= target else " (missed)"
            cells.append(f"{ratio:.2f}× ({ours * 1e3:.3g} ms vs {native * 1e3:.3g} ms){mark}")
        lines.append(f"| {key} | {'≤ ' + format(target, '.2f') + '×' if target else '—'} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines + ["", LENET_NOTES, LENET_END, ""])


def replace_section(text: str, section: str) -> str:
    """``text`` with its LeNet section replaced (or added before the notes)."""
    if LENET_BEGIN in text and LENET_END in text:
        start, end = text.index(LENET_BEGIN), text.index(LENET_END) + len(LENET_END) + 1
        return text[:start] + section + text[end:]
    anchor = "## Reading the numbers"
    if anchor in text:
        return text.replace(anchor, section + "\n" + anchor)
    return text + "\n" + section


def report(results: dict) -> str:
    names = list(results)
    lines = [
        "# Benchmarks",
        "",
        "Overhead of d2lparams over each native framework, as the ratio *d2lparams time / native "
        "time*, each the best of alternating rounds in one run (`python benchmarks/run.py`). Below 1.00 the two "
        "are within noise of each other. Machine: "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}; " + ", ".join(f"{n} {results[n]['version']}" for n in names) + ".",
        "",
        "| measurement | target | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for key in TARGETS:
        lines.append(_row(key, [_cell(results, n, key) for n in names]))
    lines += ["", "Import times (fresh interpreter, median):", "",
              "| backend | `import d2lparams` | d2lparams + `set_backend` | framework alone |",
              "|---|---|---|---|"]
    for n in names:
        t = results[n]["imports"]
        lines.append(f"| {n} | {t['import d2lparams'] * 1e3:.0f} ms | {t['d2lparams + set_backend']:.2f} s | "
                     f"{t['framework alone']:.2f} s |")
    lines += ["", "`import d2lparams` imports no framework (checked in the measurement itself).", "", NOTES]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
