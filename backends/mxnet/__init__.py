"""MXNet Gluon backend (mxnet 1.9.1: NumPy mode, ``npx.set_np()``, and legacy ``mx.nd``).

Quirks absorbed by the adapter:
    * array modes: ``npx.set_np()`` (every d2l MXNet chapter calls it) makes arrays
      ``mx.np.ndarray``; Gluon's layers then call ``npx`` operators, which refuse a legacy
      ``mx.nd.NDArray`` (and legacy operators refuse NumPy-mode arrays; a Gluon parameter
      keeps the array class of the mode it was made in, and ``set_data`` refuses the other
      one). The two classes view the same storage and a shallow conversion
      (``as_np_ndarray`` / ``as_nd_ndarray``) shares the memory and the autograd history:
      the adapter computes with legacy operators on legacy views and hands out the arrays of
      the mode in force (tensors, outputs, gradients, buffers); it writes a parameter with
      an array of the class it stores. A network called in the other mode than the one its
      parameters were made in (or last used in) gets its parameters switched to that
      mode's views first (``layers.sync_mode``: gradient buffers and autograd marks
      included; a hybridized block re-traces). ``Parameter.zero_grad`` of mxnet 1.9.1
      fails on NumPy-mode arrays (``nd.zeros_like``): the adapter zeroes in place. An empty
      batch fails asynchronously in NumPy mode: the adapter never runs one.
    * hybridize: d2lparams' containers are HybridBlocks (``HybridSequential``); a custom
      module's native block is one too but its forward is Python, so ``hybridize()``
      hybridizes its children only. A container runs its cached graph only when every
      descendant can run in it now; otherwise (a custom module or a plain ``gluon.Block``,
      d2lparams' BatchNorm, whose PyTorch-meaning statistics update is no graph operation,
      a module with d2lparams forward hooks, a child in another train/eval mode, the
      oneDNN bias fix under ``d2p.grad``) it runs its children one by one, each with its
      own graph where it has one. Freezing a parameter or switching modes re-traces.
    * import: mxnet 1.9.1 reads ``numpy.bool``, which numpy >= 1.24 removed; the adapter restores
      it (as the builtin ``bool``, what it was) before importing mxnet, without touching
      ``numpy.bool`` where it exists (numpy 2), so no FutureWarning is raised.
    * layout: ``gluon.nn.Dense.weight`` is ``(out, in)``; d2lparams shows ``(in, out)``
      (``linear_weight_transposed``). ``Dense`` flattens its input by default; d2lparams builds
      it with ``flatten=False`` so that, as in PyTorch, it applies to the last axis.
    * lazy: ``Dense(in_units=0)`` has a weight of shape ``(out, 0)`` and raises mxnet's own
      ``DeferredInitializationError`` until the first call; ``linear_parameters`` reports
      ``(None, None)`` meanwhile and the neutral layer raises its own error.
    * defaults: ``initialize()`` gives ``U(±0.07)`` weights and zero biases, whatever the fan.
    * names: gluon names parameters with global counters (``dense0_weight``); those are the
      "native names". A parameter made by ``nn.Parameter`` gets a provisional unique name
      (``d2p_param3``) and, when first registered on a block, the name Gluon itself would give
      it (``block.prefix + attribute``, e.g. ``mymodule0_weight``).
    * registration: a ``gluon.Parameter`` assigned as a Block attribute lands in
      ``_reg_params`` (structural names, ``save_parameters``) but NOT in ``collect_params()``
      (``Trainer``, ``initialize``, ``zero_grad``); ``register_parameter`` / ``register_buffer``
      put it in both, so the framework's own tools train it.
    * gradients: Gluon's default ``grad_req='write'`` overwrites the gradient at every
      backward. Every parameter this adapter creates or hands out gets ``grad_req='add'``
      (frozen: ``'null'``) so gradients accumulate as in PyTorch. Gluon keeps a zero gradient
      buffer from initialisation on and cannot say "no gradient yet": the adapter uses MXNet's
      own per-array ``_fresh_grad`` flag (set by ``backward`` only on the arrays the graph
      reached, the flag ``Trainer`` uses to detect stale gradients) and makes it sticky on
      the parameter after each backward, so ``param_grad`` is ``None`` before any backward
      that reached the parameter and after ``zero_grad`` (which zeroes the buffer and clears
      both flags).
    * freezing: ``grad_req='null'`` drops the gradient buffer (mxnet re-creates a zero one on
      unfreezing); the value is shared, so nothing else changes.
    * oneDNN bug: with MKLDNN (on in the CPU wheel) ``FullyConnected``'s backward gives the
      bias a ZERO gradient when the weight has ``grad_req='null'`` (same bug class as
      apache/mxnet#15464 for Convolution). The adapter's ``Dense`` subclass adds the bias
      outside the operator in exactly that case.
    * modes: training vs inference is not stored on a Block; it comes from
      ``autograd.train_mode()`` / ``predict_mode()``, which ``call`` enters from the neutral
      module's ``training`` flag. ``set_training`` keeps the flag on the block and the adapter's
      ``Sequential`` applies each child in its own mode (``net[1].eval()``). Recording is
      ``autograd.record()``; ``backward`` outside it raises natively.
    * BatchNorm: Gluon's operator updates the running statistics in backward (never in a
      forward pass), with the biased variance and ``running = m·running + (1-m)·batch``; the
      adapter's ``BatchNorm`` subclass computes PyTorch's meaning with ``nd`` operations
      (forward update, unbiased variance, ``momentum`` as in PyTorch).
    * buffers: the legacy NDArray has no ``__array__`` (``np.asarray`` recurses and fails);
      ``buffer_tensor`` returns an NDArray subclass view of the same memory that has one.
    * scalars: a legacy gluon ``Parameter`` cannot have shape ``()`` (it means "unknown");
      a 0-d ``nn.Parameter`` is stored with shape ``(1,)`` and reported as ``()``.
    * initializers: ``mx.init.Xavier`` computes fans from the native shape ``(out, in)``
      (``fan_in = shape[1]``); ``init_native`` picks ``factor_type`` and ``magnitude`` so that the
      distribution is PyTorch's, and writes in place (``set_data``) so the gradient buffer and
      every shared place survive; a Parameter's own ``init`` attribute (``zeros`` for biases)
      would win over a global initializer, so the initializer is applied explicitly.
    * ops: ``nd.dot`` contracts the last axis of ``a`` with the first of ``b``; batched
      ``matmul`` goes through ``nd.batch_dot`` with broadcast batch axes. Legacy ``reshape``
      gives 0 and negative codes special meanings; ``reshape`` resolves ``-1`` itself.
    * convolution: Gluon is NCHW with ``(out, in/groups, kh, kw)`` weights, as PyTorch.
      Its padding is symmetric only: PyTorch's ``"same"`` with an odd total (an even
      kernel) pads the input explicitly (``F.pad``) first. Lazy: ``in_channels=0``, the
      weight ``(out, 0, kh, kw)`` until the first call; the subclasses check the input in
      ``forward``, before the deferred initialization infers a shape from it.
      ``AvgPool2D`` counts the padding (``count_include_pad=True``, its default); adaptive
      pooling is ``contrib.AdaptiveAvgPooling2D`` (PyTorch's bins). ``BatchNorm`` takes any
      rank: the adapter's ``BatchNorm2D`` is its PyTorch-meaning ``BatchNorm`` over (N, H,
      W). The oneDNN frozen-weight bias bug of ``FullyConnected`` does not show on
      ``Convolution`` here (tested).
    * conv defaults: ``initialize()`` gives ``U(±0.07)`` weights, zero biases.
    * 0-d: a legacy NDArray has no usable 0-d shape (operators fail on it): full reductions
      and losses are shape ``(1,)``, and ``reshape`` to ``()`` gives ``(1,)``.
    * operators: the legacy NDArray raises ``TypeError`` for an operand it does not know
      instead of returning ``NotImplemented``, so ``tensor + Parameter`` failed; its
      arithmetic, in-place and ordering operators defer to a d2lparams ``Parameter`` (and to
      nothing else, which still raises mxnet's own error).
    * input gradients: ``attach_grad(grad_req='add')`` makes a ``requires_grad`` tensor
      accumulate; its ``_fresh_grad`` flag (set by backward) says whether it has a gradient
      yet. ``autograd.grad`` refuses a variable the output does not depend on
      ("unreachable"): the variables are then asked one by one. With oneDNN,
      ``autograd.grad`` for a Dense bias without its weight gives a garbage bias gradient
      (the bug above): while ``d2p.grad`` records, the adapter's ``Dense`` adds the bias
      outside the operator (a Dense from ``d2p.wrap`` of a native ``gluon.nn.Dense`` does
      not: differentiate its bias with its weight).
    * ops: ``nd.log_softmax`` is off by up to 4e-6 in value and 2e-5 in gradient (the
      composition ``x - max - log(sum(exp(x - max)))`` by 1e-6) but kept: the composition
      costs six operations, 7 % of the classifier example's training step; ``nd.where``
      neither broadcasts nor takes numbers; ``nd.argmax`` gives float32 indices (cast to
      int64); ``nd.Dropout`` drops only in ``train_mode`` unless ``mode='always'``; the
      cross-entropy pick is ``nd.pick``.
"""

