"""The adapter protocol every backend implements.

The neutral layer (``d2lparams``) calls only these methods and attributes and never tests a
backend's name. An adapter *converts*: it creates native objects and moves values between
NumPy and the framework. Shared logic (layouts, names, initial values, the optimizer formula,
shape checks, error messages) lives in the neutral layer.

A backend is a package ``d2lparams.backends.<name>``:

* ``__init__.py`` declares a subclass of :class:`Backend` with the metadata below. It imports
  no framework, so that ``list_backends``, ``available_backends`` and ``d2lparams doctor``
  stay cheap and safe.
* ``adapter.py`` (named by :attr:`Backend.implementation`) subclasses that class and
  implements the methods. It imports the framework at module level and is imported when the
  backend is first used.
* the framework's own subclasses (containers, the native side of a custom module, fixed
  layers) live at module level in a module of their own (``layers.py``).

Conventions:
    * ``native`` is the framework's module/layer/block object; ``param`` is the framework's
      own parameter object; ``buf`` a buffer (non-trainable state); ``tensor`` a native
      tensor.
    * Arrays cross the boundary as NumPy arrays in the framework's *own* layout; the neutral
      layer permutes the axes where :meth:`Backend.layout` says so.
    * Methods marked abstract must be written by every adapter; the others have a default
      that fits most frameworks and are overridden where a framework differs (or where a
      measured fast path exists).
"""

from __future__ import annotations

import abc
import contextlib
import importlib
import sys
from typing import Any

import numpy as np

from d2lparams.schemes import Scheme


