"""Devices: where tensors and parameters live, and d2l's GPU helpers.

A :class:`Device` is neutral (``cpu`` or ``gpu:<index>``); each backend maps it to its own
(``torch.device("cuda", i)``, ``tf.device("/GPU:i")``, ``mx.gpu(i)``,
``paddle.CUDAPlace(i)``) when a tensor or module is placed on it.
"""

from __future__ import annotations

import numpy as np

from . import _registry


class Device:
    """A neutral device: ``Device("cpu")`` or ``Device("gpu", 0)``; made by :func:`device`.

    ``str(d)`` is ``"cpu"`` or ``"gpu:0"``; devices compare equal by type and index.
    """

    __slots__ = ("type", "index")

    def __init__(self, type: str = "cpu", index: int = 0) -> None:
        self.type = type
        self.index = int(index)

    def _key(self) -> tuple:
        return (self.type, self.index if self.type == "gpu" else 0)

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = device(other)
            except ValueError:
                return False
        return isinstance(other, Device) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return "cpu" if self.type == "cpu" else f"gpu:{self.index}"

    def __repr__(self) -> str:
        return f"device({str(self)!r})"


_GPU_NAMES = ("gpu", "cuda")


def device(spec: str | Device = "cpu", index: int | None = None) -> Device:
    """A device: ``device("cpu")``, ``device("gpu", 0)``, ``device("cuda:0")`` or
    ``device("gpu:1")`` (``"cuda"`` is PyTorch's name for a GPU; both mean the same on every
    backend).

    Whether the device exists is checked where it is used (``m.to(d)``, ``d2p.rand(...,
    device=d)``), on the backend of the model or tensor.

    Raises:
        ValueError: an unknown device name or a negative index.

    Examples:
        >>> import d2lparams as d2p
        >>> d2p.device("cuda:1"), d2p.device("gpu", 1) == d2p.device("cuda:1")
        (device('gpu:1'), True)
    """
    if isinstance(spec, Device) and index is None:
        return spec
    if not isinstance(spec, str):
        raise ValueError(
            f"device takes a name such as 'cpu', 'gpu', 'gpu:0' or 'cuda:0', got {spec!r}"
        )
    name, _, suffix = spec.strip().lower().partition(":")
    if suffix:
        if index is not None:
            raise ValueError(f"device({spec!r}, {index!r}): give the index once, "
                             f"as device('{name}', {index}) or device('{name}:{suffix}')")
        if not suffix.isdigit():
            raise ValueError(f"device {spec!r}: the index after ':' must be a number, "
                             "as in 'gpu:0'")
        index = int(suffix)
    if index is not None and (isinstance(index, bool)
                              or not isinstance(index, (int, np.integer)) or index < 0):
        raise ValueError(f"a device index is a non-negative int, got {index!r}")
    if name == "cpu":
        if index not in (None, 0):
            raise ValueError(f"there is one CPU device (index 0), got index {index}")
        return Device("cpu", 0)
    if name in _GPU_NAMES:
        return Device("gpu", 0 if index is None else int(index))
    raise ValueError(
        f"unknown device {spec!r}; d2lparams devices are 'cpu' and 'gpu' (PyTorch's "
        "'cuda' is accepted), with an index as 'gpu:0' or device('gpu', 0)"
    )


def resolve(spec, ad) -> tuple:
    """``spec`` as the adapter's ``(type, index)``, checked against the GPUs ``ad`` sees.

    Raises:
        RuntimeError: a GPU the backend does not have.
    """
    d = device(spec) if not isinstance(spec, Device) else spec
    if d.type == "gpu":
        found = ad.num_gpus()
        if d.index >= found:
            raise RuntimeError(
                f"backend {ad.name!r} ({ad.framework_name}) found {found} GPU"
                f"{'' if found == 1 else 's'}, so device {str(d)!r} is not available; use "
                "d2p.try_gpu() (the GPU if there is one, else the CPU) or device('cpu')"
            )
    return d._key()


def num_gpus(backend: str | None = None) -> int:
    """How many GPUs the current backend (or ``backend``) sees; d2l's ``num_gpus``."""
    return int(_registry.adapter(backend).num_gpus())


def try_gpu(i: int = 0, backend: str | None = None) -> Device:
    """GPU ``i`` if the backend sees it, else the CPU; d2l's ``try_gpu``.

    Examples:
        >>> import d2lparams as d2p
        >>> d2p.try_gpu(backend="torch") in (d2p.device("cpu"), d2p.device("gpu", 0))
        True
    """
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0:
        raise ValueError(f"try_gpu takes a non-negative GPU index, got {i!r}")
    return Device("gpu", int(i)) if num_gpus(backend) > i else Device("cpu")


def try_all_gpus(backend: str | None = None) -> list[Device]:
    """Every GPU the backend sees, or ``[device("cpu")]`` without one; d2l's
    ``try_all_gpus``."""
    n = num_gpus(backend)
    return [Device("gpu", i) for i in range(n)] or [Device("cpu")]


def device_of(x) -> Device:
    """Where ``x`` lives: a native tensor of any backend, a ``Parameter`` or a module (its
    first parameter; the CPU for a module without one).

    Raises:
        TypeError: ``x`` is none of these.
    """
    if hasattr(x, "_d2p_parameter"):
        return x.device
    if hasattr(x, "parameters") and hasattr(x, "native") and hasattr(x, "backend"):
        first = next(iter(x.parameters()), None)
        return Device() if first is None else first.device
    name = _registry.backend_of_type(x)
    if name is None:
        raise TypeError(
            f"device_of takes a native tensor, a d2lparams Parameter or a module, got "
            f"{type(x).__module__}.{type(x).__name__}"
        )
    return Device(*_registry.adapter(name).device_of(x))
