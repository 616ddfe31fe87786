"""Issue 11: convolution, pooling and BatchNorm2d on every backend, against a NumPy reference
(forward and gradients), with PyTorch's layouts, defaults, errors and texts."""

import math

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import init, nn, ops

import numpy_conv as R


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def close(actual, expected, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol)


CONVS = {
    "plain": dict(in_channels=4, out_channels=6, kernel_size=3),
    "strided-dilated-grouped": dict(in_channels=4, out_channels=6, kernel_size=(3, 2),
                                    stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2),
    "same-even-kernel": dict(in_channels=3, out_channels=4, kernel_size=4, padding="same",
                             dilation=(1, 2)),
    "same-odd-kernel": dict(in_channels=3, out_channels=4, kernel_size=(3, 5), padding="same"),
    "valid-depthwise-nobias": dict(in_channels=4, out_channels=8, kernel_size=3,
                                   padding="valid", groups=4, bias=False),
    "lenet-first": dict(in_channels=1, out_channels=6, kernel_size=5, padding=2),
}


@pytest.mark.parametrize("name", list(CONVS))
def test_conv2d_forward_and_gradients_match_numpy(backend, name):
    cfg = CONVS[name]
    rng = np.random.default_rng(0)
    d2p.seed(0)
    conv = nn.Conv2d(**cfg)
    sd = conv.state_dict()  # the framework's own initial values, canonical layout
    assert sd["weight"].shape == (cfg["out_channels"], cfg["in_channels"] // cfg.get("groups", 1),
                                  *pair(cfg["kernel_size"]))
    X = rng.standard_normal((2, cfg["in_channels"], 9, 8)).astype(np.float32)
    padding = cfg.get("padding", 0)
    padding = padding if isinstance(padding, str) else pair(padding)
    out, cache = R.conv2d(X, sd["weight"], sd.get("bias"), pair(cfg.get("stride", 1)), padding,
                          pair(cfg.get("dilation", 1)), cfg.get("groups", 1))
    close(d2p.to_numpy(conv(X)), out)
    G = rng.standard_normal(out.shape).astype(np.float32)
    Xt, Gt = d2p.tensor(X), d2p.tensor(G)
    d2p.backward(lambda: ops.sum(conv(Xt) * Gt))
    _, dw, db = R.conv2d_backward(G.astype(np.float64), cache)
    close(conv.weight.grad, dw, rtol=1e-4, atol=1e-4)
    if cfg.get("bias", True):
        close(conv.bias.grad, db, rtol=1e-4, atol=1e-4)
    else:
        assert conv.bias is None and list(conv.state_dict()) == ["weight"]


POOLS = [("max", 2, None, 0), ("max", 3, 2, 1), ("max", (2, 3), (1, 2), (1, 0)),
         ("avg", 2, 2, 0), ("avg", 3, 2, 1), ("avg", (3, 2), 1, (1, 1))]


@pytest.mark.parametrize("mode, kernel, stride, padding", POOLS)
def test_pooling_forward_and_gradients_match_numpy(backend, mode, kernel, stride, padding):
    rng = np.random.default_rng(1)
    cls = nn.MaxPool2d if mode == "max" else nn.AvgPool2d
    conv = nn.Conv2d(3, 3, 1)  # a parameter before the pool, to see its backward
    net = nn.Sequential(conv, cls(kernel, stride, padding))
    X = rng.standard_normal((2, 3, 7, 8)).astype(np.float32)
    sd = conv.state_dict()
    a, cc = R.conv2d(X, sd["weight"], sd["bias"])
    k, p = pair(kernel), pair(padding)
    s = k if stride is None else pair(stride)
    out, pc = R.pool2d(a, k, s, p, mode)
    close(d2p.to_numpy(net(X)), out)
    close(d2p.to_numpy(net[1](a.astype(np.float32))), out)
    G = rng.standard_normal(out.shape).astype(np.float32)
    Xt, Gt = d2p.tensor(X), d2p.tensor(G)
    d2p.backward(lambda: ops.sum(net(Xt) * Gt))
    _, dw, db = R.conv2d_backward(R.pool2d_backward(G.astype(np.float64), pc), cc)
    close(conv.weight.grad, dw, atol=1e-4)
    close(conv.bias.grad, db, atol=1e-4)


