"""``nn.Parameter``: one neutral view over a framework's own parameter."""

from __future__ import annotations

import weakref

import numpy as np

from .. import _devices, _registry, _tensor
from .. import init as _init
from .._checks import finite_float32
from .._state import check_not_recording
from . import _hints

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

    def __init__(self, value, requires_grad: bool = True, *, backend: str | None = None,
                 dtype: str | None = None):
        ad = _registry.adapter(backend)
        name = _tensor.parameter_dtype(dtype, ad, "nn.Parameter")
        carrier = _tensor.DTYPES[name]
        array = np.array(self._checked(value, "nn.Parameter", carrier), dtype=carrier, copy=True)
        native = ad.create_parameter(array, bool(requires_grad))
        if name == "bfloat16":
            ad.move(native, name)
        self._attach(ad, native, None)
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

    def __getattr__(self, name: str):
        # only for names that normal lookup did not find
        if name.startswith("_"):
            raise AttributeError(name)
        text = f"'Parameter' object has no attribute {name!r}"
        text += _hints.hint(_hints.PARAMETER, name, "Parameter")
        native = self.__dict__.get("_native")
        if native is not None and name not in _hints.PARAMETER and hasattr(native, name):
            text += (f"; d2lparams does not provide it, but the framework's own parameter does: "
                     f"use p.native.{name} ({type(native).__module__}.{type(native).__name__})")
        raise AttributeError(text)

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
        """The dtype as a name: ``"float32"`` (the default), ``"float64"``, ``"float16"`` or
        ``"bfloat16"``."""
        return self._adapter.dtype(self._native)

    @property
    def _carrier(self):
        """The NumPy type that holds the values (float32 for bfloat16, which NumPy lacks)."""
        return _tensor.DTYPES.get(self.dtype, np.float32)

    @property
    def device(self):
        """Where the parameter lives: ``device('cpu')`` or ``device('gpu:0')``."""
        return _devices.Device(*self._adapter.device_of(self._native))

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
        """A NumPy copy in the canonical layout, in the parameter's dtype (float32 for
        bfloat16, which NumPy lacks; every bfloat16 value is a float32 exactly).

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

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the accumulated gradient (``grad`` is ``None`` again), or with
        ``set_to_none=False`` fill it with zeros (no gradient stays ``None``)."""
        self._adapter.zero_grad(self._native, set_to_none)

    def __deepcopy__(self, memo) -> Parameter:
        """A new parameter on the same backend holding a copy of the value (canonical
        layout) with the same dtype, device and ``requires_grad``; no gradient."""
        if id(self) in memo:
            return memo[id(self)]
        new = Parameter(self.numpy(), requires_grad=self.requires_grad, backend=self.backend,
                        dtype=self.dtype)
        where = self._adapter.device_of(self._native)
        if where != ("cpu", 0):
            new._adapter.move(new._native, None, where)
        memo[id(self)] = new
        return new

    # -- writing -----------------------------------------------------------------------------
    def _write(self, canonical: np.ndarray) -> None:
        value = np.asarray(canonical, dtype=self._carrier)
        self._adapter.assign(self._native, self._native_layout(value))

    def _checked(self, value, what: str, carrier=None) -> np.ndarray:
        """``value`` as an array of the parameter's dtype, numeric, real and finite (the rule
        ``load_state_dict`` applies too, unless it is given ``allow_nonfinite=True``)."""
        try:
            return finite_float32(value, what, self._carrier if carrier is None else carrier)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{exc}; the parameter is unchanged") from None

    def set(self, value) -> Parameter:
        """Replace the whole value (canonical layout); tied places see it.

        Raises:
            ValueError: the shape differs; nothing is changed.
            RuntimeError: called while ``d2p.backward`` records.
        """
        check_not_recording(self)
        return self._set(value)

    def _set(self, value) -> Parameter:
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
        self._patch(index, value)

    def _patch(self, index, value) -> None:
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

    def register_hook(self, hook):
        """Call ``hook(grad)`` whenever a backward computes this parameter's gradient, before
        it is accumulated into ``.grad``: ``grad`` is a NumPy array in the canonical layout,
        and an array the hook returns replaces it. Returns a handle with ``remove()``.

        Examples:
            >>> import numpy as np, d2lparams as d2p
            >>> p = d2p.nn.Parameter(np.ones(3), backend="torch")
            >>> handle = p.register_hook(lambda g: 2 * g)
            >>> _ = d2p.backward(lambda: d2p.ops.sum(p * 1.0), backend="torch")
            >>> p.grad.tolist()
            [2.0, 2.0, 2.0]
        """
        if not callable(hook):
            raise TypeError(f"a gradient hook must be callable, got {type(hook).__name__}")
        ad = self._adapter

        def native_hook(grad):
            canonical = self._canonical(ad.to_numpy(grad))
            replaced = hook(canonical)
            if replaced is None:
                return None
            replaced = np.asarray(replaced, dtype=np.float32)
            if replaced.shape != canonical.shape:
                raise ValueError(
                    f"a gradient hook returned shape {replaced.shape} for a parameter of shape "
                    f"{canonical.shape}; return an array of the gradient's shape, or None"
                )
            native = np.ascontiguousarray(self._native_layout(replaced)).reshape(
                tuple(int(n) for n in grad.shape))
            return ad.tensor(native)

        return ad.grad_hook(self._native, native_hook)

    @property
    def data(self) -> ParameterData:
        """The value without gradient tracking (PyTorch's ``p.data``): ``p.data[0]`` reads,
        ``p.data[0, 0] = 100`` and ``p.data *= mask`` write in place (tied places see it),
        ``p.data.numpy()`` copies; never recorded, also while ``d2p.backward`` runs."""
        return ParameterData(self)

    @data.setter
    def data(self, value) -> None:
        self._set(value)

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

    def __pow__(self, other):
        return self.value() ** _operand(other)

    def __rpow__(self, other):
        return _operand(other) ** self.value()

    # ordering comparisons give native bool tensors (masks); == and != keep their identity
    # meaning (a Parameter is hashable, used as a key by identity)
    def __lt__(self, other):
        return self.value() < _operand(other)

    def __le__(self, other):
        return self.value() <= _operand(other)

    def __gt__(self, other):
        return self.value() > _operand(other)

    def __ge__(self, other):
        return self.value() >= _operand(other)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), precision=4, separator=", ", threshold=20)
        dtype, where = self.dtype, self.device
        extra = ("" if dtype == "float32" else f", dtype={dtype!r}") + (
            "" if where == "cpu" else f", device={str(where)!r}")
        return (
            f"Parameter(backend={self.backend!r}, shape={self.shape}{extra}, "
            f"requires_grad={self.requires_grad}):\n{body}"
        )


