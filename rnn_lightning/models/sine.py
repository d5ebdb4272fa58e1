"""Many-to-many regression: predict the next point of a sine wave, then forecast autoregressively."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F
from torchmetrics import MeanMetric, MinMetric

from rnn_lightning.models.base import RecurrentTask, recurrent_layer
from rnn_lightning.models.head import make_head
from rnn_lightning.nn import State


class SineForecaster(RecurrentTask):
    task = "sine"
    EPOCH_METRICS = {"train/loss": "min", "val/forecast_mse": "min", "val/forecast_mse_best": "min"}

    def __init__(
        self,
        model: dict[str, Any] | None = None,
        head_hidden: int = 0,
        head_activation: str = "tanh",
        context: int = 500,
        optim: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(optim, scheduler)
        if (model or {}).get("bidirectional"):
            raise ValueError(
                "model.bidirectional=true is impossible on the sine task: its autoregressive forecast "
                "cannot read the future it is predicting. Use model.bidirectional=false."
            )
        self.save_hyperparameters(logger=False)
        self.rnn = recurrent_layer(model, 1)
        self.head = make_head(self.rnn.output_size, 1, head_hidden, head_activation)
        self.val_mse = MeanMetric()
        self.val_mse_best = MinMetric()
        self.val_mse_best.persistent(True)  # in checkpoints, so a resumed run goes on with its best so far
        self.test_outputs: list[tuple[Tensor, Tensor]] = []

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x: (B, T, 1) -> next-point predictions (B, T, 1) and the recurrent state after T steps."""
        x = x.to(self.head_dtype)
        out, state = self.rnn(x, state)  # (B, T, H)
        return self.head(out), state

    @property
    def head_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @torch.no_grad()
    def forecast(self, waves: Tensor, context: int) -> Tensor:
        """Read ``waves[:, :context]``, then feed each prediction back in: (B, L) -> (B, L - context)."""
        prediction, state = self(waves[:, :context, None])
        step = prediction[:, -1:]  # (B, 1, 1)
        steps = [step]
        for _ in range(waves.shape[1] - context - 1):
            step, state = self(step, state)
            steps.append(step)
        return torch.cat(steps, dim=1).squeeze(-1)  # (B, L - context)

    def training_loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        inputs, targets = batch  # (B, T, 1) each
        prediction, _ = self(inputs)
        return F.mse_loss(prediction, targets.to(prediction.dtype))

    def validation_step(self, batch: tuple[Tensor], batch_idx: int) -> None:
        (waves,) = batch
        forecast = self.forecast(waves, self.hparams.context)
        self.val_mse(F.mse_loss(forecast, waves[:, self.hparams.context :].to(forecast.dtype)))
        self.log("val/forecast_mse", self.val_mse, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.val_mse_best(self.val_mse.compute())
        self.log("val/forecast_mse_best", self.val_mse_best.compute())

    def on_test_epoch_start(self) -> None:
        self.test_outputs.clear()

    def test_step(self, batch: tuple[Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        """The test sequences' forecasts (loader 0), and the tested model's one-step-ahead MSE on the training
        sequences (loader 1): the number the course report quotes as its training loss."""
        (waves,) = batch
        if dataloader_idx == 1:
            prediction, _ = self(waves[:, :-1, None])  # (B, L - 1, 1)
            mse = F.mse_loss(prediction.squeeze(-1), waves[:, 1:].to(prediction.dtype))
            self.log("test/train_mse", mse, add_dataloader_idx=False)
            return
        context = self.hparams.context
        forecast = self.forecast(waves, context)  # (B, L - context)
        errors = (forecast - waves[:, context:].to(forecast.dtype)).pow(2).mean(dim=1)  # (B,)
        self.log("test/forecast_mse", errors.mean(), add_dataloader_idx=False)
        for index, error in enumerate(errors):
            self.log(f"test/forecast_mse_seq{index}", error, add_dataloader_idx=False)
        self.test_outputs.append((waves, forecast))  # moved to the CPU once, at the end

    def on_test_epoch_end(self) -> None:
        # Kept for the test report (training's callbacks draw the forecast), on the host once.
        waves = torch.cat([w for w, _ in self.test_outputs]).cpu()  # (N, L)
        forecasts = torch.cat([f for _, f in self.test_outputs]).cpu()  # (N, L - context)
        self.test_outputs = [(waves, forecasts)]
