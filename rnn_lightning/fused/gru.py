"""Fused GRU kernel: one in-place matmul and four cheap pointwise ops per step.

Internal coordinates:

* the state is carried as ``u = (h + 1) / 2``; since ``h_t = (1 - z) n + z h_{t-1}`` is a convex
  combination and ``n = tanh(a) = 2 σ(2a) - 1``, it becomes ``u_t = lerp(s_n, u_{t-1}, z)`` with
  ``s_n = σ(2a)``: no tanh (4-6x slower than sigmoid on CPU), no affine op per step;
* gate columns are ``[hn', r, z, sn]``: the hidden-side candidate term ``hn' = 2 (U_n h + b_hn)``
  (the reset gate multiplies it), r and z, then the candidate pre-activation, which starts as the
  input term ``2 (W_n x + b_in)``. The matmul fills ``hn', r, z`` in place, one sigmoid covers r and z.

All constants from ``h = 2u - 1`` and the doubled candidate fold into ``W', U', b'``. A padded step
gets ``z = 1`` through +inf in its projection, and ``lerp(.., .., 1)`` keeps ``u`` exactly, in the
forward and (``z (1 - z) = 0``, ``1 - z = 0``) in the backward: masking costs no op per step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnn_lightning.cells import RecurrentCell, State
from rnn_lightning.fused.common import Slots
from rnn_lightning.fused.scan import Backward, Forward, Kernel, emit_affine


class GRUKernel(Kernel):
    # Block buffer per step: hn', r, z, sn | u. Backward scratch per step: r, Kr, Kz, Kn, overwritten
    # by dP = [dhn', dr, dz, dsn] (pre-activation gradients).
    gates, saved, coefs = 4, 5, 4
    x_cols = (1, 4)
    h_cols = (0, 3)
    state_cols = (4,)
    grad_scale = 2.0  # h = 2u - 1

    def internal(self, cell: RecurrentCell, state: State) -> tuple[Tensor, Tensor, Tensor, State]:
        H = cell.hidden_size
        w_r, w_z, w_n = cell.weight_ih.split(H)
        u_r, u_z, u_n = cell.weight_hh.split(H)
        bi_r, bi_z, bi_n = cell.bias_ih.split(H)
        bh_r, bh_z, bh_n = cell.bias_hh.split(H)
        w_in = torch.cat([w_r, w_z, 2 * w_n])
        w_hh = torch.cat([4 * u_n, 2 * u_r, 2 * u_z])
        bias = torch.cat([2 * (bh_n - u_n.sum(1)), bi_r + bh_r - u_r.sum(1), bi_z + bh_z - u_z.sum(1), 2 * bi_n])
        (h0,) = state
        return w_in, bias, w_hh, ((h0 + 1) * 0.5,)

    def emit(self, states: Tensor, keep: Tensor | None, out: Tensor) -> None:
        emit_affine(states, keep, out)

    def emit_final(self, finals: list[Tensor]) -> list[Tensor]:
        return [finals[0] * 2 - 1]

    def fill_padding(self, buf: Tensor, padded: Tensor) -> None:
        H = buf.shape[2] // self.saved
        buf[:, :, 2 * H : 3 * H].masked_fill_(padded, float("inf"))  # z = 1

    def forward_block(self, fw: Forward, buf: Tensor, keep: Tensor | None, local: Slots) -> None:
        H = buf.shape[2] // self.saved
        hidden, rz = buf[:, :, : 3 * H].unbind(0), buf[:, :, H : 3 * H].unbind(0)
        hn, r, z, sn, u = (buf[:, :, k * H : (k + 1) * H].unbind(0) for k in range(5))
        uv = local.chain(fw.carry[0], u)
        weight_t, rd, wr = fw.weight_t, local.read, local.write
        for j in local.forward_steps():
            hidden[j].addmm_(uv[j + rd], weight_t)  # hn', r, z pre-activations
            rz[j].sigmoid_()
            torch.addcmul(sn[j], r[j], hn[j], out=sn[j]).sigmoid_()  # s_n = σ(2 a_n)
            torch.lerp(sn[j], uv[j + rd], z[j], out=uv[j + wr])  # u = (1 - z) s_n + z u_prev
        fw.carry = [uv[local.final]]

    def backward_block(
        self,
        bw: Backward,
        buf: Tensor,
        coef: Tensor,
        before: list[Tensor],
        keep: Tensor | None,
        local: Slots,
    ) -> None:
        n, batch, width = buf.shape
        H = width // self.saved
        hn, r, z, sn, u = (buf[..., k * H : (k + 1) * H] for k in range(5))
        c_r, kr, kz, kn = (coef[..., k * H : (k + 1) * H] for k in range(4))
        # [dz, dsn] = du [Kz, Kn] then [dhn', dr] = dsn [r, Kr], with:
        c_r.copy_(r)
        torch.addcmul(r, r, r, value=-1, out=kr).mul_(hn)  # Kr = hn' r (1 - r)
        torch.addcmul(z, z, z, value=-1, out=kn)  # z (1 - z), for a moment
        for rows, prev in local.previous_pieces(u, before[0]):
            torch.sub(prev, sn[rows], out=kz[rows])
        kz.mul_(kn)  # Kz = (u_prev - s_n) z (1 - z)
        torch.addcmul(sn, sn, sn, value=-1, out=kn)
        torch.addcmul(kn, kn, z, value=-1, out=kn)  # Kn = (1 - z) s_n (1 - s_n)

        quarters = coef.view(n, batch, 4, H)
        kzn, rkr, dsn = quarters[:, :, 2:].unbind(0), quarters[:, :, :2].unbind(0), quarters[:, :, 3:].unbind(0)
        dps, zs = coef[..., : 3 * H].unbind(0), z.unbind(0)
        for j in local.backward_steps():
            du = bw.incoming(j)
            torch.mul(kzn[j], du.unsqueeze(1), out=kzn[j])  # (B, 2, H): dz, dsn
            torch.mul(rkr[j], dsn[j], out=rkr[j])  # (B, 2, H): dhn', dr
            bw.dp_next, bw.dh_next, bw.through_next = dps[j], du, zs[j]
