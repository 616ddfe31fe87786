"""Learning-rate schedules with PyTorch's meaning (``optim.lr_scheduler``)."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter

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
        milestones = list(milestones)
        if any(not isinstance(m, int) or isinstance(m, bool) or m <= 0 for m in milestones):
            raise ValueError(f"milestones must be positive ints, got {milestones!r}")
        if milestones != sorted(milestones):
            raise ValueError(f"milestones must be increasing, got {milestones!r}")
        if not isinstance(gamma, (int, float)) or gamma <= 0:
            raise ValueError(f"gamma must be a number > 0, got {gamma!r}")
        self.optimizer = optimizer
        self.milestones = Counter(milestones)
        self.gamma = float(gamma)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

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
        self.milestones = Counter({int(k): v for k, v in state["milestones"].items()})
        self.gamma = float(state["gamma"])
        self.base_lrs = list(state["base_lrs"])
        self.last_epoch = int(state["last_epoch"]) - 1
        self.step()
