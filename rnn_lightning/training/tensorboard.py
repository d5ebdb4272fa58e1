"""What TensorBoard shows of a run: its curves per epoch, then its results, and one HParams row per job.

Lightning's TensorBoardLogger, changed in where things land, not in what is measured:

- every scalar at its epoch, where Lightning puts the global step on x and writes an ``epoch`` scalar beside: jobs
  with other batch sizes line up, and the ``epoch`` chart is gone;
- every tag under its task (``sentiment/val/acc``), so sine and sentiment runs in one folder never share a chart;
- the run's results (best validation value, test scores and figures) under ``<task>/~…``: TensorBoard orders charts
  by name and ``~`` sorts after every letter, so the curves come first and the single points last;
- :meth:`log_results` writes this job's HParams session (its params, with torch's public summary builder) and no
  experiment of its own: TensorBoard then builds the table from all sessions of a sweep, marks the params whose
  values differ between jobs and shows those first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from matplotlib.figure import Figure
from torch.utils.tensorboard.summary import hparams

RESULT = "~"  # marks the tags of a run's results; see the module docstring


class TaskTensorBoardLogger(TensorBoardLogger):
    """``save_dir/tensorboard/<version>``, as Lightning's logger; ``swept`` names the params the sweep varies."""

    def __init__(self, save_dir: Path, task: str, version: str, swept: list[str]) -> None:
        super().__init__(save_dir, name="tensorboard", version=version, default_hp_metric=False)
        self.task = task
        self.swept = list(swept)
        self._epoch = 0  # the epoch of the newest scalar, where the results are drawn
        self._results: set[str] = set()  # result tags already drawn (the test scores, as the test logs them)

    def tag(self, name: str) -> str:
        """The TensorBoard tag of a metric as Lightning logs it: ``val/acc`` -> ``sentiment/val/acc``."""
        return self.result_tag(name) if name.startswith("test/") else f"{self.task}/{name}"

    def result_tag(self, name: str) -> str:
        return f"{self.task}/{RESULT}{name}"

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Lightning adds ``epoch`` to every metric it logs itself: that is x. A metric without it is drawn at the
        newest epoch."""
        metrics = dict(metrics)
        epoch = metrics.pop("epoch", None)
        if epoch is not None:
            self._epoch = int(epoch)
        tags = {self.tag(name): value for name, value in metrics.items()}
        self._results.update(tag for tag in tags if f"/{RESULT}" in tag)
        super().log_metrics(tags, step=self._epoch)

    @rank_zero_only
    def log_figure(self, name: str, figure: Figure) -> None:
        """A test figure (``test/confusion_matrix``), beside the run's other results."""
        self.experiment.add_figure(self.tag(name), figure, global_step=self._epoch, close=False)

    @rank_zero_only
    def log_text(self, name: str, markdown: str) -> None:
        self.experiment.add_text(self.tag(name), markdown, global_step=self._epoch)

    @rank_zero_only
    def log_results(self, params: dict[str, Any], results: dict[str, float]) -> None:
        """The run's results (by their names in metrics.json) where the test has not drawn them yet, and the HParams
        session of this job: ``params`` (saved to hparams.yaml too), the results as its metrics."""
        self.log_hyperparams(params)
        for name, value in results.items():
            if self.result_tag(name) not in self._results:
                self.experiment.add_scalar(self.result_tag(name), value, self._epoch)
        shown = {name: "null" if value is None else value for name, value in params.items()}
        _, session_start, session_end = hparams(shown, {self.result_tag(name): v for name, v in results.items()})
        for summary in (session_start, session_end):
            self.experiment.file_writer.add_summary(summary, self._epoch)
        self.experiment.flush()
