"""Convolution, pooling and 2-D batch normalization, with PyTorch's meaning on every backend.

Every layer here takes and returns ``(N, C, H, W)`` tensors (NCHW) on every backend; a
framework that computes in NHWC (Keras) converts inside its native layer. A conv weight is
``(out_channels, in_channels/groups, kh, kw)`` on every backend (PyTorch's layout);
``weight.native_shape`` is what the framework stores (Keras: ``(kh, kw, in, out)``).

The shape contract of each layer is checked before the framework computes (a wrong channel
count, an input smaller than the kernel, an input that is not 4-D), by the native layer
itself, so a bad input fails with the same ``ValueError`` on every backend, names the layer,
and changes nothing (no lazy layer built, no running statistics updated).

Examples:
    >>> import d2lparams as d2p
    >>> from d2lparams import nn
    >>> conv = nn.Conv2d(1, 6, kernel_size=5, padding=2, backend="torch")
    >>> conv
    Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))
    >>> conv.weight.shape
    (6, 1, 5, 5)
    >>> tuple(conv(d2p.zeros(2, 1, 28, 28, backend="torch")).shape)
    (2, 6, 28, 28)
"""

from __future__ import annotations

import numpy as np

from .._conv import InputCheck, PoolCheck, conv_padding, pair, pool_padding, pool_stride
from .layers import BatchNorm1d, _Layer, _positive_int, _Stateless
from .module import Module
from .parameter import Parameter

__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm2d", "Conv2d", "LazyConv2d", "MaxPool2d"]


# -- convolution -----------------------------------------------------------------------------
class Conv2d(_Layer):
    """2-D convolution (cross-correlation) over ``(N, C, H, W)`` input, PyTorch's ``Conv2d``.

    ``kernel_size``, ``stride``, ``dilation`` take an int or a pair; ``padding`` an int, a
    pair (zeros on each side), ``"valid"`` (none) or ``"same"`` (stride 1: output as large as
    the input). ``in_channels=None`` (or :func:`LazyConv2d`) learns the channel count at the
    first call. The weight is ``(out_channels, in_channels/groups, kh, kw)`` on every
    backend; the framework's own default initialization is kept
    (``init.default_scheme(backend)`` describes it).

    Examples:
        >>> import d2lparams as d2p
        >>> conv = d2p.nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2, backend="torch")
        >>> conv.weight.shape, conv.bias.shape
        ((8, 2, 3, 3), (8,))
    """

    _kind = "conv2d"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, *,
                 backend: str | None = None) -> None:
        what = "LazyConv2d" if in_channels is None else "Conv2d"
        in_channels = _positive_int(in_channels, f"{what} in_channels", allow_none=True)
        out_channels = int(_positive_int(out_channels, f"{what} out_channels") or 0)
        kernel = pair(kernel_size, f"{what} kernel_size")
        stride = pair(stride, f"{what} stride")
        dilation = pair(dilation, f"{what} dilation")
        padding = conv_padding(padding, stride, what)
        groups = int(_positive_int(groups, f"{what} groups") or 1)
        if in_channels is not None and in_channels % groups:
            raise ValueError(f"{what}: in_channels ({in_channels}) must be divisible by groups "
                             f"({groups})")
        if out_channels % groups:
            raise ValueError(f"{what}: out_channels ({out_channels}) must be divisible by "
                             f"groups ({groups})")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"{what} bias takes True or False, got {bias!r}")
        super().__init__(backend=backend)
        d = self.__dict__
        d.update(_in_channels=in_channels, out_channels=out_channels, kernel_size=kernel,
                 stride=stride, padding=padding, dilation=dilation, groups=groups,
                 use_bias=bool(bias))
        self._build(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel,
                    stride=stride, padding=padding, dilation=dilation, groups=groups,
                    bias=bool(bias), check=self._input_check())

    def _input_check(self) -> InputCheck:
        kernel = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))
        if self.padding == "same":
            minimum, what = (1, 1), "any size"
        else:
            pad = (0, 0) if self.padding == "valid" else self.padding
            minimum = (max(1, kernel[0] - 2 * pad[0]), max(1, kernel[1] - 2 * pad[1]))
            what = f"the {kernel[0]}×{kernel[1]} kernel"
            what += " (dilated)" if self.dilation != (1, 1) else ""
            what += f" with padding {pad}" if pad != (0, 0) else " without padding"
        layer = f"Conv2d({{in}}, {self._repr_tail()})"
        hint = (f"build it as nn.Conv2d(<channels>, {self.out_channels}, ...) or "
                f"nn.LazyConv2d({self.out_channels}, ...) to take any channel count")
        return InputCheck(layer, self._in_channels, minimum, what, self.groups, hint)

    @property
    def in_channels(self) -> int | None:
        """The input channels (``None`` while a lazy layer has not seen an input)."""
        if self._in_channels is None:
            if self._adapter.layer_state(self.native, "conv2d") is not None:
                self.__dict__["_in_channels"] = self.weight.shape[1] * self.groups
        return self._in_channels

    @property
    def weight(self) -> Parameter:
        """``(out_channels, in_channels/groups, kh, kw)``."""
        return Parameter._view(self._adapter, self._state()["weight"],
                               self._adapter.layout("conv2d", "weight"))

    @property
    def bias(self) -> Parameter | None:
        """``(out_channels,)``, or ``None`` with ``bias=False``."""
        bias = self._state().get("bias")
        return None if bias is None else Parameter._view(self._adapter, bias)

    def __setattr__(self, name, value):
        if name in ("weight", "bias"):
            raise AttributeError(
                f"Conv2d.{name} cannot be replaced; write its value with "
                f"conv.{name}.set(value) or tie whole layers by reusing the module"
            )
        super().__setattr__(name, value)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self._repr_tail()}"

    def _repr_tail(self) -> str:
        # PyTorch's _ConvNd.extra_repr after in_channels
        text = f"{self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if not self.use_bias:
            text += ", bias=False"
        return text

    def _unbuilt_text(self) -> str:
        return f"Conv2d({self.extra_repr()})"


