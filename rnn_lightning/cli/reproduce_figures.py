"""Figures for the reproduction report: the sine forecasts, and validation accuracy per epoch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from matplotlib.figure import Figure

from rnn_lightning.models.figures import plt


def finished_jobs(root: Path, task: str) -> Iterator[tuple[Path, dict]]:
    """(job folder, metrics.json) of every job of ``task`` below ``root``, in path order."""
    for path in sorted(root.rglob("metrics.json")):
        record = json.loads(path.read_text())
        if record.get("task") == task:
            yield path.parent, record


def collect_forecasts(root: Path) -> list[tuple[str, Path]]:
    """The forecast figure of each sine job, labelled by its experiment folder, model and optimizer."""
    found = []
    for job, record in finished_jobs(root, "sine"):
        png = job / "figures" / "forecast.png"
        if png.exists():
            params = record.get("params", {})
            found.append((f"{job.parent.name}_{params.get('model')}_{params.get('optim')}", png))
    return found


def validation_curve(job: Path, tag: str = "val/acc") -> tuple[list[int], list[float]]:
    """Epochs and values of one scalar from a job's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    epochs: list[int] = []
    values: list[float] = []
    for run in sorted((job / "tensorboard").glob("*")):
        events = EventAccumulator(str(run), size_guidance={"scalars": 0})
        events.Reload()
        if tag in events.Tags().get("scalars", []):
            for index, event in enumerate(events.Scalars(tag)):
                epochs.append(index + 1)
                values.append(event.value)
    return epochs, values


def accuracy_curves_figure(root: Path) -> Figure | None:
    """Validation accuracy per epoch of every sentiment job, one line each; None when there are none."""
    figure, ax = plt.subplots(figsize=(9, 5))
    drawn = 0
    for job, record in finished_jobs(root, "sentiment"):
        epochs, values = validation_curve(job)
        if values:
            params = record.get("params", {})
            label = f"{job.parent.name}/{job.name}: {params.get('model')} {params.get('optim')} b{params.get('batch')}"
            ax.plot(epochs, values, lw=1.2, label=label)
            drawn += 1
    if not drawn:
        plt.close(figure)
        return None
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return figure
