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
        if not self.training:
            return paddle.nn.BatchNorm1D.forward(self, input)
        axes = [0] if len(input.shape) == 2 else [0, 2]
        n = int(np.prod([input.shape[a] for a in axes]))
        if n < 2:
            raise ValueError(
                f"BatchNorm1d in training mode needs more than 1 value per channel, "
                f"got input of shape {tuple(input.shape)}; use a larger batch or eval()"
            )
        with paddle.no_grad():
            x = input.detach()  # paddle.var logs a dtype-promotion warning
            var = paddle.mean(paddle.square(x - paddle.mean(x, axis=axes, keepdim=True)),
                              axis=axes)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="When training, we now always")
            out = paddle.nn.BatchNorm1D.forward(self, input)
        with paddle.no_grad():
            self._variance.set_value(
                self._variance + var * ((1.0 - self._momentum) / (n - 1)))
        return out
