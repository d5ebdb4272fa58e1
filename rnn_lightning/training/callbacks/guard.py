"""Stop at the first NaN or infinite loss or a diverged one, and never write a checkpoint of NaN weights.

A callback rather than a check in the modules' ``training_step``: neither task module needs to know about it, and its
hooks see the loss and gradients of both optimization paths (automatic, and LBFGS's ``manual_backward`` in every
closure evaluation).

How a bad step is caught depends on what reading a value costs:

* one process whose tensors live in host memory (CPU), or LBFGS (whose line search reads the loss anyway): the loss is
  checked in ``on_before_backward``, and training stops before the step reaches the weights;
* several processes (DDP): a process must not stop alone, or the others wait in the gradient all-reduce forever. The
  gradients are checked in ``on_before_optimizer_step``, after the all-reduce made them the same everywhere (a NaN on
  one process is a NaN on all), so every process takes the same decision without a collective of its own;
* on a GPU (``deferred``): reading a flag every step would make the host wait for the device each step. The check
  stays on the device: a step with non-finite gradients has them zeroed before the optimizer sees them (so no NaN
  reaches the weights), its number is kept in a device tensor, and the host reads that once per epoch and before
  any checkpoint is written, and stops there.

``on_save_checkpoint`` is the last line: a loss can be finite while its step makes the weights infinite; raising there
happens before Lightning writes the file and before it deletes the file it replaces, so the last good checkpoints stay.
The monitored validation metric is checked too (``on_validation_end``, before the checkpoint callbacks run): a model
can diverge without a NaN loss, e.g. sine weights of 1e150 whose forecast overflows to inf.

Under 16-bit mixed precision the gradient scaler expects infinite gradients now and then and skips those steps itself,
so gradients are not judged there; the (scaled) loss still is.

A loss can also diverge and stay finite (``optim.lr=1e6``: a classifier's cross-entropy at 1e7, a forecast's MSE at
1e11). The run has **diverged** when an epoch's training loss (``train/loss``, the mean over the epoch's batches) is
more than ``DIVERGED`` (10) times the loss of the untrained model, i.e. of the first training step, before any update.
That reference is about the task's chance level, the loss of a model that knows nothing: ln 2 = 0.69 for the
classifier's cross-entropy, the signal's variance (about 0.5) for the forecaster's MSE; a run that learns anything
stays below it, and a normal run's epoch mean never comes near ten times it. The check runs at each epoch end (one
read of two numbers), before that epoch's checkpoints are written. The reference is the mean over the processes
under DDP, so that every process takes the same decision, and it is saved with the callback's state, so a resumed
run keeps it (one resumed from a checkpoint without it is not checked for divergence).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor

from rnn_lightning.errors import TrainingStopped

# An epoch's training loss this many times the untrained model's is a diverged run (see the module docstring).
DIVERGED = 10.0
LOSS = "train/loss"  # what both task modules log once per epoch (models/base.py)


class NonFiniteError(TrainingStopped, FloatingPointError):
    """Training produced NaN or infinity; the message says where and what to change."""


class DivergedError(TrainingStopped, FloatingPointError):
    """The training loss ran far above the untrained model's; the message says where and at which learning rate."""


