"""``model.impl=triton``: one Triton kernel launch per layer for the recurrence, and one for its backward.

``run_triton_layer`` is a ``LayerRunner`` (``rnn_lightning/nn/registry.py``); ``launch.py`` holds the autograd
function, ``plan.py`` the block sizes, ``rnn.py`` / ``lstm.py`` / ``gru.py`` the kernels. The design and the
equations in the kernels' coordinates are in ``docs/triton.md``.

Triton is optional (``pip install 'rnn-lightning[triton]'``), so nothing here imports it until a layer runs.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from types import ModuleType

import torch
from torch import Tensor, nn

from rnn_lightning.nn.cells import State
from rnn_lightning.nn.triton.plan import MAX_HIDDEN_PAD as MAX_HIDDEN_SIZE  # torch only, no triton

__all__ = ["MAX_HIDDEN_SIZE", "check_runnable", "run_triton_layer"]

NO_TRITON = (
    "model.impl=triton needs Triton, which is not installed: pip install triton==3.6.0 (or the extra: "
    "pip install -e '.[triton]'); or use model.impl=auto or fused"
)


def run_triton_layer(
    cells: Sequence[nn.Module],
    x: Tensor,
    starts: Sequence[State],
    lengths: Tensor | None,
    fp32_precision: str | None = None,
) -> tuple[Tensor, list[State]]:
    """One layer's directions (the second reversed): x (B, T, I) -> outputs (B, T, D H) and the final states.

    ``fp32_precision``: tl.dot's input_precision for fp32 products (``plan.FP32_PRECISIONS``), or None to follow
    torch's setting for cuDNN's RNNs (``plan.dot_precision`` says which one a call uses)."""
    check_runnable(x.device)
    return _launch_module().run_layer(cells, x, starts, lengths, fp32_precision)


def check_runnable(device: torch.device | str) -> None:
    """Raise, with what to do, if impl=triton cannot run on ``device`` here; cheap, so a caller can check before
    training starts."""
    launch = _launch_module()
    if torch.device(device).type != "cuda" and not launch.interpreted():
        late = " (it is set, but triton was imported before it was)" if os.environ.get("TRITON_INTERPRET") else ""
        raise RuntimeError(
            f"model.impl=triton runs on CUDA tensors, and this input is on {device}: use model.impl=auto or fused "
            f"on CPU, or set TRITON_INTERPRET=1 before triton is imported{late} to run the kernels through "
            "Triton's interpreter (slow; for tests)"
        )


def _launch_module() -> ModuleType:
    try:
        return importlib.import_module("rnn_lightning.nn.triton.launch")
    except ImportError as error:
        if (error.name or "").split(".")[0] == "triton":
            raise ImportError(NO_TRITON) from error
        raise
