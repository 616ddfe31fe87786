"""MXNet Gluon's side of d2lparams' modules.

Importing this module imports mxnet (with the ``numpy.bool`` alias restored first).
"""

from __future__ import annotations

import contextvars
import warnings

import numpy as np

if "bool" not in np.__dict__:  # numpy >= 1.24 removed the alias mxnet 1.9.1 reads
    np.bool = bool  # type: ignore[attr-defined]
with warnings.catch_warnings():
    # mxnet's import touches numpy functions removed in 1.20 (np.mirr, ...) and distutils'
    # LooseVersion: DeprecationWarnings a user can do nothing about
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mxnet(\.|$)")
    import mxnet as mx
    from mxnet import autograd, gluon, nd
    from mxnet import numpy as mxnp
    from mxnet.util import is_np_array

__all__ = ["AdaptiveAvgPool2D", "AvgPool2D", "BatchNorm", "BatchNorm2D", "BufferTensor",
           "Conv2D", "Custom", "Dense", "Identity", "MaxPool2D", "ModuleList", "NumpyBufferTensor",
           "Sequential", "imperative", "invalidate_graphs", "traceable",
           "Softmax", "autograd", "gluon", "in_mode", "legacy", "mx", "mxnp", "nd", "np_mode",
           "split_bias", "stored_numpy", "sync_mode"]


# -- MXNet's two array modes ----------------------------------------------------------------
# ``npx.set_np()`` (what every d2l MXNet chapter calls) switches MXNet to NumPy mode: arrays
# are ``mx.np.ndarray``, Gluon's layers call ``npx`` operators, and a legacy ``mx.nd.NDArray``
# is refused by them (and the other way round). Both classes view the same storage: a
# shallow conversion shares the memory and the autograd history, so d2lparams computes with
# the legacy operators and hands out the arrays of the mode in force.
_NUMPY_TYPES = (mxnp.ndarray, mx.symbol.numpy._Symbol)


def np_mode() -> bool:
    """Whether MXNet's NumPy mode (``npx.set_np()``) is in force."""
    return bool(is_np_array())


def legacy(x):
    """``x`` (an array or a symbol of either mode) as a legacy one, sharing its memory and
    autograd history; anything else unchanged."""
    return x.as_nd_ndarray() if isinstance(x, _NUMPY_TYPES) else x


def in_mode(x, numpy: bool | None = None):
    """``x`` (an array or a symbol of either mode) as the mode in force wants it (or as
    ``numpy`` says): ``mx.np.ndarray`` under ``npx.set_np()``, else ``mx.nd.NDArray``;
    shallow, as :func:`legacy`. Anything else unchanged."""
    if numpy is None:
        numpy = is_np_array()
    if isinstance(x, _NUMPY_TYPES):
        return x if numpy else x.as_nd_ndarray()
    if numpy and isinstance(x, (nd.NDArray, mx.symbol.Symbol)):
        return x.as_np_ndarray()
    return x


def stored_numpy(param) -> bool:
    """Whether a Gluon parameter's arrays are NumPy-mode arrays (the mode it was made in)."""
    data = param._data
    return bool(data) and isinstance(data[0], mxnp.ndarray)


#: parameters switched from one array mode to the other so far (see sync_mode)
_mode_switches = [0]


def sync_mode(block) -> None:
    """Before ``block`` runs: its parameters' arrays in the mode in force, as Gluon's layers
    take only those (a network built before ``npx.set_np()`` and called after it, or the
    other way round). The arrays become the other mode's views of the same memory, gradient
    buffers and autograd marks; a hybridized block traces again. Checked once per block and
    mode until some parameter switches again."""
    numpy = is_np_array()
    key = (numpy, _mode_switches[0])
    if block.__dict__.get("_d2p_mode") == key:
        return
    params = {id(p): p for p in block.collect_params().values()}
    params.update((id(p), p) for p in block._collect_params_with_prefix().values())
    switched = [p for p in params.values() if p._data is not None and stored_numpy(p) != numpy]
    for param in switched:
        if param._grad is not None and any(a._fresh_grad for a in param._data):
            param._d2p_has_grad = True  # (the adapter's "has a gradient" mark)
        param._data = [in_mode(a, numpy) for a in param._data]
        if param._grad is not None:
            param._grad = [in_mode(g, numpy) for g in param._grad]
        param._var = None  # its symbol, for hybridize, is made again in this mode
    if switched:
        _mode_switches[0] += 1
        block.apply(lambda b: b._clear_cached_op() if isinstance(b, gluon.HybridBlock) else None)
        invalidate_graphs()
    block.__dict__["_d2p_mode"] = (numpy, _mode_switches[0])


