"""Issue 13: tensor dtypes, gradients with respect to inputs (``requires_grad=True``
tensors, ``d2p.grad_of``, ``d2p.grad``, ``d2p.zero_grad``), ``d2p.detach``, and
``d2p.backward(fn, gradient=...)``; PyTorch's autograd tutorial (seed 004) on every backend,
against NumPy and, on the torch backend, against PyTorch itself."""

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import nn, ops

RTOL, ATOL = 1e-5, 1e-6


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("dtype,numpy", [("float32", np.float32), ("int64", np.int64),
                                         ("int32", np.int32), ("bool", np.bool_),
                                         (np.int64, np.int64), (None, np.float32)])
def test_tensor_dtypes(backend, dtype, numpy):
    x = d2p.tensor([[1, 0, 2]], dtype=dtype)
    value = d2p.to_numpy(x)
    assert value.dtype == numpy
    np.testing.assert_array_equal(value, np.array([[1, 0, 2]]).astype(numpy))
    assert d2p.backend_of(x) == backend


def test_floats_stay_the_default_and_zeros_ones_take_a_dtype(backend):
    assert d2p.to_numpy(d2p.tensor([1, 2])).dtype == np.float32
    assert d2p.to_numpy(d2p.tensor(np.arange(3))).dtype == np.float32
    assert d2p.to_numpy(d2p.zeros(2, 3, dtype="int64")).dtype == np.int64
    np.testing.assert_array_equal(d2p.to_numpy(d2p.ones(2, dtype="bool")), [True, True])
    labels = d2p.tensor(d2p.tensor([1.7, 2.2]), dtype="int64")  # a native tensor converts
    np.testing.assert_array_equal(d2p.to_numpy(labels), [1, 2])


@pytest.mark.parametrize("make", ["tensor", "rand", "randn", "zeros", "ones"])
def test_input_gradients_accumulate_like_parameters(backend, make):
    d2p.seed(0)
    if make == "tensor":
        x = d2p.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    else:
        x = getattr(d2p, make)(2, 3, requires_grad=True)
    x_np = d2p.to_numpy(x).astype(np.float64)
    assert d2p.grad_of(x) is None
    for calls in (1, 2):
        loss = d2p.backward(lambda: ops.sum(x * x * 3.0))
        np.testing.assert_allclose(loss, 3 * (x_np**2).sum(), rtol=RTOL)
        np.testing.assert_allclose(d2p.grad_of(x), calls * 6 * x_np, rtol=RTOL, atol=ATOL)
    d2p.zero_grad(x)
    assert d2p.grad_of(x) is None
    d2p.backward(lambda: ops.sum(ops.exp(x)))
    np.testing.assert_allclose(d2p.grad_of(x), np.exp(x_np), rtol=RTOL)


