"""What both task modules share: the optimizer and learning-rate schedule from config, LBFGS through manual
optimization, training metrics logged once per epoch, and the task's name in every checkpoint."""

from __future__ import annotations

from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor
from torchmetrics import Metric

from rnn_lightning.errors import ConfigError, first_line
from rnn_lightning.models.metrics import WeightedMean
from rnn_lightning.models.optimization import DEFAULT_OPTIM, Schedule, build_optimizer, is_lbfgs
from rnn_lightning.nn import Recurrent

# The learning rate an epoch trained with, logged with a schedule only, grouped with the other train/ scalars.
LR_LOG_NAME = "train/lr"


def recurrent_layer(model: dict[str, Any] | None, input_size: int) -> Recurrent:
    """The recurrent layer from the ``model.*`` settings (``Recurrent``'s arguments: cell, hidden_size, num_layers,
    bidirectional, dropout, impl, fp32_precision), passed to a module as one dict so no module repeats them."""
    settings = {"cell": "lstm", "hidden_size": 64, **(model or {})}
    return Recurrent(input_size=input_size, **settings)


class RecurrentTask(L.LightningModule):
    """Subclasses set ``task`` and ``EPOCH_METRICS`` and implement ``training_loss(batch)``.

    ``optim`` and ``scheduler`` are plain ``_partial_`` configs (``{"_target_": "torch.optim.Adam", "lr": ...}``)
    rather than objects, so that they sit in the checkpoint's hyperparameters as data (see ``optimization.py``).
    LBFGS re-evaluates the loss several times per step, which Lightning's automatic optimization cannot express, so
    with LBFGS the module steps the optimizer itself with a closure.
    """

    task: ClassVar[str] = ""
    # Every metric logged once per epoch before the module's on_train_epoch_end (so a plateau schedule can watch it),
    # with the way it improves: the one list of them, which the config checks read.
    EPOCH_METRICS: ClassVar[dict[str, str]] = {"train/loss": "min"}

    def __init__(self, optim: dict[str, Any] | None = None, scheduler: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.optim_config = dict(optim or DEFAULT_OPTIM)
        self.schedule = Schedule.of(scheduler)  # falsy for scheduler=none
        self.automatic_optimization = not is_lbfgs(self.optim_config)
        self.train_loss = WeightedMean()  # updated every step without a host read (metrics.py)
        self.train_loss.persistent(True)  # in checkpoints: a run resumed mid-epoch goes on with the epoch's sum

    def training_loss(self, batch: Any) -> Tensor:
        raise NotImplementedError

    def training_epoch_metrics(self) -> dict[str, Metric]:
        """The training metrics accumulated over an epoch and logged once, at its last batch."""
        return {"train/loss": self.train_loss}

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        loss = self.training_loss(batch) if self.automatic_optimization else self._lbfgs_step(batch)
        # Accumulated here and logged once per epoch: a self.log call per step costs about 1 ms of Lightning's
        # bookkeeping, which is most of the Trainer's overhead over a plain loop (python -m benchmarks.epoch).
        self.train_loss.update(loss.detach(), weight=len(batch[0]))
        if self.trainer.is_last_batch:
            # Logged from the last training step, not from on_train_epoch_end: Lightning runs the callbacks' epoch-end
            # hooks (the epoch summary line) before the module's, and they must see this epoch's values. compute()
            # averages over every DDP process's batches, not rank 0's alone.
            for name, metric in self.training_epoch_metrics().items():
                self.log(name, metric.compute(), on_step=False, on_epoch=True, prog_bar=True)
            if self.schedule:  # the rate this epoch trained with: the schedule moves it at the epoch's end
                self.log(LR_LOG_NAME, float(self.optimizers().param_groups[0]["lr"]), on_step=False, on_epoch=True)
        return loss if self.automatic_optimization else None

    def on_train_epoch_end(self) -> None:
        for metric in self.training_epoch_metrics().values():
            metric.reset()
        self._step_schedule()

    def _lbfgs_step(self, batch: Any) -> Tensor:
        optimizer = self.optimizers()
        last_loss: list[Tensor] = []

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = self.training_loss(batch)
            self.manual_backward(loss)
            last_loss[:] = [loss.detach()]
            return loss

        optimizer.step(closure=closure)
        # LBFGS calls the closure many times; the newest evaluation is this step's loss.
        return last_loss[0]

    def _step_schedule(self) -> None:
        """The one place the learning rate moves: once per epoch, for every optimizer and schedule.

        Run from ``on_train_epoch_end``, which Lightning calls after the epoch's validation (a plateau schedule sees
        this epoch's value) and before its checkpoint callbacks (``last.ckpt`` holds the stepped schedule, so a
        resumed run goes on exactly). Lightning itself steps schedules only under automatic optimization, and plateau
        ones after the checkpoints, so ``lr_scheduler_step`` leaves all of them to this method.
        """
        scheduler = self.lr_schedulers()
        if scheduler is None:
            return
        if not self.schedule.is_plateau:
            scheduler.step()
            return
        value = self.trainer.callback_metrics.get(self.schedule.monitor)
        if value is None:
            raise RuntimeError(
                f"ReduceLROnPlateau watches {self.schedule.monitor}, which was not logged this epoch (logged: "
                f"{sorted(self.trainer.callback_metrics)}); validate every epoch, or set scheduler.monitor to one "
                "of those."
            )
        scheduler.step(value)

    def lr_scheduler_step(self, scheduler: Any, metric: Any | None) -> None:
        """Lightning's stepping does nothing here: ``_step_schedule`` does it, in time for the checkpoint."""

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        optimizer = build_optimizer(self.optim_config, self.parameters())
        if not self.schedule:
            return optimizer
        try:
            scheduler = self.schedule.build(optimizer)
        except (TypeError, ValueError) as error:  # the scheduler's own checks (ReduceLROnPlateau's factor < 1)
            raise ConfigError(
                f"the learning-rate schedule {self.schedule.target} cannot be built from its settings "
                f"({first_line(error)}). Fix that scheduler.* value (python train.py --cfg job prints them all)."
            ) from None
        # Lightning's dict form: it saves the scheduler's state in checkpoints.
        lr_scheduler = {"scheduler": scheduler, "interval": "epoch"}
        if self.schedule.is_plateau and self.automatic_optimization:
            lr_scheduler["monitor"] = self.schedule.monitor  # Lightning refuses a plateau schedule without one
        return {"optimizer": optimizer, "lr_scheduler": lr_scheduler}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["task"] = self.task  # which task wrote it: resume and predict read this, never guess
