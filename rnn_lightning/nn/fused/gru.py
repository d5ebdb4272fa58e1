"""Fused GRU kernel: one in-place matmul and five cheap pointwise ops per step.

Internal coordinates (docs/fused.md, "GRU"): gate columns are ``[P_hn, r, z, n]``. ``P_hn = 2 (U_n h + b_hn)``
is the hidden-side candidate term, which the reset gate multiplies; then r and z; then the candidate, which
starts as its input term ``2 (W_n x + b_in)``. The matmul fills ``P_hn, r, z`` in place and one sigmoid covers
r and z. The candidate ``n = tanh(a_n)`` is computed as ``2 σ(P_n) - 1`` with ``P_n = 2 a_n`` (the factor 2 is
folded into the weights): ``torch.tanh`` is 4-6x slower than ``torch.sigmoid`` on CPU. Then
``h = lerp(n, h_prev, z) = (1 - z) n + z h_prev``, straight into the output.

A padded step gets ``z = 1`` through +inf in its projection, and ``lerp(.., .., 1)`` keeps h exactly, in the
forward and (``z (1 - z) = 0``, ``1 - z = 0``) in the backward: masking costs no op per step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnn_lightning.nn.fused.kernel import Backward, Block, Forward, Kernel


class GRUKernel(Kernel):
    # Block buffer per step: [P_hn | P, then r, z | P, then σ(P_n), then n] (h lives in the output).
    # Backward scratch per step: [r, K_r, K_z, K_n], made [dP_hn, dP_r, dP_z, dP_n] by the step.
    gates, saved, coefs = 4, 4, 4
    x_cols = (1, 4)
    h_cols = (0, 3)

    def internal(self, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        H = w_hh.shape[1]
        w_r, w_z, w_n = w_ih.split(H)
        u_r, u_z, u_n = w_hh.split(H)
        bi_r, bi_z, bi_n = b_ih.split(H)
        bh_r, bh_z, bh_n = b_hh.split(H)
        w_in = torch.cat([w_r, w_z, 2 * w_n])
        w_rec = torch.cat([2 * u_n, u_r, u_z])
        bias = torch.cat([2 * bh_n, bi_r + bh_r, bi_z + bh_z, 2 * bi_n])
        return w_in, bias, w_rec

    def fill_padding(self, acts: Tensor, barrier: Tensor) -> None:
        H = acts.shape[2] // self.saved
        acts[:, :, 2 * H : 3 * H].sub_(barrier)  # z = 1

    def forward_block(self, fw: Forward, block: Block) -> None:
        H = block.acts.shape[2] // self.saved
        recurrent, rz = block.acts[:, :, : 3 * H].unbind(0), block.acts[:, :, H : 3 * H].unbind(0)
        p_hn, r, z, n = (block.acts[:, :, k * H : (k + 1) * H].unbind(0) for k in range(4))
        h_slot = block.slots.chain(fw.carry[0], block.h.unbind(0))
        read, write = block.slots.read, block.slots.write
        add_mm_, u_t = fw.precision.add_mm_, fw.u_t
        minus_one = block.h.new_full((), -1.0)
        for j in block.slots.forward_steps():
            add_mm_(recurrent[j], h_slot[j + read], u_t)  # P_hn, P_r, P_z: += h_prev U'^T
            rz[j].sigmoid_()
            torch.addcmul(n[j], r[j], p_hn[j], out=n[j]).sigmoid_()  # σ(P_n), P_n = 2 (W_n x + b_in) + r P_hn
            torch.add(minus_one, n[j], alpha=2, out=n[j])  # n = 2 σ(P_n) - 1 = tanh(a_n)
            torch.lerp(n[j], h_slot[j + read], z[j], out=h_slot[j + write])  # h = (1 - z) n + z h_prev
        fw.carry = [h_slot[block.slots.final]]

    def backward_block(self, bw: Backward, block: Block, coef: Tensor, temp: Tensor | None) -> None:
        n_steps, batch, width = block.acts.shape
        H = width // self.saved
        p_hn, r, z, n = (block.acts[..., k * H : (k + 1) * H] for k in range(4))
        r_copy, k_r, k_z, k_n = (coef[..., k * H : (k + 1) * H] for k in range(4))
        # [dP_z, dP_n] = dh [K_z, K_n], then [dP_hn, dP_r] = dP_n [r, K_r], where:
        torch.addcmul(r, r, r, value=-1, out=k_r).mul_(p_hn)  # K_r = P_hn r (1 - r)
        for rows, h_prev in block.slots.previous_pieces(block.h, block.before[0]):
            torch.sub(h_prev, n[rows], out=k_z[rows])
        k_z.mul_(z)
        torch.addcmul(k_z, k_z, z, value=-1, out=k_z)  # K_z = (h_prev - n) z (1 - z)
        torch.addcmul(coef.new_full((), 0.5), n, n, value=-0.5, out=k_n)
        torch.addcmul(k_n, k_n, z, value=-1, out=k_n)  # K_n = (1 - z) (1 - n²) / 2
        r_copy.copy_(r)  # beside K_r: one broadcast multiply by dP_n gives dP_hn and dP_r

        quarters = coef.view(n_steps, batch, 4, H)
        by_dh, by_dp_n = quarters[:, :, 2:].unbind(0), quarters[:, :, :2].unbind(0)  # (B, 2, H) per step
        dp_n = quarters[:, :, 3:].unbind(0)  # (B, 1, H) per step, once made
        gate_grad_h, z_rows = coef[..., : 3 * H].unbind(0), z.unbind(0)
        for j in block.slots.backward_steps():
            dh = bw.at(j)
            torch.mul(by_dh[j], dh.unsqueeze(1), out=by_dh[j])  # dP_z, dP_n
            torch.mul(by_dp_n[j], dp_n[j], out=by_dp_n[j])  # dP_hn, dP_r
            bw.hand_back(gate_grad_h[j], dh, z_rows[j])