class ParameterData:
    """``p.data``: the parameter's value, canonical layout, outside autograd.

    Reading gives NumPy arrays (``data[0]``, ``data.abs()``, arithmetic and comparisons);
    writing changes the parameter in place (``data[idx] = v``, ``data += 1``,
    ``data *= mask``, ``data.fill_(0)``, ``data.copy_(x)``, ``data.normal_(0, 0.01)``). The
    ``init`` functions accept it as they accept the parameter.
    """

    __array_priority__ = 1000

    def __init__(self, param: Parameter) -> None:
        self._param = param

    # reading
    @property
    def shape(self) -> tuple:
        return self._param.shape

    @property
    def dtype(self) -> str:
        return self._param.dtype

    @property
    def ndim(self) -> int:
        return self._param.ndim

    def numpy(self) -> np.ndarray:
        return self._param.numpy()

    def __array__(self, dtype=None, copy=None):
        value = self.numpy()
        return value if dtype is None else value.astype(dtype)

    def __getitem__(self, index):
        return self.numpy()[index]

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return repr(self.numpy())

    def abs(self) -> np.ndarray:
        return np.abs(self.numpy())

    def __abs__(self):
        return self.abs()

    def __neg__(self):
        return -self.numpy()

    # writing, in place
    def __setitem__(self, index, value) -> None:
        self._param._patch(index, value)

    def _update(self, value) -> ParameterData:
        self._param._set(value)
        return self

    def __iadd__(self, other):
        return self._update(self.numpy() + np.asarray(other))

    def __isub__(self, other):
        return self._update(self.numpy() - np.asarray(other))

    def __imul__(self, other):
        return self._update(self.numpy() * np.asarray(other))

    def __itruediv__(self, other):
        return self._update(self.numpy() / np.asarray(other))

    def fill_(self, value) -> ParameterData:
        return self._update(np.full(self.shape, value, dtype=self._param._carrier))

    def zero_(self) -> ParameterData:
        return self.fill_(0.0)

    def copy_(self, value) -> ParameterData:
        return self._update(value)

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> ParameterData:
        _init.normal_(self._param, mean, std)
        return self

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> ParameterData:
        _init.uniform_(self._param, a, b)
        return self


def _binary(op):
    def method(self, other):
        return op(self.numpy(), np.asarray(other))

    def reflected(self, other):
        return op(np.asarray(other), self.numpy())

    return method, reflected


for _name, _op in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                   ("truediv", np.true_divide), ("pow", np.power), ("matmul", np.matmul)]:
    _method, _reflected = _binary(_op)
    setattr(ParameterData, f"__{_name}__", _method)
    setattr(ParameterData, f"__r{_name}__", _reflected)
for _name, _op in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                   ("ge", np.greater_equal)]:
    setattr(ParameterData, f"__{_name}__", _binary(_op)[0])


def _operand(x):
    return x.value() if isinstance(x, Parameter) else x
