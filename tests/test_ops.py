"""Issue 13: the operations a d2l reader writes by hand, on native tensors and Parameters,
against NumPy (values and gradients), and against PyTorch itself on the torch backend; the
arithmetic operators between native tensors, Parameters and numbers in both orders."""

import operator

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import nn, ops

RTOL, ATOL = 1e-5, 1e-6
GRAD_ATOL = 1e-5  # a gradient sums many float32 terms (log_softmax: a row of 4 to 100)


def as_numpy(x, like=None):
    """A tensor as NumPy; a full reduction is shape (1,) on mxnet (legacy NDArrays have no
    0-d shape), compared as the 0-d value."""
    value = d2p.to_numpy(x)
    if like is not None and np.ndim(like) == 0 and value.shape == (1,):
        value = value.reshape(())
    return value


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def first_hot(x, axis, pick):
    """1 at the first position of ``pick`` (max/min) along ``axis``, else 0."""
    index = (np.argmax if pick == "max" else np.argmin)(x, axis=axis)
    mask = np.zeros_like(x)
    np.put_along_axis(mask, np.expand_dims(index, axis), 1.0, axis=axis)
    return mask


RNG = np.random.default_rng(13)
X = RNG.uniform(-2, 2, (3, 4))          # no value near 0, 1 or the clamp bounds
X[np.abs(X) < 0.2] += 0.4
POS = RNG.uniform(0.5, 2.0, (3, 4))
Y = RNG.uniform(-2, 2, (3, 4))
Y[np.abs(X - Y) < 0.2] += 0.5
W, B = RNG.standard_normal((4, 5)), RNG.standard_normal(5)

# name -> (d2lparams function of the input, NumPy function, NumPy gradient of sum(f(x) * g)
#          given g, input, torch function or None)
UNARY = {
    "exp": (ops.exp, np.exp, lambda x, g: g * np.exp(x), X, "exp"),
    "log": (ops.log, np.log, lambda x, g: g / x, POS, "log"),
    "abs": (ops.abs, np.abs, lambda x, g: g * np.sign(x), X, "abs"),
    "sqrt": (ops.sqrt, np.sqrt, lambda x, g: g * 0.5 / np.sqrt(x), POS, "sqrt"),
    "pow(x, 3)": (lambda x: ops.pow(x, 3), lambda x: x**3, lambda x, g: g * 3 * x**2, X,
                  lambda t: t.pow(3)),
    "pow(2, x)": (lambda x: ops.pow(2.0, x), lambda x: 2.0**x,
                  lambda x, g: g * 2.0**x * np.log(2.0), X, lambda t: 2.0**t),
    "x ** 2": (lambda x: x ** 2, lambda x: x**2, lambda x, g: g * 2 * x, X, lambda t: t**2),
    "maximum(x, 0.3)": (lambda x: ops.maximum(x, 0.3), lambda x: np.maximum(x, 0.3),
                        lambda x, g: g * (x > 0.3), X, lambda t: t.clamp(min=0.3)),
    "minimum(0.3, x)": (lambda x: ops.minimum(0.3, x), lambda x: np.minimum(x, 0.3),
                        lambda x, g: g * (x < 0.3), X, lambda t: t.clamp(max=0.3)),
    "clamp(x, -1, 1)": (lambda x: ops.clamp(x, -1, 1), lambda x: np.clip(x, -1, 1),
                        lambda x, g: g * (np.abs(x) < 1), X, lambda t: t.clamp(-1, 1)),
    "clamp(x, min=0)": (lambda x: ops.clamp(x, min=0), lambda x: np.maximum(x, 0),
                        lambda x, g: g * (x > 0), X, lambda t: t.clamp(min=0)),
    "clamp(x, max=0)": (lambda x: ops.clamp(x, max=0), lambda x: np.minimum(x, 0),
                        lambda x, g: g * (x < 0), X, lambda t: t.clamp(max=0)),
    "where(x > 0, x, 2)": (lambda x: ops.where(x > 0, x, 2.0), lambda x: np.where(x > 0, x, 2.0),
                           lambda x, g: g * (x > 0), X, lambda t: t.where(t > 0, 2.0)),
    "log_softmax(x, 1)": (lambda x: ops.log_softmax(x, 1),
                          lambda x: np.log(softmax(x, 1)),
                          lambda x, g: g - softmax(x, 1) * g.sum(1, keepdims=True), X,
                          lambda t: t.log_softmax(1)),
    "log_softmax(x, 0)": (lambda x: ops.log_softmax(x, 0),
                          lambda x: np.log(softmax(x, 0)),
                          lambda x, g: g - softmax(x, 0) * g.sum(0, keepdims=True), X,
                          lambda t: t.log_softmax(0)),
    "max(x)": (ops.max, np.max, lambda x, g: g * first_hot(x.reshape(-1), 0, "max").reshape(x.shape),
               X, lambda t: t.max()),
    "min(x)": (ops.min, np.min, lambda x, g: g * first_hot(x.reshape(-1), 0, "min").reshape(x.shape),
               X, lambda t: t.min()),
    "max(x, 1).values": (lambda x: ops.max(x, 1).values, lambda x: x.max(1),
                         lambda x, g: g[:, None] * first_hot(x, 1, "max"), X,
                         lambda t: t.max(1).values),
    "min(x, 0, keepdim).values": (lambda x: ops.min(x, 0, keepdim=True).values,
                                  lambda x: x.min(0, keepdims=True),
                                  lambda x, g: g * first_hot(x, 0, "min"), X,
                                  lambda t: t.min(0, keepdim=True).values),
    "flatten(x)": (ops.flatten, lambda x: x.reshape(-1), lambda x, g: g.reshape(x.shape), X,
                   lambda t: t.flatten()),
    "flatten(x3, 1)": (lambda x: ops.flatten(ops.reshape(x, (3, 2, 2)), 1),
                       lambda x: x.reshape(3, 4), lambda x, g: g.reshape(x.shape), X,
                       lambda t: t.reshape(3, 2, 2).flatten(1)),
    "linear(x, W, b)": (lambda x: ops.linear(x, d2p.tensor(W), d2p.tensor(B)),
                        lambda x: x @ W + B, lambda x, g: g @ W.T, X,
                        lambda t: torch_module().nn.functional.linear(
                            t, torch_module().tensor(W.T, dtype=t.dtype),
                            torch_module().tensor(B, dtype=t.dtype))),
    "detach(x) * x": (lambda x: ops.detach(x) * x, lambda x: x * x, lambda x, g: g * x, X,
                      lambda t: t.detach() * t),
    "transpose(x, 0, 1)": (lambda x: ops.transpose(x, 0, 1), lambda x: x.T,
                           lambda x, g: g.T, X, lambda t: t.transpose(0, 1)),
}