@pytest.mark.parametrize("size", [1, (1, 1), (2, 3), (3, 3), (4, 2)])
def test_adaptive_avg_pool_matches_numpy(backend, size):
    rng = np.random.default_rng(2)
    conv = nn.Conv2d(2, 3, 1)
    net = nn.Sequential(conv, nn.AdaptiveAvgPool2d(size))
    X = rng.standard_normal((2, 2, 7, 5)).astype(np.float32)
    sd = conv.state_dict()
    a, cc = R.conv2d(X, sd["weight"], sd["bias"])
    out = R.adaptive_avg_pool2d(a, pair(size))
    close(d2p.to_numpy(net(X)), out)
    G = rng.standard_normal(out.shape).astype(np.float32)
    Xt, Gt = d2p.tensor(X), d2p.tensor(G)
    d2p.backward(lambda: ops.sum(net(Xt) * Gt))
    _, dw, db = R.conv2d_backward(R.adaptive_avg_pool2d_backward(G.astype(np.float64), a.shape), cc)
    close(conv.weight.grad, dw, atol=1e-4)
    close(conv.bias.grad, db, atol=1e-4)


def test_batchnorm2d_train_eval_running_stats_and_gradients(backend):
    rng = np.random.default_rng(9)
    bn = nn.BatchNorm2d(3, momentum=0.2)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var"]
    gamma, beta = rng.random(3).astype(np.float32) + 0.5, rng.random(3).astype(np.float32)
    bn.weight.set(gamma)
    bn.bias.set(beta)
    g4, b4 = gamma[None, :, None, None], beta[None, :, None, None]
    rm, rv = np.zeros(3), np.ones(3)
    for _ in range(3):
        X = (rng.standard_normal((4, 3, 5, 6)) * 2 + 1).astype(np.float32)
        mean, var = X.mean((0, 2, 3)), X.var((0, 2, 3))
        xhat = (X - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
        close(d2p.to_numpy(bn(X)), xhat * g4 + b4, atol=1e-4)
        rm = 0.8 * rm + 0.2 * mean
        rv = 0.8 * rv + 0.2 * X.var((0, 2, 3), ddof=1)
    close(d2p.to_numpy(bn.running_mean), rm, rtol=1e-5, atol=1e-6)
    close(dict(bn.named_buffers())["running_var"], rv, rtol=1e-5)
    G = rng.standard_normal(X.shape).astype(np.float32)
    bn.zero_grad()
    d2p.backward(lambda: ops.sum(bn(d2p.tensor(X)) * d2p.tensor(G)))
    close(bn.weight.grad, (xhat * G).sum((0, 2, 3)), atol=1e-3)
    close(bn.bias.grad, G.sum((0, 2, 3)), atol=1e-4)
    bn.eval()
    X = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    stats = bn.state_dict()
    expected = (X - stats["running_mean"][None, :, None, None]) / np.sqrt(
        stats["running_var"][None, :, None, None] + 1e-5) * g4 + b4
    close(d2p.to_numpy(bn(X)), expected, atol=1e-4)
    after = bn.state_dict()
    for key in ("running_mean", "running_var"):
        np.testing.assert_array_equal(after[key], stats[key])


def test_lazy_conv2d_learns_in_channels(backend):
    rng = np.random.default_rng(3)
    conv = nn.LazyConv2d(6, 3, padding=1)
    assert type(conv) is nn.Conv2d and conv.in_channels is None
    with pytest.raises(d2p.DeferredInitializationError, match="first call"):
        _ = conv.weight
    X = rng.standard_normal((2, 5, 6, 6)).astype(np.float32)
    y = d2p.to_numpy(conv(X))
    assert conv.in_channels == 5 and conv.weight.shape == (6, 5, 3, 3)
    sd = conv.state_dict()
    close(y, R.conv2d(X, sd["weight"], sd["bias"], padding=(1, 1))[0])
    assert repr(conv) == "Conv2d(5, 6, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    net = nn.Sequential(nn.LazyConv2d(4, 3), nn.ReLU(), nn.LazyConv2d(2, 1)).materialize((1, 7, 8, 8))
    assert [p.shape for p in net.parameters()] == [(4, 7, 3, 3), (4,), (2, 4, 1, 1), (2,)]


# What each framework stores for Conv2d(4, 6, (3, 2)): the framework's own layout, and the
# axes that turn the canonical (out, in, kh, kw) array into it.
NATIVE_CONV_LAYOUT = {
    "torch": ((6, 4, 3, 2), (0, 1, 2, 3)),
    "tensorflow": ((3, 2, 4, 6), (2, 3, 1, 0)),
    "mxnet": ((6, 4, 3, 2), (0, 1, 2, 3)),
    "paddle": ((6, 4, 3, 2), (0, 1, 2, 3)),
    "jax": ((3, 2, 4, 6), (2, 3, 1, 0)),
}


def test_conv_weight_layout_is_canonical_and_native_shape_is_the_frameworks(backend):
    native_shape, axes = NATIVE_CONV_LAYOUT[backend]
    conv = nn.Conv2d(4, 6, (3, 2))
    w = conv.weight
    assert w.shape == (6, 4, 3, 2) and w.native_shape == native_shape
    value = np.arange(w.numel(), dtype=np.float32).reshape(w.shape)
    w.set(value)
    np.testing.assert_array_equal(d2p.to_numpy(w.native), value.transpose(axes))
    np.testing.assert_array_equal(w.numpy(), value)
    np.testing.assert_array_equal(d2p.to_numpy(w.value()), value)  # a native tensor, canonical
    w[1, 2, 0, 1] = -1.0
    value[1, 2, 0, 1] = -1.0
    np.testing.assert_array_equal(d2p.to_numpy(w.native), value.transpose(axes))
    if native_shape != w.shape:
        with pytest.raises(ValueError, match=r"framework's own layout .*transpose\(3, 2, 0, 1\)"):
            w.set(value.transpose(axes))
        np.testing.assert_array_equal(w.numpy(), value)


# Each framework's own default for a new Conv2d, as its backend declares it (init.default_scheme)
NATIVE_CONV_DEFAULT = {
    "torch": ("U(±1/√fan_in)", "U(±1/√fan_in)"),
    "tensorflow": ("Glorot uniform U(±√(6/(fan_in+fan_out)))", "zeros"),
    "mxnet": ("U(±0.07)", "zeros"),
    "paddle": ("N(0, 2/fan_in)", "zeros"),
    "jax": ("LeCun normal, truncated at ±2σ: std √(1/fan_in)", "zeros"),
}


def test_native_default_init_of_conv_is_the_declared_scheme(backend):
    scheme = init.default_scheme(backend)
    weight_rule, bias_rule = scheme.rule("conv2d")
    assert (weight_rule.describe(), bias_rule.describe()) == NATIVE_CONV_DEFAULT[backend]
    assert "conv2d: weight" in str(scheme)
    d2p.seed(0)
    conv = nn.Conv2d(64, 1024, 3)
    fan_in, fan_out = 64 * 9, 1024 * 9
    rng = np.random.default_rng(0)
    for p, rule in ((conv.weight, weight_rule), (conv.bias, bias_rule)):
        drawn = p.numpy().astype(np.float64).ravel()
        ref = np.asarray(rule((200_000,), fan_in, fan_out, rng), np.float64)
        quantiles = [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99]
        scale = max(ref.std(), 1e-12)
        if ref.std() == 0:
            assert not drawn.any()
        else:
            got, want = np.quantile(drawn, quantiles), np.quantile(ref, quantiles)
            assert np.abs(got - want).max() / scale < 0.15, (got, want)


def test_reset_draws_pytorch_fans_for_conv_from_the_portable_generator(backend):
    net = nn.Sequential(nn.Conv2d(4, 6, (3, 5), groups=2), nn.ReLU(), nn.Flatten(),
                        nn.LazyLinear(3))
    net.materialize((1, 4, 6, 7))
    for scheme in ("torch", "tensorflow", "mxnet", "paddle"):
        d2p.seed(11)
        init.reset_(net, scheme)
        rng = np.random.default_rng(11)
        rules = init.default_scheme(scheme)
        w_rule, b_rule = rules.rule("conv2d")
        fan_in, fan_out = 2 * 15, 6 * 15  # (out, in/groups, kh, kw): PyTorch's fans
        w = np.asarray(w_rule((6, 2, 3, 5), fan_in, fan_out, rng), np.float32)
        b = np.asarray(b_rule((6,), fan_in, fan_out, rng), np.float32)
        np.testing.assert_array_equal(net[0].weight.numpy(), w)
        np.testing.assert_array_equal(net[0].bias.numpy(), b)


def test_native_init_uses_pytorch_fans_for_conv_weights(backend):
    conv = nn.Conv2d(16, 32, (3, 5), groups=2)
    fan_in, fan_out = 8 * 15, 32 * 15
    checks = [
        (lambda p: init.kaiming_uniform_(p, nonlinearity="relu", native=True),
         "uniform", math.sqrt(2) * math.sqrt(3 / fan_in)),
        (lambda p: init.kaiming_normal_(p, mode="fan_out", nonlinearity="relu", native=True),
         "normal", math.sqrt(2 / fan_out)),
        (lambda p: init.xavier_uniform_(p, native=True),
         "uniform", math.sqrt(6 / (fan_in + fan_out))),
        (lambda p: init.xavier_normal_(p, gain=2.0, native=True),
         "normal", 2.0 * math.sqrt(2 / (fan_in + fan_out))),
    ]
    for fill, kind, size in checks:
        fill(conv.weight)
        w = conv.weight.numpy()
        if kind == "uniform":
            assert size * 0.97 < np.abs(w).max() <= size * (1 + 1e-6)
            assert abs(w.std() - size / math.sqrt(3)) < 0.05 * size / math.sqrt(3)
        else:
            assert abs(w.std() - size) < 0.05 * size, (w.std(), size)
    # and portably: the same draws on every backend
    d2p.seed(4)
    init.kaiming_uniform_(conv.weight, nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / fan_in)
    u = np.random.default_rng(4).random((32, 8, 3, 5), dtype=np.float32)  # the float32 rule
    expected = u * np.float32(2 * bound) + np.float32(-bound)
    np.testing.assert_array_equal(conv.weight.numpy(), expected)


def test_shape_errors_name_the_layer_and_change_nothing(backend):
    conv = nn.Conv2d(1, 6, 5, padding=2)
    pattern = r"Conv2d\(1, 6, kernel_size=\(5, 5\), stride=\(1, 1\), padding=\(2, 2\)\)"
    with pytest.raises(ValueError, match=pattern + r" expects input of shape \(N, 1, H, W\), "
                       r"got \(2, 3, 28, 28\): 3 channels.*LazyConv2d"):
        conv(np.zeros((2, 3, 28, 28), np.float32))
    with pytest.raises(ValueError, match=pattern + r" expects a 4-D input.*\(1, 28, 28\).*batch"):
        conv(np.zeros((1, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"Conv2d\(3, 6.* H >= 5 and W >= 5 .*got \(2, 3, 4, 9\)"):
        nn.Conv2d(3, 6, 5)(np.zeros((2, 3, 4, 9), np.float32))
    # deep in a network: the second conv is named
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
                        nn.Conv2d(5, 16, 5))
    with pytest.raises(ValueError, match=r"Conv2d\(5, 16.*\(N, 5, H, W\), got \(2, 6, 14, 14\)"):
        net(np.zeros((2, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"MaxPool2d\(kernel_size=3.*H >= 3 and W >= 3"):
        nn.MaxPool2d(3)(np.zeros((1, 1, 2, 2), np.float32))
    # a lazy layer given a bad first input stays unbuilt
    lazy = nn.LazyConv2d(4, 3)
    with pytest.raises(ValueError, match="4-D"):
        lazy(np.zeros((3, 8, 8), np.float32))
    assert lazy.in_channels is None
    lazy(np.zeros((1, 2, 8, 8), np.float32))
    assert lazy.weight.shape == (4, 2, 3, 3)
    # batch norm statistics untouched by a rejected input
    bn = nn.BatchNorm2d(3)
    before = bn.state_dict()
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3, .*\(N, 3, H, W\), got \(4, 5, 2, 2\)"):
        bn(np.ones((4, 5, 2, 2), np.float32))
    with pytest.raises(ValueError, match="4-D"):
        bn(np.ones((4, 3, 2), np.float32))
    for k, v in bn.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_bad_arguments_are_refused_at_construction(backend):
    cases = [
        (lambda: nn.Conv2d(4, 6, 3, stride=2, padding="same"), "strided"),
        (lambda: nn.Conv2d(5, 6, 3, groups=2), "divisible by groups"),
        (lambda: nn.Conv2d(4, 6, 0), "kernel_size must be >= 1"),
        (lambda: nn.Conv2d(4, 6, (3, 3, 3)), "pair"),
        (lambda: nn.Conv2d(4, 6, 3, padding="full"), "'same' or 'valid'"),
        (lambda: nn.Conv2d(4, 6, 3, padding=-1), "padding must be >= 0"),
        (lambda: nn.MaxPool2d(2, padding=2), "at most half"),
        (lambda: nn.AvgPool2d(3, stride=0), "stride must be >= 1"),
        (lambda: nn.AdaptiveAvgPool2d(0), "output_size must be >= 1"),
        (lambda: nn.BatchNorm2d(3, momentum=2), "momentum"),
    ]
    for build, message in cases:
        with pytest.raises(ValueError, match=message):
            build()


def test_reprs_are_pytorchs(backend):
    # PyTorch 2.13's own texts for the same layers
    assert repr(nn.Conv2d(1, 6, 5, padding=2)) == \
        "Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))"
    assert repr(nn.Conv2d(4, 6, (3, 5), stride=2, padding=1, dilation=2, groups=2, bias=False)) \
        == ("Conv2d(4, 6, kernel_size=(3, 5), stride=(2, 2), padding=(1, 1), dilation=(2, 2), "
            "groups=2, bias=False)")
    assert repr(nn.Conv2d(4, 6, 3, padding="same")) == \
        "Conv2d(4, 6, kernel_size=(3, 3), stride=(1, 1), padding=same)"
    assert repr(nn.MaxPool2d(2)) == \
        "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
    assert repr(nn.AvgPool2d(2, 2)) == "AvgPool2d(kernel_size=2, stride=2, padding=0)"
    assert not isinstance(nn.AvgPool2d(2), nn.MaxPool2d)
    assert repr(nn.AvgPool2d((2, 3), (1, 2), (1, 0))) == \
        "AvgPool2d(kernel_size=(2, 3), stride=(1, 2), padding=(1, 0))"
    assert repr(nn.AdaptiveAvgPool2d(1)) == "AdaptiveAvgPool2d(output_size=1)"
    assert repr(nn.AdaptiveAvgPool2d((1, 1))) == "AdaptiveAvgPool2d(output_size=(1, 1))"
    assert repr(nn.BatchNorm2d(6)) == ("BatchNorm2d(6, eps=1e-05, momentum=0.1, affine=True, "
                                       "bias=True, track_running_stats=True)")


def test_functional_ops_match_numpy_and_differentiate(backend):
    rng = np.random.default_rng(5)
    w0 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    b0 = rng.standard_normal(4).astype(np.float32)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(w0)
            self.bias = nn.Parameter(b0)

        def forward(self, X):
            h = ops.conv2d(X, self.weight, self.bias, stride=1, padding=1)
            return ops.avg_pool2d(ops.max_pool2d(h, 2), 3, stride=1, padding=1)

    net = Net()
    X = rng.standard_normal((2, 3, 8, 6)).astype(np.float32)
    a, cc = R.conv2d(X, w0, b0, padding=(1, 1))
    m, mc = R.pool2d(a, (2, 2), (2, 2), (0, 0), "max")
    out, ac = R.pool2d(m, (3, 3), (1, 1), (1, 1), "avg")
    close(d2p.to_numpy(net(X)), out)
    G = rng.standard_normal(out.shape).astype(np.float32)
    d2p.backward(lambda: ops.sum(net(d2p.tensor(X)) * d2p.tensor(G)))
    ga = R.pool2d_backward(R.pool2d_backward(G.astype(np.float64), ac), mc)
    _, dw, db = R.conv2d_backward(ga, cc)
    close(net.weight.grad, dw, atol=1e-4)
    close(net.bias.grad, db, atol=1e-4)
    # a Conv2d's weight (any native layout) in ops.conv2d, grouped, "same"
    conv = nn.Conv2d(4, 6, 4, padding="same", groups=2)
    Y = rng.standard_normal((1, 4, 5, 5)).astype(np.float32)
    expected = R.conv2d(Y, conv.weight.numpy(), conv.bias.numpy(), padding="same", groups=2)[0]
    close(d2p.to_numpy(ops.conv2d(d2p.tensor(Y), conv.weight, conv.bias, padding="same",
                                  groups=2)), expected)
    close(d2p.to_numpy(conv(Y)), expected)
    with pytest.raises(ValueError, match=r"ops.conv2d .*\(N, 3, H, W\), got \(2, 4, 8, 6\)"):
        ops.conv2d(d2p.tensor(np.zeros((2, 4, 8, 6))), net.weight)
    with pytest.raises(ValueError, match="bias of shape"):
        ops.conv2d(d2p.tensor(X), net.weight, conv.bias)


# A model written with each framework's own layers, as its users write them: the layers
# d2p.wrap maps to neutral ones, and the axes from the canonical weight to the native one.
def _torch_model():
    from torch import nn as tnn

    model = tnn.Sequential(tnn.Conv2d(3, 10, 3), tnn.MaxPool2d(2), tnn.AvgPool2d(2, padding=1),
                           tnn.AdaptiveAvgPool2d(1), tnn.BatchNorm2d(10))
    return model, model[0].weight


def _keras_model():
    import keras

    L = keras.layers
    model = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(10, 3), L.MaxPooling2D(2),
                              L.AveragePooling2D(2), L.GlobalAveragePooling2D(keepdims=True)])
    return model, model.layers[0].kernel


def _gluon_model():
    from mxnet import gluon

    model = gluon.nn.Sequential()
    model.add(gluon.nn.Conv2D(10, 3, in_channels=3), gluon.nn.MaxPool2D(2),
              gluon.nn.AvgPool2D(2, padding=1), gluon.nn.GlobalAvgPool2D())
    model.initialize()
    return model, model[0].weight


def _paddle_model():
    import paddle

    pnn = paddle.nn
    model = pnn.Sequential(pnn.Conv2D(3, 10, 3), pnn.MaxPool2D(2),
                           pnn.AvgPool2D(2, padding=1, exclusive=False),
                           pnn.AdaptiveAvgPool2D(1), pnn.BatchNorm2D(10))
    return model, model[0].weight


def _nnx_model():
    from functools import partial

    import jax.numpy as jnp
    from flax import nnx

    model = nnx.Sequential(nnx.Conv(3, 10, (3, 3), padding="VALID", rngs=nnx.Rngs(0)),
                           partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2)),
                           partial(nnx.avg_pool, window_shape=(2, 2), strides=(2, 2)),
                           partial(jnp.mean, axis=(1, 2), keepdims=True))
    return model, model.layers[0].kernel


