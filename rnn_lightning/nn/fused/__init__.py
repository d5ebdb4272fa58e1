"""Fast direction runners: the cells' own parameters, a hand-written forward and backward through time.

``run_fused`` has the signature of ``rnn_lightning.nn.loop.run_loop``; ``scan.py`` holds the engine, ``kernel.py``
what a kernel sees, ``rnn.py`` / ``lstm.py`` / ``gru.py`` the per-step arithmetic of each cell kind and
``precision.py`` the dtypes of each part. docs/fused.md derives them.
"""

from __future__ import annotations

from torch import Tensor

from rnn_lightning.nn.cells import GRUCell, LSTMCell, RecurrentCell, RNNCell, State
from rnn_lightning.nn.fused.gru import GRUKernel
from rnn_lightning.nn.fused.kernel import Kernel
from rnn_lightning.nn.fused.lstm import LSTMKernel
from rnn_lightning.nn.fused.rnn import RNNKernel
from rnn_lightning.nn.fused.scan import run_scan

__all__ = ["run_fused"]

KERNELS: dict[type[RecurrentCell], Kernel] = {RNNCell: RNNKernel(), LSTMCell: LSTMKernel(), GRUCell: GRUKernel()}


def run_fused(
    cell: RecurrentCell, x: Tensor, state: State, lengths: Tensor | None = None, reverse: bool = False
) -> tuple[Tensor, State]:
    """(B, T, I) -> outputs (B, T, H) and final state, like ``run_loop`` but fused."""
    kernel = KERNELS.get(type(cell))
    if kernel is None:
        raise TypeError(f"no fused path for {type(cell).__name__}")
    if x.shape[1] == 1:
        # One step (the sine forecast feeds its predictions back one at a time): moving the weights into
        # the kernel's coordinates costs more than the step, so the cell takes it; 2x faster forecasts.
        from rnn_lightning.nn.loop import run_loop

        return run_loop(cell, x, state, lengths, reverse)
    return run_scan(kernel, cell, x, state, lengths, reverse)
