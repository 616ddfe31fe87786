"""``nn.Parameter``: one neutral view over a framework's own parameter."""

from __future__ import annotations

import weakref

import numpy as np

from .. import _registry
from .._state import check_not_recording
from .._tensor import as_array

# One Parameter per native parameter while anybody holds it: (backend, id(native)) -> Parameter.
# The Parameter holds its native strongly, so an id cannot be reused while the entry lives.
_views: weakref.WeakValueDictionary[tuple, Parameter] = weakref.WeakValueDictionary()


def _canonical(shape: tuple, layout: tuple | None) -> tuple:
    if layout is None:
        return tuple(shape)
    if layout == (1, 0):  # a Linear weight stored (out, in): the common case, kept cheap
        return shape[1], shape[0]
    return tuple(shape[axis] for axis in layout)


def _inverse(layout: tuple | None) -> tuple | None:
    """The permutation that undoes ``layout`` (canonical -> native axes)."""
    if layout is None:
        return None
    return tuple(sorted(range(len(layout)), key=layout.__getitem__))


class Parameter:
    """A trainable tensor of a module, in the canonical layout on every backend.

    ``value`` is anything array-like (NumPy, a list, a native tensor of any backend); the
    shape is kept as given. The native parameter is created on the current backend (or
    ``backend=``) and stays reachable as ``p.native``.

    Inside a module's ``forward`` the attribute gives the native tensor itself, so the usual
    operators and the framework's functions apply; outside, it is this object.

    Examples:
        >>> import numpy as np, d2lparams as d2p
        >>> p = d2p.nn.Parameter(np.ones((2, 3)), backend="torch")
        >>> p.shape, p.dtype
        ((2, 3), 'float32')
        >>> p[0, 0] = 42.0
        >>> float(p[0, 0])
        42.0
    """

    _d2p_parameter = True
    __array_priority__ = 1000

    def __init__(self, value, requires_grad: bool = True, *, backend: str | None = None):
        ad = _registry.adapter(backend)
        array = np.array(self._checked(value, "nn.Parameter"), dtype=np.float32, copy=True)
        self._attach(ad, ad.create_parameter(array, bool(requires_grad)), None)
        _views[(ad.name, id(self._native))] = self

    def _attach(self, ad, native, layout: tuple | None) -> None:
        self._adapter = ad
        self._native = native
        #: native -> canonical axis permutation (``canonical = native.transpose(layout)``);
        #: ``None`` when the framework stores the canonical layout
        self._layout = layout
        self._inverse = _inverse(layout)
        self._swap = layout == (1, 0)  # a plain 2-D transpose (the Linear hot path)

    @classmethod
    def _view(cls, ad, native, layout: tuple | None = None) -> Parameter:
        """The one Parameter for ``native`` (created on first request); ``layout`` is the
        adapter's ``Backend.layout`` for it."""
        key = (ad.name, id(native))
        view = _views.get(key)
        if view is None or view._native is not native:
            view = cls.__new__(cls)
            view._attach(ad, native, layout)
            _views[key] = view
        return view

    # -- description -------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """The backend the parameter lives on."""
        return self._adapter.name

    @property
    def native(self):
        """The framework's own parameter object."""
        return self._native

    @property
    def native_shape(self) -> tuple:
        """The shape as the framework stores it (``(out, in)`` for torch/mxnet Linear
        weights, ``(kh, kw, in, out)`` for Keras conv kernels)."""
        return tuple(self._adapter.param_shape(self._native))

    @property
    def shape(self) -> tuple:
        """The canonical shape; a Linear weight is ``(in_features, out_features)``, a Conv2d
        weight ``(out_channels, in_channels/groups, kh, kw)``."""
        return _canonical(self.native_shape, self._layout)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> str:
        return "float32"

    def numel(self) -> int:
        """The number of scalars."""
        return int(np.prod(self.shape, dtype=np.int64))

    def _canonical(self, native: np.ndarray) -> np.ndarray:
        """A native-layout array seen in the canonical layout (a view, no copy)."""
        if self._layout is None:
            return native
        return native.T if self._swap else native.transpose(self._layout)

    def _native_layout(self, canonical: np.ndarray) -> np.ndarray:
        """A canonical array seen in the native layout (a view, no copy)."""
        if self._inverse is None:
            return canonical
        return canonical.T if self._swap else canonical.transpose(self._inverse)

    def numpy(self) -> np.ndarray:
        """A float32 NumPy copy in the canonical layout.

        For a parameter the framework stores in another layout (transposed, or a Keras conv
        kernel), the copy is a permuted view of a fresh native-layout copy (for a transposed
        weight: Fortran order): one memory copy instead of a permuting one, and writing it
        back with ``set`` / ``load_state_dict`` is again a plain copy."""
        return self._canonical(self._adapter.to_numpy(self._native))

    def __array__(self, dtype=None, copy=None):
        value = self.numpy()
        return value if dtype is None else value.astype(dtype)

    # -- gradients ---------------------------------------------------------------------------
    @property
    def grad(self) -> np.ndarray | None:
        """The accumulated gradient (canonical layout), ``None`` before any backward."""
        g = self._adapter.param_grad(self._native)
        return None if g is None else self._canonical(g)

    @property
    def requires_grad(self) -> bool:
        return bool(self._adapter.requires_grad(self._native))

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"requires_grad takes True or False, got {flag!r}")
        self._adapter.requires_grad(self._native, bool(flag))

    def requires_grad_(self, flag: bool = True) -> Parameter:
        """Set ``requires_grad`` and return the parameter (PyTorch's spelling)."""
        self.requires_grad = flag
        return self

    def zero_grad(self) -> None:
        """Drop the accumulated gradient (``grad`` is ``None`` again)."""
        self._adapter.zero_grad(self._native)

    # -- writing -----------------------------------------------------------------------------
    def _write(self, canonical: np.ndarray) -> None:
        value = np.asarray(canonical, dtype=np.float32)
        self._adapter.assign(self._native, self._native_layout(value))

    def _checked(self, value, what: str) -> np.ndarray:
        try:
            array = np.asarray(as_array(value), dtype=np.float32)
        except (TypeError, ValueError) as exc:  # text, objects, ragged lists
            raise TypeError(
                f"{what}: expected a numeric array-like, got {type(value).__name__}"
            ) from exc
        if not np.isfinite(array).all():
            raise ValueError(
                f"{what}: the value holds NaN or inf ({int((~np.isfinite(array)).sum())} of "
                f"{array.size} entries); pass finite numbers (np.nan_to_num(value) replaces them)"
                "; the parameter is unchanged"
            )
        return array

    def set(self, value) -> Parameter:
        """Replace the whole value (canonical layout); tied places see it.

        Raises:
            ValueError: the shape differs; nothing is changed.
            RuntimeError: called while ``d2p.backward`` records.
        """
        check_not_recording(self)
        array = self._checked(value, "Parameter.set")
        if array.shape != self.shape:
            hint = ""
            if array.ndim == 2 and array.shape == self.shape[::-1]:
                hint = " (it is the transpose: pass value.T)"
            elif self._layout is not None and array.shape == self.native_shape:
                hint = (f" (it is the framework's own layout {self.native_shape}: pass "
                        f"value.transpose{self._layout})")
            raise ValueError(
                f"Parameter.set: expected a value of shape {self.shape}, got {array.shape}"
                f"{hint}; the parameter is unchanged"
            )
        self._write(array)
        return self

    def __getitem__(self, index):
        return self.numpy()[index]

    def __setitem__(self, index, value) -> None:
        check_not_recording(self)
        current = self.numpy()
        patch = self._checked(value, "Parameter[...] =")
        try:
            current[index] = patch
        except (IndexError, ValueError) as exc:
            raise type(exc)(
                f"cannot write a value of shape {patch.shape} at index {index!r} of a "
                f"parameter of shape {self.shape}: {exc}; the parameter is unchanged"
            ) from None
        self._write(current)

    # -- computing (outside forward; inside it the attribute is the native tensor) ---------
    def value(self):
        """The native differentiable tensor in the canonical layout."""
        v = self._adapter.param_value(self._native)
        if self._layout is None:
            return v
        if self._swap:
            return self._adapter.op("transpose")(v, 0, 1)
        return self._adapter.permute(v, self._layout)

    def __add__(self, other):
        return self.value() + _operand(other)

    def __radd__(self, other):
        return _operand(other) + self.value()

    def __sub__(self, other):
        return self.value() - _operand(other)

    def __rsub__(self, other):
        return _operand(other) - self.value()

    def __mul__(self, other):
        return self.value() * _operand(other)

    def __rmul__(self, other):
        return _operand(other) * self.value()

    def __truediv__(self, other):
        return self.value() / _operand(other)

    def __rtruediv__(self, other):
        return _operand(other) / self.value()

    def __matmul__(self, other):
        return self._adapter.op("matmul")(self.value(), _operand(other))

    def __rmatmul__(self, other):
        return self._adapter.op("matmul")(_operand(other), self.value())

    def __neg__(self):
        return -self.value()

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), precision=4, separator=", ", threshold=20)
        return (
            f"Parameter(backend={self.backend!r}, shape={self.shape}, "
            f"requires_grad={self.requires_grad}):\n{body}"
        )


def _operand(x):
    return x.value() if isinstance(x, Parameter) else x
