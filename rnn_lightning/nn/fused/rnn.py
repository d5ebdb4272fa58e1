"""Fused Elman RNN kernel: one in-place matmul and two pointwise ops per step, all in the output.

Internal coordinates (docs/fused.md, "RNN"): ``W' = 2W``, ``U' = 2U``, ``b' = 2 (b_ih + b_hh)``, so that
``P = 2a`` and ``h = tanh(a) = 2 σ(P) - 1``: ``torch.tanh`` is 4-6x slower than ``torch.sigmoid`` on CPU.
The projection of a block is written straight into its slice of the output, where each step adds
``h_prev U'^T`` and activates in place: no block buffer, nothing else saved. A padded step keeps h through a
``lerp`` with weight 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnn_lightning.nn.fused.kernel import Backward, Block, Forward, Kernel


class RNNKernel(Kernel):
    # The output holds P, then h; the backward scratch holds K = dh/dP, then dP.
    gates, saved, coefs = 1, 0, 1
    x_cols = h_cols = (0, 1)

    def internal(self, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return 2 * w_ih, 2 * (b_ih + b_hh), 2 * w_hh

    def forward_block(self, fw: Forward, block: Block) -> None:
        h_slot = block.slots.chain(fw.carry[0], block.h.unbind(0))
        keep = block.keep.unbind(0) if block.keep is not None else None
        read, write = block.slots.read, block.slots.write
        add_mm_, u_t = fw.precision.add_mm_, fw.u_t
        minus_one = block.h.new_full((), -1.0)
        for j in block.slots.forward_steps():
            h = add_mm_(h_slot[j + write], h_slot[j + read], u_t).sigmoid_()  # σ(P), P = x W'^T + b' + h_prev U'^T
            torch.add(minus_one, h, alpha=2, out=h)  # h = 2 σ(P) - 1 = tanh(a)
            if keep is not None:  # weight 0 on a padded step keeps h exactly
                torch.lerp(h_slot[j + read], h, keep[j], out=h)
        fw.carry = [h_slot[block.slots.final]]

    def backward_block(self, bw: Backward, block: Block, coef: Tensor, temp: Tensor | None) -> None:
        k = torch.addcmul(coef.new_full((), 0.5), block.h, block.h, value=-0.5, out=coef)  # K = (1 - h²) / 2
        if block.keep is not None:  # a padded step: dh passes straight through, P gets nothing
            k.mul_(block.keep)
        k_rows = k.unbind(0)  # row j holds K_j until step j turns it into dP_j
        passes = (1 - block.keep).unbind(0) if block.keep is not None else None
        for j in block.slots.backward_steps():
            dh = bw.at(j)
            gate_grad = torch.mul(dh, k_rows[j], out=k_rows[j])  # dP = dh K
            bw.hand_back(gate_grad, dh, passes[j] if passes is not None else None)