NATIVE_MODELS = {
    "torch": (_torch_model, (0, 1, 2, 3), "BatchNorm2d"),
    "tensorflow": (_keras_model, (2, 3, 1, 0), None),
    "mxnet": (_gluon_model, (0, 1, 2, 3), None),
    "paddle": (_paddle_model, (0, 1, 2, 3), "BatchNorm2d"),
    "jax": (_nnx_model, (2, 3, 1, 0), None),
}


def test_wrap_maps_native_conv_and_pooling_layers(backend):
    build, axes, last = NATIVE_MODELS[backend]
    d2p.seed(0)
    model, kernel = build()
    view = d2p.wrap(model)
    expected = ["Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"] + ([last] if last else [])
    assert [type(m).__name__ for m in view] == expected
    conv = view[0]
    assert repr(conv) == "Conv2d(3, 10, kernel_size=(3, 3), stride=(1, 1))"
    assert conv.weight.shape == (10, 3, 3, 3) and conv.weight.native is kernel
    native = d2p.to_numpy(kernel)
    np.testing.assert_array_equal(conv.weight.numpy().transpose(axes), native)
    assert [n for n, _ in view.named_parameters()][:2] == ["0.weight", "0.bias"]
    conv.weight[0, 1, 2, 0] = 7.0  # writes through the shared native kernel
    assert d2p.to_numpy(kernel)[tuple(np.array((0, 1, 2, 0))[list(axes)])] == 7.0
    if last:
        assert [n for n, _ in view.named_buffers()] == ["4.running_mean", "4.running_var"]


