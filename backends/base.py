"""The adapter protocol every backend implements.

The neutral layer (``d2lparams``) calls only these methods and never tests a backend's
name. An adapter converts: it creates native objects and moves values between NumPy and the
framework. Shared logic (layouts, names, initial values, optimizer formulas, checks) lives in
the neutral layer.

Conventions:
    * ``native`` is the framework's module/layer/block object; ``param`` is the framework's
      own parameter object (``torch.nn.Parameter``, ``keras.Variable``, ``gluon.Parameter``,
      paddle ``EagerParamBase``); ``tensor`` is a native tensor.
    * Arrays cross the boundary as ``np.float32`` arrays in the framework's *own* layout; the
      neutral layer transposes ``Linear`` weights when :attr:`linear_weight_transposed`.
    * Every method that is not a capability flag must work; there is no optional method.
"""

from __future__ import annotations

import abc
import contextlib

import numpy as np


class Backend(abc.ABC):
    #: canonical backend name, e.g. ``"torch"``
    name: str = ""
    #: other names accepted by ``set_backend``
    aliases: tuple = ()
    #: human name of the framework, for messages
    framework_name: str = ""
    #: the module(s) imported to use it; the first is probed by ``available_backends``
    import_names: tuple = ()
    #: the pip extra of d2lparams that installs it
    extra: str = ""
    #: the distributions (pip names) that provide the framework, for ``d2lparams doctor``
    distributions: tuple = ()
    #: top-level module names whose types are this backend's tensors and models
    tensor_modules: tuple = ()
    #: ``{module already imported: message}``: importing this framework now would crash
    unsafe_after: dict = {}
    #: lower loads first in ``preload``
    preload_rank: int = 50
    #: the framework stores a Linear weight as ``(out, in)``
    linear_weight_transposed: bool = False

    @classmethod
    def hazards(cls) -> list[str]:
        """Known problems of this framework's installation here, each with its fix, found
        without importing the framework (``d2lparams doctor``)."""
        return []

    # -- lifetime ------------------------------------------------------------------------------
    @abc.abstractmethod
    def load(self) -> None:
        """Import the framework (with any fix it needs) and keep its modules on ``self``."""
        ...

    @abc.abstractmethod
    def version(self) -> str:
        """The framework's version string."""
        ...

    @abc.abstractmethod
    def seed(self, n: int) -> None:
        """Seed the framework's own random number generator(s)."""
        ...

    # -- tensors -------------------------------------------------------------------------------
    @abc.abstractmethod
    def is_tensor(self, x) -> bool:
        """``x`` is a native tensor of this framework (parameters count as tensors)."""
        ...

    @abc.abstractmethod
    def tensor(self, array: np.ndarray):
        """A new native float32 tensor holding ``array`` (a float32 NumPy array)."""
        ...

    @abc.abstractmethod
    def to_numpy(self, x) -> np.ndarray:
        """A NumPy copy of a native tensor, parameter, or buffer."""
        ...

    # -- parameters ----------------------------------------------------------------------------
    @abc.abstractmethod
    def create_parameter(self, array: np.ndarray, requires_grad: bool = True):
        """A new trainable native parameter initialised with ``array`` (shape kept)."""
        ...

    @abc.abstractmethod
    def create_buffer(self, array: np.ndarray):
        """A new native non-trainable state tensor/variable holding ``array``."""
        ...

    @abc.abstractmethod
    def buffer_tensor(self, buf):
        """The tensor a user sees for a buffer (what ``named_buffers`` yields)."""
        ...

    @abc.abstractmethod
    def param_value(self, param):
        """The differentiable native tensor to compute with inside ``forward``."""
        ...

    @abc.abstractmethod
    def param_shape(self, param) -> tuple:
        """The parameter's (or buffer's) shape as the framework stores it."""
        ...

    @abc.abstractmethod
    def param_get(self, param) -> np.ndarray:
        """A float32 NumPy copy of the value (native layout). Also takes a buffer."""
        ...

    @abc.abstractmethod
    def param_set(self, param, array: np.ndarray) -> None:
        """Write ``array`` (native layout, float32, any strides: it may be a transposed view)
        into the parameter in place (or a buffer).

        The parameter object (and every place that shares it) keeps its identity.
        """
        ...

    @abc.abstractmethod
    def param_requires_grad(self, param) -> bool:
        ...

    @abc.abstractmethod
    def param_set_requires_grad(self, param, flag: bool) -> None:
        """Freeze (``False``) or unfreeze a parameter: no gradient, no update when frozen."""
        ...

    @abc.abstractmethod
    def param_grad(self, param) -> np.ndarray | None:
        """The accumulated gradient (native layout) or ``None`` before any backward."""
        ...

    @abc.abstractmethod
    def param_has_grad(self, param) -> bool:
        """Whether ``param_grad`` would return an array (cheap: no copy)."""
        ...

    @abc.abstractmethod
    def param_zero_grad(self, param) -> None:
        """Clear the gradient so that ``param_grad`` is ``None`` again."""
        ...

    @abc.abstractmethod
    def native_parameter_names(self, native) -> dict:
        """``{id(param): the framework's own name}`` for every parameter and buffer under
        the native module ``native`` (``dense0_weight``, ``linear_0.w_0``,
        ``sequential/dense/kernel``; torch has structural names only)."""
        ...

    @abc.abstractmethod
    def init_native(self, param, kind: str, transposed: bool, **spec) -> None:
        """Fill ``param`` in place with the framework's own initializer (its own RNG).

        ``kind`` and ``spec`` (fans are canonical: ``fan_in`` is the input size; when
        ``transposed`` the native layout is ``(out, in)``):

        * ``"uniform"``: ``low``, ``high``
        * ``"normal"``: ``mean``, ``std``
        * ``"constant"``: ``value``
        * ``"xavier_uniform"`` / ``"xavier_normal"``: ``gain``, ``fan_in``, ``fan_out``
        * ``"kaiming_uniform"`` / ``"kaiming_normal"``: ``gain``, ``fan`` (the one chosen by
          ``mode``), ``mode``, ``fan_in``, ``fan_out``, ``a``, ``nonlinearity`` (PyTorch's
          meaning: bound ``gain·√(3/fan)``, std ``gain/√fan``)
        """
        ...

    # -- modules -------------------------------------------------------------------------------
    @abc.abstractmethod
    def linear(self, in_features: int | None, out_features: int, bias: bool):
        """A native fully connected layer ``y = x W + b`` over the last axis with the
        framework's own default initialisation. ``in_features=None``: lazy, the input size is
        taken at the first call."""
        ...

    @abc.abstractmethod
    def linear_parameters(self, native) -> tuple:
        """``(weight, bias)`` native parameters of a linear layer; ``bias`` is ``None`` when
        the layer has none. Returns ``(None, None)`` while a lazy layer is not yet built."""
        ...

    @abc.abstractmethod
    def activation(self, kind: str, **options):
        """A native parameter-free layer: ``"relu"``, ``"sigmoid"``, ``"tanh"``,
        ``"softmax"`` (``dim``), ``"flatten"``, ``"identity"``."""
        ...

    @abc.abstractmethod
    def dropout(self, p: float):
        """A native dropout layer: in training mode it zeroes each entry with probability
        ``p`` and scales the rest by ``1/(1-p)``; in inference mode it is the identity."""
        ...

    @abc.abstractmethod
    def batch_norm(self, num_features: int, eps: float, momentum: float):
        """A native batch normalization over axis 1 of ``(N, C)`` or ``(N, C, L)`` input with
        PyTorch's meaning: training mode normalizes with the batch mean and biased variance
        and, in the forward pass, updates ``running = (1 - momentum) * running + momentum *
        batch`` (the variance term unbiased); inference mode uses the running statistics.
        ``y = (x - mean) / sqrt(var + eps) * weight + bias``; weight starts at 1, bias at 0,
        running mean at 0 and running variance at 1. The running statistics are never
        trainable."""
        ...

    @abc.abstractmethod
    def batch_norm_state(self, native) -> tuple:
        """``(weight, bias, running_mean, running_var)`` of a :meth:`batch_norm` layer: two
        native parameters and two buffers (as :meth:`buffer_tensor` and
        :meth:`param_get`/:meth:`param_set` take them); the same objects on every call."""
        ...

    @abc.abstractmethod
    def sequential(self):
        """An empty native sequential container."""
        ...

    @abc.abstractmethod
    def sequential_append(self, native, name: str, child) -> None:
        """Append ``child`` (a native module) to a native sequential under ``name``.
        The same child may be appended twice (it is then applied twice)."""
        ...

    @abc.abstractmethod
    def module_list(self):
        """A native container that holds children but has no forward of its own."""
        ...

    def native_class_for(self, module, base: type) -> type:
        """A subclass of the native ``base`` named like ``module``'s neutral class, made once
        per class (so native reprs and framework-made names read ``MLP``, ``mlp0_``)."""
        cache = self.__dict__.setdefault("_native_classes", {})
        key = (type(module), base)
        if key not in cache:
            cls = type(module)
            cache[key] = type(cls.__name__, (base,), {"__module__": cls.__module__})
        return cache[key]

    @abc.abstractmethod
    def custom(self, module):
        """A native module whose forward calls ``module._native_forward(*args)``.

        ``module`` is the neutral :class:`d2lparams.nn.Module`; the native object must keep
        it reachable without registering it as a native child."""
        ...

    @abc.abstractmethod
    def register_child(self, native, name: str, child) -> None:
        """Register native module ``child`` as ``native``'s child ``name`` (so the framework's
        own tools see its parameters)."""
        ...

    @abc.abstractmethod
    def register_parameter(self, native, name: str, param) -> None:
        """Register native parameter ``param`` on ``native`` under ``name``."""
        ...

    @abc.abstractmethod
    def register_buffer(self, native, name: str, buf) -> None:
        """Register native buffer ``buf`` on ``native`` under ``name``."""
        ...

    @abc.abstractmethod
    def inspect(self, native) -> dict:
        """Describe an existing native module, for ``d2p.wrap``.

        Returns ``{"kind": k, "options": {...}, "children": [(name, native child)],
        "parameters": [(name, param)], "buffers": [(name, buf)]}`` where ``kind`` is
        ``"linear"`` (options ``in_features``, ``out_features``, ``bias``; parameters are
        found through :meth:`linear_parameters`), an activation kind of :meth:`activation`
        (``"relu"``, ``"sigmoid"``, ``"tanh"``, ``"softmax"`` with ``dim``, ``"flatten"``,
        ``"identity"``), ``"sequential"`` (children in call order; the same child object
        may appear twice), or ``"module"`` (anything else: its direct children, parameters
        and buffers under their structural names). Children and parameters are listed
        in the framework's registration order. Names must be valid attribute-like
        strings without dots (use ``"0"``, ``"1"``, ... where the framework has none).
        """
        ...

    @abc.abstractmethod
    def call(self, native, args: tuple, training: bool):
        """Call native module with native tensors, in training or inference mode."""
        ...

    @abc.abstractmethod
    def set_training(self, native, mode: bool) -> None:
        """Store the mode on the native module where the framework keeps one."""
        ...

    # -- autograd ------------------------------------------------------------------------------
    @abc.abstractmethod
    def record(self):
        """A context manager inside which operations are recorded for differentiation."""
        ...

    @abc.abstractmethod
    def backward(self, loss) -> float:
        """Back-propagate a scalar ``loss`` computed under :meth:`record`, **adding** the
        gradient into every parameter that requires one; return ``float(loss)``."""
        ...

    def no_grad(self):
        """A context manager that stops recording."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def sgd_update(self, param, buf, lr: float, momentum: float, weight_decay: float,
                   dampening: float, nesterov: bool):
        """One in-place SGD step on ``param`` from its accumulated gradient, PyTorch's
        formula, with native tensor operations and without recording::

            g = grad + weight_decay * p
            if momentum: buf = g (first step) or momentum * buf + (1 - dampening) * g
                         g = g + momentum * buf if nesterov else buf
            p -= lr * g

        ``buf`` is the native momentum buffer returned by the previous call (``None`` at
        first). Returns the new buffer (``None`` without momentum)."""
        ...

    # -- operations for custom forwards (native tensors in and out) ---------------------------
    @abc.abstractmethod
    def relu(self, x):
        ...

    @abc.abstractmethod
    def sigmoid(self, x):
        ...

    @abc.abstractmethod
    def tanh(self, x):
        ...

    @abc.abstractmethod
    def softmax(self, x, dim: int):
        ...

    @abc.abstractmethod
    def matmul(self, a, b):
        ...

    @abc.abstractmethod
    def transpose(self, x):
        """Swap the two axes of a 2-D tensor (differentiable)."""
        ...

    @abc.abstractmethod
    def mean(self, x, dim, keepdim: bool):
        """Mean over ``dim`` (``None``: all axes)."""
        ...

    @abc.abstractmethod
    def sum(self, x, dim, keepdim: bool):
        """Sum over ``dim`` (``None``: all axes)."""
        ...

    @abc.abstractmethod
    def reshape(self, x, shape: tuple):
        ...

    @abc.abstractmethod
    def concat(self, tensors: list, dim: int):
        ...
