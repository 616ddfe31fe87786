"""JAX / Flax NNX backend.

Quirks absorbed by the adapter:
    * layout: ``nnx.Linear.kernel`` is ``(in, out)``, the canonical layout; nothing is
      transposed. ``nnx.Conv`` kernels are ``(kh, kw, in/groups, out)`` (HWIO) over NHWC
      input; ``layout("conv2d", "weight")`` is ``(3, 2, 0, 1)``, so the kernel reads as
      ``(out, in, kh, kw)``. d2lparams' conv and pooling layers take and return NCHW and call
      ``lax.conv_general_dilated`` / ``lax.reduce_window`` with NCHW dimension numbers (XLA
      picks its own internal layout), so nothing is transposed by hand.
    * names: NNX has no global counters; its own names are the paths of ``nnx.state``
      (``layers/0/kernel``, ``kernel``, ``bias``). A module used twice is held once in
      ``nnx.state`` (the chapter's tied net has ``layers/2`` and no ``layers/4``).
    * parameters are ``nnx.Param`` objects holding an immutable ``jax.Array``: a write
      replaces the value (``param.value = new``); the ``Param`` object keeps its identity, so
      tied places see the write. ``p[3, 2] = 100`` and ``p.data`` writes go through it.
    * defaults: LeCun normal, truncated at two standard deviations (``variance_scaling(1,
      "fan_in", "truncated_normal")``: std ``√(1/fan_in)``, bound ``2·√(1/fan_in)/0.8796``)
      for Linear and Conv kernels, zero bias. NNX's fans for an HWIO kernel are PyTorch's.
    * lazy: ``nnx.Linear`` needs its input size. A small subclass creates ``kernel`` and
      ``bias`` at its first call with ``nnx.Linear``'s own initializers (the same for
      ``LazyConv2d``).
    * randomness: no global RNG. The adapter keeps one ``nnx.Rngs`` (streams ``params``
      for new layers and native initializers, ``dropout`` for dropout masks) that
      ``d2p.seed`` re-keys in place; every d2lparams ``Dropout`` holds that shared
      ``dropout`` stream (``nnx.Dropout`` forks its own otherwise), so ``d2p.seed`` fixes
      the masks as ``torch.manual_seed`` does, and ``nnx.jit`` still sees the stream as
      state of the model.
    * gradients: JAX has no tape. ``d2p.backward(fn)`` runs ``fn`` under ``jax.vjp`` with
      the value of every parameter (and ``requires_grad`` tensor) that requires a gradient
      replaced by a traced one, then *adds* each gradient into an accumulator kept on the
      ``Param`` (PyTorch's ``.grad``). Only parameters that ``fn``'s result depends on get
      one (an identity with a custom VJP marks each traced value; its backward runs only
      where a gradient arrives), so an unused or detached parameter keeps ``None``. NNX
      refuses writes to a ``Variable`` from inside a transformation (its trace state); the
      adapter lends every Variable it knows the inner trace state while ``fn`` runs, and
      writes made there (BatchNorm statistics, the dropout stream's counter) come out of the
      transformation as its auxiliary output and are stored afterwards. A lazy layer built
      during ``fn`` makes the adapter differentiate again, so its new parameters get their
      gradient in that very call. A parameter that has never had a gradient and got none
      when traced (another model's) is *idle*: later calls do not trace it (``jax.vjp``
      would make zeros of its size) but watch it with an ``on_get_value`` hook lent for the
      call; if ``fn`` reads it, ``fn`` runs again with it traced, and only that run's state
      changes are kept.
    * dtypes of inputs: JAX promotes mixed float dtypes (and truncates float64 in its 32-bit
      mode); ``call`` refuses a float input whose dtype is not the model's, checked only
      when the input is not float32 or some parameter is not float32 (and not where a
      wrapped NNX layer names its own computation ``dtype``: NNX casts the input then).
    * freezing: NNX has no per-parameter flag (its own tools filter by type); the adapter
      keeps one and leaves frozen parameters out of the traced values.
    * ``d2p.no_grad`` inside ``fn`` reads parameters through ``lax.stop_gradient``.
    * input gradients: a ``requires_grad`` tensor is a small ``nnx.Variable`` subclass
      (``jax.numpy`` takes it through ``__jax_array__``, operators work), whose gradient
      accumulates as a parameter's does.
    * batch norm: ``nnx.BatchNorm``'s momentum weighs the running value (0.99 by default,
      PyTorch's 0.01) and it folds the *biased* batch variance into ``var``; a subclass keeps
      its variables (``scale``, ``bias``, ``mean``, ``var``) and NNX's momentum meaning and
      computes PyTorch's statistics over axis 1. Modes are NNX's own attributes
      (``use_running_average``, ``deterministic``), which ``model.train()``/``eval()`` set.
    * dtypes: JAX runs in 32-bit mode unless ``jax_enable_x64`` is set (a global switch the
      adapter leaves alone), so int64 labels and indices are int32.
    * activations, ``Flatten``, ``Softmax`` and pooling have no NNX module; small
      ``nnx.Module`` classes hold them (a wrapped ``nnx.Sequential`` may hold plain functions
      such as ``nnx.relu``: they are recognised).
"""

from d2lparams.schemes import Constant, Scheme, VarianceScaling

from ..base import Backend

_LECUN_NORMAL = VarianceScaling(
    1.0, "fan_in", "truncated_normal",
    label="LeCun normal, truncated at ±2σ: std √(1/fan_in)")


class JaxBackend(Backend):
    name = "jax"
    aliases = ("flax", "nnx")
    framework_name = "JAX/Flax NNX"
    import_names = ("jax", "flax")
    extra = "jax"
    distributions = ("jax", "jaxlib", "flax")
    tensor_modules = ("jax", "jaxlib", "flax")
    preload_rank = 50
    default_priority = 50
    color = "#7b1fa2"
    default_init = Scheme("jax", linear=(_LECUN_NORMAL, Constant(0.0)),
                          others={"conv2d": (_LECUN_NORMAL, Constant(0.0))})
    implementation = "adapter:JaxAdapter"
