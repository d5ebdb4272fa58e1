"""Small callbacks: plain-text epoch summaries for logs that are not a terminal."""

from __future__ import annotations

import logging

import lightning as L

log = logging.getLogger("rnn_lightning")


class EpochSummary(L.Callback):
    """One log line per epoch with every logged metric, instead of a progress bar."""

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        metrics = {k: v for k, v in trainer.callback_metrics.items() if "/" in k}
        text = "  ".join(f"{k}={float(v):.5g}" for k, v in sorted(metrics.items()))
        log.info("epoch %d/%d  %s", trainer.current_epoch + 1, trainer.max_epochs, text)
