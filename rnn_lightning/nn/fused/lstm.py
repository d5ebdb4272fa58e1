"""Fused LSTM kernel: one in-place gate matmul and seven cheap pointwise ops per step.

Internal coordinates (docs/fused.md, "LSTM"):

* gate blocks are reordered to ``o, i, f, g`` and the g rows are doubled, so ONE sigmoid over all 4H columns
  gives ``s_g = σ(2 g_pre)``, and ``g2 = 4 s_g - 2 = 2 tanh(g_pre)`` is twice the candidate ĉ: ``torch.tanh`` is
  4-6x slower than ``torch.sigmoid`` on CPU, and a separate tanh would be one more op per step;
* the cell state is carried doubled, ``c2 = 2c``, so that ``tanh(c) = 2 σ(c2) - 1`` needs no ``2c``.

A step: ``[o, i, f, s_g] = σ(P)``, ``g2 = 4 s_g - 2``, ``c2 = f c2_prev + i g2``, ``tanh_c = 2 σ(c2) - 1``,
``h = o tanh_c``. Saved per step: o, i, f, g2, c2 (h is the output); ``tanh_c`` is recomputed in the backward,
which is cheaper than writing and reading it back. On a padded step ``i = 0`` and ``f = 1`` are forced through
±inf in the projection, which keeps ``c2`` exactly, and ``h`` is kept by a ``lerp`` with weight 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnn_lightning.nn.cells import State
from rnn_lightning.nn.fused.kernel import Backward, Block, Forward, Kernel


class LSTMKernel(Kernel):
    # Block buffer per step: [P, then o, i, f, s_g then g2 | c2]. Backward scratch per step:
    # [K_o, K_i, K_f, K_g, f, K_c], made [dP_o, dP_i, dP_f, dP_g, dc2 f, K_c] by the step; temp: tanh c.
    gates, saved, coefs, temps = 4, 5, 6, 1
    x_cols = h_cols = (0, 4)
    state_cols = (4,)  # c2; h lives in the output

    def internal(self, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        def reorder(p: Tensor) -> Tensor:
            i, f, g, o = p.split(w_hh.shape[1])  # torch.nn's block order
            return torch.cat([o, i, f, 2 * g])

        return reorder(w_ih), reorder(b_ih + b_hh), reorder(w_hh)

    def internal_state(self, state: State) -> State:
        h0, c0 = state
        return h0, 2 * c0

    def external_final(self, finals: State) -> State:
        h, c2 = finals
        return h, 0.5 * c2

    def fill_padding(self, acts: Tensor, barrier: Tensor) -> None:
        H = acts.shape[2] // self.saved
        acts[:, :, H : 2 * H].add_(barrier)  # i = 0
        acts[:, :, 2 * H : 3 * H].sub_(barrier)  # f = 1

    def forward_block(self, fw: Forward, block: Block) -> None:
        H = block.acts.shape[2] // self.saved
        gates = block.acts[:, :, : 4 * H].unbind(0)  # (B, 4H) per step
        o, i, f, g2, c2 = (block.acts[:, :, k * H : (k + 1) * H].unbind(0) for k in range(5))
        h_slot = block.slots.chain(fw.carry[0], block.h.unbind(0))
        c2_slot = block.slots.chain(fw.carry[1], c2)
        keep = block.keep.unbind(0) if block.keep is not None else None
        tanh_c = torch.empty_like(fw.carry[0])  # (B, H): σ(c2), then tanh(c)
        o_tanh_c = torch.empty_like(tanh_c) if keep is not None else None  # (B, H): h before the padding lerp
        read, write = block.slots.read, block.slots.write
        add_mm_, u_t = fw.precision.add_mm_, fw.u_t
        minus_two, minus_one = tanh_c.new_full((), -2.0), tanh_c.new_full((), -1.0)
        for j in block.slots.forward_steps():
            add_mm_(gates[j], h_slot[j + read], u_t).sigmoid_()  # [o, i, f, s_g] = σ(P), P += h_prev U'^T
            torch.add(minus_two, g2[j], alpha=4, out=g2[j])  # g2 = 4 s_g - 2 = 2 tanh(g_pre)
            torch.mul(f[j], c2_slot[j + read], out=c2[j]).addcmul_(i[j], g2[j])  # c2 = f c2_prev + i g2
            torch.sigmoid(c2[j], out=tanh_c)
            torch.add(minus_one, tanh_c, alpha=2, out=tanh_c)  # tanh(c) = 2 σ(c2) - 1
            if keep is None:
                torch.mul(o[j], tanh_c, out=h_slot[j + write])
            else:  # weight 0 on a padded step keeps h exactly
                torch.lerp(h_slot[j + read], torch.mul(o[j], tanh_c, out=o_tanh_c), keep[j], out=h_slot[j + write])
        fw.carry = [h_slot[block.slots.final], c2_slot[block.slots.final]]

    def backward_block(self, bw: Backward, block: Block, coef: Tensor, temp: Tensor | None) -> None:
        assert temp is not None
        n, batch, width = block.acts.shape
        H = width // self.saved
        o, i, f, g2, c2 = (block.acts[..., k * H : (k + 1) * H] for k in range(5))
        k_o, k_i, k_f, k_g, f_copy, k_c = (coef[..., k * H : (k + 1) * H] for k in range(6))
        # dP = [dh K_o | dc2 K_i | dc2 K_f | dc2 K_g], dc2_t = dc2_{t+1} f_{t+1} + dh K_c / 2, where:
        tanh_c = torch.sigmoid(c2, out=temp)
        torch.add(coef.new_full((), -1.0), tanh_c, alpha=2, out=tanh_c)  # tanh(c) = 2 σ(c2) - 1
        sigmoids = block.acts[..., : 3 * H]
        torch.addcmul(sigmoids, sigmoids, sigmoids, value=-1, out=coef[..., : 3 * H])  # s (1 - s) for o, i, f
        k_o.mul_(tanh_c)  # K_o = tanh_c o (1 - o)
        k_i.mul_(g2)  # K_i = g2 i (1 - i)
        block.slots.mul_previous(k_f, c2, block.before[1])  # K_f = c2_prev f (1 - f)
        torch.mul(g2, g2, out=k_g)
        torch.addcmul(i, i, k_g, value=-0.25, out=k_g)  # K_g = i (1 - g2² / 4) = i · 4 s_g (1 - s_g)
        f_copy.copy_(f)  # beside K_i, K_f, K_g: one broadcast multiply by dc2 also gives dc2 f
        torch.mul(tanh_c, tanh_c, out=k_c)
        torch.addcmul(o, o, k_c, value=-1, out=k_c)  # K_c = o (1 - tanh_c²) = 2 dh/dc2
        if block.keep is not None:  # a padded step: dh passes straight through, the cell gets nothing
            k_o.mul_(block.keep)
            k_c.mul_(block.keep)

        k_o_rows, k_c_rows, gate_grad = k_o.unbind(0), k_c.unbind(0), coef[..., : 4 * H].unbind(0)
        by_dc2 = coef.view(n, batch, 6, H)[:, :, 1:5].unbind(0)  # (B, 4, H) per step: K_i, K_f, K_g, f
        dc2_f = f_copy.unbind(0)
        passes = (1 - block.keep).unbind(0) if block.keep is not None else None
        dc2 = coef.new_empty(batch, 1, H)  # a column, for the broadcast multiply
        dc2_flat = dc2.view(batch, H)
        for j in block.slots.backward_steps():
            dh = bw.at(j)
            torch.addcmul(bw.dc_next, dh, k_c_rows[j], value=0.5, out=dc2_flat)  # dc2 = dc_next + dh K_c / 2
            torch.mul(dh, k_o_rows[j], out=k_o_rows[j])  # dP_o = dh K_o
            torch.mul(by_dc2[j], dc2, out=by_dc2[j])  # dP_i, dP_f, dP_g, dc2 f
            bw.dc_next = dc2_f[j]
            bw.hand_back(gate_grad[j], dh, passes[j] if passes is not None else None)

    def initial_grads(self, bw: Backward) -> list[Tensor]:
        assert bw.dc_next is not None
        return [bw.initial(), bw.dc_next]
