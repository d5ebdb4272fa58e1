"""The test set's pictures: drawn from what the task module computed, saved in the run folder and shown in
TensorBoard beside the run's results. Each task's config names its report (``conf/task/*.yaml``, ``callbacks``)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from matplotlib.figure import Figure

from rnn_lightning.models.figures import confusion_figure, forecast_figure, save_figure
from rnn_lightning.models.misclassified import misclassified_markdown
from rnn_lightning.models.sentiment import LABELS


class TestReport(L.Callback):
    """Draws once, after the test: ``figure_dir/<name>.png``, and the same figure on every logger that draws."""

    def __init__(self, figure_dir: str | Path) -> None:
        self.figure_dir = Path(figure_dir)

    def on_test_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.report(trainer, module)

    def report(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        raise NotImplementedError

    def show(self, trainer: L.Trainer, name: str, file_name: str, figure: Figure) -> None:
        save_figure(figure, self.figure_dir / file_name)
        for logger in trainer.loggers:
            if hasattr(logger, "log_figure"):  # the run's TensorBoard logger (training/tensorboard.py)
                logger.log_figure(name, figure)

    def write(self, trainer: L.Trainer, name: str, markdown: str) -> None:
        for logger in trainer.loggers:
            if hasattr(logger, "log_text"):
                logger.log_text(name, markdown)


class ConfusionReport(TestReport):
    """Sentiment: the confusion matrix (``figures/confusion.png``) and the most confident mistakes (TensorBoard's
    text tab)."""

    def report(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        matrix = module.test_confusion_matrix  # (2, 2): true x predicted
        self.show(
            trainer,
            "test/confusion_matrix",
            "confusion.png",
            confusion_figure(matrix, LABELS, "test set, best checkpoint"),
        )
        texts = getattr(trainer.datamodule, "test_texts", None)
        if texts and module.test_predictions:
            ((predictions, positive, labels),) = module.test_predictions  # on the host: the list reads them one by one
            self.write(
                trainer, "test/misclassified", misclassified_markdown(texts, predictions, positive, labels, LABELS)
            )


class ForecastReport(TestReport):
    """Sine: each test sequence's context, truth and forecast (``figures/forecast.png``)."""

    def report(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        ((waves, forecasts),) = module.test_outputs  # (N, L), (N, L - context), on the host
        context = module.hparams.context
        names = [f"test sequence {i}: context {context} points, then forecast" for i in range(len(waves))]
        figure = forecast_figure(waves.float().numpy(), forecasts.float().numpy(), context, names)
        self.show(trainer, "test/forecast", "forecast.png", figure)
