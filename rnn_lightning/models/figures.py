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


def confusion_figure(matrix: np.ndarray, labels: list[str], title: str) -> Figure:
    """Rows are the true labels, columns the predictions; each cell says its count and its share of the row.

    Coloured by that share on a fixed 0-1 scale, so the same colour means the same in every run, and each count is
    written in black or white by how dark its own cell is.
    """
    shares = matrix / matrix.sum(axis=1, keepdims=True).clip(min=1)
    figure = Figure(figsize=(3.6, 3.4), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(labels)), labels, fontsize=12)
    ax.set_yticks(range(len(labels)), labels, fontsize=12)
    ax.set_xlabel("predicted", fontsize=12)
    ax.set_ylabel("true", fontsize=12)
    correct = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(f"{title}\n{int(matrix.sum())} reviews, {correct:.1%} correct", fontsize=12)
    for (i, j), count in np.ndenumerate(matrix):
        red, green, blue, _ = image.cmap(image.norm(shares[i, j]))
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # the luma of the cell's colour
        text = f"{int(count)}\n{shares[i, j]:.0%}"
        ax.text(j, i, text, ha="center", va="center", fontsize=16, color="white" if dark else "black")
    return figure


def save_figure(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