def test_inputs_and_parameters_get_their_gradients_in_one_backward(backend):
    net = nn.Linear(3, 2)
    W, b = net.weight.numpy().astype(np.float64), net.bias.numpy().astype(np.float64)
    X_np = np.random.default_rng(0).standard_normal((4, 3))
    X = d2p.tensor(X_np, requires_grad=True)
    d2p.backward(lambda: ops.sum(net(X) ** 2))
    out = X_np @ W + b
    np.testing.assert_allclose(d2p.grad_of(X), 2 * out @ W.T, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(net.weight.grad, X_np.T @ (2 * out), rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(d2p.grad_of(net.bias), (2 * out).sum(0), rtol=RTOL, atol=1e-5)


def test_grad_returns_gradients_in_input_order_and_touches_no_grad(backend):
    net = nn.Linear(3, 2)
    W, b = net.weight.numpy().astype(np.float64), net.bias.numpy().astype(np.float64)
    X_np = np.random.default_rng(1).standard_normal((4, 3))
    X = d2p.tensor(X_np, requires_grad=True)
    unused = d2p.tensor([1.0, 2.0], requires_grad=True)
    d2p.backward(lambda: ops.sum(net(X)))  # something accumulated already
    before = (net.weight.grad.copy(), net.bias.grad.copy(), d2p.grad_of(X).copy())

    gb, gX, gW, gu = d2p.grad(lambda: ops.sum(net(X) ** 2), [net.bias, X, net.weight, unused])
    out = X_np @ W + b
    np.testing.assert_allclose(gb, (2 * out).sum(0), rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(gX, 2 * out @ W.T, rtol=RTOL, atol=1e-5)
    assert gW.shape == (3, 2)  # canonical (in, out) whatever the framework stores
    np.testing.assert_allclose(gW, X_np.T @ (2 * out), rtol=RTOL, atol=1e-5)
    np.testing.assert_array_equal(gu, np.zeros(2))  # fn() does not depend on it
    assert all(isinstance(g, np.ndarray) for g in (gb, gX, gW, gu))
    for kept, now in zip(before, (net.weight.grad, net.bias.grad, d2p.grad_of(X))):
        np.testing.assert_array_equal(now, kept)
    assert d2p.grad_of(unused) is None
    # a single input gives a 1-tuple, as torch.autograd.grad does
    (g,) = d2p.grad(lambda: ops.sum(X * 2.0), X)
    np.testing.assert_allclose(g, np.full((4, 3), 2.0))


def test_grad_with_a_non_scalar_output_and_an_explicit_gradient(backend):
    x_np = np.array([[1.0, -2.0], [0.5, 3.0]])
    x = d2p.tensor(x_np, requires_grad=True)
    g = np.array([[1.0, 2.0], [3.0, 4.0]])
    (gx,) = d2p.grad(lambda: x * x, [x], gradient=g)
    np.testing.assert_allclose(gx, 2 * x_np * g, rtol=RTOL)
    assert d2p.grad_of(x) is None


def test_detach_stops_the_gradient(backend):
    x_np = np.array([1.0, 2.0, 3.0])
    x = d2p.tensor(x_np, requires_grad=True)
    d2p.backward(lambda: ops.sum(d2p.detach(x) * x))
    np.testing.assert_allclose(d2p.grad_of(x), x_np, rtol=RTOL)  # not 2x
    (g,) = d2p.grad(lambda: ops.sum(d2p.detach(x * x)) + ops.sum(x), [x])
    np.testing.assert_allclose(g, np.ones(3))
    p = nn.Parameter(x_np)
    (g,) = d2p.grad(lambda: ops.sum(d2p.detach(p) * p), [p])
    np.testing.assert_allclose(g, x_np, rtol=RTOL)
    np.testing.assert_allclose(d2p.to_numpy(d2p.detach(p)), x_np)


def _tutorial(x, y, w, b, inp):
    """PyTorch's autograd tutorial in d2lparams: returns what it prints."""
    out = {}
    out["loss"] = d2p.backward(
        lambda: ops.binary_cross_entropy_with_logits(ops.matmul(x, w) + b, y))
    out["w.grad"], out["b.grad"] = d2p.grad_of(w), d2p.grad_of(b)
    z_det = d2p.detach(ops.matmul(x, w) + b)
    out["z_det"] = d2p.to_numpy(z_det)

    def f():
        return ops.transpose(ops.pow(inp + 1, 2), 0, 1)

    ones = ops.ones_like(f())
    d2p.backward(f, gradient=ones)
    out["first call"] = d2p.grad_of(inp)
    d2p.backward(f, gradient=ones)
    out["second call"] = d2p.grad_of(inp)
    d2p.zero_grad(inp)
    d2p.backward(f, gradient=ones)
    out["after zeroing"] = d2p.grad_of(inp)
    return out


def test_pytorch_autograd_tutorial_matches_numpy(backend):
    d2p.seed(4)
    x, y = d2p.ones(5), d2p.zeros(3)
    w, b = d2p.randn(5, 3, requires_grad=True), d2p.randn(3, requires_grad=True)
    W, B = d2p.to_numpy(w).astype(np.float64), d2p.to_numpy(b).astype(np.float64)
    inp = ops.eye(4, 5, requires_grad=True)
    out = _tutorial(x, y, w, b, inp)
    z = np.ones(5) @ W + B
    np.testing.assert_allclose(out["loss"], (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))).mean(),
                               rtol=RTOL)
    dz = sigmoid(z) / 3
    np.testing.assert_allclose(out["w.grad"], np.outer(np.ones(5), dz), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["b.grad"], dz, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["z_det"], z, rtol=RTOL, atol=ATOL)
    once = 2 * (np.eye(4, 5) + 1)
    np.testing.assert_allclose(out["first call"], once)
    np.testing.assert_allclose(out["second call"], 2 * once)
    np.testing.assert_allclose(out["after zeroing"], once)


def test_pytorch_autograd_tutorial_matches_pytorch(backend):
    if backend != "torch":
        pytest.skip("runs the tutorial with PyTorch itself in the torch backend's process")
    torch = pytest.importorskip("torch", reason="compares with PyTorch itself")
    d2p.seed(4)
    x, y = d2p.ones(5), d2p.zeros(3)
    w, b = d2p.randn(5, 3, requires_grad=True), d2p.randn(3, requires_grad=True)
    W, B = d2p.to_numpy(w), d2p.to_numpy(b)
    out = _tutorial(x, y, w, b, ops.eye(4, 5, requires_grad=True))
    # the tutorial, verbatim
    tx, ty = torch.ones(5), torch.zeros(3)
    tw, tb = torch.tensor(W, requires_grad=True), torch.tensor(B, requires_grad=True)
    z = torch.matmul(tx, tw) + tb
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, ty)
    loss.backward()
    np.testing.assert_allclose(out["loss"], loss.item(), rtol=1e-6)
    np.testing.assert_allclose(out["w.grad"], tw.grad.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out["b.grad"], tb.grad.numpy(), rtol=1e-6, atol=1e-7)
    inp = torch.eye(4, 5, requires_grad=True)
    result = (inp + 1).pow(2).t()
    result.backward(torch.ones_like(result), retain_graph=True)
    np.testing.assert_array_equal(out["first call"], inp.grad.numpy())
    result.backward(torch.ones_like(result), retain_graph=True)
    np.testing.assert_array_equal(out["second call"], inp.grad.numpy())
    inp.grad.zero_()
    result.backward(torch.ones_like(result), retain_graph=True)
    np.testing.assert_array_equal(out["after zeroing"], inp.grad.numpy())


