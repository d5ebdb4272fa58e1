"""The scan engine shared by the fused RNN, LSTM and GRU: time blocks, projections, BPTT bookkeeping.

A ``Kernel`` (one per cell kind) owns the per-step arithmetic in its own *internal coordinates* (gate
order, scalings and state transforms chosen so that each step needs few, cheap ops); this engine owns
everything else:

* forward, block by block: project the inputs of the block's steps in one matmul, bias folded in,
  straight into the block's buffer; the kernel adds ``h @ U'^T`` in place per step (``addmm_``: the
  input term is not copied), applies its activations and writes h into the output, which is also the
  saved state. Everything else saved lives in block buffers of about ``BLOCK_BYTES`` (``common.py``
  says why);
* backward (a ``torch.autograd.Function``; no autograd graph inside), block by block in reverse: the
  kernel turns the saved activations into per-step coefficients (vectorised over the block), runs the
  reverse recurrence writing the gate gradients ``dP`` over them, and the engine accumulates
  ``dU' += dP_h^T h_prev``, ``dW' += dP_x^T x``, ``db' += sum dP`` and ``dx = dP_x W'``, a few matmuls
  per block, while ``dP`` is still in cache.

Weight reordering, scaling and bias folding happen outside the Function, in differentiable ops on
the small weight tensors, so autograd maps those gradients back. Nothing in the loops reads a value
back to the host, and constants are made with ``new_full`` (a fill kernel, where ``new_tensor`` would
be a blocking host-to-device copy), so the same code queues asynchronously on CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnn_lightning.nn.cells import RecurrentCell, State
from rnn_lightning.nn.fused.common import Slots, block_steps, padding_mask


@dataclass
class Forward:
    """What a kernel's forward block needs besides its buffer."""

    weight_t: Tensor  # U'^T (H, h columns)
    carry: list[Tensor]  # per state component, the (B, H) state the next step reads
    scratch: Tensor  # (B, H)


@dataclass
class Backward:
    """The reverse recurrence's running values, handed from step to step and block to block."""

    weight: Tensor  # U' (h columns, H)
    d_final: Tensor | None  # gradient of the final state's first component
    dh_bufs: tuple[Tensor, Tensor]  # this step's dh and the next one's, alternating
    base: Tensor  # (B, H) scratch
    d_out: tuple[Tensor, ...] | None = None  # the current block's (B, H) output gradients
    dp_next: Tensor | None = None  # h columns of dP of the step after this one (forward order)
    dh_next: Tensor | None = None  # its dh
    through_next: Tensor | None = None  # its d h_next / d h along the direct path; None: zero
    count: int = 0
    extra: dict[str, Tensor] = field(default_factory=dict)  # kernel-specific running values

    def incoming(self, j: int) -> Tensor:
        """dh of step j: d_out_j + through_next dh_next + dP_next U' (plus the final-state gradient
        on the last step in time)."""
        into = self.d_out[j] if self.d_out is not None else None
        self.count += 1
        if self.dp_next is None:  # the last step in time: only the final-state gradient follows it
            if into is None:
                return self.d_final if self.d_final is not None else self.base.zero_()
            if self.d_final is None:
                return into
            return torch.add(into, self.d_final, out=self.base)
        if self.through_next is not None:
            if into is None:
                into = torch.mul(self.dh_next, self.through_next, out=self.base)
            else:
                into = torch.addcmul(into, self.dh_next, self.through_next, out=self.base)
        dh = self.dh_bufs[self.count % 2]
        if into is None:
            return torch.mm(self.dp_next, self.weight, out=dh)
        return torch.addmm(into, self.dp_next, self.weight, out=dh)

    def initial(self) -> Tensor:
        """Gradient of the initial state's first component (once every step is done)."""
        assert self.dp_next is not None and self.dh_next is not None
        d = torch.mm(self.dp_next, self.weight)
        if self.through_next is not None:
            d.addcmul_(self.dh_next, self.through_next)
        return d