def LazyConv2d(out_channels, kernel_size, stride=1, padding=0, dilation=1, groups: int = 1,
               bias: bool = True, *, backend: str | None = None) -> Conv2d:
    """A :class:`Conv2d` whose ``in_channels`` is learnt at the first call.

    Examples:
        >>> import d2lparams as d2p
        >>> conv = d2p.nn.LazyConv2d(6, 5, backend="torch")
        >>> type(conv) is d2p.nn.Conv2d
        True
        >>> _ = conv(d2p.zeros(1, 3, 8, 8, backend="torch"))
        >>> conv.in_channels, conv.weight.shape
        (3, (6, 3, 5, 5))
    """
    return Conv2d(None, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                  backend=backend)


# -- pooling ---------------------------------------------------------------------------------
class _Pool2d(_Stateless):
    """Max or average pooling: the arguments as given (PyTorch's texts show them so), pairs
    for the native layer, and the input check."""

    def __init__(self, kernel_size, stride=None, padding=0, *,
                 backend: str | None = None) -> None:
        name = type(self).__name__
        kernel = pair(kernel_size, f"{name} kernel_size")
        strides = pool_stride(stride, kernel, name)
        pad = pool_padding(padding, kernel, name)
        self.__dict__.update(kernel_size=kernel_size, stride=kernel_size if stride is None
                             else stride, padding=padding)
        minimum = (max(1, kernel[0] - 2 * pad[0]), max(1, kernel[1] - 2 * pad[1]))
        what = f"the {kernel[0]}×{kernel[1]} window" + (f" with padding {pad}" if any(pad) else "")
        check = PoolCheck(f"{name}({self.extra_repr()})", None, minimum, what)
        super().__init__(backend=backend, kernel_size=kernel, stride=strides, padding=pad,
                         check=check)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """The maximum over ``kernel_size`` windows (PyTorch's ``MaxPool2d``: the padding is never
    the maximum, ``ceil_mode=False``); ``stride`` defaults to ``kernel_size``.

    Examples:
        >>> import d2lparams as d2p
        >>> d2p.nn.MaxPool2d(2, backend="torch")
        MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    """

    _kind = "max_pool2d"

    def extra_repr(self) -> str:
        return _Pool2d.extra_repr(self) + ", dilation=1, ceil_mode=False"


class AvgPool2d(_Pool2d):
    """The mean over ``kernel_size`` windows (PyTorch's ``AvgPool2d``: the zero padding counts,
    ``count_include_pad=True``; ``ceil_mode=False``); ``stride`` defaults to ``kernel_size``.

    Examples:
        >>> import d2lparams as d2p
        >>> d2p.nn.AvgPool2d(2, 2, backend="torch")
        AvgPool2d(kernel_size=2, stride=2, padding=0)
    """

    _kind = "avg_pool2d"