def test_frozen_conv_weight_and_momentum_state_in_the_canonical_layout(backend):
    from d2lparams import optim

    rng = np.random.default_rng(8)
    conv = nn.Conv2d(3, 4, (3, 2), padding=1)
    before = conv.weight.numpy()
    conv.weight.requires_grad = False
    X = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    out, cache = R.conv2d(X, before, conv.bias.numpy(), padding=(1, 1))
    G = rng.standard_normal(out.shape).astype(np.float32)
    opt = optim.SGD(conv.parameters(), lr=0.1, momentum=0.9)
    d2p.backward(lambda: ops.sum(conv(d2p.tensor(X)) * d2p.tensor(G)))
    assert conv.weight.grad is None
    close(conv.bias.grad, G.sum((0, 2, 3)), atol=1e-4)  # the bias still learns
    opt.step()
    np.testing.assert_array_equal(conv.weight.numpy(), before)
    conv.weight.requires_grad = True
    opt.zero_grad()
    d2p.backward(lambda: ops.sum(conv(d2p.tensor(X)) * d2p.tensor(G)))
    _, dw, _ = R.conv2d_backward(G.astype(np.float64), cache)
    close(conv.weight.grad, dw, atol=1e-4)
    opt.step()
    state = opt.state_dict()["state"]
    close(state[0]["momentum_buffer"], dw, atol=1e-4)  # canonical (out, in, kh, kw)
    twin = nn.Conv2d(3, 4, (3, 2), padding=1)
    twin_opt = optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    twin_opt.load_state_dict(opt.state_dict())
    close(twin_opt.state_dict()["state"][0]["momentum_buffer"], state[0]["momentum_buffer"],
          rtol=0, atol=0)