class Kernel:
    """One cell kind in internal coordinates. Widths are counted in blocks of H columns."""

    gates: int  # gate columns per step, at the start of the block buffer
    saved: int  # columns of the block buffer per step; 0: the gates are computed in the output (RNN)
    coefs: int  # columns of backward scratch per step, the gate gradients dP in its first ``gates``
    x_cols: tuple[int, int]  # gate columns fed by the input projection
    h_cols: tuple[int, int]  # gate columns fed by h @ U'^T
    state_cols: tuple[int, ...] = ()  # block columns of the state components after h (LSTM: c2)

    def internal(self, cell: RecurrentCell, state: State) -> tuple[Tensor, Tensor, Tensor, State]:
        """(W' (x cols, I), b' (gates,), U' (h cols, H), internal initial state)."""
        raise NotImplementedError

    def external_final(self, finals: State) -> State:
        """Returned final state -> torch.nn's, in differentiable ops."""
        return finals

    def fill_padding(self, buf: Tensor, barrier: Tensor) -> None:
        """Make the padded steps of a projected block keep the state, if the gates can; otherwise the
        kernel masks in its forward block. ``barrier`` (n, B, 1) is -inf on padded steps and 0 elsewhere:
        adding it to a gate column (or subtracting it) drives that gate to 0 (or 1) on padded steps and
        leaves the others exactly as they were. A broadcast add is ~10x faster here than a masked fill of
        the same strided columns."""

    def forward_block(self, fw: Forward, buf: Tensor, states: Tensor, keep: Tensor | None, local: Slots) -> None:
        """Run one block's steps; ``states`` (n, B, H), the block's slice of the output, receives h."""
        raise NotImplementedError

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
        """Fill ``coef[..., :gates]`` with dP for one block's steps, updating ``bw``; ``states`` is the
        block's h, ``before`` per state component the (B, H) state written just before the block
        (``Slots.previous_pieces``). Values handed to the next block must not point into ``coef``."""
        raise NotImplementedError

    def initial_grads(self, bw: Backward) -> list[Tensor]:
        return [bw.initial()]


def _cols(H: int, cols: tuple[int, int]) -> slice:
    return slice(cols[0] * H, cols[1] * H)


def _time_major(x: Tensor, start: int, stop: int) -> Tensor:
    """Steps start..stop-1 of x (B, T, I) as ((stop - start) B, I) rows: a view when x is a time-major
    buffer's transpose (stacked layers), else a copy of one block, never of the whole input."""
    return x[:, start:stop].transpose(0, 1).reshape(-1, x.shape[2])


def _block_size(kernel: Kernel, batch: int, H: int, x: Tensor) -> int:
    return block_steps(batch * max(kernel.saved, kernel.coefs) * H * x.element_size())


def scan_forward(
    kernel: Kernel,
    slots: Slots,
    x: Tensor,
    w_in: Tensor,
    bias: Tensor,
    w_hh: Tensor,
    keep: Tensor | None,
    barrier: Tensor | None,
    state0: State,
    save: bool,
) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """x (B, T, I) -> (outputs (T, B, H), final states, saved block buffers); ``keep`` and ``barrier`` (T, B, 1)
    describe the padded steps (see ``run_scan``), None without lengths."""
    batch, steps, _ = x.shape
    H = w_hh.shape[1]
    width = kernel.saved * H
    out = x.new_empty(steps, batch, H)
    fw = Forward(weight_t=w_hh.t(), carry=list(state0), scratch=x.new_empty(batch, H))
    size = _block_size(kernel, batch, H, x)
    reused = x.new_empty(size, batch, width) if width and not save else None
    x_sl = _cols(H, kernel.x_cols)
    blocks: list[Tensor] = []
    for start, stop in slots.blocks(size):
        n = stop - start
        if not width:
            buf = out[start:stop]
        elif reused is not None:
            # The carried further states (LSTM: c2) point into the reused buffer: keep them.
            fw.carry = fw.carry[:1] + [c.clone() for c in fw.carry[1:]]
            buf = reused[:n]
        else:
            buf = x.new_empty(n, batch, width)
            blocks.append(buf)
        flat = buf.view(n * batch, buf.shape[2])
        torch.addmm(bias[x_sl], _time_major(x, start, stop), w_in.t(), out=flat[:, x_sl])
        if x_sl.start > 0:  # leading gate columns with no input part start at their bias
            flat[:, : x_sl.start].copy_(bias[: x_sl.start].expand(n * batch, -1))
        if barrier is not None:
            kernel.fill_padding(buf, barrier[start:stop])
        block_keep = keep[start:stop] if keep is not None else None
        kernel.forward_block(fw, buf, out[start:stop], block_keep, Slots(n, slots.reverse))
    return out, fw.carry, blocks


