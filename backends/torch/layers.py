"""PyTorch's side of d2lparams' modules."""

from __future__ import annotations

import torch


class Custom(torch.nn.Module):
    """A native module whose forward is a neutral module's forward."""

    def __init__(self, module):
        torch.nn.Module.__init__(self)
        object.__setattr__(self, "_d2p_module", module)

    def forward(self, *args):
        return self._d2p_module._native_forward(*args)


# -- convolution and pooling: PyTorch's own layers, with d2lparams' input check first ---------
class Conv2d(torch.nn.Conv2d):
    """``nn.Conv2d`` that calls d2lparams' input check (``_d2p_check``) before computing."""

    def forward(self, input):
        self._d2p_check(input.shape)
        return self._conv_forward(input, self.weight, self.bias)


class LazyConv2d(torch.nn.LazyConv2d):
    """``nn.LazyConv2d`` that checks its first input before it learns ``in_channels`` from it
    and then becomes the :class:`Conv2d` above."""

    cls_to_become = Conv2d

    def initialize_parameters(self, input, *args, **kwargs):
        self._d2p_check(input.shape)
        return torch.nn.LazyConv2d.initialize_parameters(self, input, *args, **kwargs)

    forward = Conv2d.forward


class MaxPool2d(torch.nn.MaxPool2d):
    def forward(self, input):
        self._d2p_check(input.shape)
        return torch.nn.MaxPool2d.forward(self, input)


class AvgPool2d(torch.nn.AvgPool2d):
    def forward(self, input):
        self._d2p_check(input.shape)
        return torch.nn.AvgPool2d.forward(self, input)


class AdaptiveAvgPool2d(torch.nn.AdaptiveAvgPool2d):
    def forward(self, input):
        self._d2p_check(input.shape)
        return torch.nn.AdaptiveAvgPool2d.forward(self, input)


class BatchNorm2d(torch.nn.BatchNorm2d):
    def forward(self, input):
        self._d2p_check(input.shape)
        return torch.nn.BatchNorm2d.forward(self, input)
