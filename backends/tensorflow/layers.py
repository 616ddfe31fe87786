"""Keras 3's side of d2lparams' modules: containers that hold members under any name, the
native side of a custom module, and BatchNormalization with PyTorch's statistics.

Importing this module imports tensorflow and keras (Keras 3 on the tensorflow backend).
"""

from __future__ import annotations

import contextvars
import os

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

__all__ = ["BatchNorm1d", "Container", "Custom", "Dense", "ModuleList", "Sequential", "call_origin",
           "keras", "tf"]

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
        for layer in self._d2p_layers:
            x = layer(x, training=child_mode(layer, training))
        return x


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

    def call(self, inputs, training=None, mask=None):
        ops = keras.ops
        x = ops.cast(inputs, "float32")
        if training and self.trainable:
            axes = [i for i in range(len(x.shape)) if i != 1]
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
            x, mean, variance, axis=1, offset=self.beta, scale=self.gamma, epsilon=self.epsilon,
        )