from d2lparams.schemes import Constant, Scheme, Uniform

from ..base import TapeBackend


class MXNetBackend(TapeBackend):
    name = "mxnet"
    aliases = ("gluon",)
    framework_name = "MXNet Gluon"
    import_names = ("mxnet",)
    extra = "mxnet"
    distributions = ("mxnet",)
    tensor_modules = ("mxnet",)
    preload_rank = 40
    default_priority = 40
    color = "#1f77b4"
    default_init = Scheme("mxnet", linear=(Uniform(0.07), Constant(0.0)),
                          others={"conv2d": (Uniform(0.07), Constant(0.0))})
    linear_weight_transposed = True
    float_dtypes = ("float32", "float64", "float16")  # no bfloat16 in MXNet 1.9's NDArray
    implementation = "adapter:MXNetAdapter"

    @classmethod
    def hazards(cls) -> list[str]:
        from importlib import metadata

        try:
            major, minor = (int(x) for x in metadata.version("numpy").split(".")[:2])
        except (metadata.PackageNotFoundError, ValueError):
            return []
        if major >= 2:
            return ['numpy >= 2 is installed but mxnet 1.9.1 needs numpy < 2: pip install "numpy<2"']
        if (major, minor) >= (1, 24):
            return ["numpy >= 1.24 removed numpy.bool, which mxnet needs: the mxnet adapter "
                    "restores it itself (nothing to do)"]
        return []
