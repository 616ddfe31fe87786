"""d2lparams: write a network once; build, inspect, initialize, tie and train it on PyTorch,
TensorFlow/Keras 3, MXNet Gluon and PaddlePaddle alike.

``import d2lparams`` imports no framework; using a backend imports that framework only.

Examples:
    >>> import d2lparams as d2p
    >>> from d2lparams import nn
    >>> d2p.seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1), backend="torch")
    >>> [name for name, _ in net.named_parameters()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
"""

from . import init, nn, ops, optim  # noqa: E402  (they need nn)
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
from ._tensor import ones, rand, randn, seed, tensor, to_numpy, zeros
from .autograd import backward, no_grad
from .introspect import native_names, summary, tied_parameters, wrap
from .io import load, save  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BackendConflict", "BackendNotAvailable", "D2LParamsError", "DeferredInitializationError",
    "StateDictError", "available_backends", "backend_of", "backward", "get_backend", "init",
    "list_backends", "load", "nn", "no_grad", "optim", "ones", "ops", "preload", "rand", "randn", "save", "seed",
    "set_backend", "summary", "tensor", "tied_parameters", "native_names", "to_numpy",
    "use_backend", "wrap", "zeros",
]
