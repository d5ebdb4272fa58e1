"""The scan engine shared by the fused RNN, LSTM and GRU: time blocks, projections, BPTT bookkeeping.

A ``Kernel`` (one per cell kind, ``kernel.py``) owns the per-step arithmetic in its own *internal coordinates*
(gate order, scalings and state transforms chosen so that each step needs few, cheap ops); this engine owns
everything else. docs/fused.md derives both, with the buffers of each phase.

* forward, block by block: project the inputs of the block's steps in one matmul, bias folded in, straight
  into the block buffer; the kernel adds ``h U'^T`` in place per step (the input term is not copied), applies
  its activations and writes h into the output, which is also the saved state;
* backward (a ``torch.autograd.Function``; no autograd graph inside), block by block in reverse: the kernel
  turns the saved activations into per-step coefficients ``K`` (vectorised over the block) and runs the
  reverse recurrence, writing the gate gradients ``dP`` over them; the engine then accumulates
  ``dU'^T += h_prev^T dP_h``, ``dW'^T += x^T dP_x``, ``db' += sum dP`` and ``dx = dP_x W'``, a few matmuls per
  block, while ``dP`` is still in cache.

Weight reordering, scaling and bias folding happen outside the Function, in differentiable ops on the small
weight tensors, so autograd maps those gradients back; so do the casts of ``precision.py``. Nothing reads a
value back to the host, and constants are made with ``new_full``/``new_ones`` (a fill kernel, where
``new_tensor`` would be a blocking host-to-device copy), so the same code queues asynchronously on CUDA.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnn_lightning.nn.cells import RecurrentCell, State
from rnn_lightning.nn.fused.common import Slots, block_steps, padding_mask
from rnn_lightning.nn.fused.kernel import Backward, Block, Forward, Kernel
from rnn_lightning.nn.fused.precision import Precision, cast, explicit_casts, precision_for

PARAMETERS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _cols(H: int, cols: tuple[int, int]) -> slice:
    return slice(cols[0] * H, cols[1] * H)


def _time_major(x: Tensor, start: int, stop: int) -> Tensor:
    """Steps start..stop-1 of x (B, T, I) as ((stop - start) B, I) rows: a view when x is a time-major
    buffer's transpose (stacked layers), else a copy of one block, never of the whole input."""
    return x[:, start:stop].transpose(0, 1).reshape(-1, x.shape[2])


def _block_size(kernel: Kernel, batch: int, H: int, like: Tensor) -> int:
    return block_steps(batch * max(kernel.saved, kernel.coefs) * H * like.element_size())


