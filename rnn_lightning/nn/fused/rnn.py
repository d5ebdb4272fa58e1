"""Fused Elman RNN kernel: one in-place matmul and two pointwise ops per step, all in the output.

``h = tanh(a)`` is computed as ``2 σ(2a) - 1``, the factor 2 folded into the weights
(``W' = 2W``, ``U' = 2U``, ``b' = 2 (b_ih + b_hh)``): ``torch.tanh`` is 4-6x slower than
``torch.sigmoid`` on CPU. The projection of a block is written straight into its slice of the output,
where each step adds ``h_prev U'^T`` and activates in place: no other buffer, nothing else saved.
A padded step keeps h through a ``lerp`` with weight 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnn_lightning.nn.cells import RecurrentCell, State
from rnn_lightning.nn.fused.common import Slots
from rnn_lightning.nn.fused.scan import Backward, Forward, Kernel


class RNNKernel(Kernel):
    # No block buffer: the gate is the state. Backward scratch per step: K = dh/dpre = (1 - h²) / 2,
    # overwritten by dP.
    gates, saved, coefs = 1, 0, 1
    x_cols = h_cols = (0, 1)

    def internal(self, cell: RecurrentCell, state: State) -> tuple[Tensor, Tensor, Tensor, State]:
        return 2 * cell.weight_ih, 2 * (cell.bias_ih + cell.bias_hh), 2 * cell.weight_hh, state

    def forward_block(self, fw: Forward, buf: Tensor, states: Tensor, keep: Tensor | None, local: Slots) -> None:
        hv = local.chain(fw.carry[0], states.unbind(0))
        kv = keep.unbind(0) if keep is not None else None
        weight_t, r, w = fw.weight_t, local.read, local.write
        minus_one = buf.new_full((), -1.0)
        for j in local.forward_steps():
            h = hv[j + w].addmm_(hv[j + r], weight_t).sigmoid_()  # σ(2a)
            torch.add(minus_one, h, alpha=2, out=h)  # tanh(a)
            if kv is not None:  # weight 0 on a padded step keeps h exactly
                torch.lerp(hv[j + r], h, kv[j], out=h)
        fw.carry = [hv[local.final]]

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
        torch.addcmul(states.new_full((), 0.5), states, states, value=-0.5, out=coef)  # K = (1 - h²) / 2
        if keep is not None:  # a padded step: dh passes straight through
            coef.mul_(keep)
        ks = coef.unbind(0)
        pad = (1 - keep).unbind(0) if keep is not None else None
        for j in local.backward_steps():
            dh = bw.incoming(j)
            bw.dp_next = torch.mul(dh, ks[j], out=ks[j])
            bw.dh_next = dh
            bw.through_next = pad[j] if pad is not None else None
