"""Fused LSTM kernel: one in-place gate matmul and seven cheap pointwise ops per step.

Internal coordinates:

* gate blocks are reordered to ``o, i, f, g`` and the g rows are doubled, so ONE sigmoid over all 4H
  columns gives ``s_g = σ(2 g_pre)`` and ``g = tanh(g_pre) = 2 s_g - 1``: ``torch.tanh`` is 4-6x slower
  than ``torch.sigmoid`` on CPU, and a separate tanh would be one more op per step;
* the cell state is carried doubled, ``c2 = 2c``, so that ``tanh(c) = 2 σ(c2) - 1`` needs no ``2c``.

A step: ``[o, i, f, s_g] = σ(x W'^T + b' + h U'^T)``, ``gg = 4 s_g - 2 (= 2g)``, ``c2 = f c2 + i gg``,
``th = 2 σ(c2) - 1 (= tanh c)``, ``h = o th``. Saved per step: o, i, f, gg, c2 (h is the output);
``th`` is recomputed in the backward, which is cheaper than writing and reading it back. On a padded
step ``i = 0`` and ``f = 1`` are forced through ±inf in the projection, which keeps ``c2`` exactly, and
``h`` is kept by a ``lerp`` with weight 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnn_lightning.nn.cells import RecurrentCell, State
from rnn_lightning.nn.fused.common import Slots
from rnn_lightning.nn.fused.scan import Backward, Forward, Kernel


class LSTMKernel(Kernel):
    # Block buffer per step: o, i, f, gg, c2. Backward scratch per step: Ko, Ki, Kf, Kg, f, Kc,
    # overwritten by dPo, dPi, dPf, dPg, dc2 f.
    gates, saved, coefs = 4, 5, 6
    x_cols = h_cols = (0, 4)
    state_cols = (4,)  # c2; h lives in the output

    def internal(self, cell: RecurrentCell, state: State) -> tuple[Tensor, Tensor, Tensor, State]:
        def reorder(p: Tensor) -> Tensor:
            i, f, g, o = p.split(cell.hidden_size)  # torch.nn's block order
            return torch.cat([o, i, f, 2 * g])

        h0, c0 = state
        bias = reorder(cell.bias_ih + cell.bias_hh)
        return reorder(cell.weight_ih), bias, reorder(cell.weight_hh), (h0, 2 * c0)

    def external_final(self, finals: State) -> State:
        h, c2 = finals
        return h, 0.5 * c2

    def fill_padding(self, buf: Tensor, barrier: Tensor) -> None:
        H = buf.shape[2] // self.saved
        buf[:, :, H : 2 * H].add_(barrier)  # i = 0
        buf[:, :, 2 * H : 3 * H].sub_(barrier)  # f = 1

    def forward_block(self, fw: Forward, buf: Tensor, states: Tensor, keep: Tensor | None, local: Slots) -> None:
        H = buf.shape[2] // self.saved
        gates = buf[:, :, : 4 * H].unbind(0)  # (B, 4H) each
        o, i, f, g, c = (buf[:, :, k * H : (k + 1) * H].unbind(0) for k in range(5))
        hv, cv = local.chain(fw.carry[0], states.unbind(0)), local.chain(fw.carry[1], c)
        kv = keep.unbind(0) if keep is not None else None
        th, weight_t = fw.scratch, fw.weight_t
        h_new = torch.empty_like(th) if kv is not None else None
        r, w = local.read, local.write
        minus_two, minus_one = buf.new_full((), -2.0), buf.new_full((), -1.0)
        for j in local.forward_steps():
            gates[j].addmm_(hv[j + r], weight_t).sigmoid_()  # o, i, f, s_g
            torch.add(minus_two, g[j], alpha=4, out=g[j])  # 4 s_g - 2 = 2 tanh(g_pre)
            torch.mul(f[j], cv[j + r], out=c[j]).addcmul_(i[j], g[j])  # c2
            torch.sigmoid(c[j], out=th)
            torch.add(minus_one, th, alpha=2, out=th)  # tanh(c)
            if kv is None:
                torch.mul(o[j], th, out=hv[j + w])
            else:  # weight 0 on a padded step keeps h exactly
                torch.lerp(hv[j + r], torch.mul(o[j], th, out=h_new), kv[j], out=hv[j + w])
        fw.carry = [hv[local.final], cv[local.final]]

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
        n, batch, width = buf.shape
        H = width // self.saved
        o, i, f, gg, c2 = (buf[..., k * H : (k + 1) * H] for k in range(5))
        ko, ki, kf, kg, kff, kc = (coef[..., k * H : (k + 1) * H] for k in range(6))
        # dP = [dh Ko | dc2 Ki | dc2 Kf | dc2 Kg], dc2_t = dc2_{t+1} f_{t+1} + dh Kc / 2, where
        th = torch.sigmoid(c2, out=kc)
        torch.add(buf.new_full((), -1.0), th, alpha=2, out=th)  # tanh(c), for a moment in Kc's place
        sig = buf[..., : 3 * H]
        torch.addcmul(sig, sig, sig, value=-1, out=coef[..., : 3 * H])  # s (1 - s) for o, i, f
        ko.mul_(th)  # Ko = th o (1 - o)
        ki.mul_(gg)  # Ki = gg i (1 - i)
        local.mul_previous(kf, c2, before[1])  # Kf = c2_prev f (1 - f)
        torch.mul(gg, gg, out=kg)
        torch.addcmul(i, i, kg, value=-0.25, out=kg)  # Kg = i (1 - gg² / 4) = i · 4 s_g (1 - s_g)
        kff.copy_(f)  # next to Ki, Kf, Kg: one broadcast multiply by dc2 also gives dc2 f
        th.mul_(th)
        torch.addcmul(o, o, th, value=-1, out=kc)  # 2 Kc = o (1 - th²)
        if keep is not None:  # a padded step: dh passes straight through, the cell gets nothing
            ko.mul_(keep)
            kc.mul_(keep)

        kov, kcv, dps = ko.unbind(0), kc.unbind(0), coef[..., : 4 * H].unbind(0)
        kifgf = coef.view(n, batch, 6, H)[:, :, 1:5].unbind(0)  # (B, 4, H) each
        dcfs = kff.unbind(0)
        pad = (1 - keep).unbind(0) if keep is not None else None
        if "dc" not in bw.extra:
            bw.extra["dc"] = buf.new_empty(batch, 1, H)
            bw.extra["dcf_last"] = buf.new_empty(batch, H)
            final = bw.extra.get("d_final1")
            bw.extra["dcf"] = final if final is not None else buf.new_zeros(batch, H)
        dc, dcf = bw.extra["dc"], bw.extra["dcf"]
        dc2d = dc.view(batch, H)
        for j in local.backward_steps():
            dh = bw.incoming(j)
            torch.addcmul(dcf, dh, kcv[j], value=0.5, out=dc2d)
            torch.mul(dh, kov[j], out=kov[j])
            torch.mul(kifgf[j], dc, out=kifgf[j])  # (B, 4, H) * (B, 1, H): dPi, dPf, dPg, dc2 f
            dcf = dcfs[j]
            bw.dp_next, bw.dh_next = dps[j], dh
            bw.through_next = pad[j] if pad is not None else None
        bw.extra["dcf"] = bw.extra["dcf_last"].copy_(dcf)  # out of the scratch, which the next block reuses

    def initial_grads(self, bw: Backward) -> list[Tensor]:
        return [bw.initial(), bw.extra["dcf"]]
