"""Fused GRU kernel: one in-place matmul and five cheap pointwise ops per step.

Gate columns are ``[hn', r, z, n]``: the hidden-side candidate term ``hn' = 2 (U_n h + b_hn)`` (the
reset gate multiplies it), r and z, then the candidate, which starts as its input term
``2 (W_n x + b_in)``. The matmul fills ``hn', r, z`` in place and one sigmoid covers r and z. The
candidate ``n = tanh(a)`` is computed as ``2 σ(2a) - 1`` (the factor 2 is folded into the weights):
``torch.tanh`` is 4-6x slower than ``torch.sigmoid`` on CPU. Then ``h = lerp(n, h_prev, z)``
(``= (1 - z) n + z h_prev``), straight into the output.

A padded step gets ``z = 1`` through +inf in its projection, and ``lerp(.., .., 1)`` keeps h exactly,
in the forward and (``z (1 - z) = 0``, ``1 - z = 0``) in the backward: masking costs no op per step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnn_lightning.nn.cells import RecurrentCell, State
from rnn_lightning.nn.fused.common import Slots
from rnn_lightning.nn.fused.scan import Backward, Forward, Kernel


class GRUKernel(Kernel):
    # Block buffer per step: hn', r, z, n (h lives in the output). Backward scratch per step:
    # r, Kr, Kz, Kn, overwritten by dP = [dhn', dr, dz, dsn] (pre-activation gradients).
    gates, saved, coefs = 4, 4, 4
    x_cols = (1, 4)
    h_cols = (0, 3)

    def internal(self, cell: RecurrentCell, state: State) -> tuple[Tensor, Tensor, Tensor, State]:
        H = cell.hidden_size
        w_r, w_z, w_n = cell.weight_ih.split(H)
        u_r, u_z, u_n = cell.weight_hh.split(H)
        bi_r, bi_z, bi_n = cell.bias_ih.split(H)
        bh_r, bh_z, bh_n = cell.bias_hh.split(H)
        w_in = torch.cat([w_r, w_z, 2 * w_n])
        w_hh = torch.cat([2 * u_n, u_r, u_z])
        bias = torch.cat([2 * bh_n, bi_r + bh_r, bi_z + bh_z, 2 * bi_n])
        return w_in, bias, w_hh, state

    def fill_padding(self, buf: Tensor, barrier: Tensor) -> None:
        H = buf.shape[2] // self.saved
        buf[:, :, 2 * H : 3 * H].sub_(barrier)  # z = 1

    def forward_block(self, fw: Forward, buf: Tensor, states: Tensor, keep: Tensor | None, local: Slots) -> None:
        H = buf.shape[2] // self.saved
        hidden, rz = buf[:, :, : 3 * H].unbind(0), buf[:, :, H : 3 * H].unbind(0)
        hn, r, z, n = (buf[:, :, k * H : (k + 1) * H].unbind(0) for k in range(4))
        hv = local.chain(fw.carry[0], states.unbind(0))
        weight_t, rd, wr = fw.weight_t, local.read, local.write
        minus_one = buf.new_full((), -1.0)
        for j in local.forward_steps():
            hidden[j].addmm_(hv[j + rd], weight_t)  # hn', r, z pre-activations
            rz[j].sigmoid_()
            torch.addcmul(n[j], r[j], hn[j], out=n[j]).sigmoid_()  # σ(2 a_n)
            torch.add(minus_one, n[j], alpha=2, out=n[j])  # n = tanh(a_n)
            torch.lerp(n[j], hv[j + rd], z[j], out=hv[j + wr])  # h = (1 - z) n + z h_prev
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
        steps, batch, width = buf.shape
        H = width // self.saved
        hn, r, z, n = (buf[..., k * H : (k + 1) * H] for k in range(4))
        c_r, kr, kz, kn = (coef[..., k * H : (k + 1) * H] for k in range(4))
        # [dz, dsn] = dh [Kz, Kn] then [dhn', dr] = dsn [r, Kr], with:
        torch.addcmul(r, r, r, value=-1, out=kr).mul_(hn)  # Kr = hn' r (1 - r)
        torch.addcmul(z, z, z, value=-1, out=kn)  # z (1 - z), for a moment
        for rows, prev in local.previous_pieces(states, before[0]):
            torch.sub(prev, n[rows], out=kz[rows])
        kz.mul_(kn)  # Kz = (h_prev - n) z (1 - z)
        half_one_minus_z = torch.add(buf.new_full((), 0.5), z, alpha=-0.5, out=c_r)  # for a moment
        torch.mul(n, n, out=kn)
        torch.addcmul(half_one_minus_z, half_one_minus_z, kn, value=-1, out=kn)  # Kn = (1 - z)(1 - n²) / 2
        c_r.copy_(r)

        quarters = coef.view(steps, batch, 4, H)
        kzn, rkr, dsn = quarters[:, :, 2:].unbind(0), quarters[:, :, :2].unbind(0), quarters[:, :, 3:].unbind(0)
        dps, zs = coef[..., : 3 * H].unbind(0), z.unbind(0)
        for j in local.backward_steps():
            dh = bw.incoming(j)
            torch.mul(kzn[j], dh.unsqueeze(1), out=kzn[j])  # (B, 2, H): dz, dsn
            torch.mul(rkr[j], dsn[j], out=rkr[j])  # (B, 2, H): dhn', dr
            bw.dp_next, bw.dh_next, bw.through_next = dps[j], dh, zs[j]