class AdaptiveAvgPool2d(_Stateless):
    """The mean over PyTorch's adaptive bins, giving an ``output_size`` (an int or a pair)
    output whatever the input size: bin ``i`` of ``out`` along an axis of size ``n`` covers
    ``[floor(i·n/out), ceil((i+1)·n/out))``. ``AdaptiveAvgPool2d(1)`` is global average
    pooling.

    Examples:
        >>> import d2lparams as d2p
        >>> pool = d2p.nn.AdaptiveAvgPool2d(1, backend="torch")
        >>> tuple(pool(d2p.ones(2, 3, 5, 7, backend="torch")).shape)
        (2, 3, 1, 1)
    """

    _kind = "adaptive_avg_pool2d"

    def __init__(self, output_size, *, backend: str | None = None) -> None:
        size = pair(output_size, "AdaptiveAvgPool2d output_size")
        self.__dict__["output_size"] = output_size
        check = PoolCheck(f"AdaptiveAvgPool2d({self.extra_repr()})", None)
        super().__init__(backend=backend, output_size=size, check=check)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


# -- normalization ---------------------------------------------------------------------------
class BatchNorm2d(_Layer):
    """Batch normalization over the channels of ``(N, C, H, W)`` input with PyTorch's meaning
    on every backend: the statistics are taken over N, H and W; parameters ``weight`` and
    ``bias``; buffers ``running_mean`` and ``running_var``, updated in the forward pass in
    training mode (``running = (1-momentum)·running + momentum·batch``, unbiased variance)
    and used in inference mode.

    Examples:
        >>> import d2lparams as d2p
        >>> d2p.nn.BatchNorm2d(6, backend="torch")
        BatchNorm2d(6, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    """

    _kind = "batch_norm2d"
    _buffer_names = ("running_mean", "running_var")

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, *,
                 backend: str | None = None) -> None:
        num_features = int(_positive_int(num_features, "BatchNorm2d num_features") or 0)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0:
            raise ValueError(f"BatchNorm2d eps must be > 0, got {eps!r}")
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) \
                or not 0 <= momentum <= 1:
            raise ValueError(f"BatchNorm2d momentum must be in [0, 1], got {momentum!r}")
        super().__init__(backend=backend)
        self.__dict__.update(num_features=num_features, eps=float(eps), momentum=float(momentum))
        hint = "build it as nn.BatchNorm2d(<channels>) for the channels of its input"
        check = InputCheck(f"BatchNorm2d({self.extra_repr()})", num_features, lazy_hint=hint)
        self._build(num_features=num_features, eps=float(eps), momentum=float(momentum),
                    check=check)

    weight = BatchNorm1d.weight
    bias = BatchNorm1d.bias
    running_mean = BatchNorm1d.running_mean
    running_var = BatchNorm1d.running_var

    def extra_repr(self) -> str:
        # PyTorch's _NormBase.extra_repr
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine=True, "
                "bias=True, track_running_stats=True")


#: layer kinds of this module -> neutral class (``d2p.wrap`` of native layers)
KINDS = {cls._kind: cls for cls in (Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d,
                                    BatchNorm2d)}


def wrapped(ad, kind: str, native, options: dict) -> Module:
    """The neutral layer of ``kind`` over an existing native layer (``d2p.wrap``), from the
    options the adapter's ``inspect`` reports; its calls are the native layer's own."""
    cls = KINDS[kind]
    module = cls.__new__(cls)
    Module.__init__(module, backend=ad.name)
    fields: dict = dict(options)
    if kind == "conv2d":
        stride = pair(options.get("stride", 1), "stride")
        fields = {
            "_in_channels": options.get("in_channels"),
            "out_channels": int(options["out_channels"]),
            "kernel_size": pair(options["kernel_size"], "kernel_size"), "stride": stride,
            "padding": conv_padding(options.get("padding", 0), stride, "Conv2d"),
            "dilation": pair(options.get("dilation", 1), "dilation"),
            "groups": int(options.get("groups", 1)), "use_bias": bool(options.get("bias", True)),
        }
    elif kind in ("max_pool2d", "avg_pool2d"):
        fields.setdefault("stride", options["kernel_size"])
        fields.setdefault("padding", 0)
        if fields["stride"] is None:
            fields["stride"] = options["kernel_size"]
    module.__dict__.update(fields, _native=native, _options=dict(options))
    return module