class Backend(abc.ABC):
    """Metadata and protocol of one backend; see the module docstring."""

    # -- metadata (read without importing the framework) --------------------------------------
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
    #: lower loads first in ``preload`` (the import order that is safe in one process)
    preload_rank: int = 50
    #: lower is preferred when no backend was chosen (the first installed one is used)
    default_priority: int = 100
    #: the backend's colour in reports and plots
    color: str = "#455a64"
    #: the framework's own default initialization of new layers (``init.default_scheme``)
    default_init: Scheme | None = None
    #: the framework stores a Linear weight as ``(out, in)`` (read by :meth:`layout`)
    linear_weight_transposed: bool = False
    #: ``"module:Class"`` of the implementation, relative to this backend's package
    implementation: str = "adapter:Adapter"

    @classmethod
    def hazards(cls) -> list[str]:
        """Known problems of this framework's installation here, each with its fix, found
        without importing the framework (``d2lparams doctor``)."""
        return []

    @classmethod
    def implementation_class(cls) -> type:
        """Import the implementation (and with it the framework) and return its class.

        A subclass that only changes metadata (another name, another default scheme) reuses
        its parent's implementation: the two are combined, metadata from ``cls`` first.
        """
        module_name, _, attr = cls.implementation.partition(":")
        impl = getattr(importlib.import_module("." + module_name, _declaring_package(cls)), attr)
        if issubclass(impl, cls):
            return impl
        return type(cls.__name__, (cls, impl), {"__module__": cls.__module__})

    # -- lifetime ------------------------------------------------------------------------------
    def version(self) -> str:
        """The framework's version string."""
        module = importlib.import_module(self.import_names[0])
        return str(getattr(module, "__version__", "?"))

    @abc.abstractmethod
    def seed(self, n: int) -> None:
        """Seed the framework's own random number generator(s)."""

    # -- tensors -------------------------------------------------------------------------------
    @abc.abstractmethod
    def is_tensor(self, x) -> bool:
        """``x`` is a native tensor of this framework (parameters count as tensors)."""

    @abc.abstractmethod
    def tensor(self, array: np.ndarray, requires_grad: bool = False):
        """A new native tensor holding ``array``, with its dtype (``float32``, ``float64``,
        ``float16``, ``int64``, ``int32`` or ``bool``; the neutral layer casts first, and
        makes ``bfloat16`` with :meth:`convert`).

        With ``requires_grad=True`` (a floating dtype) the tensor is a *leaf* that accumulates its
        gradient over :meth:`backward` calls as a parameter does: :meth:`requires_grad` is
        then true for it and :meth:`grad_tensor` / :meth:`zero_grad` read and clear its
        gradient (PyTorch's ``torch.tensor(..., requires_grad=True)``)."""

    def dtype_name(self, x) -> str:
        """The dtype of a native tensor as a NumPy-style name (``"float32"``, ``"int64"``)."""
        return str(x.dtype).rpartition(".")[2]

    @abc.abstractmethod
    def to_numpy(self, x) -> np.ndarray:
        """A NumPy copy of a native tensor, parameter, or buffer (the framework's layout)."""

    def dtype(self, x) -> str:
        """The neutral name of a native tensor's dtype: ``"float32"``, ``"int64"``, ...
        (NumPy's name for it)."""
        d = x.dtype
        if isinstance(d, str):
            return d
        if isinstance(d, type):  # a NumPy scalar type (mxnet)
            return np.dtype(d).name
        name = getattr(d, "name", None)  # tensorflow ("float32"), paddle ("FLOAT32")
        if isinstance(name, str):
            return name.lower()
        return str(d).rpartition(".")[2]  # torch.float32

    # -- dtypes and devices ----------------------------------------------------------------------
    #: the floating dtypes a parameter or tensor can have on this framework (neutral names)
    float_dtypes: tuple = ("float32", "float64", "float16", "bfloat16")

    def dtype_hint(self, dtype: str) -> str:
        """Text added to the error for a dtype of :attr:`float_dtypes`' complement (how to get
        it, where the framework has a switch); ``""`` by default."""
        return ""

    @abc.abstractmethod
    def num_gpus(self) -> int:
        """How many GPUs the framework sees (``0`` on a machine without one)."""

    @abc.abstractmethod
    def device_of(self, x) -> tuple:
        """Where a native tensor, parameter or buffer lives: ``("cpu", 0)`` or
        ``("gpu", index)``."""

    @abc.abstractmethod
    def convert(self, tensor, dtype: str | None = None, device: tuple | None = None,
                requires_grad: bool = False):
        """A native tensor holding ``tensor`` in ``dtype`` (a neutral name of
        :attr:`float_dtypes`, or ``None`` to keep it) on ``device`` (``("cpu", 0)`` or
        ``("gpu", i)``, or ``None`` to keep it); differentiable where the framework records.
        With ``requires_grad=True`` the result is a new leaf, as :meth:`tensor` makes it.
        The neutral layer has checked both against :attr:`float_dtypes` and :meth:`num_gpus`.
        ``to_numpy`` of a ``bfloat16`` tensor gives float32 (NumPy has no bfloat16)."""

    @abc.abstractmethod
    def move(self, param, dtype: str | None = None, device: tuple | None = None) -> None:
        """Convert a parameter or buffer to ``dtype`` and/or ``device`` *in place*: the object
        keeps its identity (so every module that holds it, and every tie, sees the change);
        its gradient is dropped. ``assign`` afterwards takes arrays of the new dtype."""

    def set_layer_dtype(self, native, dtype: str) -> None:
        """Make the native layer ``native`` compute in ``dtype`` after its parameters moved
        (Keras casts inputs to its layers' dtype policy); nothing by default."""
        return None

    # -- parameters and buffers ----------------------------------------------------------------
    @abc.abstractmethod
    def create_parameter(self, array: np.ndarray, requires_grad: bool = True,
                         buffer: bool = False):
        """A new native parameter holding ``array`` (shape and floating dtype kept), frozen unless
        ``requires_grad``; with ``buffer=True`` non-trainable state instead (what BatchNorm's
        running statistics are in the framework)."""

    def buffer_of(self, tensor):
        """The buffer that holds the native tensor ``tensor`` itself (no copy), so that a
        tensor registered twice is one buffer. The framework's tensor where it can be a
        buffer as it is."""
        return tensor

    def buffer_tensor(self, buf):
        """The tensor a user sees for a buffer (what ``named_buffers`` yields)."""
        return buf

    def param_value(self, param):
        """The differentiable native tensor to compute with inside ``forward``."""
        return param

    def param_shape(self, param) -> tuple:
        """The parameter's (or buffer's) shape as the framework stores it."""
        return tuple(int(s) for s in param.shape)

    def layout(self, kind: str, name: str) -> tuple | None:
        """How the parameter ``name`` of a :meth:`layer` of ``kind`` is stored, as the axis
        permutation from the native to the canonical layout (``canonical =
        native.transpose(perm)``), or ``None`` when it is stored canonically.

        Canonical layouts: a ``"linear"`` weight is ``(in, out)``, a ``"conv2d"`` weight
        ``(out, in/groups, kh, kw)`` (PyTorch's). The default reads
        :attr:`linear_weight_transposed` (``(1, 0)`` for an ``(out, in)`` Linear weight);
        Keras overrides it for its ``(kh, kw, in, out)`` conv kernels.
        """
        if kind == "linear" and name == "weight" and self.linear_weight_transposed:
            return (1, 0)
        return None

    def permute(self, tensor, axes: tuple):
        """``tensor`` with its axes reordered: axis ``i`` of the result is axis ``axes[i]``
        of ``tensor`` (NumPy's ``transpose(axes)``), differentiable. The default is
        ``ops_namespace.transpose(tensor, axes)``."""
        namespace: Any = self.ops_namespace
        return namespace.transpose(tensor, axes)

    @abc.abstractmethod
    def assign(self, param, array: np.ndarray) -> None:
        """Write ``array`` (native layout, any strides: it may be a transposed view) into a
        parameter or buffer in place, converted to the parameter's dtype, without recording. The object (and every place
        that shares it) keeps its identity."""

    @abc.abstractmethod
    def requires_grad(self, param, flag: bool | None = None) -> bool:
        """Whether ``param`` takes a gradient; with ``flag``, freeze (``False``) or unfreeze
        it first: a frozen parameter gets no gradient and no update.

        ``param`` may also be a native tensor (``flag`` is then ``None``): true only for a
        leaf made by ``tensor(array, requires_grad=True)``, false for any other tensor
        (including one computed from such a leaf)."""

    @abc.abstractmethod
    def grad_tensor(self, param):
        """The accumulated gradient as a native tensor (native layout), or ``None`` before
        any backward reached the parameter and after :meth:`zero_grad`. Cheap: no copy.
        ``param`` may also be a tensor made with ``requires_grad=True``."""

    def param_grad(self, param) -> np.ndarray | None:
        """The accumulated gradient as NumPy (native layout) or ``None``."""
        g = self.grad_tensor(param)
        return None if g is None else self.to_numpy(g)

    @abc.abstractmethod
    def zero_grad(self, param, set_to_none: bool = True) -> None:
        """Drop the gradient so that :meth:`grad_tensor` is ``None`` again (a parameter or a
        tensor made with ``requires_grad=True``); with ``set_to_none=False`` fill an existing
        gradient with zeros instead."""

    def subtract_(self, param, delta) -> None:
        """``param -= delta`` in place, without recording (``delta``: a native tensor in the
        native layout). The optimizers' update; adapters override it with a faster in-place
        operation where there is one."""
        self.assign(param, self.to_numpy(self.param_value(param) - delta))

    @abc.abstractmethod
    def native_parameter_names(self, native) -> dict:
        """``{id(param): the framework's own name}`` for every parameter and buffer under
        the native module ``native`` (``dense0_weight``, ``linear_0.w_0``,
        ``sequential/dense/kernel``; torch has structural names only)."""

    @abc.abstractmethod
    def init_native(self, param, kind: str, layout: tuple | None, **spec) -> None:
        """Fill ``param`` in place with the framework's own initializer (its own RNG).

        ``layout`` is the parameter's :meth:`layout` (``None``: stored canonically; ``(1,
        0)``: a Linear weight stored ``(out, in)``). ``kind`` and ``spec`` (fans are
        PyTorch's, from the canonical shape: ``fan_in`` is the input size of a Linear
        weight, ``in/groups·kh·kw`` of a conv weight):

        * ``"uniform"``: ``low``, ``high``
        * ``"normal"``: ``mean``, ``std``
        * ``"constant"``: ``value``
        * ``"xavier_uniform"`` / ``"xavier_normal"``: ``gain``, ``fan_in``, ``fan_out``
        * ``"kaiming_uniform"`` / ``"kaiming_normal"``: ``gain``, ``fan`` (the one chosen by
          ``mode``), ``mode``, ``fan_in``, ``fan_out``, ``a``, ``nonlinearity`` (PyTorch's
          meaning: bound ``gain·√(3/fan)``, std ``gain/√fan``)
        """

    # -- modules -------------------------------------------------------------------------------
    @abc.abstractmethod
    def layer(self, kind: str, **options):
        """A native built-in layer with the framework's own default initialization:

        * ``"linear"`` (``in_features``, ``out_features``, ``bias``): ``y = x W + b`` over the
          last axis; ``in_features=None`` is lazy (the size is taken at the first call).
        * ``"relu"``, ``"sigmoid"``, ``"tanh"``, ``"identity"``, ``"flatten"`` (every axis
          after the first), ``"softmax"`` (``dim``).
        * ``"dropout"`` (``p``): in training mode zeroes each entry with probability ``p``
          and scales the rest by ``1/(1-p)``; the identity in inference mode.
        * ``"batch_norm"`` (``num_features``, ``eps``, ``momentum``): over axis 1 of
          ``(N, C)`` or ``(N, C, L)`` input with PyTorch's meaning: training mode normalizes
          with the batch mean and biased variance and, in the forward pass, updates
          ``running = (1 - momentum) * running + momentum * batch`` (the variance term
          unbiased); inference mode uses the running statistics; weight starts at 1, bias
          at 0, running mean at 0, running variance at 1.

        Convolution and pooling take and return ``(N, C, H, W)`` tensors (PyTorch's NCHW) on
        every backend; a framework that computes in another layout converts inside the
        layer. ``kernel_size``, ``stride``, ``dilation`` are ``(h, w)`` pairs; ``padding``
        is a pair of zero paddings per side or ``"same"`` (stride 1; PyTorch's split of an
        odd total: the extra row/column at the bottom/right) or ``"valid"``. ``check`` is a
        neutral function of the input shape (a tuple) that raises a ``ValueError`` naming
        the layer for an input it cannot take: the native layer calls it before it
        computes, so that a bad shape fails the same way everywhere and changes nothing.

        * ``"conv2d"`` (``in_channels`` (``None``: lazy), ``out_channels``, ``kernel_size``,
          ``stride``, ``padding``, ``dilation``, ``groups``, ``bias``, ``check``): PyTorch's
          ``Conv2d`` (cross-correlation); weight canonical ``(out, in/groups, kh, kw)``
          (:meth:`layout` for another storage), the framework's own default initialization.
        * ``"max_pool2d"`` / ``"avg_pool2d"`` (``kernel_size``, ``stride``, ``padding``,
          ``check``): PyTorch's ``ceil_mode=False``; max pooling ignores the padding,
          average pooling counts it (``count_include_pad=True``).
        * ``"adaptive_avg_pool2d"`` (``output_size``: a pair, ``check``): PyTorch's bins
          ``[floor(i·H/out), ceil((i+1)·H/out))``.
        * ``"batch_norm2d"`` (``num_features``, ``eps``, ``momentum``, ``check``):
          ``"batch_norm"`` over axis 1 of ``(N, C, H, W)`` input (statistics over N, H, W).
        """

    @abc.abstractmethod
    def layer_state(self, native, kind: str) -> dict | None:
        """The native parameters and buffers of a :meth:`layer` under PyTorch's names
        (``weight``, ``bias``; ``running_mean``, ``running_var``), the same objects on every
        call; a missing bias is left out. ``None`` while a lazy layer is not yet built."""

    @abc.abstractmethod
    def container(self, kind: str, module=None):
        """A native container:

        * ``"sequential"``: applies its children in order (the same child may be added
          twice: it is then applied twice);
        * ``"list"``: holds children and has no forward;
        * ``"custom"``: a module whose forward calls ``module._native_forward(*args)``;
          ``module`` (the neutral module) stays reachable without being a native child.
        """

    @abc.abstractmethod
    def register(self, native, name: str, member, kind: str) -> None:
        """Register ``member`` on ``native`` under ``name`` so that the framework's own tools
        see it: ``kind`` is ``"child"`` (a native module; a sequential container appends
        it), ``"parameter"`` or ``"buffer"``. ``member=None`` removes what ``name`` holds
        (the neutral layer re-registers children in order after a change)."""

    @abc.abstractmethod
    def inspect(self, native) -> dict:
        """Describe an existing native module, for ``d2p.wrap``.

        Returns ``{"kind": k, "options": {...}, "children": [(name, native child)],
        "parameters": [(name, param)], "buffers": [(name, buf)]}`` where ``kind`` is a
        :meth:`layer` kind (options as :meth:`layer` takes them; its members are found
        through :meth:`layer_state`), ``"sequential"`` (children in call order; the same
        child object may appear twice), or ``"module"`` (anything else: its direct children,
        parameters and buffers under their structural names). A ``"linear"`` layer that
        applies an activation itself (Keras' and Gluon's ``Dense(activation=...)``) says so
        under ``"activation"`` (its name). Children and parameters are
        listed in the framework's registration order. Names are attribute-like strings
        without dots (``"0"``, ``"1"``, ... where the framework has none).
        """

    def call(self, native, args: tuple, training: bool):
        """Call a native module with native tensors, in training or inference mode."""
        return native(*args)

    def set_training(self, native, mode: bool) -> None:
        """Store the mode on the native module where the framework keeps one."""
        native.training = mode

    @abc.abstractmethod
    def compile(self, native, options: dict, training: bool):
        """``native``'s forward through the framework's compiler: a function
        ``forward(args)`` that returns what ``call(native, args, training)`` returns, for the
        tree as it is now (the neutral layer asks once per combination of training modes,
        again after the tree, its dtypes or devices changed, and never while a forward hook
        is registered in it). ``options`` are the user's keywords for the framework's
        compiler. Outputs, gradients (through
        :meth:`backward` and :meth:`grad`), BatchNorm statistics and random draws must mean
        what they mean uncompiled; a compiler that works in place (Gluon's ``hybridize``)
        may change ``native`` itself.
        """

    #: the method of a native module that its call runs (``forward``; Keras: ``call``)
    forward_method: str = "forward"

    def hook_calls(self, native, pre, post) -> None:
        """Make every call of ``native`` (by d2lparams or by the framework's own code, as a
        child of a native container) run ``args = pre(args)`` before and ``output =
        post(args, output)`` after its forward. Default: ``native`` gets a subclass of its
        class (same name) whose :attr:`forward_method` does so; adapters of frameworks with
        forward hooks use those."""
        cls = type(native)
        if not cls.__dict__.get("_d2p_hooked", False):
            native.__class__ = _hooked_class(cls, self.forward_method)
        native.__dict__["_d2p_hooks"] = (pre, post)

    def grad_hook(self, param, fn):
        """Call ``fn(grad)`` (a native tensor, native layout) whenever a backward computes
        ``param``'s gradient, before it is accumulated; a tensor it returns replaces that
        gradient. Returns a handle whose ``remove()`` unregisters it. Default: hooks kept on
        the parameter (``param_hooks``), for the adapter's :meth:`TapeBackend.backprop` to
        apply."""
        hooks = param_hooks(param, create=True)
        key = object()
        hooks[key] = fn
        return _Handle(lambda: hooks.pop(key, None))

    def native_class_for(self, module, base: type) -> type:
        """A subclass of the native ``base`` named like ``module``'s neutral class, made once
        per class (so native reprs and framework-made names read ``MLP``, ``mlp0_``)."""
        cache = self.__dict__.setdefault("_native_classes", {})
        key = (type(module), base)
        if key not in cache:
            cls = type(module)
            cache[key] = type(cls.__name__, (base,), {"__module__": cls.__module__})
        return cache[key]

    # -- gradients -----------------------------------------------------------------------------
    @abc.abstractmethod
    def backward(self, fn, loaded: list, gradient: np.ndarray | None = None) -> float:
        """Run ``fn()`` (it returns a scalar native tensor), differentiate it with respect to
        every parameter and every ``requires_grad`` tensor that requires a gradient, and
        **add** each gradient into its accumulated gradient (tied parameters receive the sum
        over their uses).

        With ``gradient`` (a float32 NumPy array of the output's shape) ``fn()`` may return
        a tensor of any shape and the vector-Jacobian product with ``gradient`` is added
        (PyTorch's ``y.backward(gradient)``), which is the gradient of
        ``sum(fn() * gradient)``.

        ``loaded`` lists every loaded adapter (so that a tape framework can also record the
        others while ``fn`` runs). Returns the (reduced) loss as a float. A tape framework
        implements this through :class:`TapeBackend`; a functional one (no tape)
        differentiates ``fn`` itself.
        """

    @abc.abstractmethod
    def grad(self, fn, sources: list, loaded: list, gradient: np.ndarray | None = None) -> list:
        """The gradients of ``fn()`` (a scalar native tensor, or any shape with
        ``gradient`` as in :meth:`backward`) with respect to ``sources``, **without**
        touching any accumulated gradient (PyTorch's ``torch.autograd.grad``).

        ``sources`` are native parameters and tensors made with ``requires_grad=True`` (the
        neutral layer has checked that each requires a gradient). Returns one native tensor
        per source, in the source's native layout, or ``None`` where ``fn()`` does not
        depend on it. A tape framework implements this through :class:`TapeBackend`; a
        functional one (no tape, e.g. JAX) runs ``fn`` under its own transformation with
        each source's value replaced by a traced one (``jax.vjp`` over the values that
        :meth:`param_value` and the source tensors give while ``fn`` runs).
        """

    def no_grad(self):
        """A context manager inside which nothing is recorded for differentiation."""
        return contextlib.nullcontext()

    # -- operations for custom forwards (native tensors in and out) ---------------------------
    #: the framework's namespace of tensor functions (``torch``, ``keras.ops``, ``mx.nd``...)
    ops_namespace: object = None
    #: ``{neutral op: name in ops_namespace, or a function}`` where the framework's function
    #: has another name or another signature; any other op is ``ops_namespace.<op>``
    ops_table: dict = {}

    def op(self, name: str):
        """The native function for the neutral operation ``name``, with the neutral signature:

        ``relu(x)``, ``sigmoid(x)``, ``tanh(x)``, ``softmax(x, dim)``, ``matmul(a, b)``,
        ``transpose(x, dim0, dim1)``, ``mean(x, dim, keepdim)``, ``sum(x, dim, keepdim)``
        (``dim=None``: every axis), ``reshape(x, shape)``, ``concat(tensors, dim)``;

        ``exp(x)``, ``log(x)``, ``abs(x)``, ``sqrt(x)``, ``log_softmax(x, dim)``,
        ``maximum(a, b)`` and ``minimum(a, b)`` (two tensors), ``clamp(x, min, max)`` (either
        bound may be ``None``), ``where(condition, x, y)`` (``x``/``y`` tensors or numbers,
        broadcast), ``zeros_like(x)``, ``ones_like(x)``, ``argmax(x, dim, keepdim)``
        (int64 indices, the first maximum; ``dim=None``: of the flattened tensor),
        ``amax(x, dim, keepdim)`` and ``amin(x, dim, keepdim)`` (values only),
        ``pick(x, index, dim)`` (``x[..., index, ...]`` along ``dim`` of an ``x`` of rank 2 or
        more: ``index`` int64 of ``x``'s shape without ``dim``, the result of that shape),
        ``one_hot(x, num_classes, dtype)``, ``astype(x, dtype)`` (a dtype name),
        ``dropout(x, p)`` (always drops: ``0 < p < 1``, scales the rest by ``1/(1-p)``, the
        framework's own generator), ``detach(x)`` (the value, cut from the graph).

        ``conv2d(x, weight, bias, stride, padding, dilation, groups)``, ``max_pool2d(x,
        kernel_size, stride, padding)``, ``avg_pool2d(...)`` (PyTorch's meaning: NCHW ``x``,
        ``weight`` in the canonical ``(out, in/groups, kh, kw)`` layout, ``bias`` or ``None``,
        sizes as ``(h, w)`` pairs, conv ``padding`` a pair or ``"same"``/``"valid"``; checked
        by the neutral layer before).
        Optional (used only when ``ops_table`` lists it): ``nll_loss(logp, target,
        reduction)``, ``-logp[target]`` over axis 1 of a rank-2+ ``logp`` for int64
        ``target`` (in range), reduced by ``"mean"``, ``"sum"`` or ``"none"``: a framework's
        fused negative log-likelihood (PyTorch's ``F.nll_loss``); without it the neutral
        losses compose ``pick``, a negation and the reduction.
        """
        table = self.__dict__.setdefault("_ops", {})
        fn = table.get(name)
        if fn is None:
            how = type(self).ops_table.get(name, name)
            fn = getattr(self.ops_namespace, how) if isinstance(how, str) else _bound(how, self)
            table[name] = fn
        return fn