def test_no_grad_inside_the_function(backend):
    x_np = np.array([1.0, 2.0])
    x = d2p.tensor(x_np, requires_grad=True)

    def fn():
        with d2p.no_grad():
            c = x * 2.0
        return ops.sum(c * x)

    d2p.backward(fn)
    np.testing.assert_allclose(d2p.grad_of(x), 2 * x_np)


# -- bad input: a clear error, nothing changed -----------------------------------------------
def test_bad_dtype_and_requires_grad_arguments(backend):
    with pytest.raises(ValueError, match=r"unsupported dtype 'complex64'.*'float32'.*'int64'"):
        d2p.tensor([1.0], dtype="complex64")
    with pytest.raises(ValueError, match=r"only floating-point tensors can require a gradient"):
        d2p.tensor([1, 2], dtype="int64", requires_grad=True)
    with pytest.raises(TypeError, match="requires_grad takes True or False"):
        d2p.tensor([1.0], requires_grad="yes")
    with pytest.raises(ValueError, match="only floating-point"):
        d2p.zeros(2, dtype="bool", requires_grad=True)


def test_gradients_of_tensors_that_keep_none_are_explained(backend):
    plain = d2p.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match=r"does not require a gradient.*requires_grad=True"):
        d2p.grad_of(plain)
    x = d2p.tensor([1.0, 2.0], requires_grad=True)
    computed = x * 2.0
    with pytest.raises(ValueError, match=r"not a tensor computed from it"):
        d2p.grad_of(computed)
    with pytest.raises(TypeError, match=r"requires_grad=True or an nn\.Parameter"):
        d2p.grad_of(np.ones(2))
    with pytest.raises(ValueError, match="does not require a gradient"):
        d2p.zero_grad(x, plain)  # checked first: x keeps nothing to lose, but is not touched


def test_bad_grad_calls_change_nothing(backend):
    x = d2p.tensor([1.0, 2.0], requires_grad=True)
    frozen = nn.Parameter([1.0, 2.0], requires_grad=False)
    d2p.backward(lambda: ops.sum(x * 3.0))
    ran = []

    def fn():
        ran.append(1)
        return ops.sum(x * frozen)

    with pytest.raises(ValueError, match=r"input 1.*frozen; set p\.requires_grad = True"):
        d2p.grad(fn, [x, frozen])
    with pytest.raises(ValueError, match=r"input 1.*does not require a gradient"):
        d2p.grad(fn, [x, d2p.tensor([1.0])])
    with pytest.raises(TypeError, match=r"d2p\.grad takes a function"):
        d2p.grad(ops.sum(x), [x])
    with pytest.raises(ValueError, match="at least one input"):
        d2p.grad(fn, [])
    with pytest.raises(ValueError, match="gradient= holds NaN"):
        d2p.grad(fn, [x], gradient=np.array(np.nan))
    assert not ran
    with pytest.raises(ValueError, match=r"needs a scalar loss.*gradient="):
        d2p.grad(lambda: x * 2.0, [x])
    with pytest.raises(ValueError, match=r"gradient= has shape \(3,\) but the output has shape \(2,\)"):
        d2p.backward(lambda: x * 2.0, gradient=np.ones(3))
    with pytest.raises(TypeError, match=r"gradient= takes an array"):
        d2p.backward(lambda: x * 2.0, gradient="ones")
    np.testing.assert_array_equal(d2p.grad_of(x), [3.0, 3.0])  # unchanged by every failure
