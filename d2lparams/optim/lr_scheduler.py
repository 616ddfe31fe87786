"""Learning-rate schedules with PyTorch's meaning (``optim.lr_scheduler``)."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter

from .. import _checks

__all__ = ["MultiStepLR"]


class MultiStepLR:
    """Multiply each group's ``lr`` by ``gamma`` at every milestone epoch.

    Call ``step()`` once per epoch, after the optimizer's step.

    Examples:
        >>> import d2lparams as d2p
        >>> from d2lparams import nn, optim
        >>> opt = optim.SGD(nn.Linear(2, 1, backend="torch").parameters(), lr=0.1)
        >>> sched = optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4], gamma=0.5)
        >>> lrs = []
        >>> for _ in range(6):
        ...     lrs.append(sched.get_last_lr()[0]); opt.step(); sched.step()
        >>> lrs
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    """

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1) -> None:
        from . import Optimizer

        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"MultiStepLR schedules an optim optimizer, got {type(optimizer).__name__}; "
                "pass optim.SGD(net.parameters(), lr=...)"
            )
        milestones = self._milestones(milestones)
        gamma = _checks.number(gamma, "MultiStepLR gamma", minimum=0, min_open=True,
                               fix="; for example 0.1 divides the rate by 10 at each milestone")
        last_epoch = _checks.integer(last_epoch, "MultiStepLR last_epoch", minimum=-1)
        self.optimizer = optimizer
        self.milestones = Counter(milestones)
        self.gamma = float(gamma)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    @staticmethod
    def _milestones(milestones) -> list[int]:
        try:
            values = list(milestones)  # a list, a tuple, a NumPy array of epochs
        except TypeError:
            raise ValueError(
                f"milestones must be a list of positive ints (epochs), got {_checks.shown(milestones)}"
            ) from None
        values = [_checks.integer(m, "each milestone", minimum=1,
                                  fix=f" (milestones {_checks.shown(milestones)})") for m in values]
        if values != sorted(values):
            raise ValueError(f"milestones must be increasing, got {values}")
        return values

    def _lr_at(self, base: float, epoch: int) -> float:
        return base * self.gamma ** bisect_right(sorted(self.milestones.elements()), epoch)

    def step(self) -> None:
        """Advance one epoch and set every group's ``lr``."""
        self.last_epoch += 1
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self._lr_at(base, self.last_epoch)
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The rates the last ``step`` set, one per group."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {"milestones": dict(self.milestones), "gamma": self.gamma,
                "base_lrs": list(self.base_lrs), "last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (checked first; nothing changes on error).

        Raises:
            ValueError: a key is missing or unknown, or a value is out of range.
        """
        keys = {"milestones", "gamma", "base_lrs", "last_epoch"}
        if not isinstance(state, dict) or set(state) != keys:
            raise ValueError(
                f"MultiStepLR.load_state_dict takes the dict state_dict() returned (keys "
                f"{sorted(keys)}), got {_checks.shown(state)}"
            )
        if not isinstance(state["milestones"], dict):
            raise ValueError(f"milestones must be a dict epoch -> count, got {_checks.shown(state['milestones'])}")
        milestones = Counter({
            _checks.integer(int(k) if isinstance(k, str) and k.isdigit() else k, "a milestone",
                            minimum=1): _checks.integer(v, "a milestone count", minimum=1)
            for k, v in state["milestones"].items()
        })
        gamma = _checks.number(state["gamma"], "MultiStepLR gamma", minimum=0, min_open=True)
        base_lrs = state["base_lrs"]
        if not isinstance(base_lrs, list) or len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(
                f"base_lrs must list one rate per param group ({len(self.optimizer.param_groups)}), "
                f"got {_checks.shown(base_lrs)}"
            )
        base_lrs = [_checks.number(b, "a base lr", minimum=0) for b in base_lrs]
        last_epoch = _checks.integer(state["last_epoch"], "MultiStepLR last_epoch", minimum=-1)
        self.milestones, self.gamma, self.base_lrs = milestones, gamma, base_lrs
        self.last_epoch = last_epoch - 1
        self.step()
