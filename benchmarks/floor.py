"""The matrix products of one forward + backward, alone: a floor under every exact implementation.

Any implementation of a recurrent layer that computes the model exactly, in the same precision, does at
least these products: the input projection of all steps, one ``h U^T`` per step, and in the backward one
``dP U`` per step plus the weight and input gradients. torch.nn (oneDNN on CPU, cuDNN on CUDA) and our
fused path both call the same BLAS for them. Timing them alone, at the benchmark's shapes, says how much
of a row's time is left for everything else (activations, gate arithmetic, Python and dispatch), and so
which speed targets any implementation could still reach: ``python -m benchmarks.cells --floor``.
"""

from __future__ import annotations

import torch
from torch import Tensor

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


class GemmFloor:
    """The products of a one-direction, one-layer ``cell`` layer on x (B, T, I) with hidden size H.

    Called like ``bench.TrainingStep``: ``reset()`` then ``()``. Operands are random; only their shapes
    and the number of products matter. Skips the input gradient when x does not require one."""

    def __init__(self, cell: str, x: Tensor, hidden: int) -> None:
        batch, steps, inputs = x.shape
        width = GATES[cell] * hidden
        make = dict(dtype=x.dtype, device=x.device)
        self.steps, self.input_grad = steps, x.requires_grad
        self.x = x.detach().reshape(batch * steps, inputs)  # (B T, I)
        self.w_in = torch.randn(width, inputs, **make)  # (G H, I)
        self.w_hh = torch.randn(width, hidden, **make)  # (G H, H)
        self.h = torch.randn(steps, batch, hidden, **make)  # stands in for the states
        self.gates = torch.empty(batch * steps, width, **make)  # (B T, G H)
        self.dh = torch.empty(batch, hidden, **make)

    def reset(self) -> None:
        pass

    def __call__(self) -> None:
        torch.mm(self.x, self.w_in.t(), out=self.gates)  # input projection, all steps at once
        per_step = self.gates.view(self.steps, -1, self.gates.shape[1])  # (T, B, G H)
        w_hh_t = self.w_hh.t()
        for t in range(self.steps):
            torch.addmm(per_step[t], self.h[t], w_hh_t, out=per_step[t])
        # dh of every step but the first (whose dh only the initial state would need); the gate gradients
        # dP stand in the gate buffer.
        for t in range(self.steps - 1, 0, -1):
            torch.mm(per_step[t], self.w_hh, out=self.dh)
        flat_h = self.h.view(-1, self.h.shape[2])
        torch.mm(self.gates.t(), flat_h)  # dU
        torch.mm(self.gates.t(), self.x)  # dW
        if self.input_grad:
            torch.mm(self.gates, self.w_in)  # dx
