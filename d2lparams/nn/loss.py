"""Loss modules with PyTorch's names and meanings, on every backend.

Each is a small callable holding its options; ``loss(input, target)`` calls the functional
form in :mod:`d2lparams.ops` (``nn.CrossEntropyLoss()(y_hat, y)`` is
``ops.cross_entropy(y_hat, y)``). The backend is the input's: one loss object serves every
backend. The formulas are neutral compositions of the frameworks' own operations, the same
on every backend (see the *Losses* page for why they are not the frameworks' own losses).

Unlike PyTorch's, these are not ``nn.Module`` objects (they have no parameters, no native
module, and cannot be put in a ``Sequential``); options are keyword-only.

Examples:
    >>> import d2lparams as d2p
    >>> from d2lparams import nn
    >>> loss = nn.CrossEntropyLoss(reduction="none")
    >>> logits = d2p.tensor([[2.0, 0.0, 0.0]], backend="torch")
    >>> d2p.to_numpy(loss(logits, d2p.tensor([0], dtype="int64", backend="torch"))).round(4)
    array([0.2395], dtype=float32)
    >>> loss
    CrossEntropyLoss(reduction='none')
"""

from __future__ import annotations

from .. import ops

__all__ = ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss", "MSELoss", "NLLLoss"]


class _Loss:
    """Base class: holds ``reduction`` (``"mean"``, ``"sum"`` or ``"none"``)."""

    _function = staticmethod(ops.mse_loss)

    def __init__(self, *, reduction: str = "mean") -> None:
        self.reduction = ops.check_reduction(reduction, type(self).__name__)

    def forward(self, input, target):  # noqa: A002 - PyTorch's name
        """The loss of ``input`` against ``target`` (see the functional form)."""
        return type(self)._function(input, target, self.reduction)

    def __call__(self, input, target):  # noqa: A002 - PyTorch's name
        return self.forward(input, target)

    def _options(self) -> dict:
        return {"reduction": self.reduction} if self.reduction != "mean" else {}

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self._options().items())
        return f"{type(self).__name__}({options})"


class MSELoss(_Loss):
    """Mean squared error, ``ops.mse_loss``: ``(input - target) ** 2``, reduced."""

    _function = staticmethod(ops.mse_loss)


class L1Loss(_Loss):
    """Mean absolute error, ``ops.l1_loss``: ``|input - target|``, reduced."""

    _function = staticmethod(ops.l1_loss)


class CrossEntropyLoss(_Loss):
    """Cross entropy of logits against class indices or class probabilities,
    ``ops.cross_entropy`` (softmax included; ``label_smoothing`` ε in ``[0, 1]``)."""

    def __init__(self, *, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(reduction=reduction)
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
                or not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(
                f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing!r}"
            )
        self.label_smoothing = float(label_smoothing)

    def forward(self, input, target):  # noqa: A002 - PyTorch's name
        return ops.cross_entropy(input, target, self.reduction, self.label_smoothing)

    def _options(self) -> dict:
        options = super()._options()
        if self.label_smoothing:
            options["label_smoothing"] = self.label_smoothing
        return options


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities against class indices,
    ``ops.nll_loss``."""

    _function = staticmethod(ops.nll_loss)


class BCEWithLogitsLoss(_Loss):
    """Binary cross entropy on logits (sigmoid included, stable),
    ``ops.binary_cross_entropy_with_logits``."""

    _function = staticmethod(ops.binary_cross_entropy_with_logits)


class BCELoss(_Loss):
    """Binary cross entropy on probabilities (logs clamped at -100),
    ``ops.binary_cross_entropy``."""

    _function = staticmethod(ops.binary_cross_entropy)
