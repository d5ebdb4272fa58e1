"""What TensorBoard shows of a run: its curves per epoch, then its results, and one HParams row per job.

Lightning's TensorBoardLogger, changed in where things land, not in what is measured:

- every scalar at its epoch, where Lightning puts the global step on x and writes an ``epoch`` scalar beside: jobs
  with other batch sizes line up, and the ``epoch`` chart is gone;
- every tag under its task (``sentiment/val/acc``), so sine and sentiment runs in one folder never share a chart;
- the run's results (best validation value, test scores and figures) under ``<task>/~…``: TensorBoard orders charts
  by name and ``~`` sorts after every letter, so the curves come first and the single points last;
- ``log_hyperparams`` writes the hparams plugin's experiment (the swept settings marked, which TensorBoard then shows
  first; the results as its metrics) and this job's session, once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from matplotlib.figure import Figure
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

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
        return f"{self.task}/{RESULT}{name}" if name.startswith("test/") else f"{self.task}/{name}"

    def result_tag(self, name: str) -> str:
        return f"{self.task}/{RESULT}{name}"

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Lightning adds ``epoch`` to every metric it logs itself (and ``EpochLearningRate`` to the rate): that is
        x. A metric without it is drawn at the newest epoch."""
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
    def log_hyperparams(
        self, params: dict[str, Any] | Any, metrics: dict[str, float] | None = None, step: int | None = None
    ) -> None:
        """Lightning's call at the start of fit (the data module's settings, no metrics) keeps its meaning: saved to
        hparams.yaml, nothing drawn. With ``metrics`` (the run's results, by the names metrics.json gives them), the
        HParams row of this job: the experiment, the session with ``params``, the results drawn where not yet."""
        super().log_hyperparams(params)
        if metrics is None:
            return
        for name, value in metrics.items():
            if self.result_tag(name) not in self._results:
                self.experiment.add_scalar(self.result_tag(name), value, self._epoch)
        writer = self.experiment._get_file_writer()  # as Lightning writes its own hparams summaries
        writer.add_summary(self._experiment_summary(dict(params), list(metrics)), self._epoch)
        start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
        for name, value in dict(params).items():
            start.hparams[name].CopyFrom(hparam_value(value))
        writer.add_summary(_hparams_summary(metadata.SESSION_START_INFO_TAG, session_start_info=start), self._epoch)
        end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
        writer.add_summary(_hparams_summary(metadata.SESSION_END_INFO_TAG, session_end_info=end), self._epoch)
        writer.flush()

    def _experiment_summary(self, params: dict[str, Any], results: list[str]) -> summary_pb2.Summary:
        """The columns of the HParams table. TensorBoard sorts the params by ``differs`` (the swept ones), then by
        name, and shows the first five; the results come in the order given, named as in metrics.json."""
        hparams = [
            api_pb2.HParamInfo(name=name, type=hparam_type(value), differs=name in self.swept)
            for name, value in params.items()
        ]
        metric_infos = [
            api_pb2.MetricInfo(name=api_pb2.MetricName(tag=self.result_tag(name)), display_name=name)
            for name in results
        ]
        experiment = api_pb2.Experiment(hparam_infos=hparams, metric_infos=metric_infos, time_created_secs=time.time())
        return _hparams_summary(metadata.EXPERIMENT_TAG, experiment=experiment)


def _hparams_summary(tag: str, **data: Any) -> summary_pb2.Summary:
    """One hparams plugin record, as ``tensorboard.plugins.hparams.summary_v2`` writes them (without TensorFlow)."""
    summary = summary_pb2.Summary()
    content = metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(**data))
    summary.value.add(tag=tag, metadata=content, tensor=metadata.NULL_TENSOR)
    return summary


def hparam_value(value: Any) -> struct_pb2.Value:
    """A run parameter as the protobuf Value of a session: bool, number or text (``null`` for None)."""
    if isinstance(value, bool):
        return struct_pb2.Value(bool_value=value)
    if isinstance(value, int | float):
        return struct_pb2.Value(number_value=value)
    return struct_pb2.Value(string_value="null" if value is None else str(value))


def hparam_type(value: Any) -> int:
    if isinstance(value, bool):
        return api_pb2.DATA_TYPE_BOOL
    if isinstance(value, int | float):
        return api_pb2.DATA_TYPE_FLOAT64
    return api_pb2.DATA_TYPE_STRING