def _bound(fn, adapter):
    """``fn`` with the adapter as its first argument, as a plain function (Paddle's SOT
    compiler cannot guard a bound method or a ``functools.partial`` of a lambda: it writes the
    object's repr into its guard code)."""

    def op(*args):
        return fn(adapter, *args)

    op.__name__ = op.__qualname__ = getattr(fn, "__name__", "op")
    return op


class TapeBackend(Backend):
    """A framework that records operations on a tape (torch, tensorflow, mxnet, paddle):
    :meth:`backward` records every loaded tape framework while ``fn`` runs and
    back-propagates the loss on the one that owns it."""

    @abc.abstractmethod
    def record(self):
        """A context manager inside which operations are recorded for differentiation."""

    @abc.abstractmethod
    def backprop(self, loss) -> None:
        """Back-propagate a scalar ``loss`` computed under :meth:`record`, **adding** the
        gradient into every parameter that requires one."""

    @abc.abstractmethod
    def differentiate(self, loss, sources: list) -> list:
        """The gradients of a scalar ``loss`` computed under :meth:`record` with respect to
        ``sources`` (native parameters and ``requires_grad`` tensors), as native tensors in
        the native layout, ``None`` where ``loss`` does not depend on a source; no
        accumulated gradient changes (``torch.autograd.grad``)."""

    def backward(self, fn, loaded: list, gradient: np.ndarray | None = None) -> float:
        with contextlib.ExitStack() as stack:
            owner, loss = self._record(stack, fn, loaded, gradient, "d2p.backward")
            owner.backprop(loss)
        return float(owner.to_numpy(loss).reshape(()))

    def grad(self, fn, sources: list, loaded: list, gradient: np.ndarray | None = None) -> list:
        with contextlib.ExitStack() as stack:
            owner, loss = self._record(stack, fn, loaded, gradient, "d2p.grad")
            if owner is not self:
                raise TypeError(
                    f"the function given to d2p.grad returned a {owner.framework_name} tensor, "
                    f"but the inputs are {self.framework_name} tensors or parameters; compute "
                    "the output from the inputs"
                )
            return self.differentiate(loss, sources)

    def _record(self, stack, fn, loaded: list, gradient, what: str) -> tuple:
        """Run ``fn`` while every loaded tape records; return ``(owner, scalar loss)``, the
        owner being the adapter whose tensor ``fn`` returned. With ``gradient`` the loss is
        ``sum(output * gradient)``, whose gradient is the vector-Jacobian product."""
        tapes = [self] + [a for a in loaded if a is not self and isinstance(a, TapeBackend)]
        for ad in tapes:
            stack.enter_context(ad.record())
        loss = fn()
        owner = next((ad for ad in tapes if ad.is_tensor(loss)), None)
        if owner is None:
            raise TypeError(
                f"the function given to {what} returned {type(loss).__name__}; it must "
                "return a native tensor (for example ops.sum(net(X)))"
            )
        shape = tuple(owner.param_shape(loss))
        size = int(np.prod(shape, dtype=np.int64))
        if gradient is None:
            if size != 1:
                raise ValueError(
                    f"{what} needs a scalar loss, got a tensor of shape {shape}; reduce it "
                    "first, e.g. ops.sum(...) or ops.mean(...), or pass gradient= (an array "
                    "of that shape: the vector-Jacobian product, PyTorch's y.backward(g))"
                )
            return owner, loss
        if tuple(gradient.shape) != shape and not (gradient.size == size == 1):
            raise ValueError(
                f"{what}: gradient= has shape {tuple(gradient.shape)} but the output has "
                f"shape {shape}; pass an array of the output's shape (e.g. np.ones({shape}))"
            )
        g = owner.tensor(np.ascontiguousarray(gradient, dtype=np.float32).reshape(shape))
        return owner, owner.op("sum")(loss * g, None, False)


