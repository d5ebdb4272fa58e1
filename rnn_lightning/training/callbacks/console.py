"""What the console shows: Lightning's rich progress bar in a terminal, one line per epoch elsewhere, the model's
layers, why a run stopped early, and no promotional tips."""

from __future__ import annotations

import logging
import sys
import warnings

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, RichProgressBar
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.utilities.model_summary import get_human_readable_count, summarize
from torch import nn
from torchmetrics import Metric

log = logging.getLogger("rnn_lightning")
# The summary's size estimate, which LayerSummary does not show, cannot count 16-bit precisions.
warnings.filterwarnings("ignore", message=r"Precision .* is not supported by the model summary")


class EpochSummary(L.Callback):
    """One log line per epoch with every logged metric, instead of a progress bar."""

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        metrics = {k: v for k, v in trainer.callback_metrics.items() if "/" in k}
        text = "  ".join(f"{k}={float(v):.5g}" for k, v in sorted(metrics.items()))
        log.info("epoch %d/%d  %s", trainer.current_epoch + 1, trainer.max_epochs, text)


class TerminalProgressBar(RichProgressBar):
    """Lightning's rich progress bar without ``v_num``: the end of the run's name, which the bar cuts to 4 letters."""

    def get_metrics(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, int | str | float | dict]:
        metrics = super().get_metrics(trainer, module)
        metrics.pop("v_num", None)
        return metrics


class LayerSummary(L.Callback):
    """The model's layers alone: name, type and parameter count, down to the recurrent cells (Lightning's summary,
    ``trainer.enable_model_summary``, is replaced by this one).

    Lightning lists every submodule, and a module's torchmetrics objects are submodules too: they filled most rows
    with zero parameters. Containers (a ModuleList of cells) are left out, their items are listed; so are the FLOPs
    column, 0 unless a module defines an example input, and the train/eval mode (all train when fit starts).
    Logged, so it also lands in the job's log file.
    """

    def __init__(self, enabled: bool = True, max_depth: int = 3) -> None:
        self.enabled = enabled
        self.max_depth = max_depth

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not self.enabled or not trainer.is_global_zero:
            return
        summary = summarize(module, max_depth=self.max_depth)
        rows = [
            (name, kind, get_human_readable_count(count))
            for name, kind, count in zip(summary.layer_names, summary.layer_types, summary.param_nums)
            if is_layer(module, name)
        ]
        log.info("%s", layer_table(rows, summary.trainable_parameters, summary.total_parameters))


def is_layer(module: nn.Module, name: str) -> bool:
    """Whether ``module.<name>`` is a layer: not a container, not a metric nor part of one."""
    parts = name.split(".")
    owners = [module.get_submodule(".".join(parts[: i + 1])) for i in range(len(parts))]
    return not isinstance(owners[-1], nn.ModuleList | nn.ModuleDict) and not any(
        isinstance(owner, Metric) for owner in owners
    )


def layer_table(rows: list[tuple[str, str, str]], trainable: int, total: int) -> str:
    """``rows`` of (name, type, parameters) as an aligned text table, with the totals under it."""
    header = ("layer", "type", "params")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(3)]
    lines = [f"{name:<{widths[0]}}  {kind:<{widths[1]}}  {count:>{widths[2]}}" for name, kind, count in (header, *rows)]
    lines.insert(1, "-" * len(lines[0]))
    frozen = f", {get_human_readable_count(total - trainable).strip()} frozen" if total > trainable else ""
    lines.append(f"{get_human_readable_count(total).strip()} parameters{frozen}")
    return "model:\n" + "\n".join(lines)


class SaidEarlyStopping(EarlyStopping):
    """Lightning's early stopping, which also says that it ended the run: Lightning's own line comes only with
    ``verbose=True``, and then beside a line for every improvement, which the epoch lines already show."""

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not self.stopped_epoch or not trainer.is_global_zero:
            return
        if self.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED:
            why = f"{self.monitor} has not improved for {self.wait_count} epochs (best {float(self.best_score):.5g})"
        else:
            why = self.stopping_reason_message
        log.info("stopped early after epoch %d/%d: %s", self.stopped_epoch + 1, trainer.max_epochs, why)


def early_stopping(monitor: str, mode: str, patience: int | None) -> SaidEarlyStopping | None:
    """``early_stopping_patience=null`` (the default outside sentiment): no early stopping."""
    return None if patience is None else SaidEarlyStopping(monitor=monitor, mode=mode, patience=patience)


def progress() -> L.Callback:
    """The rich progress bar where a person watches (a terminal), one line per epoch in logs and pipes."""
    return TerminalProgressBar() if sys.stdout.isatty() else EpochSummary()


class NoTips(logging.Filter):
    """Drops Lightning's promotional tips ("💡 Tip: ... try installing litlogger ..."), logged at INFO on every
    Trainer with no setting to turn them off (Lightning 2.6)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("lightning.") and str(record.msg).startswith("💡 Tip"))