# -- hybridize ------------------------------------------------------------------------------
# d2lparams' containers are Gluon HybridBlocks: ``hybridize()`` traces a network into one
# cached graph when that graph computes what the imperative network computes. A block that
# cannot be traced (a custom module's Python forward, a plain ``gluon.Block``, d2lparams'
# BatchNorm with PyTorch's running statistics) or that must run imperatively now (a module
# with d2lparams forward hooks, a child in another train/eval mode than the network, the
# oneDNN bias fix while ``d2p.grad`` records) makes the containers above it run their
# children one by one; each child still uses its own cached graph where it can.

#: bumped when a traced graph may be stale (a parameter frozen or unfrozen, or switched to
#: the other array mode): containers re-trace at their next call
_graph_version = [0]


def invalidate_graphs() -> None:
    """Make every hybridized d2lparams container trace its graph again at its next call."""
    _graph_version[0] += 1


def _runs_hooks(block) -> bool:
    hooks = block.__dict__.get("_d2p_hooks")
    module = getattr(hooks[0], "__self__", None) if hooks else None
    return module is not None and bool(module.__dict__.get("_forward_pre_hooks")
                                       or module.__dict__.get("_forward_hooks"))


def traceable(block) -> bool:
    """Whether ``block``'s descendants can run inside its cached graph now (see above)."""
    if split_bias.get():
        return False
    training = autograd.is_training()
    for child in block._children.values():
        if not isinstance(child, gluon.HybridBlock) or not getattr(child, "_d2p_traceable", True):
            return False
        mode = child.__dict__.get("_d2p_training")
        if (mode is not None and mode != training) or _runs_hooks(child) or not traceable(child):
            return False
    return True


def imperative(block, x, *args):
    """Run a hybridized ``block`` without its cached graph (Gluon's own imperative path)."""
    active = block._active
    block._active = False
    try:
        return gluon.HybridBlock.forward(block, x, *args)
    finally:
        block._active = active


def _symbolic(x) -> bool:
    return isinstance(x, mx.symbol.Symbol)


class _AnyChild:
    """A HybridBlock that also takes plain ``gluon.Block`` children (it then runs them
    imperatively; Gluon's own HybridBlock refuses them)."""

    def register_child(self, block, name=None):
        if isinstance(block, gluon.HybridBlock):
            gluon.HybridBlock.register_child(self, block, name)
        else:
            gluon.Block.register_child(self, block, name)
            self._clear_cached_op()


class Custom(_AnyChild, gluon.HybridBlock):
    """A native block whose forward is a neutral module's forward. Its forward is Python:
    ``hybridize()`` hybridizes its children and leaves it imperative."""

    _d2p_traceable = False

    def __init__(self, module):
        gluon.HybridBlock.__init__(self)
        object.__setattr__(self, "_d2p_module", module)

    def hybridize(self, active=True, **kwargs):
        gluon.Block.hybridize(self, active, **kwargs)

    def forward(self, *args):
        sync_mode(self)
        return self._d2p_module._native_forward(*args)


class ModuleList(gluon.Block):
    """A container of child blocks; like ``torch.nn.ModuleList`` it has no forward."""

    def __repr__(self):
        lines = [f"  ({key}): " + repr(block).replace("\n", "\n  ")
                 for key, block in self._children.items()]
        return "ModuleList(\n" + "\n".join(lines) + "\n)"


class Identity(gluon.HybridBlock):
    """Returns its input."""

    def hybrid_forward(self, F, x):
        return in_mode(F.identity(legacy(x)), isinstance(x, _NUMPY_TYPES))


class Softmax(gluon.HybridBlock):
    """Softmax over one axis."""

    def __init__(self, axis=-1):
        gluon.HybridBlock.__init__(self)
        self._axis = axis

    def hybrid_forward(self, F, x):
        return in_mode(F.softmax(legacy(x), axis=self._axis), isinstance(x, _NUMPY_TYPES))

    def __repr__(self):
        return f"Softmax(axis={self._axis})"


#: True while d2p.grad records: ``autograd.grad`` may ask for the bias without the weight
split_bias: contextvars.ContextVar[bool] = contextvars.ContextVar("d2p_split_bias", default=False)


