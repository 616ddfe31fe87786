"""Keras 3's side of d2lparams' modules: containers that hold members under any name, the
native side of a custom module, and BatchNormalization with PyTorch's statistics.

Importing this module imports tensorflow and keras (Keras 3 on the tensorflow backend).
"""

from __future__ import annotations

import contextvars
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402  (after the environment above)
import tensorflow as tf  # noqa: E402

if not keras.__version__.startswith("3.") or not hasattr(keras, "Variable"):
    raise ImportError(
        f"d2lparams needs Keras 3, found keras {keras.__version__}; "
        "install tensorflow >= 2.16 (it ships Keras 3)"
    )
if keras.backend.backend() != "tensorflow":
    raise ImportError(
        f"Keras runs on the {keras.backend.backend()!r} backend here; set the environment "
        "variable KERAS_BACKEND=tensorflow before anything imports keras"
    )

__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Container",
           "Conv2d", "Custom", "Dense", "MaxPool2d", "ModuleList", "Sequential", "call_origin",
           "conv2d_nhwc", "keras", "nhwc", "pool2d_nhwc", "tf", "to_nchw", "to_nhwc"]

#: None: no d2lparams-driven call is running; "neutral": a neutral module was called (each
#: module's own mode applies); "native": a native Keras call reached a custom forward
#: (Keras' own ``training`` propagation applies).
call_origin: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "d2p_tf_call_origin", default=None
)

MODE = "_d2p_training"  # attribute of a native layer holding its neutral mode


def child_mode(layer, training):
    """The mode a container passes to ``layer``: its own in a neutral call, else Keras'."""
    if call_origin.get() == "neutral":
        return getattr(layer, MODE, training)
    return training


class Container(keras.Model):
    """A Keras model (so ``compile``, ``fit``, ``summary`` and ``save_weights`` work on
    ``net.native``) that holds d2lparams members under any name."""

    def __init__(self, **kwargs):
        keras.Model.__init__(self, **kwargs)
        # Nothing to build: marking it built keeps Keras from tracing ``call`` symbolically
        # and from locking the layer (members may come later).
        self.built = True
        self._d2p_members = {}  # Keras tracks the layers and variables inside
        self._d2p_kinds = {}  # name -> "child" | "parameter" | "buffer"
        self._d2p_attributes = set()

    def _d2p_add(self, name, value, kind="child"):
        self._d2p_kinds[name] = kind
        members = self._d2p_members
        old = members.get(name)
        if old is not None and old is not value:
            dict.__delitem__(members, name)
            if all(v is not old for v in members.values()):
                self._tracker.untrack(old)
        members[name] = value
        if name in self._d2p_attributes or (
            name.isidentifier()
            and not name.startswith("_")
            and not hasattr(type(self), name)
            and name not in self.__dict__
        ):
            setattr(self, name, value)
            self._d2p_attributes.add(name)


class Custom(Container):
    """A Keras layer whose call is a neutral module's forward."""

    def call(self, *args, training=None):
        module = self.__dict__["_d2p_module"]
        if call_origin.get() is None:
            token = call_origin.set("native")
            try:
                return module._native_forward(*args)
            finally:
                call_origin.reset(token)
        return module._native_forward(*args)


class Sequential(Container):
    """Applies its layers in order; the same layer may appear twice (tied)."""

    def __init__(self, **kwargs):
        Container.__init__(self, **kwargs)
        self._d2p_layers = []
        self._d2p_names = []

    @property
    def layers(self):
        return list(self._d2p_layers)

    def call(self, inputs, training=None):
        x = inputs
        inside = False  # x is NHWC: a chain of NHWC-capable layers is running
        for layer in self._d2p_layers:
            role = _layout_role(layer)
            if inside and role is None:
                x, inside = to_nchw(x), False
            elif not inside and role == "nhwc" and len(x.shape) == 4:
                x, inside = to_nhwc(x), True
            if inside:
                token = nhwc.set(True)
                try:
                    x = layer(x, training=child_mode(layer, training))
                finally:
                    nhwc.reset(token)
            else:
                x = layer(x, training=child_mode(layer, training))
        return to_nchw(x) if inside else x


class ModuleList(Container):
    """Holds layers; it has no call of its own."""

    @property
    def layers(self):
        return list(self._d2p_members.values())

    def call(self, *args, training=None):
        raise TypeError(
            f"{self.name} is a ModuleList: it holds layers but has no call; call its layers "
            "instead"
        )


