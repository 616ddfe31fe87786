"""TensorFlow / Keras 3 backend.

Quirks absorbed by the adapter:
    * layout: ``keras.layers.Dense.kernel`` is already ``(in, out)``, the canonical layout;
      nothing is transposed.
    * lazy: a ``Dense`` without an input size has no weights until its first call (or
      ``build``); ``linear`` builds it at once when the size is known, so parameters exist
      right after construction.
    * names: Keras names variables by global counters (``sequential/dense/kernel``); those
      are its own names. A free ``keras.Variable`` is just ``variable``: when it is first
      registered on a layer it takes the path ``<layer>/<attribute>`` as ``add_weight`` would
      give it.
    * ``net.native`` is a ``keras.Model`` (the adapter's containers subclass it), so Keras'
      own ``compile``/``fit``/``summary``/``save_weights`` work on it.
    * containers: ``keras.Sequential`` is not used. It builds a functional graph by tracing
      every layer symbolically at the first call (a custom forward with Python control flow
      on values fails there, and its side effects run twice), and it inserts an
      ``InputLayer`` with a fixed batch shape into ``layers``. A small ``Layer`` that applies
      an ordered list of layers replaces it (the same layer may appear twice; layers can be
      added after the first call).
    * build/lock: a Keras layer whose ``build`` runs is *locked* (no new variable or
      sub-layer afterwards) and an unbuilt layer with unbuilt children is traced
      symbolically before its first call. The adapter's own layers are marked built at
      construction, which avoids both.
    * attributes: registering a child by ``setattr`` only when the name is a free Python
      identifier (``output``, ``input``, ``weights``, ``name``, ``trainable``, ``call`` ... are
      Keras' own); every member is also kept in a Keras-tracked dict, so any name works.
    * modes: Keras has no train/eval state, only ``training=`` per call (default inference).
      A neutral call passes each module's mode explicitly (d2lparams' containers pass each
      child's own mode, as PyTorch does); a native call keeps Keras' own propagation.
    * gradients: nothing is stored natively. ``record`` opens a ``tf.GradientTape``;
      ``backward`` differentiates w.r.t. the variables the tape watched and *adds* each
      gradient into an accumulator kept on the underlying ``tf.Variable`` (a ``keras.Variable``
      is unhashable, so no dict/WeakKeyDictionary keyed by it).
    * freezing: ``keras.Variable.trainable = False`` does not change the underlying
      ``tf.Variable`` (its ``trainable`` is fixed at creation), so the tape still watches and
      differentiates it. Frozen variables are skipped explicitly. Conversely a variable created
      with ``trainable=False`` is never watched, so parameters are always created trainable and
      frozen afterwards (unfreezing then works).
    * randomness: only ``keras.utils.set_random_seed`` makes Keras initializers reproduce; a
      fresh initializer instance is made for every native init (one instance reused draws the
      same values every time). ``VarianceScaling`` computes fans from the last two axes; the
      scale is corrected so that the fan is d2lparams' one (they agree for 2-D weights).
    * batch norm: ``keras.layers.BatchNormalization`` updates the moving variance with the
      *biased* batch variance, its ``momentum`` is ``1 -`` PyTorch's, and a built layer accepts
      one input rank only. A subclass keeps its variables (``gamma``, ``beta``,
      ``moving_mean``, ``moving_variance``) and replaces ``call`` with PyTorch's statistics.
    * SGD: no ``.grad`` exists, so ``sgd_update`` applies PyTorch's formula to the
      accumulator with TF ops and ``assign_sub`` (in place, the Variable keeps its identity).
    * wrap: ``keras.Sequential`` and d2lparams' containers are sequentials; a ``Dense`` is a
      linear layer even with a fused activation (the native call keeps it); any other layer is
      a module whose members are named by the attribute that holds them.
    * convolution layout: Keras is NHWC with ``(kh, kw, in/groups, out)`` kernels, and
      TensorFlow's CPU kernels have no NCHW convolution or pooling at all ("The Conv2D op
      currently only supports the NHWC tensor format on the CPU"; ``data_format=
      "channels_first"`` fails at the first call). d2lparams' Keras conv/pool layers take
      and return NCHW and transpose around the NHWC kernel; ``layout("conv2d", "weight")``
      is ``(3, 2, 0, 1)``, so the kernel reads as ``(out, in, kh, kw)``. The adapter's
      ``Sequential`` lets consecutive conv/pool/BatchNorm2d layers and element-wise
      activations exchange NHWC tensors (a context variable tells them), transposing only
      where such a chain starts and ends (LeNet: twice).
    * convolution padding: Keras has only ``"valid"``/``"same"``: numeric padding is explicit
      (``tf.nn.conv2d`` paddings, ``tf.pad`` before pooling: ``-inf`` for max, zeros for
      average, which then count as PyTorch's ``count_include_pad``). TensorFlow refuses a
      stride > 1 with a dilation > 1 (computed at stride 1 and subsampled); its CPU
      ``Conv2D`` has no dilated backward (``tf.nn.convolution``'s atrous form is used) and no
      grouped kernel (Keras' XLA-compiled ``ops.conv`` is used).
    * convolution checks: Keras' own ``input_spec`` (NHWC) is replaced by d2lparams' input
      check; a lazy ``Conv2D`` checks in ``build``, before Keras creates the kernel. Keras
      re-raises an exception from ``call`` with its arguments appended; the check's
      ``ValueError`` is marked (``_keras_call_info_injected``) so it passes unchanged.
    * conv defaults: Glorot uniform kernel (Keras' fans equal PyTorch's for conv kernels),
      zero bias.
    * operators: ``tensor + Parameter`` converted the Parameter through ``__array__`` into a
      constant, so its gradient was silently lost; ``tf.register_tensor_conversion_function``
      makes a Parameter convert to its live variable (read on the tape). ``tensor @ x``
      follows ``tf.matmul`` (rank 2 or more).
    * input gradients: a constant cannot be watched after the fact, so a ``requires_grad``
      tensor is a trainable ``keras.Variable`` (a bare ``tf.Variable`` is refused by some
      ``keras.ops``); its gradient accumulates on it as a parameter's does. ``d2p.grad`` asks
      the same tape for the sources only.
    * ops: ``keras.ops.argmax`` gives int32 (cast to int64); ``keras.ops.clip`` takes no
      ``None`` bound; the cross-entropy pick is ``tf.gather_nd`` (``tf.gather`` with
      ``batch_dims`` has a gradient 8x slower in eager mode, ``keras.ops.take_along_axis``
      slower still); functional dropout draws from Keras' global ``SeedGenerator``, which
      ``keras.utils.set_random_seed`` (``d2p.seed``) seeds.
    * dropout layers: a Keras ``Dropout`` draws from a ``SeedGenerator`` of its own, seeded
      when the layer is made; ``d2p.seed(n)`` re-seeds those of ``nn.Dropout`` (from ``n``
      and the layer's creation order), so that their masks repeat as PyTorch's do after
      ``torch.manual_seed(n)``.
"""

from d2lparams.schemes import Constant, Scheme, VarianceScaling

from ..base import TapeBackend


class TensorFlowBackend(TapeBackend):
    name = "tensorflow"
    aliases = ("tf", "keras")
    framework_name = "TensorFlow/Keras 3"
    import_names = ("tensorflow", "keras")
    extra = "tensorflow"
    distributions = ("tensorflow-cpu", "tensorflow", "keras")
    tensor_modules = ("tensorflow", "keras")
    preload_rank = 60
    default_priority = 20
    color = "#ff8f00"
    default_init = Scheme(
        "tensorflow", linear=(VarianceScaling(1.0, "fan_avg", "uniform"), Constant(0.0)),
        others={"conv2d": (VarianceScaling(1.0, "fan_avg", "uniform"), Constant(0.0))})
    implementation = "adapter:TensorFlowAdapter"
