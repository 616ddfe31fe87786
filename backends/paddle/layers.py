"""PaddlePaddle's side of d2lparams' modules: the native side of a custom module, a lazy
Linear (paddle has none) and BatchNorm with PyTorch's running variance."""

from __future__ import annotations

import warnings

import numpy as np

with warnings.catch_warnings():  # "No ccache found": nothing a user can act on
    warnings.filterwarnings("ignore", message=".*ccache.*", category=UserWarning)
    import paddle

F = paddle.nn.functional


class Custom(paddle.nn.Layer):
    """A native layer whose forward is a neutral module's forward."""

    def __init__(self, module):
        paddle.nn.Layer.__init__(self)
        object.__setattr__(self, "_d2p_module", module)

    def forward(self, *args):
        return self._d2p_module._native_forward(*args)


class LazyLinear(paddle.nn.Layer):
    """``paddle.nn.Linear`` whose ``in_features`` is taken at the first call.

    ``weight`` (``(in, out)``) and ``bias`` are created by the same ``create_parameter``
    calls as ``paddle.nn.Linear``, so they get its default initializers (Xavier uniform,
    zeros) and its names (``linear_N.w_0``).
    """

    def __init__(self, out_features, bias=True):
        paddle.nn.Layer.__init__(self, name_scope="linear")
        self._out_features = out_features
        self._use_bias = bias
        self._dtype = self._helper.get_default_dtype()
        self.add_parameter("weight", None)
        self.add_parameter("bias", None)

    def _build(self, in_features):
        self.add_parameter("weight", self.create_parameter(
            shape=[in_features, self._out_features], dtype=self._dtype, is_bias=False))
        if self._use_bias:
            self.add_parameter("bias", self.create_parameter(
                shape=[self._out_features], dtype=self._dtype, is_bias=True))

    def forward(self, input):
        if self.weight is None:
            self._build(int(input.shape[-1]))
        return F.linear(x=input, weight=self.weight, bias=self.bias)

    def extra_repr(self):
        in_features = None if self.weight is None else self.weight.shape[0]
        return f"in_features={in_features}, out_features={self._out_features}"


class BatchNorm1D(paddle.nn.BatchNorm1D):
    """``paddle.nn.BatchNorm1D`` with PyTorch's running variance.

    Paddle folds the *biased* batch variance into ``_variance``; torch folds the unbiased
    one. After paddle's own training forward this adds the difference,
    ``(1 - paddle_momentum) * var_biased / (n - 1)``, so the statistics are torch's. The
    output, the gradients and the mean are paddle's kernel, unchanged.
    """

    def forward(self, input):
        return _torch_statistics(self, paddle.nn.BatchNorm1D, input, "BatchNorm1d")


def _torch_statistics(layer, base, input, name):
    """``base.forward`` (paddle's batch norm) with PyTorch's unbiased running variance."""
    if not layer.training:
        return base.forward(layer, input)
    axes = [a for a in range(len(input.shape)) if a != 1]
    n = int(np.prod([input.shape[a] for a in axes]))
    if n < 2:
        raise ValueError(
            f"{name} in training mode needs more than 1 value per channel, "
            f"got input of shape {tuple(input.shape)}; use a larger batch or eval()"
        )
    with paddle.no_grad():
        x = input.detach()  # paddle.var logs a dtype-promotion warning
        var = paddle.mean(paddle.square(x - paddle.mean(x, axis=axes, keepdim=True)),
                          axis=axes)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="When training, we now always")
        out = base.forward(layer, input)
    with paddle.no_grad():
        layer._variance.set_value(
            layer._variance + var * ((1.0 - layer._momentum) / (n - 1)))
    return out


# -- convolution and pooling: paddle's own layers, with d2lparams' input check first ----------
class Conv2D(paddle.nn.Conv2D):
    """``paddle.nn.Conv2D`` that calls d2lparams' input check (``_d2p_check``) first."""

    def forward(self, x):
        self._d2p_check(x.shape)
        return paddle.nn.Conv2D.forward(self, x)


class LazyConv2D(Conv2D):
    """A :class:`Conv2D` whose ``in_channels`` is taken at the first call (paddle has no lazy
    layer). Until then ``weight`` is ``None``; the first call creates it with the very
    ``create_parameter`` call of ``paddle.nn.Conv2D`` (its default ``Normal(0, √(2/(in·kh·kw)))``
    and its naming)."""

    def __init__(self, out_channels, kernel_size, groups=1, **options):
        # built for in_channels=groups; the placeholder weight is dropped at once
        Conv2D.__init__(self, groups, out_channels, kernel_size, groups=groups, **options)
        self.add_parameter("weight", None)

    def forward(self, x):
        self._d2p_check(x.shape)
        if self.weight is None:
            self._d2p_build(int(x.shape[1]))
        return paddle.nn.Conv2D.forward(self, x)

    def _d2p_build(self, in_channels):
        self._in_channels = in_channels
        std = (2.0 / (np.prod(self._kernel_size) * in_channels)) ** 0.5
        self.add_parameter("weight", self.create_parameter(
            shape=[self._out_channels, in_channels // self._groups, *self._kernel_size],
            attr=self._param_attr, dtype=self._dtype,
            default_initializer=paddle.nn.initializer.Normal(0.0, std)))
        # as paddle.nn.Conv2D decides at construction
        depthwise = in_channels == self._groups and in_channels != 1 \
            and self._out_channels % in_channels == 0
        self._op_type = "depthwise_conv2d" if depthwise else "conv2d"


class MaxPool2D(paddle.nn.MaxPool2D):
    def forward(self, x):
        self._d2p_check(x.shape)
        return paddle.nn.MaxPool2D.forward(self, x)


class AvgPool2D(paddle.nn.AvgPool2D):
    def forward(self, x):
        self._d2p_check(x.shape)
        return paddle.nn.AvgPool2D.forward(self, x)


class AdaptiveAvgPool2D(paddle.nn.AdaptiveAvgPool2D):
    def forward(self, x):
        self._d2p_check(x.shape)
        return paddle.nn.AdaptiveAvgPool2D.forward(self, x)


class BatchNorm2D(paddle.nn.BatchNorm2D):
    """``paddle.nn.BatchNorm2D`` with PyTorch's running variance (see :class:`BatchNorm1D`)."""

    def forward(self, input):
        self._d2p_check(input.shape)
        return _torch_statistics(self, paddle.nn.BatchNorm2D, input, "BatchNorm2d")
