"""Issue 13: losses with PyTorch's meaning on every backend, against a float64 NumPy reference
(values and input gradients, every reduction, extreme logits), the reference itself against
real PyTorch, and each backend's result against PyTorch where torch is the backend."""

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import nn, ops

from conftest import run_python

# -- float64 NumPy references: (elementwise loss, its gradient w.r.t. the input) -------------


def _log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _class_axis(x):
    return 0 if x.ndim == 1 else 1


def _one_hot(labels, num_classes, axis):
    return np.moveaxis(np.eye(num_classes)[labels], -1, axis)


def ref_mse(x, y):
    return (x - y) ** 2, 2 * (x - y)


def ref_l1(x, y):
    return np.abs(x - y), np.sign(x - y)


def ref_cross_entropy(x, target, label_smoothing=0.0):
    axis = _class_axis(x)
    C = x.shape[axis]
    q = target if target.dtype.kind == "f" else _one_hot(target, C, axis)
    q = (1 - label_smoothing) * q + label_smoothing / C
    logp = _log_softmax(x, axis)
    elem = -(q * logp).sum(axis)
    grad = np.exp(logp) * q.sum(axis, keepdims=True) - q
    return elem, grad


def ref_nll(x, target):
    axis = _class_axis(x)
    hot = _one_hot(target, x.shape[axis], axis)
    return -np.where(hot > 0, x, 0.0).sum(axis), -hot


def ref_bce_with_logits(x, y):
    elem = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    return elem, 1 / (1 + np.exp(-x)) - y


def ref_bce(p, y):
    with np.errstate(divide="ignore"):
        elem = -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log(1 - p), -100))
    return elem, (p - y) / np.maximum(p * (1 - p), 1e-12)


def reduce_ref(elem, grad, reduction, upstream):
    """The reduced value and the gradient of ``sum(loss * upstream)`` (``upstream`` only for
    ``reduction="none"``; else the loss is the scalar itself)."""
    if reduction == "mean":
        return elem.mean(), grad / elem.size
    if reduction == "sum":
        return elem.sum(), grad
    if upstream.shape != grad.shape:  # a class axis was summed over
        upstream = np.expand_dims(upstream, _class_axis(grad))
    return elem, grad * upstream


# -- the cases: name -> (function, options, input, target, reference) -----------------------
RNG = np.random.default_rng(2024)
LOGITS = RNG.standard_normal((6, 5)) * 2
LOGITS[0] = [100.0, -100.0, 0.0, 3.0, -3.0]  # extreme logits: finite losses and gradients
LOGITS[1] = [-100.0, -100.0, -100.0, -100.0, 100.0]
LABELS = np.array([1, 4, 0, 2, 4, 3])  # row 0: the target's logit is -100
PROBS = np.exp(_log_softmax(RNG.standard_normal((6, 5)), 1))
LOGITS_K = RNG.standard_normal((2, 4, 3, 2))  # (N, C, d1, d2)
LABELS_K = RNG.integers(0, 4, (2, 3, 2))
BINARY = np.array([[100.0, -100.0, 0.0], [2.5, -0.7, 1.3], [-100.0, 100.0, 0.1]])
BINARY_Y = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.3], [1.0, 1.0, 0.0]])
P = np.array([[0.0, 1.0, 0.3], [0.9, 1e-3, 0.5], [0.0, 1.0, 0.75]])  # exact 0 and 1 included
P_Y = np.array([[1.0, 0.0, 0.5], [1.0, 0.0, 0.2], [0.0, 1.0, 0.75]])
REG_X, REG_Y = RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3))
REG_Y[0, 0] = REG_X[0, 0] + 0.5

