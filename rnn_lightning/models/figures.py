"""Figures for TensorBoard and the run folder (matplotlib, headless)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on training machines; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def forecast_figure(waves: np.ndarray, forecasts: np.ndarray, context: int, names: list[str]) -> Figure:
    """One panel per test sequence: the context fed in, the truth after it, and the model's forecast."""
    figure, axes = plt.subplots(len(waves), 1, figsize=(10, 2.6 * len(waves)), squeeze=False)
    t = np.arange(waves.shape[1])
    for ax, wave, forecast, name in zip(axes[:, 0], waves, forecasts, names):
        ax.plot(t[:context], wave[:context], color="black", lw=1.2, label="context")
        ax.plot(t[context:], wave[context:], color="tab:green", lw=1.2, label="truth")
        ax.plot(t[context:], forecast, color="tab:red", lw=1.2, ls="--", label="forecast")
        ax.axvline(context, color="grey", lw=0.8, ls=":")
        ax.set_title(name, fontsize=10)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)  # outside: never over a curve
    axes[-1, 0].set_xlabel("t")
    figure.tight_layout()
    return figure


def confusion_figure(matrix: np.ndarray, labels: list[str]) -> Figure:
    """A confusion matrix with counts in the cells; rows are true labels, columns predictions."""
    figure, ax = plt.subplots(figsize=(3.8, 3.4))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, str(int(count)), ha="center", va="center", color=color)
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
