"""What both task modules share: the optimizer and learning-rate schedule from config, and LBFGS through manual
optimization."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from torch import Tensor
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torchmetrics import MeanMetric, Metric

# The name of the learning rate in TensorBoard (LearningRateMonitor), grouped with the other train/ scalars.
LR_LOG_NAME = "train/lr"


def is_lbfgs(optim: dict[str, Any]) -> bool:
    return str(optim.get("_target_", "")).rsplit(".", 1)[-1] == "LBFGS"


class RecurrentTask(L.LightningModule):
    """Subclasses implement ``training_loss(batch)``; this class optimizes and logs ``train/loss``.

    ``optim`` is a plain ``_partial_`` optimizer config (``{"_target_": "torch.optim.Adam", "lr": ...}``)
    rather than a ready optimizer, so that it sits in the checkpoint's hyperparameters as plain data.
    LBFGS re-evaluates the loss several times per step, which Lightning's automatic optimization cannot
    express, so with LBFGS the module steps the optimizer itself with a closure.

    ``scheduler`` is a plain ``_partial_`` learning-rate scheduler config in the same way, or None for a fixed
    learning rate. It is stepped once per epoch; ``ReduceLROnPlateau`` also needs ``monitor``, the logged metric
    it watches (not a constructor argument).
    """

    def __init__(self, optim: dict[str, Any] | None = None, scheduler: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.optim_config = dict(optim or {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3})
        self.scheduler_config = dict(scheduler or {})  # {}: no schedule (also what scheduler=none composes to)
        self.automatic_optimization = not is_lbfgs(self.optim_config)
        # "ignore": a NaN loss is the FiniteGuard callback's to report. Not "disable": torchmetrics 1.9 then drops the
        # weights and averages batch means.
        self.train_loss = MeanMetric(nan_strategy="ignore")

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
            # hooks (the epoch summary line, a plateau schedule) before the module's, and they must see this epoch's
            # values. compute() averages over every DDP process's batches, not rank 0's alone.
            for name, metric in self.training_epoch_metrics().items():
                self.log(name, metric.compute(), on_step=False, on_epoch=True, prog_bar=True)
        return loss if self.automatic_optimization else None

    def on_train_epoch_end(self) -> None:
        for metric in self.training_epoch_metrics().values():
            metric.reset()
        if not self.automatic_optimization or isinstance(self.lr_schedulers(), ReduceLROnPlateau):
            self._step_scheduler()

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
        # LBFGS calls the closure many times; log the newest evaluation once per step, not once per call.
        return last_loss[0]

    def _step_scheduler(self) -> None:
        """Step the scheduler once per epoch where Lightning would not, or not in time for the checkpoint.

        Lightning steps schedulers only under automatic optimization, so with LBFGS the module does. And it steps a
        ReduceLROnPlateau only after the epoch's checkpoints are saved: ``last.ckpt`` then lacks that epoch's step,
        and a run resumed from it never takes it (Lightning 2.6 skips plateau steps of a restored epoch). So plateau
        schedules are stepped here in either mode, and ``lr_scheduler_step`` leaves them alone.

        Called from ``on_train_epoch_end``, which Lightning runs after the epoch's validation (so ReduceLROnPlateau
        sees this epoch's value of its metric) and before the checkpoint callbacks (so ``last.ckpt`` holds the
        stepped scheduler, and a resumed run goes on exactly where this one was).
        """
        scheduler = self.lr_schedulers()
        if scheduler is None:
            return
        if not isinstance(scheduler, ReduceLROnPlateau):
            scheduler.step()
            return
        monitor = self.scheduler_config["monitor"]
        value = self.trainer.callback_metrics.get(monitor)
        if value is None:
            raise RuntimeError(
                f"ReduceLROnPlateau watches {monitor}, which was not logged this epoch (logged: "
                f"{sorted(self.trainer.callback_metrics)}); validate every epoch, or set scheduler.monitor to one "
                "of those."
            )
        scheduler.step(value)

    def lr_scheduler_step(self, scheduler: Any, metric: Any | None) -> None:
        # Plateau schedules are stepped in on_train_epoch_end instead (see _step_scheduler).
        if not isinstance(scheduler, ReduceLROnPlateau):
            super().lr_scheduler_step(scheduler, metric)

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        config = {**self.optim_config, "_partial_": True}
        optimizer = instantiate(config)(params=self.parameters())
        if not self.scheduler_config:
            return optimizer
        settings = {**self.scheduler_config, "_partial_": True}
        monitor = settings.pop("monitor", None)  # Lightning's key, not the scheduler's
        scheduler = instantiate(settings)(optimizer=optimizer)
        # Lightning's dict form: it steps the scheduler after every epoch (automatic optimization only), saves its
        # state in checkpoints, and names it for the LearningRateMonitor.
        lr_scheduler = {"scheduler": scheduler, "interval": "epoch", "name": LR_LOG_NAME}
        if isinstance(scheduler, ReduceLROnPlateau) and self.automatic_optimization:
            lr_scheduler["monitor"] = monitor  # Lightning requires it there (and warns about it under manual)
        return {"optimizer": optimizer, "lr_scheduler": lr_scheduler}