class Scan(torch.autograd.Function):
    """(kernel, slots, x (B, T, I), W', b', U', keep, barrier, *state0) -> (outputs (T, B, H), *final states)."""

    @staticmethod
    def forward(ctx, kernel, slots, x, w_in, bias, w_hh, keep, barrier, *state0):  # type: ignore[override]
        ctx.set_materialize_grads(False)
        out, finals, blocks = scan_forward(kernel, slots, x, w_in, bias, w_hh, keep, barrier, state0, True)
        ctx.kernel, ctx.slots, ctx.state_count = kernel, slots, len(state0)
        ctx.save_for_backward(x, w_in, w_hh, keep, out, *state0, *blocks)
        return (out, *(f.clone() for f in finals))

    @staticmethod
    @once_differentiable  # the backward is hand-written: a double backward must fail, not be wrong
    def backward(ctx, d_out, *d_finals):  # type: ignore[override]
        kernel: Kernel = ctx.kernel
        slots: Slots = ctx.slots
        x, w_in, w_hh, keep, out, *rest = ctx.saved_tensors
        state0, blocks = rest[: ctx.state_count], rest[ctx.state_count :]
        batch, steps, inputs = x.shape
        H = w_hh.shape[1]
        need = ctx.needs_input_grad
        d_x = x.new_empty(steps, batch, inputs) if need[2] else None
        # Weight gradients accumulate transposed, (in, gates): MKL runs these skinny products ~25% faster
        # with the wide dimension last.
        d_w_in = w_in.new_zeros(w_in.shape[1], w_in.shape[0]) if need[3] else None
        d_bias = x.new_zeros(kernel.gates * H) if need[4] else None
        d_w_hh = w_hh.new_zeros(w_hh.shape[1], w_hh.shape[0]) if need[5] else None
        bw = Backward(
            weight=w_hh,
            d_final=d_finals[0],
            dh_bufs=(x.new_empty(batch, H), x.new_empty(batch, H)),
            base=x.new_empty(batch, H),
        )
        for k, d in enumerate(d_finals[1:], start=1):
            if d is not None:
                bw.extra[f"d_final{k}"] = d

        size = _block_size(kernel, batch, H, x)
        scratch = x.new_empty(size, batch, kernel.coefs * H)
        x_sl, h_sl, g_sl = _cols(H, kernel.x_cols), _cols(H, kernel.h_cols), _cols(H, (0, kernel.gates))
        dp_last = x.new_empty(batch, h_sl.stop - h_sl.start)  # dP of a block's last step, for the next
        bounds = slots.blocks(size)
        for index in range(len(bounds) - 1, -1, -1):
            start, stop = bounds[index]
            n = stop - start
            states, coef = out[start:stop], scratch[:n]
            buf = blocks[index] if blocks else states
            local = Slots(n, slots.reverse)
            if index > 0:  # the states written just before this block end the block visited next
                a, b = bounds[index - 1]
                row = local.last_row(b - a)
                before = [out[a + row]] + [blocks[index - 1][row, :, c * H : (c + 1) * H] for c in kernel.state_cols]
            else:
                before = list(state0)
            block_keep = keep[start:stop] if keep is not None else None
            bw.d_out = d_out[start:stop].unbind(0) if d_out is not None else None
            kernel.backward_block(bw, buf, states, coef, before, block_keep, local)
            dp = coef.view(n * batch, coef.shape[2])[:, g_sl]  # (n B, gates)
            if d_w_hh is not None:
                for rows, prev in local.previous_pieces(states, before[0]):
                    dp_rows = coef[rows].reshape(-1, coef.shape[2])[:, h_sl]
                    d_w_hh.addmm_(prev.reshape(-1, H).t(), dp_rows)
            if d_w_in is not None:
                d_w_in.addmm_(_time_major(x, start, stop).t(), dp[:, x_sl])
            if d_bias is not None:
                d_bias.add_(dp.sum(0))
            if d_x is not None:
                out_x = d_x[start:stop].view(n * batch, inputs)
                torch.mm(dp[:, x_sl], w_in, out=out_x)
            bw.dp_next = dp_last.copy_(bw.dp_next)  # the scratch is about to be overwritten
        d_state0 = kernel.initial_grads(bw)
        d_x_out = d_x.transpose(0, 1) if d_x is not None else None
        d_w_in = d_w_in.t() if d_w_in is not None else None
        d_w_hh = d_w_hh.t() if d_w_hh is not None else None
        return (None, None, d_x_out, d_w_in, d_bias, d_w_hh, None, None, *d_state0)


def run_scan(
    kernel: Kernel, cell: RecurrentCell, x: Tensor, state: State, lengths: Tensor | None, reverse: bool
) -> tuple[Tensor, State]:
    """A direction runner (see ``rnn_lightning.nn.layer.DirectionRunner``) for ``kernel``."""
    slots = Slots(x.shape[1], reverse)
    w_in, bias, w_hh, state0 = kernel.internal(cell, state)
    padded = padding_mask(lengths, x.shape[1], x)
    keep = barrier = None
    if padded is not None:
        keep = (~padded).to(x.dtype)  # 1 on real steps, 0 on padded ones: lerp weights, output and gradient mask
        barrier = x.new_zeros(padded.shape).masked_fill_(padded, float("-inf"))  # see Kernel.fill_padding
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, w_in, bias, w_hh, *state0)):
        out, *finals = Scan.apply(kernel, slots, x, w_in, bias, w_hh, keep, barrier, *state0)
    else:  # inference: one reused block buffer, no graph
        out, finals, _ = scan_forward(kernel, slots, x, w_in, bias, w_hh, keep, barrier, state0, False)
    if keep is not None:  # outside the scan: inside, padded slots hold the carried state
        # A broadcast multiply by 0/1, forward and backward, is ~7x faster than masked_fill here.
        out = out * keep
    return out.transpose(0, 1), kernel.external_final(tuple(finals))