def torch_module():
    import torch

    return torch


def _upstream(shape):
    """A fixed upstream gradient: the loss is sum(f(x) * g)."""
    return np.random.default_rng(7).uniform(0.5, 1.5, shape)


def _loss(y, g_np, like):
    g = d2p.tensor(g_np.reshape(as_numpy(y, like).shape))
    return ops.sum(y * g)


@pytest.mark.parametrize("name", list(UNARY))
@pytest.mark.parametrize("kind", ["tensor", "parameter"])
def test_op_value_and_gradient_match_numpy(backend, name, kind):
    fn, ref, ref_grad, x_np, _ = UNARY[name]
    expected = ref(x_np)
    g = _upstream(np.shape(expected))
    if kind == "tensor":
        x = d2p.tensor(x_np, requires_grad=True)
    else:
        x = nn.Parameter(x_np)
    np.testing.assert_allclose(as_numpy(fn(x), expected), expected, rtol=RTOL, atol=ATOL)
    d2p.backward(lambda: _loss(fn(x), g, expected))
    got = d2p.grad_of(x) if kind == "tensor" else x.grad
    np.testing.assert_allclose(got, ref_grad(x_np, g), rtol=RTOL, atol=GRAD_ATOL)


@pytest.mark.parametrize("name", list(UNARY))
def test_op_matches_pytorch(backend, name):
    """On the torch backend: the same computation with PyTorch's own functions (value and
    gradient); elsewhere the NumPy test above is the reference."""
    if backend != "torch":
        pytest.skip("compares with PyTorch's own functions in the torch backend's process")
    torch = pytest.importorskip("torch", reason="compares with PyTorch itself")
    fn, _, _, x_np, torch_fn = UNARY[name]
    torch_fn = getattr(torch, torch_fn) if isinstance(torch_fn, str) else torch_fn
    t = torch.tensor(x_np, dtype=torch.float32, requires_grad=True)
    expected = torch_fn(t)
    g = _upstream(tuple(expected.shape))
    (expected * torch.tensor(g, dtype=torch.float32)).sum().backward()
    x = d2p.tensor(x_np, requires_grad=True)
    np.testing.assert_allclose(d2p.to_numpy(fn(x)), expected.detach().numpy(), rtol=RTOL,
                               atol=ATOL)
    d2p.backward(lambda: _loss(fn(x), g, expected.detach().numpy()))
    np.testing.assert_allclose(d2p.grad_of(x), t.grad.numpy(), rtol=RTOL, atol=GRAD_ATOL)


