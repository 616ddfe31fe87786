"""Arguments and input contracts of convolution and pooling, shared by the layers
(``d2lparams.nn.conv``) and the functional operations (``ops.conv2d``, ...)."""

from __future__ import annotations

import numpy as np

__all__ = ["InputCheck", "PoolCheck", "conv_padding", "pair", "pool_padding", "pool_stride",
           "same_padding"]


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def pair(value, what: str, minimum: int = 1) -> tuple[int, int]:
    """``value`` (an int or a pair of ints, each ``>= minimum``) as a pair."""
    if _is_int(value):
        items = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        items = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{what} must be an int or a pair of ints (h, w), got {value!r}")
    if min(items) < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value!r}")
    return items


def conv_padding(padding, stride: tuple, what: str):
    """A conv ``padding`` argument: ``"same"``, ``"valid"``, or a pair of per-side zero
    paddings. ``"same"`` with a stride other than 1 is refused, as PyTorch refuses it."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(
                f"{what} padding must be an int, a pair, 'same' or 'valid', got {padding!r}"
            )
        if padding == "same" and stride != (1, 1):
            raise ValueError(
                f"{what}: padding='same' is not supported for strided convolutions (stride="
                f"{stride}), as in PyTorch; pass the padding as numbers, e.g. padding=k // 2"
            )
        return padding
    return pair(padding, f"{what} padding", minimum=0)


def same_padding(kernel_size: tuple, dilation: tuple) -> tuple[int, int, int, int]:
    """PyTorch's ``padding="same"`` at stride 1 as ``(top, bottom, left, right)``: the total
    ``dilation·(k-1)`` split with the odd one at the bottom/right."""
    out = []
    for k, d in zip(kernel_size, dilation):
        total = d * (k - 1)
        out += [total // 2, total - total // 2]
    return out[0], out[1], out[2], out[3]


def pool_stride(stride, kernel_size: tuple, what: str) -> tuple[int, int]:
    return kernel_size if stride is None else pair(stride, f"{what} stride")


def pool_padding(padding, kernel_size: tuple, what: str) -> tuple[int, int]:
    pad = pair(padding, f"{what} padding", minimum=0)
    if any(p > k // 2 for p, k in zip(pad, kernel_size)):
        raise ValueError(
            f"{what}: padding should be at most half of the kernel size (PyTorch's rule), got "
            f"padding={padding!r} for kernel_size={kernel_size}"
        )
    return pad


class InputCheck:
    """The input contract of one conv/pool/normalization layer: ``check(shape)`` raises a
    ``ValueError`` naming the layer, with the expected and the actual shape and the fix, or
    returns. The native layer calls it before it computes. Holds only numbers and text (it
    travels with the native layer: ``torch.save``, ``copy.deepcopy``)."""

    __slots__ = ("layer", "channels", "min_h", "min_w", "what", "groups", "lazy_hint")

    def __init__(self, layer: str, channels: int | None, min_hw: tuple = (1, 1),
                 what: str = "", groups: int = 1, lazy_hint: str = "") -> None:
        #: the layer as its repr shows it, ``{in}`` standing for the input channels
        self.layer = layer
        #: expected input channels (``None``: learnt at the first call, lazy layers)
        self.channels = channels
        #: the smallest input height and width the layer can take
        self.min_h, self.min_w = min_hw
        #: why that minimum (``the 5×5 kernel with padding 2``)
        self.what = what
        self.groups = groups
        #: how to build the layer for another channel count
        self.lazy_hint = lazy_hint

    def __call__(self, shape) -> None:
        try:
            if (len(shape) == 4 and (shape[1] == self.channels or self.channels is None)
                    and shape[2] >= self.min_h and shape[3] >= self.min_w):
                if self.channels is None:
                    self._learn(int(shape[1]))
                return
        except TypeError:  # unknown (symbolic) sizes: only what is known is checked
            pass
        self._slow(tuple(None if s is None else int(s) for s in shape))

    def _learn(self, channels: int) -> None:
        if channels % self.groups:
            raise ValueError(
                f"{self._name()} learns in_channels from its first input: {channels} channels "
                f"are not divisible by groups={self.groups}; pass an input whose channel "
                f"count is a multiple of {self.groups}"
            )
        self.channels = channels

    def _name(self) -> str:
        return self.layer.replace("{in}", str(self.channels))

    def _slow(self, shape: tuple) -> None:
        c = "C" if self.channels is None else str(self.channels)
        expected = f"(N, {c}, H, W)"
        name = self._name()
        if len(shape) != 4:
            fix = "pass a 4-D batch (N, C, H, W)"
            if len(shape) == 3:
                fix = f"add the batch axis: X.reshape((1,) + X.shape), i.e. shape {(1,) + shape}"
            elif len(shape) == 2 and self.channels is not None:
                fix = f"reshape it to (N, {c}, H, W)"
            raise ValueError(
                f"{name} expects a 4-D input {expected}, got shape {shape}; {fix}"
            )
        n, channels, h, w = shape
        if self.channels is not None and channels is not None and channels != self.channels:
            raise ValueError(
                f"{name} expects input of shape {expected}, got {shape}: {channels} channels "
                f"where the layer takes {self.channels}; {self.lazy_hint or 'fix the layer or the input'}"
            )
        if (h is not None and h < self.min_h) or (w is not None and w < self.min_w):
            raise ValueError(
                f"{name} expects input of shape {expected} with H >= {self.min_h} and W >= "
                f"{self.min_w} ({self.what}), got {shape}; pass larger inputs, or reduce "
                "the kernel or add padding"
            )
        if self.channels is None and channels is not None:
            self._learn(channels)


class PoolCheck(InputCheck):
    """The input check of a pooling layer: any channel count."""

    __slots__ = ()

    def _learn(self, channels: int) -> None:
        pass