def scan_forward(
    kernel: Kernel,
    slots: Slots,
    precision: Precision,
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
    out = w_hh.new_empty(steps, batch, H)
    fw = Forward(u_t=precision.operand(w_hh).t(), precision=precision, carry=list(state0))
    w_in_t = precision.operand(w_in).t()
    size = _block_size(kernel, batch, H, out)
    reused = out.new_empty(size, batch, width) if width and not save else None
    x_sl = _cols(H, kernel.x_cols)
    saved: list[Tensor] = []
    for start, stop in slots.blocks(size):
        n = stop - start
        if not width:
            acts = out[start:stop]
        elif reused is not None:
            # The carried further states (LSTM: c2) point into the reused buffer: keep them.
            fw.carry = fw.carry[:1] + [c.clone() for c in fw.carry[1:]]
            acts = reused[:n]
        else:
            acts = out.new_empty(n, batch, width)
            saved.append(acts)
        flat = acts.view(n * batch, acts.shape[2])
        precision.add_mm(bias[x_sl], _time_major(x, start, stop), w_in_t, out=flat[:, x_sl])
        if x_sl.start > 0:  # leading gate columns with no input part start at their bias
            flat[:, : x_sl.start].copy_(bias[: x_sl.start].expand(n * batch, -1))
        if barrier is not None:
            kernel.fill_padding(acts, barrier[start:stop])
        block_keep = keep[start:stop] if keep is not None else None
        kernel.forward_block(fw, Block(acts, out[start:stop], block_keep, Slots(n, slots.reverse)))
    return out, fw.carry, saved


def _states_before(
    kernel: Kernel,
    bounds: list[tuple[int, int]],
    index: int,
    local: Slots,
    out: Tensor,
    saved: Sequence[Tensor],
    state0: State,
) -> list[Tensor]:
    """Per state component, the (B, H) state that block ``index``'s first step reads: the last row, in forward
    order, of the block the forward visited before it, or the initial state."""
    if index == 0:
        return list(state0)
    start, stop = bounds[index - 1]
    row = local.last_row(stop - start)
    H = out.shape[2]
    return [out[start + row]] + [saved[index - 1][row, :, c * H : (c + 1) * H] for c in kernel.state_cols]


def scan_backward(ctx, d_out: Tensor | None, d_finals: tuple[Tensor | None, ...]) -> tuple[Tensor | None, ...]:
    """The gradients of ``Scan.forward``'s tensor inputs, block by block in reverse."""
    kernel: Kernel = ctx.kernel
    slots: Slots = ctx.slots
    precision: Precision = ctx.precision
    x, w_in, w_hh, keep, out, *rest = ctx.saved_tensors
    state0, saved = rest[: ctx.state_count], rest[ctx.state_count :]
    batch, steps, inputs = x.shape
    H = w_hh.shape[1]
    need_x, need_w_in, need_bias, need_w_hh = ctx.needs_input_grad[3:7]
    d_x = x.new_empty(steps, batch, inputs) if need_x else None
    # Weight gradients accumulate transposed, (in, gates): MKL runs these skinny products ~25% faster with the
    # wide dimension last.
    d_w_in_t = w_in.new_zeros(w_in.shape[1], w_in.shape[0]) if need_w_in else None
    d_bias = w_hh.new_zeros(kernel.gates * H) if need_bias else None
    d_w_hh_t = w_hh.new_zeros(w_hh.shape[1], w_hh.shape[0]) if need_w_hh else None
    x_sl, h_sl, g_sl = _cols(H, kernel.x_cols), _cols(H, kernel.h_cols), _cols(H, (0, kernel.gates))
    w_in_op = precision.operand(w_in)
    bw = Backward.start(precision.operand(w_hh), precision, state0[0], h_sl.stop - h_sl.start, d_finals)

    size = _block_size(kernel, batch, H, out)
    scratch = out.new_empty(size, batch, kernel.coefs * H)
    temps = out.new_empty(size, batch, kernel.temps * H) if kernel.temps else None
    bounds = slots.blocks(size)
    for index in range(len(bounds) - 1, -1, -1):
        start, stop = bounds[index]
        n = stop - start
        local = Slots(n, slots.reverse)
        before = _states_before(kernel, bounds, index, local, out, saved, state0)
        block = Block(
            acts=saved[index] if saved else out[start:stop],
            h=out[start:stop],
            keep=keep[start:stop] if keep is not None else None,
            slots=local,
            before=before,
        )
        coef = scratch[:n]
        bw.d_out = d_out[start:stop].unbind(0) if d_out is not None else None
        kernel.backward_block(bw, block, coef, temps[:n] if temps is not None else None)
        gate_grad = coef.view(n * batch, coef.shape[2])[:, g_sl]  # (n B, gates)
        if d_w_hh_t is not None:
            for rows, h_prev in local.previous_pieces(block.h, before[0]):
                gate_grad_h = coef[rows].reshape(-1, coef.shape[2])[:, h_sl]
                precision.add_mm_(d_w_hh_t, h_prev.reshape(-1, H).t(), gate_grad_h)
        if d_w_in_t is not None:
            precision.add_mm_(d_w_in_t, _time_major(x, start, stop).t(), gate_grad[:, x_sl])
        if d_bias is not None:
            d_bias.add_(gate_grad.sum(0))
        if d_x is not None:
            precision.mm(gate_grad[:, x_sl], w_in_op, out=d_x[start:stop].view(n * batch, inputs))
        bw.leave_scratch()
    d_state0 = kernel.initial_grads(bw)
    d_x = d_x.transpose(0, 1) if d_x is not None else None
    d_w_in = d_w_in_t.t() if d_w_in_t is not None else None
    d_w_hh = d_w_hh_t.t() if d_w_hh_t is not None else None
    return (d_x, d_w_in, d_bias, d_w_hh, None, None, *d_state0)


class Scan(torch.autograd.Function):
    """(kernel, slots, precision, x (B, T, I), W', b', U', keep, barrier, *state0) -> (outputs (T, B, H), *finals)."""

    @staticmethod
    def forward(ctx, kernel, slots, precision, x, w_in, bias, w_hh, keep, barrier, *state0):  # type: ignore[override]
        ctx.set_materialize_grads(False)
        with explicit_casts(precision, x.device.type):
            out, finals, saved = scan_forward(
                kernel, slots, precision, x, w_in, bias, w_hh, keep, barrier, state0, save=True
            )
        ctx.kernel, ctx.slots, ctx.precision, ctx.state_count = kernel, slots, precision, len(state0)
        ctx.device = x.device.type
        ctx.save_for_backward(x, w_in, w_hh, keep, out, *state0, *saved)
        return (out, *(f.clone() for f in finals))

    @staticmethod
    @once_differentiable  # the backward is hand-written: a double backward must fail, not be wrong
    def backward(ctx, d_out, *d_finals):  # type: ignore[override]
        with explicit_casts(ctx.precision, ctx.device):
            return (None, None, None, *scan_backward(ctx, d_out, d_finals))


def run_scan(
    kernel: Kernel, cell: RecurrentCell, x: Tensor, state: State, lengths: Tensor | None, reverse: bool
) -> tuple[Tensor, State]:
    """A direction runner (see ``rnn_lightning.nn.registry.DirectionRunner``) for ``kernel``."""
    precision = precision_for(x, state, cell.weight_ih)
    x = cast(x, precision.product)  # where autocast casts the loop's x, in x @ W.T
    w_in, bias, w_hh = kernel.internal(*(cast(getattr(cell, name), precision.compute) for name in PARAMETERS))
    state0 = kernel.internal_state(tuple(cast(s, precision.compute) for s in state))
    slots = Slots(x.shape[1], reverse)
    padded = padding_mask(lengths, x.shape[1], x)
    keep = barrier = None
    if padded is not None:
        keep = (~padded).to(precision.compute)  # 1 on real steps, 0 on padded ones: lerp weights, output mask
        barrier = w_hh.new_zeros(padded.shape).masked_fill_(padded, float("-inf"))  # see Kernel.fill_padding
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, w_in, bias, w_hh, *state0)):
        out, *finals = Scan.apply(kernel, slots, precision, x, w_in, bias, w_hh, keep, barrier, *state0)
    else:  # inference: one reused block buffer, no graph
        with explicit_casts(precision, x.device.type):
            out, finals, _ = scan_forward(kernel, slots, precision, x, w_in, bias, w_hh, keep, barrier, state0, False)
    if keep is not None:  # outside the scan: inside, padded slots hold the carried state
        # A broadcast multiply by 0/1, forward and backward, is ~7x faster than masked_fill here.
        out = out * keep
    final = tuple(cast(f, precision.result) for f in kernel.external_final(tuple(finals)))
    return cast(out.transpose(0, 1), precision.result), final