def test_binary_ops_on_two_tensors_and_their_gradients(backend):
    a, b = d2p.tensor(X, requires_grad=True), nn.Parameter(Y)
    e = d2p.tensor(POS, requires_grad=True)
    g = _upstream(X.shape)
    cases = [
        (lambda: ops.maximum(a, b), np.maximum(X, Y), g * (X > Y), g * (Y > X)),
        (lambda: ops.minimum(a, b), np.minimum(X, Y), g * (X < Y), g * (Y < X)),
        (lambda: ops.where(a > b, a, b), np.where(X > Y, X, Y), g * (X > Y), g * (X <= Y)),
        (lambda: ops.pow(e, b), POS**Y, g * Y * POS ** (Y - 1), g * POS**Y * np.log(POS)),
    ]
    for fn, value, grad_first, grad_second in cases:
        first = e if fn is cases[3][0] else a
        np.testing.assert_allclose(d2p.to_numpy(fn()), value, rtol=RTOL, atol=ATOL)
        ga, gb = d2p.grad(lambda fn=fn: ops.sum(fn() * d2p.tensor(g)), [first, b])
        np.testing.assert_allclose(ga, grad_first, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(gb, grad_second, rtol=RTOL, atol=ATOL)


def test_where_broadcasts_and_takes_bool_masks(backend):
    mask = d2p.tensor([True, False, True, False], dtype="bool")
    x = d2p.tensor(X)
    np.testing.assert_allclose(d2p.to_numpy(ops.where(mask, x, -1.0)),
                               np.where([True, False, True, False], X, -1.0), rtol=RTOL)
    np.testing.assert_allclose(d2p.to_numpy(ops.where(x > 0, 1.0, 0.0)), (X > 0) * 1.0)
    column = d2p.tensor(Y[:, :1])
    np.testing.assert_allclose(d2p.to_numpy(ops.where(x > 0, x, column)),
                               np.where(X > 0, X, Y[:, :1]), rtol=RTOL)


def test_a_transposed_parameter_is_used_in_the_canonical_layout(backend):
    """A Linear weight (stored (out, in) on torch and mxnet): ops see (in, out) and the
    gradient comes back in (in, out)."""
    lin = nn.Linear(4, 5)
    w = lin.weight.numpy().astype(np.float64)
    g = _upstream(w.shape)
    np.testing.assert_allclose(d2p.to_numpy(ops.exp(lin.weight)), np.exp(w), rtol=RTOL)
    d2p.backward(lambda: ops.sum(ops.exp(lin.weight) * d2p.tensor(g)))
    np.testing.assert_allclose(lin.weight.grad, g * np.exp(w), rtol=RTOL, atol=ATOL)
    Xb = RNG.standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(d2p.to_numpy(ops.linear(d2p.tensor(Xb), lin.weight, lin.bias)),
                               d2p.to_numpy(lin(Xb)), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("dim,keepdim", [(None, False), (0, False), (1, False), (1, True),
                                         (-1, True)])
def test_argmax_and_indices_of_max_min(backend, dim, keepdim):
    x = d2p.tensor(X)
    expected = np.argmax(X, axis=dim, keepdims=keepdim) if dim is not None else np.argmax(X)
    got = as_numpy(ops.argmax(x, dim, keepdim), expected)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    if dim is not None:
        for pick, np_fn, np_arg in (("max", np.max, np.argmax), ("min", np.min, np.argmin)):
            values, indices = getattr(ops, pick)(x, dim, keepdim)
            result = getattr(ops, pick)(x, dim=dim, keepdim=keepdim)
            assert result.values is not None and result.indices is not None
            np.testing.assert_allclose(d2p.to_numpy(values), np_fn(X, dim, keepdims=keepdim),
                                       rtol=RTOL)
            assert d2p.to_numpy(indices).dtype == np.int64
            np.testing.assert_array_equal(d2p.to_numpy(indices),
                                          np_arg(X, dim, keepdims=keepdim))


def test_argmax_takes_the_first_of_equal_maxima(backend):
    np.testing.assert_array_equal(d2p.to_numpy(ops.argmax(nn.Parameter(X), 1)), np.argmax(X, 1))
    np.testing.assert_array_equal(d2p.to_numpy(ops.max(nn.Parameter(X), 0).indices),
                                  np.argmax(X, 0))
    x = d2p.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    np.testing.assert_array_equal(d2p.to_numpy(ops.argmax(x, 1)), [1, 0])
    np.testing.assert_array_equal(d2p.to_numpy(ops.max(x, 1).indices), [1, 0])
    np.testing.assert_array_equal(d2p.to_numpy(ops.min(x, 1).indices), [0, 2])


def test_max_pairs_match_pytorch(backend):
    if backend != "torch":
        pytest.skip("compares with torch.max in the torch backend's process")
    torch = pytest.importorskip("torch", reason="compares with PyTorch itself")
    t = torch.tensor(X, dtype=torch.float32)
    mine = ops.max(d2p.tensor(X), 1)
    theirs = torch.max(t, 1)
    assert mine._fields == ("values", "indices") and len(theirs) == 2
    np.testing.assert_array_equal(d2p.to_numpy(mine.values), theirs.values.numpy())
    np.testing.assert_array_equal(d2p.to_numpy(mine.indices), theirs.indices.numpy())
    assert tuple(ops.max(d2p.tensor(X)).shape) == tuple(torch.max(t).shape) == ()


def test_creation_ops(backend):
    np.testing.assert_array_equal(d2p.to_numpy(ops.eye(3)), np.eye(3))
    np.testing.assert_array_equal(d2p.to_numpy(ops.eye(2, 4)), np.eye(2, 4))
    assert d2p.to_numpy(ops.eye(2, dtype="int64")).dtype == np.int64
    x = d2p.tensor(X)
    for fn, value in ((ops.zeros_like, 0.0), (ops.ones_like, 1.0)):
        out = d2p.to_numpy(fn(x))
        assert out.shape == X.shape and out.dtype == np.float32 and (out == value).all()
        labels = fn(d2p.tensor([1, 2], dtype="int64"))
        assert d2p.to_numpy(labels).dtype == np.int64
        np.testing.assert_array_equal(d2p.to_numpy(fn(nn.Parameter(np.ones((2, 3))))),
                                      np.full((2, 3), value))


def test_one_hot_and_astype(backend):
    labels = d2p.tensor([0, 3, 1], dtype="int64")
    out = d2p.to_numpy(ops.one_hot(labels, 4))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, np.eye(4, dtype=np.int64)[[0, 3, 1]])
    np.testing.assert_array_equal(d2p.to_numpy(ops.one_hot(labels)), np.eye(4)[[0, 3, 1]])
    floats = d2p.to_numpy(ops.one_hot(d2p.tensor([[1], [0]], dtype="int32"), 2, dtype="float32"))
    assert floats.dtype == np.float32 and floats.shape == (2, 1, 2)
    with pytest.raises(ValueError, match="class index 3 is out of range for 3 classes"):
        ops.one_hot(labels, 3)
    with pytest.raises(ValueError, match="integer tensor.*dtype=\"int64\""):
        ops.one_hot(d2p.tensor([0.0, 1.0]), 2)
    correct = ops.astype(ops.argmax(d2p.tensor(X), 1) == d2p.tensor(np.argmax(X, 1), dtype="int64"),
                         "float32")
    assert float(as_numpy(ops.sum(correct), 0.0)) == 3.0
    assert d2p.to_numpy(ops.astype(d2p.tensor([1.7, -0.2]), "int64")).dtype == np.int64


def test_one_hot_matches_pytorch(backend):
    if backend != "torch":
        pytest.skip("compares with F.one_hot in the torch backend's process")
    torch = pytest.importorskip("torch", reason="compares with PyTorch itself")
    labels = np.array([[0, 2], [1, 1]], np.int64)
    expected = torch.nn.functional.one_hot(torch.tensor(labels))
    got = ops.one_hot(d2p.tensor(labels, dtype="int64"))
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(d2p.to_numpy(got), expected.numpy())


def test_dropout_functional(backend):
    d2p.seed(0)
    x = d2p.tensor(np.ones((200, 50)), requires_grad=True)
    out = d2p.to_numpy(ops.dropout(x, 0.3))
    kept = out != 0
    assert abs(kept.mean() - 0.7) < 0.02  # 10,000 draws: 5 standard deviations
    np.testing.assert_allclose(out[kept], 1 / 0.7, rtol=1e-6)
    # the gradient is the same mask, scaled
    d2p.backward(lambda: ops.sum(ops.dropout(x, 0.5)))
    g = d2p.grad_of(x)
    assert set(np.unique(g).round(5)) <= {0.0, 2.0} and abs((g != 0).mean() - 0.5) < 0.02
    # inference, p = 0 and p = 1
    np.testing.assert_array_equal(d2p.to_numpy(ops.dropout(x, 0.5, training=False)), 1.0)
    np.testing.assert_array_equal(d2p.to_numpy(ops.dropout(x, 0.0)), 1.0)
    np.testing.assert_array_equal(d2p.to_numpy(ops.dropout(x, 1.0)), 0.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        ops.dropout(x, 1.5)


def test_bad_arguments_are_explained(backend):
    x = d2p.tensor(X)
    with pytest.raises(IndexError, match="dim 2 is out of range .* 2 dimension"):
        ops.argmax(x, 2)
    with pytest.raises(TypeError, match="ops.maximum"):
        ops.max(x, x)
    with pytest.raises(ValueError, match="clamp needs min or max"):
        ops.clamp(x)
    with pytest.raises(TypeError, match="clamp: min must be a number"):
        ops.clamp(x, min=x)
    with pytest.raises(TypeError, match=r"d2p\.tensor\(x\)"):
        ops.exp([1.0, 2.0])
    with pytest.raises(TypeError, match=r"d2p\.tensor\(x\)"):
        ops.pow(2, 3)
    with pytest.raises(ValueError, match="start_dim 1 comes after end_dim 0"):
        ops.flatten(x, 1, 0)


# -- arithmetic operators between native tensors, Parameters and numbers -------------------------
OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
             "**": operator.pow, "@": operator.matmul}


def _parameter_gradient(op, first, P, T, G):
    """NumPy gradient of sum(op(P, T) * G) w.r.t. P (``first``) or of sum(op(T, P) * G)."""
    if op == "+":
        g = G
    elif op == "-":
        g = G if first else -G
    elif op == "*":
        g = G * T
    elif op == "/":
        g = G / T if first else -G * T / P**2
    elif op == "**":
        g = G * T * P ** (T - 1) if first else G * T**P * np.log(T)
    else:
        g = G @ np.transpose(T) if first else np.transpose(T) @ G
    return np.broadcast_to(g, P.shape) if np.ndim(g) == np.ndim(P) else g


@pytest.mark.parametrize("op,other", [(op, other) for op in OPERATORS
                                      for other in ("tensor", "number")
                                      if not (op == "@" and other == "number")])
@pytest.mark.parametrize("order", ["parameter first", "parameter second"])
def test_operators_keep_the_parameter_gradient(backend, op, order, other):
    rng = np.random.default_rng(5)
    P = rng.uniform(0.5, 1.5, (3, 3))
    T = rng.uniform(0.5, 1.5, (3, 3)) if other == "tensor" else 1.7
    G = rng.uniform(0.5, 1.5, (3, 3))
    p = nn.Parameter(P)
    t = d2p.tensor(T) if other == "tensor" else T
    fn = OPERATORS[op]
    first = order == "parameter first"

    def compute():
        return fn(p, t) if first else fn(t, p)

    expected = fn(P, T) if first else fn(T, P)
    out = compute()
    assert d2p.backend_of(out) == backend  # a native tensor, not a NumPy constant
    np.testing.assert_allclose(d2p.to_numpy(out), expected, rtol=RTOL, atol=ATOL)
    d2p.backward(lambda: ops.sum(compute() * d2p.tensor(G)))
    np.testing.assert_allclose(p.grad, _parameter_gradient(op, first, P, T, G), rtol=RTOL,
                               atol=ATOL)


def test_the_tensor_gradient_flows_too_and_training_moves_a_standalone_bias(backend):
    """The seed's pattern ``matmul(x, w) + b`` with standalone Parameters (the native tensor
    first): every Parameter moves under SGD."""
    from d2lparams import optim

    rng = np.random.default_rng(0)
    x_np, y_np = rng.standard_normal((8, 5)), rng.standard_normal((8, 3))
    w, b = nn.Parameter(rng.standard_normal((5, 3))), nn.Parameter(np.zeros(3))
    x, y = d2p.tensor(x_np), d2p.tensor(y_np)
    opt = optim.SGD([w, b], lr=0.1)
    before = b.numpy().copy()
    d2p.backward(lambda: ops.mse_loss(ops.matmul(x, w) + b, y))
    np.testing.assert_allclose(b.grad, 2 * (x_np @ w.numpy() - y_np).mean(0) * 8 / 24,
                               rtol=1e-4, atol=1e-6)
    opt.step()
    assert not np.allclose(b.numpy(), before)


def test_operators_leave_other_operands_to_the_framework(backend):
    """The operator fix concerns Parameters only: native arithmetic and the framework's own
    refusal of foreign objects are unchanged."""
    x = d2p.tensor([1.0, 2.0])
    np.testing.assert_allclose(d2p.to_numpy(x / x + x * 2 - 1), [2.0, 4.0])
    for op in (operator.truediv, operator.add, operator.pow, operator.gt):
        with pytest.raises((TypeError, ValueError)):
            op(x, object())