class FiniteGuard(L.Callback):
    def __init__(self, monitor: str | None = None, deferred: bool | None = None) -> None:
        self.monitor = monitor
        self.deferred = deferred  # None: decided at fit start, True on a GPU
        self.first_bad_step: Tensor | None = None  # deferred mode: the global step of the first bad one, or -1
        self.untrained_loss: Tensor | float | None = None  # the first step's loss: a device tensor until read
        self.untrained_is_local = False  # measured by this process (not loaded): averaged over the processes once
        self.measure_untrained = True

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.deferred is None:
            self.deferred = module.device.type not in ("cpu",) and module.automatic_optimization
        self.first_bad_step = torch.full((), -1, dtype=torch.long, device=module.device)

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # After the checkpoint is restored. A resumed run's first step is a trained model's: it keeps the reference
        # saved with its checkpoint, or (one written before this check existed) is not checked for divergence.
        self.measure_untrained = trainer.ckpt_path is None

    def _judges_gradients(self, trainer: L.Trainer, module: L.LightningModule) -> bool:
        scaled = "16-mixed" in str(trainer.precision) and not str(trainer.precision).startswith("bf16")
        return module.automatic_optimization and not scaled and (trainer.world_size > 1 or bool(self.deferred))

    def on_before_backward(self, trainer: L.Trainer, module: L.LightningModule, loss: Tensor) -> None:
        if self.untrained_loss is None and self.measure_untrained:
            self.untrained_loss = _unscaled(trainer, loss.detach()).float().clone()  # stays on the device
            self.untrained_is_local = True
        if self._judges_gradients(trainer, module):
            return
        if not bool(torch.isfinite(loss.detach()).all()):
            raise NonFiniteError(
                f"train/loss is {float(loss.detach()):g} in {_where(trainer)}: stopped before it reached the weights; "
                f"the checkpoints already saved are kept. {_advice(module)}"
            )

    def on_before_optimizer_step(self, trainer: L.Trainer, module: L.LightningModule, optimizer: Any) -> None:
        if not self._judges_gradients(trainer, module):
            return
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        finite = torch.stack([torch.isfinite(g).all() for g in grads]).all()  # on the device
        if not self.deferred:
            if not bool(finite):
                raise NonFiniteError(
                    f"the gradients are not finite in {_where(trainer)} (train/loss was NaN or infinite on at least "
                    f"one process): stopped before they reached the weights; the checkpoints already saved are kept. "
                    f"{_advice(module)}"
                )
            return
        for grad in grads:  # NaN * 0 is NaN: zero the non-finite values first, then everything if the step is bad
            grad.nan_to_num_(0.0, 0.0, 0.0).mul_(finite)
        first = self.first_bad_step
        self.first_bad_step = torch.where(finite | (first >= 0), first, trainer.global_step)

    def _raise_if_a_step_was_bad(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """Deferred mode: one read of the device flag."""
        if self.first_bad_step is None or not self.deferred:
            return
        step = int(self.first_bad_step)
        if step >= 0:
            raise NonFiniteError(
                f"train/loss was NaN or infinite at global step {step} (found at the end of {_where(trainer)}): "
                "that step's gradients were zeroed on the device, so no NaN reached the weights, and this epoch's "
                f"checkpoints were not written; the earlier ones are kept. {_advice(module)}"
            )

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._raise_if_a_step_was_bad(trainer, module)  # before the checkpoint callbacks, which run after this
        self._raise_if_diverged(trainer, module)

    def _untrained(self, trainer: L.Trainer) -> float | None:
        """The untrained model's loss as a number, the same on every process (a collective the first time only)."""
        if isinstance(self.untrained_loss, Tensor):
            value = self.untrained_loss
            if self.untrained_is_local and trainer.world_size > 1:
                value = trainer.strategy.reduce(value, reduce_op="mean")
            self.untrained_loss, self.untrained_is_local = float(value), False
        return self.untrained_loss

    def _raise_if_diverged(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        value, untrained = trainer.callback_metrics.get(LOSS), self._untrained(trainer)
        if value is None or untrained is None or not untrained > 0 or not _finite(value):
            return
        loss = float(value)
        if loss <= DIVERGED * untrained:
            return
        raise DivergedError(
            f"{LOSS} is {loss:.3g} in {_where(trainer)}, {loss / untrained:.3g} times the untrained model's "
            f"{untrained:.3g}: the run has diverged at {_learning_rate(trainer, module)}. Stopped; this epoch's "
            "checkpoints were not written and the earlier ones are kept. Lower optim.lr or set "
            "trainer.gradient_clip_val=1.0."
        )

    def state_dict(self) -> dict[str, Any]:
        # Read when a checkpoint is written, which waits for the device anyway.
        untrained = self.untrained_loss
        return {"untrained_loss": float(untrained) if isinstance(untrained, Tensor) else untrained}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.untrained_loss, self.untrained_is_local = state_dict.get("untrained_loss"), False

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
        self._raise_if_a_step_was_bad(trainer, module)
        # Weights and buffers only: a metric's running state may be infinite by design (MaxMetric starts at -inf).
        judged = None if module is None else {name for name, _ in (*module.named_parameters(), *module.named_buffers())}
        broken = [
            name
            for name, tensor in checkpoint["state_dict"].items()
            if (judged is None or name in judged) and not _finite(tensor)
        ]
        if broken:
            raise NonFiniteError(
                f"the weights are not finite in {_where(trainer)} ({', '.join(broken[:3])}"
                f"{', ...' if len(broken) > 3 else ''}): this checkpoint was not written and the earlier ones are "
                "kept. Lower optim.lr or set trainer.gradient_clip_val=1.0."
            )


def _advice(module: L.LightningModule) -> str:
    lr = getattr(module, "optim_config", {}).get("lr")
    return f"Lower optim.lr (now {lr}), set trainer.gradient_clip_val=1.0, or check the data for NaN values."


def _learning_rate(trainer: L.Trainer, module: L.LightningModule) -> str:
    """The rate this epoch trained with, and optim.lr when a schedule has changed it."""
    configured = getattr(module, "optim_config", {}).get("lr")
    groups = trainer.optimizers[0].param_groups if trainer.optimizers else []
    current = groups[0]["lr"] if groups else configured
    if not isinstance(current, int | float):
        return f"optim.lr={configured}"
    if current == configured:
        return f"optim.lr={current:g}"
    return f"learning rate {current:g} (optim.lr={configured}, changed by the schedule)"


def _where(trainer: L.Trainer) -> str:
    """Counted from 1 like the epoch log lines; the global step counts optimizer steps from 0."""
    return f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} (global step {trainer.global_step})"


def _unscaled(trainer: L.Trainer, loss: Tensor) -> Tensor:
    """The loss as the module computed it: under 16-mixed the hooks see it multiplied by the gradient scaler's
    scale (read once per run: this is only called for the first step)."""
    scaler = getattr(getattr(trainer, "precision_plugin", None), "scaler", None)
    return loss / scaler.get_scale() if scaler is not None else loss


def _finite(tensor: Any) -> bool:
    if not isinstance(tensor, Tensor) or not tensor.is_floating_point():
        return True
    return bool(torch.isfinite(tensor).all())