class Dense(keras.layers.Dense):
    """``keras.layers.Dense`` that also takes one sample of shape ``(in,)``, as PyTorch's
    Linear does (Keras requires a batch axis)."""

    def __init__(self, *args, **kwargs):
        keras.layers.Dense.__init__(self, *args, **kwargs)
        self.input_spec = keras.layers.InputSpec(min_ndim=1)

    def build(self, input_shape):
        keras.layers.Dense.build(self, input_shape)
        self.input_spec = keras.layers.InputSpec(min_ndim=1, axes={-1: int(input_shape[-1])})

    def call(self, inputs, training=None):
        if len(inputs.shape) == 1:
            out = keras.layers.Dense.call(self, keras.ops.expand_dims(inputs, 0))
            return keras.ops.squeeze(out, 0)
        return keras.layers.Dense.call(self, inputs)


class BatchNorm1d(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` over axis 1 with PyTorch's statistics: the running
    variance is updated with the unbiased batch variance (Keras: biased), and one built layer
    takes ``(N, C)`` and ``(N, C, L)`` input alike."""

    def call(self, inputs, training=None, mask=None, channel_axis=1):
        ops = keras.ops
        x = ops.cast(inputs, self.compute_dtype)
        if training and self.trainable:
            axes = [i for i in range(len(x.shape)) if i != channel_axis]
            count = 1
            for i in axes:
                count *= int(x.shape[i])
            if count < 2:
                raise ValueError(
                    f"{self.name}: batch normalization in training mode needs more than 1 "
                    f"value per channel, got input of shape {tuple(x.shape)}; use a larger "
                    "batch or eval() mode"
                )
            mean, variance = ops.moments(x, axes=axes)
            unbiased = variance * (count / (count - 1))
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + unbiased * (1.0 - self.momentum))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return ops.batch_normalization(
            x, mean, variance, axis=channel_axis, offset=self.beta, scale=self.gamma,
            epsilon=self.epsilon,
        )


# -- convolution and pooling: NCHW outside, NHWC inside ---------------------------------------
# TensorFlow's CPU kernels compute convolution and pooling in NHWC only ("The Conv2D op
# currently only supports the NHWC tensor format on the CPU"; MaxPool/AvgPool likewise). The
# layers below take and return NCHW tensors and transpose around the NHWC kernel. Inside the
# adapter's Sequential, consecutive layers of this kind (and element-wise activations
# between them) exchange NHWC tensors directly: the Sequential sets ``nhwc`` while it calls
# them, and transposes only where the chain starts and ends.

#: True while a layer of this module is handed (and must return) an NHWC tensor
nhwc: contextvars.ContextVar[bool] = contextvars.ContextVar("d2p_tf_nhwc", default=False)


def to_nhwc(x):
    return tf.transpose(x, (0, 2, 3, 1))


def to_nchw(x):
    return tf.transpose(x, (0, 3, 1, 2))


def _nchw_shape(shape, in_nhwc: bool) -> tuple:
    shape = tuple(shape)
    if in_nhwc and len(shape) == 4:
        return shape[0], shape[3], shape[1], shape[2]
    return shape


def check(layer, shape, inside: bool) -> None:
    """Run d2lparams' input check of ``layer`` on the NCHW view of ``shape``. Its ValueError
    already names the layer, the shapes and the fix: it is marked so that Keras passes it on
    unchanged (Keras otherwise re-raises it with its call arguments appended, where the
    tensor may be the NHWC one of a chain)."""
    try:
        layer._d2p_check(_nchw_shape(shape, inside))
    except ValueError as error:
        error._keras_call_info_injected = True  # type: ignore[attr-defined]
        raise


def _explicit(pad) -> list | None:
    """``(top, bottom, left, right)`` as ``tf.pad`` paddings of an NHWC tensor."""
    return None if pad is None else [[0, 0], [pad[0], pad[1]], [pad[2], pad[3]], [0, 0]]


class _NCHW:
    """Mixin of the layers below: the input check, then NHWC compute (``_d2p_nhwc_call``)
    with the transposes where the caller handed an NCHW tensor."""

    _d2p_layout = "nhwc"  # the adapter's Sequential may chain it in NHWC

    def call(self, inputs, training=None):
        inside = nhwc.get()
        check(self, inputs.shape, inside)
        if inside:
            return self._d2p_nhwc_call(inputs, training)
        return to_nchw(self._d2p_nhwc_call(to_nhwc(inputs), training))


class Conv2d(_NCHW, keras.layers.Conv2D):
    """``keras.layers.Conv2D`` (its ``kernel`` ``(kh, kw, in/groups, out)`` and ``bias``) on
    NCHW tensors, with PyTorch's padding: a pair of zero paddings (``_d2p_pad``: top, bottom,
    left, right) or ``"same"``/``"valid"`` (TensorFlow's "SAME" at stride 1 splits an odd
    total as PyTorch does). TensorFlow refuses a stride > 1 together with a dilation > 1:
    then the stride-1 convolution is computed and subsampled."""

    def __init__(self, filters, kernel_size, strides, padding, dilation_rate, groups, use_bias):
        self._d2p_padding = padding if isinstance(padding, str) else tuple(padding)
        padding, self._d2p_pad = conv_padding(padding, kernel_size, strides, dilation_rate)
        self._d2p_subsample = None
        if max(strides) > 1 and max(dilation_rate) > 1:
            self._d2p_subsample, strides = tuple(strides), (1, 1)
        keras.layers.Conv2D.__init__(
            self, filters, kernel_size, strides=strides, padding=padding,
            dilation_rate=dilation_rate, groups=groups, use_bias=use_bias)
        self.input_spec = None  # d2lparams' input check (NCHW) replaces Keras' spec

    def build(self, input_shape):
        """``input_shape`` NCHW (NHWC inside a chain); checked first, so that a lazy layer
        is not built from an input it refuses."""
        inside = nhwc.get()
        n, c, h, w = _nchw_shape(input_shape, inside) + (None,) * (4 - len(input_shape))
        check(self, input_shape, inside)
        if self._d2p_pad is not None:
            h = None if h is None else h + self._d2p_pad[0] + self._d2p_pad[1]
            w = None if w is None else w + self._d2p_pad[2] + self._d2p_pad[3]
        keras.layers.Conv2D.build(self, (n, h, w, c))
        self.input_spec = None  # Keras' spec is NHWC; the input check above replaces it

    def _d2p_nhwc_call(self, x, training):
        return conv2d_nhwc(x, self.kernel, self.bias, self.strides, self.padding,
                           self.dilation_rate, self.groups, self._d2p_pad, self._d2p_subsample)


def conv_padding(padding, kernel_size, strides, dilation) -> tuple:
    """PyTorch's conv ``padding`` as ``(Keras padding, explicit (top, bottom, left, right) or
    None)``. A numeric padding that is PyTorch's "same" (stride 1, ``2p = d·(k-1)``, as
    LeNet's ``Conv2d(1, 6, 5, padding=2)``) is TensorFlow's "SAME": the kernel a Keras user
    gets."""
    if isinstance(padding, str):
        return padding, None
    if tuple(padding) == (0, 0):
        return "valid", None
    if tuple(strides) == (1, 1) and all(
            2 * p == d * (k - 1) for p, k, d in zip(padding, kernel_size, dilation)):
        return "same", None
    return "valid", (padding[0], padding[0], padding[1], padding[1])


def conv2d_nhwc(x, kernel, bias, strides, padding, dilation, groups, pad, subsample):
    """The convolution of an NHWC tensor with an HWIO kernel (``pad``: explicit
    ``(top, bottom, left, right)`` zeros; ``padding``: ``"same"``/``"valid"``)."""
    explicit = _explicit(pad)
    plain = groups == 1 and max(dilation) == 1
    if plain and explicit is not None:
        y = tf.nn.conv2d(x, kernel, strides, explicit)
    else:
        if explicit is not None:
            x = tf.pad(x, explicit)
        if plain:
            y = tf.nn.conv2d(x, kernel, strides, padding.upper())
        elif groups == 1:  # dilated: TF's CPU Conv2D has no dilated backward; atrous form
            y = tf.nn.convolution(x, kernel, strides, padding.upper(), dilations=dilation)
        else:  # grouped: Keras' own op (it compiles it with XLA, TF's CPU kernel lacks it)
            y = keras.ops.conv(x, kernel, strides=list(strides), padding=padding,
                               dilation_rate=dilation, data_format="channels_last")
    if subsample is not None:
        y = y[:, ::subsample[0], ::subsample[1], :]
    return y if bias is None else tf.nn.bias_add(y, bias)


class MaxPool2d(_NCHW, keras.layers.MaxPooling2D):
    """``keras.layers.MaxPooling2D`` on NCHW tensors with PyTorch's padding (``-inf``: the
    padding never wins) and ``ceil_mode=False``."""

    _d2p_fill = -np.inf

    def __init__(self, kernel_size, stride, padding):
        keras.layers.MaxPooling2D.__init__(self, tuple(kernel_size), tuple(stride), "valid")
        self.input_spec = None
        self._d2p_pad = None if tuple(padding) == (0, 0) else (
            padding[0], padding[0], padding[1], padding[1])

    def _d2p_nhwc_call(self, x, training):
        return pool2d_nhwc(x, self.pool_size, self.strides, self._d2p_pad, self._d2p_fill)


class AvgPool2d(_NCHW, keras.layers.AveragePooling2D):
    """``keras.layers.AveragePooling2D`` on NCHW tensors with PyTorch's padding (zeros that
    count: ``count_include_pad=True``) and ``ceil_mode=False``."""

    _d2p_fill = 0.0

    def __init__(self, kernel_size, stride, padding):
        keras.layers.AveragePooling2D.__init__(self, tuple(kernel_size), tuple(stride), "valid")
        self.input_spec = None
        self._d2p_pad = None if tuple(padding) == (0, 0) else (
            padding[0], padding[0], padding[1], padding[1])

    _d2p_nhwc_call = MaxPool2d._d2p_nhwc_call


def pool2d_nhwc(x, size, strides, pad, fill):
    """Max (``fill`` ``-inf``) or average (``fill`` 0) pooling of an NHWC tensor."""
    if pad is not None:
        x = tf.pad(x, _explicit(pad), constant_values=fill)
    if fill == 0:
        return tf.nn.avg_pool2d(x, size, strides, "VALID")
    return tf.nn.max_pool2d(x, size, strides, "VALID")


class AdaptiveAvgPool2d(_NCHW, keras.layers.Layer):
    """PyTorch's adaptive average pooling: bin ``i`` of ``out`` over an axis of ``n``
    covers ``[floor(i·n/out), ceil((i+1)·n/out))``."""

    def __init__(self, output_size):
        keras.layers.Layer.__init__(self)
        self._d2p_size = tuple(output_size)
        self.built = True

    def call(self, inputs, training=None):
        if self._d2p_size == (1, 1) and not nhwc.get():  # global: no transpose needed
            check(self, inputs.shape, False)
            return tf.reduce_mean(inputs, axis=(2, 3), keepdims=True)
        return _NCHW.call(self, inputs, training)

    def _d2p_nhwc_call(self, x, training):
        h, w = int(x.shape[1]), int(x.shape[2])
        oh, ow = self._d2p_size
        if h % oh == 0 and w % ow == 0:
            return tf.nn.avg_pool2d(x, (h // oh, w // ow), (h // oh, w // ow), "VALID")
        rows = [(i * h // oh, -(-(i + 1) * h // oh)) for i in range(oh)]
        cols = [(j * w // ow, -(-(j + 1) * w // ow)) for j in range(ow)]
        return tf.stack([
            tf.stack([tf.reduce_mean(x[:, r0:r1, c0:c1, :], axis=(1, 2)) for c0, c1 in cols],
                     axis=1)
            for r0, r1 in rows], axis=1)


class BatchNorm2d(BatchNorm1d):
    """:class:`BatchNorm1d` (PyTorch's statistics) over the channels of NCHW input (the last
    axis inside an NHWC chain): no transpose either way."""

    _d2p_layout = "nhwc"

    def call(self, inputs, training=None, mask=None):
        inside = nhwc.get()
        check(self, inputs.shape, inside)
        return BatchNorm1d.call(self, inputs, training=training, channel_axis=3 if inside else 1)


_ELEMENTWISE = {keras.activations.relu, keras.activations.sigmoid, keras.activations.tanh,
                keras.activations.linear}


def _layout_role(layer) -> str | None:
    """``"nhwc"``: a layer above (it takes NHWC inside a chain); ``"free"``: element-wise, any
    layout; ``None``: needs the NCHW tensor (Flatten, Linear, custom modules, ...)."""
    role = getattr(type(layer), "_d2p_layout", None)
    if role is not None:
        return role
    kind = type(layer)
    if kind is keras.layers.ReLU or kind is keras.layers.Identity or (
            kind is keras.layers.Activation and layer.activation in _ELEMENTWISE):
        return "free"
    return None
