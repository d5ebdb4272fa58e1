"""Figures for TensorBoard and the run folder.

Built with matplotlib's object-oriented ``Figure`` (no pyplot): nothing here touches the backend a notebook user has
chosen, and no display is needed on a training machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def forecast_figure(waves: np.ndarray, forecasts: np.ndarray, context: int, names: list[str]) -> Figure:
    """One panel per test sequence: the context fed in, the truth after it, and the model's forecast."""
    figure = Figure(figsize=(10, 2.6 * len(waves)), layout="tight")
    axes = figure.subplots(len(waves), 1, squeeze=False)
    t = np.arange(waves.shape[1])
    for ax, wave, forecast, name in zip(axes[:, 0], waves, forecasts, names):
        ax.plot(t[:context], wave[:context], color="black", lw=1.2, label="context")
        ax.plot(t[context:], wave[context:], color="tab:green", lw=1.2, label="truth")
        ax.plot(t[context:], forecast, color="tab:red", lw=1.2, ls="--", label="forecast")
        ax.axvline(context, color="grey", lw=0.8, ls=":")
        ax.set_title(name, fontsize=10)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)  # outside: never over a curve
    axes[-1, 0].set_xlabel("t")
    return figure


def confusion_figure(matrix: np.ndarray, labels: list[str]) -> Figure:
    """A confusion matrix with counts in the cells; rows are true labels, columns predictions."""
    figure = Figure(figsize=(3.8, 3.4), layout="tight")
    ax = figure.subplots()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, str(int(count)), ha="center", va="center", color=color)
    return figure


def save_figure(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
