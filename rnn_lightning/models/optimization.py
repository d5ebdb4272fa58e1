"""Optimizer and learning-rate schedule from their plain config dicts: the one place that interprets them.

Both stay plain data (``{"_target_": "torch.optim.Adam", "lr": ...}``) in a module's hyperparameters, so a checkpoint
holds them as data and loads with ``weights_only=True``; they become objects only in ``configure_optimizers``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from hydra.utils import get_class
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

DEFAULT_OPTIM = {"_target_": "torch.optim.Adam", "lr": 1e-3}
# Keys of a scheduler config that are not arguments of its class: the metric a plateau schedule watches.
STEPPING_KEYS = ("monitor",)


def optimizer_class(optim: Mapping[str, Any]) -> type:
    return get_class(str(optim.get("_target_", DEFAULT_OPTIM["_target_"])))


def is_lbfgs(optim: Mapping[str, Any]) -> bool:
    """LBFGS re-evaluates the loss in a closure, so it runs under manual optimization; any subclass does too."""
    cls = optimizer_class(optim)
    return isinstance(cls, type) and issubclass(cls, torch.optim.LBFGS)


def build_optimizer(optim: Mapping[str, Any], parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    arguments = {k: v for k, v in optim.items() if not k.startswith("_")}
    return optimizer_class(optim)(parameters, **arguments)


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule stepped once per epoch: its class, the class's arguments, and for
    ``ReduceLROnPlateau`` the logged metric it watches. ``Schedule.of({})`` (scheduler=none) is no schedule."""

    target: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    monitor: str | None = None

    @classmethod
    def of(cls, settings: Mapping[str, Any] | None) -> Schedule:
        settings = dict(settings or {})
        target = settings.pop("_target_", None)
        settings.pop("_partial_", None)
        monitor = settings.pop("monitor", None)
        return cls(None if target is None else str(target), settings, monitor)

    def __bool__(self) -> bool:
        return self.target is not None

    def scheduler_class(self) -> type | None:
        """The class, or None when ``target`` names no learning-rate scheduler class."""
        try:
            found = get_class(str(self.target))
        except Exception:
            return None
        return found if isinstance(found, type) and issubclass(found, LRScheduler) else None

    @property
    def is_plateau(self) -> bool:
        found = self.scheduler_class()
        return found is not None and issubclass(found, ReduceLROnPlateau)

    def build(self, optimizer: torch.optim.Optimizer) -> LRScheduler:
        scheduler_class = self.scheduler_class()
        if scheduler_class is None:
            raise ValueError(f"scheduler._target_={self.target} is not a learning-rate scheduler class")
        return scheduler_class(optimizer, **self.arguments)

    def settings(self) -> dict[str, Any]:
        """Back to the plain config dict (what checkpoints store), without the bookkeeping keys."""
        if not self:
            return {}
        monitor = {} if self.monitor is None else {"monitor": self.monitor}
        return {"_target_": self.target, **self.arguments, **monitor}
