"""MXNet Gluon's side of d2lparams' modules.

Importing this module imports mxnet (with the ``numpy.bool`` alias restored first).
"""

from __future__ import annotations

import contextvars
import warnings

import numpy as np

if "bool" not in np.__dict__:  # numpy >= 1.24 removed the alias mxnet 1.9.1 reads
    np.bool = bool  # type: ignore[attr-defined]
with warnings.catch_warnings():
    # mxnet's import touches numpy functions removed in 1.20 (np.mirr, ...) and distutils'
    # LooseVersion: DeprecationWarnings a user can do nothing about
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mxnet(\.|$)")
    import mxnet as mx
    from mxnet import autograd, gluon, nd

__all__ = ["AdaptiveAvgPool2D", "AvgPool2D", "BatchNorm", "BatchNorm2D", "BufferTensor",
           "Conv2D", "Custom", "Dense", "Identity", "MaxPool2D", "ModuleList", "Sequential",
           "Softmax", "autograd", "gluon", "mx", "nd", "split_bias"]


class Custom(gluon.Block):
    """A native block whose forward is a neutral module's forward."""

    def __init__(self, module):
        gluon.Block.__init__(self)
        object.__setattr__(self, "_d2p_module", module)

    def forward(self, *args):
        return self._d2p_module._native_forward(*args)


class ModuleList(gluon.Block):
    """A container of child blocks; like ``torch.nn.ModuleList`` it has no forward."""

    def __repr__(self):
        lines = [f"  ({key}): " + repr(block).replace("\n", "\n  ")
                 for key, block in self._children.items()]
        return "ModuleList(\n" + "\n".join(lines) + "\n)"


class Identity(gluon.HybridBlock):
    """Returns its input."""

    def hybrid_forward(self, F, x):
        return F.identity(x)


class Softmax(gluon.HybridBlock):
    """Softmax over one axis."""

    def __init__(self, axis=-1):
        gluon.HybridBlock.__init__(self)
        self._axis = axis

    def hybrid_forward(self, F, x):
        return F.softmax(x, axis=self._axis)

    def __repr__(self):
        return f"Softmax(axis={self._axis})"


#: True while d2p.grad records: ``autograd.grad`` may ask for the bias without the weight
split_bias: contextvars.ContextVar[bool] = contextvars.ContextVar("d2p_split_bias", default=False)


class Dense(gluon.nn.Dense):
    """``gluon.nn.Dense`` with one fix: with oneDNN (MKLDNN, on in the CPU wheels),
    FullyConnected's backward gives the bias a ZERO (or garbage) gradient when the weight
    takes none: when the weight does not require one (grad_req='null'), and in
    ``autograd.grad`` for the bias without the weight. Then the bias is added outside the
    operator."""

    def hybrid_forward(self, F, x, weight, bias=None):
        if bias is not None and (split_bias.get() or (
                self.weight.grad_req == "null" and self.bias.grad_req != "null")):
            out = F.FullyConnected(x, weight, no_bias=True, num_hidden=self._units,
                                   flatten=self._flatten, name="fwd")
            out = F.broadcast_add(out, bias)
            return self.act(out) if self.act is not None else out
        return gluon.nn.Dense.hybrid_forward(self, F, x, weight, bias)


class Sequential(gluon.nn.Sequential):
    """``gluon.nn.Sequential`` whose children keep the mode d2lparams gave them
    (``net[1].eval()``): Gluon itself has one global mode, from autograd."""

    def forward(self, x, *args):
        for block in self._children.values():
            mode = block.__dict__.get("_d2p_training")
            if mode is None or mode == autograd.is_training():
                x = block(x, *args)
            else:
                with autograd.train_mode() if mode else autograd.predict_mode():
                    x = block(x, *args)
            args = []
            if isinstance(x, (tuple, list)):
                args = x[1:]
                x = x[0]
        if args:
            x = tuple([x] + list(args))
        return x