class Dense(gluon.nn.Dense):
    """``gluon.nn.Dense`` with one fix: with oneDNN (MKLDNN, on in the CPU wheels),
    FullyConnected's backward gives the bias a ZERO (or garbage) gradient when the weight
    takes none: when the weight does not require one (grad_req='null'), and in
    ``autograd.grad`` for the bias without the weight. Then the bias is added outside the
    operator (hybridized: re-traced when the weight is frozen, imperative under
    ``d2p.grad``)."""

    def forward(self, x, *args):
        if self._active and split_bias.get() and not _symbolic(x):
            return imperative(self, x, *args)
        return gluon.nn.Dense.forward(self, x, *args)

    def hybrid_forward(self, F, x, weight, bias=None):
        if bias is not None and (split_bias.get() or (
                self.weight.grad_req == "null" and self.bias.grad_req != "null")):
            numpy = isinstance(x, _NUMPY_TYPES)
            out = F.FullyConnected(legacy(x), legacy(weight), no_bias=True,
                                   num_hidden=self._units, flatten=self._flatten, name="fwd")
            out = in_mode(F.broadcast_add(out, legacy(bias)), numpy)
            return self.act(out) if self.act is not None else out
        return gluon.nn.Dense.hybrid_forward(self, F, x, weight, bias)


class Sequential(_AnyChild, gluon.nn.HybridSequential):
    """``gluon.nn.HybridSequential`` whose children keep the mode d2lparams gave them
    (``net[1].eval()``): Gluon itself has one global mode, from autograd. Hybridized, it
    runs its cached graph when :func:`traceable`, else its children one by one."""

    def forward(self, x, *args):
        if _symbolic(x):  # traced by a hybridized container above
            return gluon.nn.HybridSequential.forward(self, x, *args)
        sync_mode(self)  # also when Gluon's own code calls it
        if self._active and traceable(self):
            if self.__dict__.get("_d2p_graph") != _graph_version[0]:
                self._clear_cached_op()
                self.__dict__["_d2p_graph"] = _graph_version[0]
            return gluon.nn.HybridSequential.forward(self, x, *args)
        for block in self._children.values():
            mode = block.__dict__.get("_d2p_training")
            if mode is None or mode == autograd.is_training():
                x = block(x, *args)
            else:
                with autograd.train_mode() if mode else autograd.predict_mode():
                    x = block(x, *args)
            args = []
            if isinstance(x, (tuple, list)):
                args = x[1:]
                x = x[0]
        if args:
            x = tuple([x] + list(args))
        return x


class BatchNorm(gluon.nn.BatchNorm):
    """``gluon.nn.BatchNorm`` with PyTorch's meaning. Natively Gluon updates the running
    statistics in BACKWARD (not in a forward pass), with the biased batch variance and
    ``running = m·running + (1-m)·batch``; here the forward pass in training mode updates
    them with ``momentum`` as in PyTorch and the unbiased variance. That update is no graph
    operation: hybridized, this block still runs imperatively (and so do the containers
    above it); only a graph traced by Gluon itself runs Gluon's own operator."""

    _d2p_traceable = False

    def forward(self, x, *args):
        if self._active and not _symbolic(x):
            return imperative(self, x, *args)
        return gluon.nn.BatchNorm.forward(self, x, *args)

    def __init__(self, num_features, eps, momentum):
        gluon.nn.BatchNorm.__init__(
            self, axis=1, momentum=1.0 - momentum, epsilon=eps, in_channels=num_features,
        )
        self._d2p_momentum = momentum

    #: the input ranks this layer takes
    _d2p_ranks: tuple[int, ...] = (2, 3)

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        if F is not nd:
            return gluon.nn.BatchNorm.hybrid_forward(
                self, F, x, gamma, beta, running_mean, running_var)
        numpy = isinstance(x, _NUMPY_TYPES)  # computed with legacy views of the same arrays
        x, gamma, beta, running_mean, running_var = (
            legacy(a) for a in (x, gamma, beta, running_mean, running_var))
        return in_mode(self._pytorch_batch_norm(x, gamma, beta, running_mean, running_var),
                       numpy)

    def _pytorch_batch_norm(self, x, gamma, beta, running_mean, running_var):
        if x.ndim not in self._d2p_ranks:
            raise ValueError(f"BatchNorm1d expects (N, C) or (N, C, L) input, got shape {x.shape}")
        axes = tuple(a for a in range(x.ndim) if a != 1)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        eps = self._kwargs["eps"]
        if autograd.is_training():
            n = x.size // x.shape[1]
            if n < 2:
                raise ValueError(
                    "BatchNorm1d in training mode needs more than 1 value per channel, "
                    f"got input of shape {x.shape}; use a larger batch or eval()")
            mean = nd.mean(x, axis=axes)
            centered = nd.broadcast_sub(x, mean.reshape(shape))
            var = nd.mean(nd.square(centered), axis=axes)  # biased, to normalize
            m = self._d2p_momentum
            with autograd.pause():
                running_mean[:] = (1 - m) * running_mean + m * mean.detach()
                running_var[:] = (1 - m) * running_var + m * var.detach() * (n / (n - 1))
        else:
            centered = nd.broadcast_sub(x, running_mean.reshape(shape))
            var = running_var
        scale = gamma / nd.sqrt(var + eps)
        return nd.broadcast_add(nd.broadcast_mul(centered, scale.reshape(shape)),
                                beta.reshape(shape))


