"""What both task modules share: the optimizer from config, and LBFGS through manual optimization."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from torch import Tensor
from torchmetrics import MeanMetric


def is_lbfgs(optim: dict[str, Any]) -> bool:
    return str(optim.get("_target_", "")).rsplit(".", 1)[-1] == "LBFGS"


class RecurrentTask(L.LightningModule):
    """Subclasses implement ``training_loss(batch)``; this class optimizes and logs ``train/loss``.

    ``optim`` is a plain ``_partial_`` optimizer config (``{"_target_": "torch.optim.Adam", "lr": ...}``)
    rather than a ready optimizer, so that it sits in the checkpoint's hyperparameters as plain data.
    LBFGS re-evaluates the loss several times per step, which Lightning's automatic optimization cannot
    express, so with LBFGS the module steps the optimizer itself with a closure.
    """

    def __init__(self, optim: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.optim_config = dict(optim or {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3})
        self.automatic_optimization = not is_lbfgs(self.optim_config)
        # "ignore": a NaN loss is the FiniteGuard callback's to report. Not "disable": torchmetrics 1.9 then drops the
        # weights and averages batch means.
        self.train_loss = MeanMetric(nan_strategy="ignore")

    def training_loss(self, batch: Any) -> Tensor:
        raise NotImplementedError

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        loss = self.training_loss(batch) if self.automatic_optimization else self._lbfgs_step(batch)
        # Accumulated here and logged once per epoch: a self.log call per step costs about 1 ms of Lightning's
        # bookkeeping, which is most of the Trainer's overhead over a plain loop (python -m rnn_lightning.bench_epoch).
        self.train_loss.update(loss.detach(), weight=len(batch[0]))
        return loss if self.automatic_optimization else None

    def on_train_epoch_end(self) -> None:
        # compute() averages over every DDP process's batches, not rank 0's alone.
        self.log("train/loss", self.train_loss.compute(), prog_bar=True)
        self.train_loss.reset()

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

    def configure_optimizers(self) -> torch.optim.Optimizer:
        config = {**self.optim_config, "_partial_": True}
        return instantiate(config)(params=self.parameters())