CASES = {
    "mse": (ops.mse_loss, {}, REG_X, REG_Y, ref_mse),
    "l1": (ops.l1_loss, {}, REG_X, REG_Y, ref_l1),
    "cross_entropy": (ops.cross_entropy, {}, LOGITS, LABELS, ref_cross_entropy),
    "cross_entropy smoothed": (ops.cross_entropy, {"label_smoothing": 0.1}, LOGITS, LABELS,
                               ref_cross_entropy),
    "cross_entropy probabilities": (ops.cross_entropy, {}, LOGITS, PROBS, ref_cross_entropy),
    "cross_entropy probabilities smoothed": (ops.cross_entropy, {"label_smoothing": 0.2},
                                             LOGITS, PROBS, ref_cross_entropy),
    "cross_entropy (N, C, d1, d2)": (ops.cross_entropy, {}, LOGITS_K, LABELS_K,
                                     ref_cross_entropy),
    "cross_entropy (C,)": (ops.cross_entropy, {"label_smoothing": 0.05}, LOGITS[2],
                           np.array(3), ref_cross_entropy),
    "nll": (ops.nll_loss, {}, _log_softmax(LOGITS, 1), LABELS, ref_nll),
    "nll (N, C, d1, d2)": (ops.nll_loss, {}, _log_softmax(LOGITS_K, 1), LABELS_K, ref_nll),
    "bce_with_logits": (ops.binary_cross_entropy_with_logits, {}, BINARY, BINARY_Y,
                        ref_bce_with_logits),
    "bce": (ops.binary_cross_entropy, {}, P, P_Y, ref_bce),
}
REDUCTIONS = ["mean", "sum", "none"]
MODULES = {ops.mse_loss: nn.MSELoss, ops.l1_loss: nn.L1Loss, ops.cross_entropy: nn.CrossEntropyLoss,
           ops.nll_loss: nn.NLLLoss, ops.binary_cross_entropy_with_logits: nn.BCEWithLogitsLoss,
           ops.binary_cross_entropy: nn.BCELoss}


def _inputs(x_np, t_np):
    x = d2p.tensor(x_np, requires_grad=True)
    if t_np.dtype.kind in "iu":
        return x, d2p.tensor(t_np, dtype="int64")
    return x, d2p.tensor(t_np)


def _value(loss, like):
    value = d2p.to_numpy(loss)
    return value.reshape(()) if np.ndim(like) == 0 else value  # mxnet: (1,) for a scalar


def _check(name, reduction, fn_of):
    """Compare ``fn_of(x, target)`` (a loss computed by d2lparams) with the reference."""
    fn, options, x_np, t_np, ref = CASES[name]
    elem, grad = ref(x_np, t_np, **options)
    upstream = np.random.default_rng(3).uniform(0.5, 1.5, elem.shape)
    value, grad = reduce_ref(elem, grad, reduction, upstream)
    x, t = _inputs(x_np, t_np)
    loss = fn_of(x, t)
    got = _value(loss, value)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, value, rtol=1e-5, atol=1e-5)
    if reduction == "none":
        weights = d2p.tensor(upstream.reshape(d2p.to_numpy(loss).shape))
        (g,) = d2p.grad(lambda: ops.sum(fn_of(x, t) * weights), [x])
    else:
        (g,) = d2p.grad(lambda: fn_of(x, t), [x])
    assert np.isfinite(g).all()
    # a mean divides the gradient by the count: compare the per-element gradients (O(1));
    # 2e-5 absolute is MXNet's own log-softmax precision
    count = elem.size if reduction == "mean" else 1
    np.testing.assert_allclose(g * count, grad * count, rtol=1e-5,
                               atol=2e-5 * max(1.0, np.abs(grad * count).max()))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", list(CASES))
def test_loss_matches_the_float64_numpy_reference(backend, name, reduction):
    fn, options = CASES[name][:2]
    _check(name, reduction, lambda x, t: fn(x, t, reduction=reduction, **options))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", list(CASES))
def test_loss_module_matches_the_float64_numpy_reference(backend, name, reduction):
    fn, options = CASES[name][:2]
    loss = MODULES[fn](reduction=reduction, **options)
    _check(name, reduction, loss)


