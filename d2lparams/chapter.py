"""The networks of the "parameter management" chapter and its companion pages, defined once.

``d2lparams compare``, the test suite and the benchmarks build these; each is built on the
current backend (or ``backend=``).

Examples:
    >>> from d2lparams import chapter
    >>> [n for n, _ in chapter.seed_net(backend="torch").named_parameters()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
"""

from __future__ import annotations

import numpy as np

from . import init, nn, ops
from ._tensor import rand

__all__ = [
    "CenteredLayer", "ChapterInit", "FixedHiddenMLP", "MLP", "MyLinear", "MySequential",
    "block1", "block2", "lenet", "rgnet", "seed_net", "tied_net",
]


def seed_net(*, backend: str | None = None) -> nn.Sequential:
    """``Sequential(Linear(4, 8), ReLU, Linear(8, 1))``: the chapter's first network."""
    return nn.Sequential(nn.Linear(4, 8, backend=backend), nn.ReLU(backend=backend),
                         nn.Linear(8, 1, backend=backend))


def tied_net(*, backend: str | None = None) -> nn.Sequential:
    """The chapter's tied network: one ``Linear(8, 8)`` object at positions 2 and 4."""
    shared = nn.Linear(8, 8, backend=backend)
    return nn.Sequential(nn.Linear(4, 8, backend=backend), nn.ReLU(backend=backend), shared,
                         nn.ReLU(backend=backend), shared, nn.ReLU(backend=backend),
                         nn.Linear(8, 1, backend=backend))


def block1(*, backend: str | None = None) -> nn.Sequential:
    """``Sequential(Linear(4, 8), ReLU, Linear(8, 4), ReLU)``."""
    return nn.Sequential(nn.Linear(4, 8, backend=backend), nn.ReLU(backend=backend),
                         nn.Linear(8, 4, backend=backend), nn.ReLU(backend=backend))


def block2(*, backend: str | None = None) -> nn.Sequential:
    """Four :func:`block1` added with ``add_module(f"block {i}", ...)``."""
    net = nn.Sequential(backend=backend)
    for i in range(4):
        net.add_module(f"block {i}", block1(backend=backend))
    return net


def rgnet(*, backend: str | None = None) -> nn.Sequential:
    """The chapter's nested network ``Sequential(block2(), Linear(4, 1))``."""
    return nn.Sequential(block2(backend=backend), nn.Linear(4, 1, backend=backend))


def lenet(*, backend: str | None = None) -> nn.Sequential:
    """d2l's LeNet-5 for ``(N, 1, 28, 28)`` images: two sigmoid convolutions with average
    pooling, then three Linear layers (``Flatten`` gives PyTorch's channel-major order on
    every backend, so one state dict fits all of them).

    Examples:
        >>> from d2lparams import chapter
        >>> net = chapter.lenet(backend="torch")
        >>> net.num_parameters(), net[0].weight.shape, net[7].weight.shape
        (61706, (6, 1, 5, 5), (400, 120))
    """
    b = backend
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2, backend=b), nn.Sigmoid(backend=b),
        nn.AvgPool2d(kernel_size=2, stride=2, backend=b),
        nn.Conv2d(6, 16, kernel_size=5, backend=b), nn.Sigmoid(backend=b),
        nn.AvgPool2d(kernel_size=2, stride=2, backend=b),
        nn.Flatten(backend=b),
        nn.Linear(16 * 5 * 5, 120, backend=b), nn.Sigmoid(backend=b),
        nn.Linear(120, 84, backend=b), nn.Sigmoid(backend=b),
        nn.Linear(84, 10, backend=b),
    )


class ChapterInit(init.Initializer):
    """The chapter's ``my_init``: ``U(5, 10)`` w.p. 1/4, 0 w.p. 1/2, ``U(-10, -5)`` w.p. 1/4."""

    def __call__(self, shape, rng):
        w = rng.uniform(-10, 10, shape)
        return w * (np.abs(w) >= 5)


class CenteredLayer(nn.Module):
    """A layer without parameters: subtracts the mean."""

    def forward(self, X):
        return X - ops.mean(X)


class MyLinear(nn.Module):
    """A Linear written by hand with two ``nn.Parameter``s (standard-normal, seed 0)."""

    def __init__(self, in_units, units):
        super().__init__()
        rng = np.random.default_rng(0)
        self.weight = nn.Parameter(rng.standard_normal((in_units, units)))
        self.bias = nn.Parameter(rng.standard_normal((units,)))

    def forward(self, X):
        return ops.relu(ops.matmul(X, self.weight) + self.bias)


class MLP(nn.Module):
    """The blocks page's MLP: ``hidden = Linear(20, 256)``, ``out = Linear(256, 10)``."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(20, 256)
        self.out = nn.Linear(256, 10)

    def forward(self, X):
        return self.out(ops.relu(self.hidden(X)))


class MySequential(nn.Module):
    """A hand-written Sequential: children added with ``add_module(str(i), m)``."""

    def __init__(self, *args):
        super().__init__()
        for idx, module in enumerate(args):
            self.add_module(str(idx), module)

    def forward(self, X):
        for module in self.children():
            X = module(X)
        return X


class FixedHiddenMLP(nn.Module):
    """A constant (unregistered) tensor, a reused layer and a registered buffer."""

    def __init__(self):
        super().__init__()
        self.rand_weight = rand(20, 20)  # a plain tensor: not registered, not trained
        self.linear = nn.Linear(20, 20)
        self.register_buffer("scale", np.full((20,), 2.0, np.float32))

    def forward(self, X):
        X = self.linear(X)
        X = ops.relu(ops.matmul(X, self.rand_weight) + 1)
        X = self.linear(X) * self.scale
        return ops.sum(X)
