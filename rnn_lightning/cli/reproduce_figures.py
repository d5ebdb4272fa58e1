"""Figures for the reproduction report, from what each job wrote: its forecast.png (sine jobs) and its
``csv/version_*/metrics.csv`` (Lightning's CSVLogger) for the validation accuracy per epoch (sentiment jobs).

Built on ``matplotlib.figure.Figure`` directly: no pyplot and no global backend, so nothing here changes the
matplotlib state of whoever imports it, and a figure is freed when it goes out of scope.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from matplotlib.figure import Figure

from rnn_lightning.cli.sweeps import Job, find_jobs


def logged_by_epoch(job_folder: Path) -> dict[int, dict[str, float]]:
    """Every value the job logged, per epoch, over ``csv/version_0``, ``version_1``, ... in order: a resumed run
    writes a new version that repeats the epoch it resumed in, and the later row wins."""
    versions = [path for path in (job_folder / "csv").glob("version_*/metrics.csv") if version(path) is not None]
    logged: dict[int, dict[str, float]] = {}
    for path in sorted(versions, key=version):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                # One row per logging call, the metrics it did not log left empty.
                values = {name: float(text) for name, text in row.items() if name not in ("epoch", "step") and text}
                if row.get("epoch"):
                    logged.setdefault(int(row["epoch"]), {}).update(values)
    return logged


def version(metrics_csv: Path) -> int | None:
    number = metrics_csv.parent.name.removeprefix("version_")
    return int(number) if number.isdigit() else None


def curve(job_folder: Path, metric: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of one metric; epochs counted from 1, as metrics.json's "epochs" counts them."""
    logged = logged_by_epoch(job_folder)
    epochs = sorted(epoch for epoch, values in logged.items() if metric in values)
    return [epoch + 1 for epoch in epochs], [logged[epoch][metric] for epoch in epochs]


def copy_forecasts(root: Path, jobs: list[Job], figures: Path) -> list[Path]:
    """Each sine job's own forecast figure, named by its folder, cell and optimizer."""
    copied = []
    for job in jobs:
        source = root / job.name / "figures" / "forecast.png"
        if job.record.get("task") == "sine" and source.is_file():
            parts = [job.name.replace("/", "_"), job.params.get("model.cell"), job.params.get("optim")]
            copied.append(Path(shutil.copyfile(source, figures / f"forecast_{'_'.join(map(str, parts))}.png")))
    return copied


def validation_accuracy_figure(root: Path, jobs: list[Job]) -> Figure | None:
    """val/acc per epoch of every sentiment job, one line each; None when no job logged any."""
    figure = Figure(figsize=(10, 5), layout="constrained")
    axes = figure.add_subplot()
    for job in jobs:
        epochs, values = curve(root / job.name, "val/acc") if job.record.get("task") == "sentiment" else ([], [])
        if values:
            params = job.params
            label = f"{job.name}: {params.get('model.cell')} {params.get('optim')} batch {params.get('batch')}"
            axes.plot(epochs, values, lw=1.2, label=label)
    if not axes.lines:
        return None
    axes.set(xlabel="epoch", ylabel="validation accuracy")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))  # outside: never over a curve
    return figure


def write_figures(root: Path) -> list[Path]:
    """``root/figures/``: the forecast copies and sentiment_val_acc.png. Returns the files written."""
    jobs = find_jobs(root)
    figures = root / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    written = copy_forecasts(root, jobs, figures)
    accuracy = validation_accuracy_figure(root, jobs)
    if accuracy is not None:
        written.append(figures / "sentiment_val_acc.png")
        accuracy.savefig(written[-1], dpi=110)
    return written