def _torch_loss(torch, fn, x, t, reduction, options):
    F = torch.nn.functional
    table = {ops.mse_loss: F.mse_loss, ops.l1_loss: F.l1_loss, ops.cross_entropy: F.cross_entropy,
             ops.nll_loss: F.nll_loss,
             ops.binary_cross_entropy_with_logits: F.binary_cross_entropy_with_logits,
             ops.binary_cross_entropy: F.binary_cross_entropy}
    return table[fn](x, t, reduction=reduction, **options)


def _torch_case(torch, name, reduction, dtype):
    fn, options, x_np, t_np, _ = CASES[name]
    x = torch.tensor(x_np, dtype=dtype, requires_grad=True)
    t = torch.tensor(t_np, dtype=torch.int64 if t_np.dtype.kind in "iu" else dtype)
    loss = _torch_loss(torch, fn, x, t, reduction, options)
    upstream = np.random.default_rng(3).uniform(0.5, 1.5, tuple(loss.shape))
    target = loss if reduction != "none" else (loss * torch.tensor(upstream, dtype=dtype)).sum()
    (g,) = torch.autograd.grad(target, [x])
    return loss.detach().numpy(), g.numpy()


def test_the_numpy_references_are_pytorchs_meaning():
    """The references above, against real PyTorch in float64 (values and gradients), so every
    backend compared with them is compared with PyTorch's meaning."""
    torch = pytest.importorskip("torch", reason="checks the NumPy references against PyTorch")
    for name, (_, options, x_np, t_np, ref) in CASES.items():
        elem, grad = ref(x_np, t_np, **options)
        upstream = np.random.default_rng(3).uniform(0.5, 1.5, elem.shape)
        for reduction in REDUCTIONS:
            value, expected_grad = reduce_ref(elem, grad, reduction, upstream)
            got, got_grad = _torch_case(torch, name, reduction, torch.float64)
            np.testing.assert_allclose(got, value, rtol=1e-10, atol=1e-12, err_msg=name)
            np.testing.assert_allclose(got_grad, expected_grad, rtol=1e-8, atol=1e-12,
                                       err_msg=f"{name} {reduction}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", list(CASES))
def test_loss_matches_pytorch_itself(backend, name, reduction):
    """On the torch backend: d2lparams' loss and PyTorch's F.* on the same float32 inputs."""
    if backend != "torch":
        pytest.skip("compares with PyTorch's own losses in the torch backend's process")
    torch = pytest.importorskip("torch", reason="compares with PyTorch itself")
    fn, options, x_np, t_np, _ = CASES[name]
    expected, expected_grad = _torch_case(torch, name, reduction, torch.float32)
    x, t = _inputs(x_np, t_np)
    got = d2p.to_numpy(fn(x, t, reduction=reduction, **options))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    if reduction == "none":
        upstream = np.random.default_rng(3).uniform(0.5, 1.5, expected.shape)
        (g,) = d2p.grad(lambda: ops.sum(fn(x, t, reduction=reduction, **options)
                                        * d2p.tensor(upstream)), [x])
    else:
        (g,) = d2p.grad(lambda: fn(x, t, reduction=reduction, **options), [x])
    np.testing.assert_allclose(g, expected_grad, rtol=1e-6, atol=1e-6 * max(1, np.abs(g).max()))


def test_targets_may_be_numpy_arrays(backend):
    x = d2p.tensor(LOGITS)
    expected = ref_cross_entropy(LOGITS, LABELS)[0].mean()
    np.testing.assert_allclose(_value(ops.cross_entropy(x, LABELS), 0.0), expected, rtol=1e-5)
    np.testing.assert_allclose(_value(nn.CrossEntropyLoss()(x, LABELS.astype(np.int32)), 0.0),
                               expected, rtol=1e-5)
    np.testing.assert_allclose(_value(ops.mse_loss(d2p.tensor(REG_X), REG_Y), 0.0),
                               ref_mse(REG_X, REG_Y)[0].mean(), rtol=1e-5)
    int32 = d2p.tensor(LABELS, dtype="int32")
    np.testing.assert_allclose(_value(ops.cross_entropy(x, int32), 0.0), expected, rtol=1e-5)


