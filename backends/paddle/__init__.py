"""PaddlePaddle backend.

Quirks absorbed by the adapter:
    * import order: importing ``paddle`` after ``tensorflow`` segfaults the process (exit
      139, measured with paddle 3.3.1 / tensorflow-cpu 2.21); ``unsafe_after`` makes the
      registry raise ``BackendConflict`` instead, and ``preload_rank`` 20 loads paddle
      before tensorflow (30+) in ``d2p.preload``.
    * import noise: ``import paddle`` emits a "No ccache found" ``UserWarning``; it is
      silenced during the import only.
    * layout: ``nn.Linear.weight`` is already ``(in, out)``, d2lparams' canonical layout.
    * names: paddle's own names come from global counters (``linear_0.w_0``,
      ``create_parameter_3.w_0``); structural names (``0.weight``) are what
      ``named_parameters``/``state_dict`` report, as in torch.
    * lazy: paddle has no lazy layer (``Linear(None, 8)`` raises ``TypeError``), so a small
      ``Layer`` of ours creates ``weight``/``bias`` at its first call with the very same
      ``create_parameter`` calls (and hence default initializers) as ``nn.Linear``.
    * defaults: Xavier-uniform weight, zero bias (``nn.Linear``'s own).
    * gradients accumulate natively in ``.grad`` (``None`` before any backward). The
      keyword form ``clear_gradient(set_to_zero=False)`` is silently ignored and leaves a
      zero tensor; only the positional ``clear_gradient(False)`` gives ``None`` back.
    * freezing is ``stop_gradient = True`` (``trainable`` follows it).
    * in-place writes go through ``set_value`` / the initializers (unguarded ``w.add_(1)``
      on a parameter adds and then raises); the Python object keeps its identity.
    * ``paddle.nn.Linear(..., bias=...)`` is a forbidden keyword in paddle 3; ``bias_attr``
      is the switch (``False``: no bias).
    * BatchNorm keeps its running statistics as non-trainable *parameters* (``_mean``,
      ``_variance``; ``named_buffers()`` is empty): ``inspect`` reports them as buffers. Its
      momentum weighs the running value (paddle 0.9 = torch 0.1), it folds the *biased*
      batch variance into ``_variance`` (torch: unbiased; our subclass adds the
      difference), and it warns "When training, we now always track global mean and
      variance" on every training forward (silenced there).
    * ``paddle.var`` logs a C++ "run type promotion" warning; the BatchNorm fix avoids it.
    * ``loss.backward()`` on a loss that needs no gradient (everything frozen) silently does
      nothing, where torch raises; d2lparams inherits paddle's silence (no grads appear).
    * convolution: paddle is NCHW with ``(out, in/groups, kh, kw)`` weights, as PyTorch. Its
      ``padding="SAME"`` gives other values than PyTorch's once dilated (measured), so
      ``"same"`` is passed as explicit ``[top, bottom, left, right]``. ``AvgPool2D`` does not
      count the padding by default (``exclusive=True``): built with ``exclusive=False``.
      No lazy conv: the adapter's ``LazyConv2D`` builds for ``in_channels=groups``, drops
      that weight at once and creates the real one at the first call with
      ``paddle.nn.Conv2D``'s own ``create_parameter`` call and default initializer (it
      re-decides paddle's depthwise kernel choice then). ``BatchNorm2D``: as ``BatchNorm1D``.
    * conv defaults: ``Normal(0, √(2/(in_channels·kh·kw)))`` weight (measured; the whole
      ``in_channels`` even with ``groups > 1``, where PyTorch's fan is ``in/groups``), zero
      bias.
    * operators: ``tensor / Parameter`` (and ``//``, ``%``, ``<``, ``<=``, ``>``, ``>=``)
      raise ``TypeError`` instead of returning ``NotImplemented`` (``+ - * ** @`` do return
      it); those operators defer to a d2lparams ``Parameter`` and to nothing else.
    * input gradients: a ``requires_grad`` tensor is ``stop_gradient=False``; a computed
      tensor is too, so only leaves (``is_leaf``) count. ``d2p.grad`` is
      ``paddle.grad(..., allow_unused=True)``.
    * ops: ``F.log_softmax`` (and ``F.softmax``) clamp each log-probability at -64, so a
      logit gap of 100 gives a cross entropy of 64: ``log_softmax`` is composed
      (``x - max - log(sum(exp(x - max)))``, max held constant); ``paddle.maximum`` takes no
      numbers; ``F.one_hot`` gives float32 (cast to the asked dtype); the cross-entropy pick
      is ``take_along_axis`` on an unsqueezed index.
"""

from d2lparams.schemes import Constant, Scheme, VarianceScaling

from ..base import TapeBackend

_CONFLICT = (
    "cannot use the 'paddle' backend in this process: tensorflow is already imported, and "
    "importing paddle after tensorflow crashes the process (segmentation fault). Fix: load "
    "paddle before tensorflow in a fresh process, with d2p.preload(\"paddle\", \"tensorflow\") "
    "or by selecting the paddle backend before the tensorflow one; or run the two backends "
    "in separate processes"
)


class PaddleBackend(TapeBackend):
    name = "paddle"
    aliases = ("paddlepaddle",)
    framework_name = "PaddlePaddle"
    import_names = ("paddle",)
    extra = "paddle"
    distributions = ("paddlepaddle",)
    tensor_modules = ("paddle",)
    unsafe_after = {"tensorflow": _CONFLICT}
    preload_rank = 20
    default_priority = 30
    color = "#2e7d32"
    default_init = Scheme(
        "paddle", linear=(VarianceScaling(
        1.0, "fan_avg", "uniform", label="Xavier uniform U(±√(6/(fan_in+fan_out)))"), Constant(0.0)),
        # Conv2D: Normal(0, √(2/(in_channels·kh·kw))), measured; = fan_in unless groups > 1
        others={"conv2d": (VarianceScaling(2.0, "fan_in", "normal"), Constant(0.0))})
    implementation = "adapter:PaddleAdapter"
