"""PyTorch backend.

Quirks absorbed by the adapter:
    * layout: ``nn.Linear.weight`` is ``(out, in)``; d2lparams shows ``(in, out)``
      (``linear_weight_transposed``) and transposes in ``forward`` for custom modules.
    * names: torch has structural names only (``0.weight``); they are also its own names.
    * lazy: ``nn.LazyLinear`` holds ``UninitializedParameter`` until the first call and then
      turns itself into ``nn.Linear``.
    * defaults: ``U(±1/√fan_in)`` for weight and bias.
    * gradients accumulate natively in ``.grad``; ``zero_grad`` sets it to ``None``.
    * in-place writes go through ``torch.no_grad()`` (``w += 1`` on a leaf raises otherwise).
    * convolution: PyTorch's own layers are the reference (NCHW, weight ``(out, in/groups, kh,
      kw)``, ``"same"`` at stride 1 only); small subclasses call d2lparams' input check before
      computing. ``nn.LazyConv2d`` turns itself into the subclass at its first call, checking
      the input before it learns ``in_channels`` from it. ``Conv2d`` also accepts a 3-D
      unbatched input natively; d2lparams refuses it, as it refuses it everywhere.
    * conv defaults: ``kaiming_uniform_(a=√5)`` is ``U(±1/√fan_in)``, bias ``U(±1/√fan_in)``.
    * input gradients: a ``requires_grad`` tensor is torch's own leaf; ``requires_grad`` of a
      computed tensor is true in torch but it keeps no ``.grad``, so only leaves count.
      ``d2p.grad`` is ``torch.autograd.grad(..., allow_unused=True)``.
    * ops: ``torch.amax`` takes ``dim=()`` (not ``None``) for every axis; ``torch.maximum``
      takes no numbers (the neutral ``ops.maximum`` clamps then); ``F.one_hot`` needs int64
      indices; the cross-entropy pick is ``torch.gather`` on an unsqueezed index.
"""

from d2lparams.schemes import Scheme, VarianceScaling

from ..base import TapeBackend

_FAN_IN_UNIFORM = VarianceScaling(1 / 3, "fan_in", "uniform")  # U(±1/√fan_in)


class TorchBackend(TapeBackend):
    name = "torch"
    aliases = ("pytorch",)
    framework_name = "PyTorch"
    import_names = ("torch",)
    extra = "torch"
    distributions = ("torch",)
    tensor_modules = ("torch",)
    preload_rank = 30
    default_priority = 10
    color = "#ee4c2c"
    # Conv2d: kaiming_uniform_(a=√5) is U(±1/√fan_in) too, and so is its bias
    default_init = Scheme("torch", linear=(_FAN_IN_UNIFORM, _FAN_IN_UNIFORM),
                          others={"conv2d": (_FAN_IN_UNIFORM, _FAN_IN_UNIFORM)})
    linear_weight_transposed = True
    implementation = "adapter:TorchAdapter"
