"""d2lparams: write a network once; build, inspect, initialize, tie and train it on PyTorch,
TensorFlow/Keras 3, MXNet Gluon, PaddlePaddle and JAX (Flax NNX) alike.

``import d2lparams`` imports no framework, and not even NumPy: the public names are loaded
on first use (PEP 562), so the import costs a few milliseconds. Using a backend imports that
framework only.

Examples:
    >>> import d2lparams as d2p
    >>> from d2lparams import nn
    >>> d2p.seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1), backend="torch")
    >>> [name for name, _ in net.named_parameters()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._errors import (
    BackendConflict,
    BackendNotAvailable,
    D2LParamsError,
    DeferredInitializationError,
    StateDictError,
)
from ._registry import (
    available_backends,
    backend_of,
    get_backend,
    list_backends,
    preload,
    set_backend,
    use_backend,
)

#: the one place the version is written (setup.cfg reads it; ``d2lparams --version`` shows it)
__version__ = "0.2.0.dev0"

# public name -> the module that defines it (imported on first access)
_LAZY = {
    "nn": ".nn", "ops": ".ops", "init": ".init", "optim": ".optim",
    "seed": "._tensor", "rand": "._tensor", "randn": "._tensor", "zeros": "._tensor",
    "ones": "._tensor", "tensor": "._tensor", "to_numpy": "._tensor",
    "backward": ".autograd", "no_grad": ".autograd",
    "grad": ".autograd", "grad_of": ".autograd", "zero_grad": ".autograd", "detach": ".ops",
    "data": ".data",
    "summary": ".introspect", "tied_parameters": ".introspect", "native_names": ".introspect",
    "wrap": ".introspect", "save": ".io", "load": ".io",
    "port": ".interop", "diff": ".interop", "compile": ".introspect",
    "device": "._devices", "Device": "._devices", "num_gpus": "._devices",
    "try_gpu": "._devices", "try_all_gpus": "._devices", "device_of": "._devices",
}

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from . import data, init, nn, ops, optim
    from ._devices import Device, device, device_of, num_gpus, try_all_gpus, try_gpu
    from ._tensor import ones, rand, randn, seed, tensor, to_numpy, zeros
    from .autograd import backward, grad, grad_of, no_grad, zero_grad
    from .interop import diff, port
    from .introspect import compile, native_names, summary, tied_parameters, wrap
    from .io import load, save
    from .ops import detach


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'd2lparams' has no attribute {name!r}")
    loaded = importlib.import_module(module, __name__)
    value = loaded if module == f".{name}" else getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BackendConflict", "BackendNotAvailable", "D2LParamsError", "DeferredInitializationError",
    "StateDictError", "available_backends", "backend_of", "backward", "diff", "get_backend", "init",
    "list_backends", "load", "native_names", "nn", "no_grad", "ones", "ops", "optim", "port", "preload",
    "rand", "randn", "save", "seed", "set_backend", "summary", "tensor", "tied_parameters",
    "to_numpy", "use_backend", "wrap", "zeros",
    "data", "detach", "grad", "grad_of", "zero_grad",
    "Device", "device", "device_of", "num_gpus", "try_all_gpus", "try_gpu",
    "compile",
]