class BufferTensor(nd.NDArray):
    """What ``named_buffers`` yields: an NDArray sharing the buffer's memory that NumPy can
    also read (``np.asarray``), as torch/tf/paddle tensors can; the legacy NDArray has no
    ``__array__``."""

    __slots__ = ()

    def __array__(self, dtype=None, copy=None):
        value = self.asnumpy()
        return value if dtype is None else value.astype(dtype)


class NumpyBufferTensor(mxnp.ndarray):
    """:class:`BufferTensor` in NumPy mode: ``mx.np.ndarray`` has no ``__array__`` either."""

    __slots__ = ()

    def __array__(self, dtype=None, copy=None):
        value = self.asnumpy()
        return value if dtype is None else value.astype(dtype)


# -- convolution and pooling: Gluon's own blocks, with d2lparams' input check first ----------
class Conv2D(gluon.nn.Conv2D):
    """``gluon.nn.Conv2D`` (NCHW) that calls d2lparams' input check (``_d2p_check``) before
    computing (before a deferred initialization infers its shape). Gluon's padding is
    symmetric: PyTorch's ``"same"`` with an even total (``_d2p_pad``: top, bottom, left,
    right) pads the input explicitly first."""

    _d2p_pad = None

    def forward(self, x, *args):
        if not _symbolic(x):
            self._d2p_check(x.shape)
        return gluon.nn.Conv2D.forward(self, x, *args)

    def hybrid_forward(self, F, x, weight, bias=None):
        if self._d2p_pad is not None:
            t, b, left, r = self._d2p_pad
            x = in_mode(F.pad(legacy(x), mode="constant", pad_width=(0, 0, 0, 0, t, b, left, r)),
                        isinstance(x, _NUMPY_TYPES))
        return gluon.nn.Conv2D.hybrid_forward(self, F, x, weight, bias)


class MaxPool2D(gluon.nn.MaxPool2D):
    def forward(self, x, *args):
        if not _symbolic(x):
            self._d2p_check(x.shape)
        return gluon.nn.MaxPool2D.forward(self, x, *args)


class AvgPool2D(gluon.nn.AvgPool2D):
    def forward(self, x, *args):
        if not _symbolic(x):
            self._d2p_check(x.shape)
        return gluon.nn.AvgPool2D.forward(self, x, *args)


class AdaptiveAvgPool2D(gluon.HybridBlock):
    """PyTorch's adaptive average pooling (``contrib.AdaptiveAvgPooling2D``, same bins)."""

    def __init__(self, output_size):
        gluon.HybridBlock.__init__(self)
        self._output_size = tuple(output_size)

    def forward(self, x, *args):
        if not _symbolic(x):
            self._d2p_check(x.shape)
        return gluon.HybridBlock.forward(self, x, *args)

    def hybrid_forward(self, F, x):
        # NumPy mode has no such operator: the legacy one on a legacy view
        out = F.contrib.AdaptiveAvgPooling2D(legacy(x), output_size=self._output_size)
        return in_mode(out, isinstance(x, _NUMPY_TYPES))

    def __repr__(self):
        return f"AdaptiveAvgPool2D(output_size={self._output_size})"


class BatchNorm2D(BatchNorm):
    """:class:`BatchNorm` over the channels of ``(N, C, H, W)`` input."""

    _d2p_ranks = (4,)

    def forward(self, x, *args):
        if not _symbolic(x):
            self._d2p_check(x.shape)
        return BatchNorm.forward(self, x, *args)