def defer_operators(cls: type, names: tuple, operand: type) -> None:
    """Make the binary operators ``names`` of the framework's tensor class ``cls`` return
    ``NotImplemented`` when the other operand is an ``operand`` (d2lparams' ``Parameter``),
    so that Python calls the operand's reflected method, where the framework would raise
    ``TypeError``. Every other operand goes to the framework's own method unchanged."""
    for name in names:
        original = getattr(cls, name, None)
        if original is None or getattr(original, "_d2p_defers", False):
            continue

        def method(self, other, _original=original):
            if isinstance(other, operand):
                return NotImplemented
            return _original(self, other)

        method.__name__ = name
        method.__doc__ = getattr(original, "__doc__", None)
        method._d2p_defers = True  # type: ignore[attr-defined]
        setattr(cls, name, method)


def _hooked_class(cls: type, method_name: str) -> type:
    cache = _HOOKED.setdefault(method_name, {})
    if cls not in cache:
        base = getattr(cls, method_name)

        def method(self, *args, **kwargs):
            hooks = self.__dict__.get("_d2p_hooks")
            if hooks is None:
                return base(self, *args, **kwargs)
            pre, post = hooks
            args = pre(args)
            return post(args, base(self, *args, **kwargs))

        cache[cls] = type(cls.__name__, (cls,), {
            method_name: method, "_d2p_hooked": True, "__module__": cls.__module__,
            "__qualname__": cls.__qualname__})
    return cache[cls]


_HOOKED: dict = {}


class _Handle:
    """What :meth:`Backend.grad_hook` returns: ``remove()`` unregisters the hook."""

    def __init__(self, remove):
        self._remove = remove

    def remove(self) -> None:
        self._remove()


def param_hooks(param, create: bool = False) -> dict:
    """The gradient hooks registered on a native parameter by :meth:`Backend.grad_hook`
    (``{key: fn}`` in registration order)."""
    hooks = getattr(param, "_d2p_grad_hooks", None)
    if hooks is None and create:
        hooks = {}
        object.__setattr__(param, "_d2p_grad_hooks", hooks)
    return hooks if hooks is not None else {}


def _declaring_package(cls) -> str:
    """The package of the first class in ``cls``'s MRO that declares ``implementation``
    (a backend's ``__init__.py``), against which the implementation path is resolved."""
    for klass in cls.__mro__:
        if "implementation" in klass.__dict__ and klass is not Backend:
            module = sys.modules.get(klass.__module__)
            if module is not None and hasattr(module, "__path__"):
                return klass.__module__
            return klass.__module__.rpartition(".")[0]
    return cls.__module__