class BatchNorm(gluon.nn.BatchNorm):
    """``gluon.nn.BatchNorm`` with PyTorch's meaning (imperative calls). Natively Gluon
    updates the running statistics in BACKWARD (not in a forward pass), with the biased
    batch variance and ``running = m·running + (1-m)·batch``; here the forward pass in
    training mode updates them with ``momentum`` as in PyTorch and the unbiased variance. A
    hybridized (symbolic) block runs Gluon's own operator."""

    def __init__(self, num_features, eps, momentum):
        gluon.nn.BatchNorm.__init__(
            self, axis=1, momentum=1.0 - momentum, epsilon=eps, in_channels=num_features,
        )
        self._d2p_momentum = momentum

    #: the input ranks this layer takes
    _d2p_ranks: tuple[int, ...] = (2, 3)

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        if F is not nd:
            return gluon.nn.BatchNorm.hybrid_forward(
                self, F, x, gamma, beta, running_mean, running_var)
        if x.ndim not in self._d2p_ranks:
            raise ValueError(f"BatchNorm1d expects (N, C) or (N, C, L) input, got shape {x.shape}")
        axes = tuple(a for a in range(x.ndim) if a != 1)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        eps = self._kwargs["eps"]
        if autograd.is_training():
            n = x.size // x.shape[1]
            if n < 2:
                raise ValueError(
                    "BatchNorm1d in training mode needs more than 1 value per channel, "
                    f"got input of shape {x.shape}; use a larger batch or eval()")
            mean = nd.mean(x, axis=axes)
            centered = nd.broadcast_sub(x, mean.reshape(shape))
            var = nd.mean(nd.square(centered), axis=axes)  # biased, to normalize
            m = self._d2p_momentum
            with autograd.pause():
                running_mean[:] = (1 - m) * running_mean + m * mean.detach()
                running_var[:] = (1 - m) * running_var + m * var.detach() * (n / (n - 1))
        else:
            centered = nd.broadcast_sub(x, running_mean.reshape(shape))
            var = running_var
        scale = gamma / nd.sqrt(var + eps)
        return nd.broadcast_add(nd.broadcast_mul(centered, scale.reshape(shape)),
                                beta.reshape(shape))


class BufferTensor(nd.NDArray):
    """What ``named_buffers`` yields: an NDArray sharing the buffer's memory that NumPy can
    also read (``np.asarray``), as torch/tf/paddle tensors can; the legacy NDArray has no
    ``__array__``."""

    __slots__ = ()

    def __array__(self, dtype=None, copy=None):
        value = self.asnumpy()
        return value if dtype is None else value.astype(dtype)


# -- convolution and pooling: Gluon's own blocks, with d2lparams' input check first ----------
class Conv2D(gluon.nn.Conv2D):
    """``gluon.nn.Conv2D`` (NCHW) that calls d2lparams' input check (``_d2p_check``) before
    computing (before a deferred initialization infers its shape). Gluon's padding is
    symmetric: PyTorch's ``"same"`` with an even total (``_d2p_pad``: top, bottom, left,
    right) pads the input explicitly first."""

    _d2p_pad = None

    def forward(self, x, *args):
        self._d2p_check(x.shape)
        return gluon.nn.Conv2D.forward(self, x, *args)

    def hybrid_forward(self, F, x, weight, bias=None):
        if self._d2p_pad is not None:
            t, b, left, r = self._d2p_pad
            x = F.pad(x, mode="constant", pad_width=(0, 0, 0, 0, t, b, left, r))
        return gluon.nn.Conv2D.hybrid_forward(self, F, x, weight, bias)


class MaxPool2D(gluon.nn.MaxPool2D):
    def forward(self, x, *args):
        self._d2p_check(x.shape)
        return gluon.nn.MaxPool2D.forward(self, x, *args)


class AvgPool2D(gluon.nn.AvgPool2D):
    def forward(self, x, *args):
        self._d2p_check(x.shape)
        return gluon.nn.AvgPool2D.forward(self, x, *args)


class AdaptiveAvgPool2D(gluon.HybridBlock):
    """PyTorch's adaptive average pooling (``contrib.AdaptiveAvgPooling2D``, same bins)."""

    def __init__(self, output_size):
        gluon.HybridBlock.__init__(self)
        self._output_size = tuple(output_size)

    def forward(self, x, *args):
        self._d2p_check(x.shape)
        return gluon.HybridBlock.forward(self, x, *args)

    def hybrid_forward(self, F, x):
        return F.contrib.AdaptiveAvgPooling2D(x, output_size=self._output_size)

    def __repr__(self):
        return f"AdaptiveAvgPool2D(output_size={self._output_size})"


class BatchNorm2D(BatchNorm):
    """:class:`BatchNorm` over the channels of ``(N, C, H, W)`` input."""

    _d2p_ranks = (4,)

    def forward(self, x, *args):
        self._d2p_check(x.shape)
        return BatchNorm.forward(self, x, *args)
