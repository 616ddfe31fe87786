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