def test_losses_train_a_parameter(backend):
    """nn.Parameter inputs (outside forward) work as tensors do."""
    w = nn.Parameter(LOGITS)
    loss = d2p.backward(lambda: nn.CrossEntropyLoss()(w, d2p.tensor(LABELS, dtype="int64")))
    np.testing.assert_allclose(loss, ref_cross_entropy(LOGITS, LABELS)[0].mean(), rtol=1e-5)
    np.testing.assert_allclose(w.grad * LABELS.size, ref_cross_entropy(LOGITS, LABELS)[1],
                               rtol=1e-5, atol=2e-5)


def test_loss_modules_repr_and_options():
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert repr(nn.CrossEntropyLoss(reduction="sum", label_smoothing=0.1)) == \
        "CrossEntropyLoss(reduction='sum', label_smoothing=0.1)"
    assert repr(nn.BCEWithLogitsLoss(reduction="none")) == "BCEWithLogitsLoss(reduction='none')"
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(TypeError):
        nn.CrossEntropyLoss(None)  # PyTorch's positional weight is not taken silently


BAD = [
    ("reduction", lambda x, y: ops.mse_loss(x, x, reduction="avg"), ValueError,
     r"reduction must be 'mean', 'sum' or 'none'"),
    ("shape", lambda x, y: ops.mse_loss(x, ops.reshape(x, (-1,))), ValueError,
     r"input has shape \(6, 5\) and the target \(30,\).*same shape.*ops\.reshape"),
    ("int target for mse", lambda x, y: ops.mse_loss(x, d2p.tensor(np.zeros((6, 5)), dtype="int64")),
     ValueError, r"target must be a float32 tensor.*ops\.astype"),
    ("label range", lambda x, y: ops.cross_entropy(x, d2p.tensor([0, 1, 2, 3, 4, 5], dtype="int64")),
     ValueError, r"class index 5 is out of range for 5 classes"),
    ("negative label", lambda x, y: ops.nll_loss(x, d2p.tensor([0, -100, 2, 3, 4, 0], dtype="int64")),
     ValueError, r"class index -100 .* no ignore_index"),
    ("label shape", lambda x, y: ops.cross_entropy(x, d2p.tensor([[0], [1], [2], [3], [4], [0]], dtype="int64")),
     ValueError, r"input of shape \(6, 5\) takes class indices of shape \(6,\), got \(6, 1\)"),
    ("float labels", lambda x, y: ops.cross_entropy(x, d2p.tensor([0.0, 1, 2, 3, 4, 0])),
     ValueError, r"class probabilities.*same shape"),
    ("bool labels", lambda x, y: ops.cross_entropy(x, d2p.tensor([0, 1, 1, 0, 1, 0], dtype="bool")),
     ValueError, r"integer tensor, got dtype bool.*dtype=\"int64\""),
    ("smoothing", lambda x, y: ops.cross_entropy(x, y, label_smoothing=-0.1), ValueError,
     r"label_smoothing must be in \[0, 1\]"),
    ("0-d input", lambda x, y: ops.cross_entropy(d2p.tensor(1.0), y),
     ValueError, r"class dimension|class indices of shape"),
    ("probabilities out of range", lambda x, y: ops.binary_cross_entropy(x, ops.zeros_like(x)),
     ValueError, r"between 0 and 1 .*sigmoid"),
    ("int input", lambda x, y: ops.cross_entropy(y, y), ValueError, r"input must be a float32"),
    ("list input", lambda x, y: ops.cross_entropy([[1.0, 2.0]], y), TypeError, r"d2p\.tensor"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_loss_input_is_explained(backend, case):
    _, call, error, message = case
    x, y = d2p.tensor(LOGITS), d2p.tensor(LABELS, dtype="int64")
    with pytest.raises(error, match=message):
        call(x, y)


def test_loss_docstrings_run():
    pytest.importorskip("torch", reason="the examples use torch")
    proc = run_python("""
import doctest, importlib
for name in ["d2lparams.nn.loss", "d2lparams.data"]:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 3, (name, result)
print("ok")
""")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr[-3000:]
