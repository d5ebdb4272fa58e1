"""Stop at the first NaN or infinite loss, and never write a checkpoint of NaN weights.

A callback rather than a check in the modules' ``training_step``: ``on_before_backward`` receives the loss in both
optimization paths (automatic, and LBFGS's manual ``manual_backward`` in every closure evaluation), before it is
back-propagated, so the weights still hold the last finite step when training stops; and neither task module needs to
know about it. ``on_save_checkpoint`` is the second line: a loss can be finite while its step makes the weights
infinite (the next loss would then be NaN, but an epoch may end in between and write ``last.ckpt``). Raising there
happens before Lightning writes the file and before it deletes the file it replaces, so the last good checkpoints stay.

The monitored validation metric is checked too (``on_validation_end``, which Lightning runs before the checkpoint
callbacks' own): a model can diverge without a NaN loss, e.g. sine weights of 1e150 whose forecast overflows to inf,
and such an epoch must not become ``last.ckpt`` or "best".

Under 16-bit mixed precision the loss seen here is already multiplied by the gradient scaler; a float32 loss times
2**16 stays finite, and the infinite *gradients* that the scaler expects and skips are not looked at.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor


class NonFiniteError(FloatingPointError):
    """Training produced NaN or infinity; the message says where and what to change."""


class FiniteGuard(L.Callback):
    def __init__(self, monitor: str | None = None) -> None:
        self.monitor = monitor

    def on_before_backward(self, trainer: L.Trainer, module: L.LightningModule, loss: Tensor) -> None:
        bad = not bool(torch.isfinite(loss.detach()).all())
        # Every DDP process must stop at the same step, or the others wait in the gradient all-reduce forever.
        if not trainer.strategy.reduce_boolean_decision(bad, all=False):
            return
        lr = getattr(module, "optim_config", {}).get("lr")
        value = f"{float(loss.detach()):g}" if bad else "not finite on another process"
        raise NonFiniteError(
            f"train/loss is {value} in {_where(trainer)}: stopped before it reached the weights; the checkpoints "
            f"already saved are kept. Lower optim.lr (now {lr}), set trainer.gradient_clip_val=1.0, or check the data "
            "for NaN values."
        )

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor) if self.monitor else None
        if trainer.sanity_checking or value is None or _finite(value):
            return
        raise NonFiniteError(
            f"{self.monitor} is {float(value):g} after {_where(trainer)}: the model has diverged; this epoch's "
            "checkpoints were not written and the earlier ones are kept. Lower optim.lr or set "
            "trainer.gradient_clip_val=1.0."
        )

    def on_save_checkpoint(self, trainer: L.Trainer, module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        broken = [name for name, tensor in checkpoint["state_dict"].items() if not _finite(tensor)]
        if broken:
            raise NonFiniteError(
                f"the weights are not finite in {_where(trainer)} ({', '.join(broken[:3])}"
                f"{', ...' if len(broken) > 3 else ''}): this checkpoint was not written and the earlier ones are "
                "kept. Lower optim.lr or set trainer.gradient_clip_val=1.0."
            )


def _where(trainer: L.Trainer) -> str:
    """Counted from 1 like the epoch log lines; the global step counts optimizer steps from 0."""
    return f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} (global step {trainer.global_step})"


def _finite(tensor: Any) -> bool:
    if not isinstance(tensor, Tensor) or not tensor.is_floating_point():
        return True
    return bool(torch.isfinite(tensor).all())
