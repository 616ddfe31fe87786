"""A float64 NumPy reference of convolution, pooling, batch normalization and LeNet, forward
and backward, written from the definitions (PyTorch's meaning), for the tests to compare
every backend with."""

import math

import numpy as np


def pads(padding, kernel, dilation):
    """``(top, bottom, left, right)`` of a conv padding: a pair, ``"valid"`` or ``"same"``."""
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        out = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return tuple(out)
    return padding[0], padding[0], padding[1], padding[1]


def _taps(xp, kernel, stride, dilation, out_hw):
    """(i, j, the input window of tap (i, j) for every output position)."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (ho - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (wo - 1) + 1, sw)
            yield i, j, rows, cols


def conv2d(x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Forward; returns ``(out, cache)`` for :func:`conv2d_backward`."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    kernel = w.shape[2:]
    t, bo, le, r = pads(padding, kernel, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (le, r)))
    n, c, hp, wp = xp.shape
    o = w.shape[0]
    ho = (hp - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    wo = (wp - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    cg, og = c // groups, o // groups
    out = np.zeros((n, o, ho, wo))
    for i, j, rows, cols in _taps(xp, kernel, stride, dilation, (ho, wo)):
        for g in range(groups):
            patch = xp[:, g * cg:(g + 1) * cg, rows, cols]
            out[:, g * og:(g + 1) * og] += np.einsum(
                "nchw,oc->nohw", patch, w[g * og:(g + 1) * og, :, i, j])
    if b is not None:
        out += np.asarray(b, np.float64)[None, :, None, None]
    return out, (xp, w, stride, dilation, groups, (t, le), x.shape)


def conv2d_backward(gout, cache):
    """Gradients ``(dx, dw, db)`` of ``sum(out * gout)``."""
    xp, w, stride, dilation, groups, (t, le), xshape = cache
    c, o = xp.shape[1], w.shape[0]
    cg, og = c // groups, o // groups
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i, j, rows, cols in _taps(xp, w.shape[2:], stride, dilation, gout.shape[2:]):
        for g in range(groups):
            go = gout[:, g * og:(g + 1) * og]
            patch = xp[:, g * cg:(g + 1) * cg, rows, cols]
            dw[g * og:(g + 1) * og, :, i, j] += np.einsum("nchw,nohw->oc", patch, go)
            dxp[:, g * cg:(g + 1) * cg, rows, cols] += np.einsum(
                "nohw,oc->nchw", go, w[g * og:(g + 1) * og, :, i, j])
    dx = dxp[:, :, t:t + xshape[2], le:le + xshape[3]]
    return dx, dw, gout.sum((0, 2, 3))


def pool2d(x, kernel, stride, padding, mode):
    """``mode`` ``"max"`` (padding never wins) or ``"avg"`` (padding counts as zeros);
    returns ``(out, cache)`` for :func:`pool2d_backward`."""
    x = np.asarray(x, np.float64)
    fill = -np.inf if mode == "max" else 0.0
    ph, pw = padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    ho = (xp.shape[2] - kernel[0]) // stride[0] + 1
    wo = (xp.shape[3] - kernel[1]) // stride[1] + 1
    taps = list(_taps(xp, kernel, stride, (1, 1), (ho, wo)))
    stack = np.stack([xp[:, :, rows, cols] for _, _, rows, cols in taps])
    out = stack.max(0) if mode == "max" else stack.mean(0)
    return out, (xp, taps, stack, mode, padding, x.shape)


def pool2d_backward(gout, cache):
    xp, taps, stack, mode, (ph, pw), xshape = cache
    dxp = np.zeros_like(xp)
    if mode == "max":
        winner = stack.argmax(0)
        for k, (_, _, rows, cols) in enumerate(taps):
            dxp[:, :, rows, cols] += gout * (winner == k)
    else:
        for _, _, rows, cols in taps:
            dxp[:, :, rows, cols] += gout / len(taps)
    return dxp[:, :, ph:ph + xshape[2], pw:pw + xshape[3]]


def _bins(n, size):
    """PyTorch's adaptive bins: ``[floor(i·n/size), ceil((i+1)·n/size))``."""
    return [((i * n) // size, math.ceil((i + 1) * n / size)) for i in range(size)]


def adaptive_avg_pool2d(x, size):
    x = np.asarray(x, np.float64)
    out = np.zeros(x.shape[:2] + tuple(size))
    for i, (r0, r1) in enumerate(_bins(x.shape[2], size[0])):
        for j, (c0, c1) in enumerate(_bins(x.shape[3], size[1])):
            out[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean((2, 3))
    return out


def adaptive_avg_pool2d_backward(gout, xshape):
    dx = np.zeros(xshape)
    for i, (r0, r1) in enumerate(_bins(xshape[2], gout.shape[2])):
        for j, (c0, c1) in enumerate(_bins(xshape[3], gout.shape[3])):
            dx[:, :, r0:r1, c0:c1] += gout[:, :, i:i + 1, j:j + 1] / ((r1 - r0) * (c1 - c0))
    return dx


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def lenet(sd, X, gout=None):
    """d2l's LeNet on the state dict ``sd``: the output and, given ``gout`` (the gradient of
    the loss w.r.t. the output), the gradient of every parameter."""
    p = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    a0, c0 = conv2d(X, p["0.weight"], p["0.bias"], padding=(2, 2))
    s1 = sigmoid(a0)
    a2, c2 = pool2d(s1, (2, 2), (2, 2), (0, 0), "avg")
    a3, c3 = conv2d(a2, p["3.weight"], p["3.bias"])
    s4 = sigmoid(a3)
    a5, c5 = pool2d(s4, (2, 2), (2, 2), (0, 0), "avg")
    f6 = a5.reshape(len(X), -1)  # channel-major, PyTorch's Flatten
    h7 = f6 @ p["7.weight"] + p["7.bias"]
    s8 = sigmoid(h7)
    h9 = s8 @ p["9.weight"] + p["9.bias"]
    s10 = sigmoid(h9)
    out = s10 @ p["11.weight"] + p["11.bias"]
    if gout is None:
        return out
    g = {"11.weight": s10.T @ gout, "11.bias": gout.sum(0)}
    gh9 = (gout @ p["11.weight"].T) * s10 * (1 - s10)
    g.update({"9.weight": s8.T @ gh9, "9.bias": gh9.sum(0)})
    gh7 = (gh9 @ p["9.weight"].T) * s8 * (1 - s8)
    g.update({"7.weight": f6.T @ gh7, "7.bias": gh7.sum(0)})
    ga5 = (gh7 @ p["7.weight"].T).reshape(a5.shape)
    ga3 = pool2d_backward(ga5, c5) * s4 * (1 - s4)
    ga2, g["3.weight"], g["3.bias"] = conv2d_backward(ga3, c3)
    ga0 = pool2d_backward(ga2, c2) * s1 * (1 - s1)
    _, g["0.weight"], g["0.bias"] = conv2d_backward(ga0, c0)
    return out, g
