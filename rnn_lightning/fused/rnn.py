"""Fused Elman RNN kernel: one in-place matmul and one sigmoid per step.

Internal coordinates: the state is carried as ``s = (h + 1) / 2``, so that ``h = tanh(a) = 2 σ(2a) - 1``
becomes ``s = σ(2a)``. As ``a = W x + b + U h = W x + b - U 1 + 2 U s``, all constants fold into the
weights: ``s_t = σ(x W'^T + b' + s_{t-1} U'^T)`` with ``W' = 2W``, ``U' = 4U``, ``b' = 2 (b - U 1)``.
``torch.tanh`` is 4-6x slower than ``torch.sigmoid`` on CPU, and ``h = 2s - 1`` is one vectorised op
after the scan. A padded step keeps ``s`` through a ``lerp`` with weight 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnn_lightning.cells import RecurrentCell, State
from rnn_lightning.fused.common import Slots
from rnn_lightning.fused.scan import Backward, Forward, Kernel


class RNNKernel(Kernel):
    # Block buffer per step: s (the gate is the state). Backward scratch per step: K = s (1 - s),
    # overwritten by dP.
    gates, saved, coefs = 1, 1, 1
    x_cols = h_cols = (0, 1)
    h_col = 0  # s, written to the output as h = 2s - 1 once per block
    grad_scale = 2.0

    def internal(self, cell: RecurrentCell, state: State) -> tuple[Tensor, Tensor, Tensor, State]:
        (h0,) = state
        bias = 2 * (cell.bias_ih + cell.bias_hh - cell.weight_hh.sum(1))
        return 2 * cell.weight_ih, bias, 4 * cell.weight_hh, ((h0 + 1) * 0.5,)

    def emit(self, states: Tensor, out: Tensor) -> None:
        torch.add(states.new_tensor(-1.0), states, alpha=2, out=out)

    def emit_final(self, finals: list[Tensor]) -> list[Tensor]:
        return [finals[0] * 2 - 1]

    def forward_block(self, fw: Forward, buf: Tensor, states: Tensor, keep: Tensor | None, local: Slots) -> None:
        sv = local.chain(fw.carry[0], states.unbind(0))
        kv = keep.unbind(0) if keep is not None else None
        weight_t, r, w = fw.weight_t, local.read, local.write
        for j in local.forward_steps():
            s = sv[j + w].addmm_(sv[j + r], weight_t).sigmoid_()
            if kv is not None:  # weight 0 on a padded step keeps s exactly
                torch.lerp(sv[j + r], s, kv[j], out=s)
        fw.carry = [sv[local.final]]

    def backward_block(
        self,
        bw: Backward,
        buf: Tensor,
        states: Tensor,
        coef: Tensor,
        before: list[Tensor],
        keep: Tensor | None,
        local: Slots,
    ) -> None:
        torch.addcmul(buf, buf, buf, value=-1, out=coef)  # K = s (1 - s): dP = ds K
        if keep is not None:  # a padded step: ds passes straight through
            coef.mul_(keep)
        ks = coef.unbind(0)
        pad = (1 - keep).unbind(0) if keep is not None else None
        for j in local.backward_steps():
            ds = bw.incoming(j)
            bw.dp_next = torch.mul(ds, ks[j], out=ks[j])
            bw.dh_next = ds
            bw.through_next = pad[j] if pad is not None else None
