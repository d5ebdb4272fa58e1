"""Elman RNN forward and reverse-time backward kernels, one launch each per layer (grid: batch blocks x directions).

Forward, step t, with the x-side part a_x = x W^T + b_ih + b_hh computed before the launch:

    h = tanh(a_x + h_prev U^T)

Saved: h (over a_x in ``gates``, at full precision; the outputs may be 16-bit). Backward, last step first:

    dh_t = dh + dy_t     da = dh_t (1 - h²)     dh ← da U     dU += da^T h_prev     db_hh += Σ_rows da

On a padded step da = 0 and dh passes through. The da overwrite ``gates`` for dx, dW_ih and db_ih.
"""

from __future__ import annotations

import triton
import triton.language as tl

from rnn_lightning.nn.triton.common import (
    accumulate,
    accumulate_in_memory,
    gate_weight,
    gate_weight_chunk,
    gate_weight_t,
    gate_weight_t_chunk,
    load_lengths,
    matmul,
    matmul_add,
    scratch_tile,
    stage,
    staged_chunk,
    state_offsets,
    step_offsets,
    store_bias_partial,
    store_partial,
    tanh,
    time_of,
)


@triton.jit(do_not_specialize=["B", "T"])
def rnn_forward(
    gates_ptr,  # (B, T, D, H): in a_x, out h
    extra_ptr,  # unused: an RNN saves nothing else
    out_ptr,  # (B, T, D, H): out h, zero on padded steps
    h0_ptr,  # (D, B, H)
    c0_ptr,  # unused
    hT_ptr,  # (D, B, H): out, the final h
    cT_ptr,  # unused
    w_ptr,  # (D, H, H): weight_hh = U
    b_ptr,  # unused: both biases are in a_x
    lengths_ptr,  # (B,)
    scratch_ptr,  # (D, P, BLOCK_B, HP): h staged for the chunked products (U in L2)
    B,
    T,
    H,
    D,
    BLOCK_B: tl.constexpr,
    HP: tl.constexpr,
    KC: tl.constexpr,
    WEIGHT_ON_CHIP: tl.constexpr,
    HAS_LENGTHS: tl.constexpr,
    PRECISION: tl.constexpr,
):
    block, d, blocks = tl.program_id(0), tl.program_id(1), tl.num_programs(0)
    rows = block * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, HP)
    inside = (rows < B)[:, None] & (cols < H)[None, :]  # (BLOCK_B, HP)
    length = load_lengths(lengths_ptr, rows, B, T, HAS_LENGTHS)
    acc_t = gates_ptr.dtype.element_ty
    at_state = state_offsets(rows, cols, d, B, H)
    h = tl.load(h0_ptr + at_state, mask=inside, other=0.0).to(acc_t)  # (BLOCK_B, HP)
    if WEIGHT_ON_CHIP:  # loaded once, held by the program for the whole sequence
        u = gate_weight_t(w_ptr, d, 0, 1, H, cols)
    else:
        tile = scratch_tile(scratch_ptr, d, block, blocks, BLOCK_B, HP)
    for s in range(T):
        t = time_of(s, d, T)
        if WEIGHT_ON_CHIP:
            hu = matmul(h, u, PRECISION)
        else:  # U from L2, KC of its rows at a time
            tl.debug_barrier()  # every thread is done reading the previous step's h
            stage(tile, HP, 0, h, BLOCK_B, HP)
            tl.debug_barrier()  # all of h is written before any thread reads a chunk
            hu = tl.zeros((BLOCK_B, HP), acc_t)
            for k0 in range(0, HP, KC):
                h_k = staged_chunk(tile, HP, 0, k0, BLOCK_B, KC)  # (BLOCK_B, KC)
                hu = matmul_add(hu, h_k, gate_weight_t_chunk(w_ptr, d, 0, 1, H, k0, cols, KC), PRECISION)
        at = step_offsets(rows, cols, t, d, T, D, H)
        h_new = tanh(tl.load(gates_ptr + at, mask=inside, other=0.0) + hu)
        real = (t < length)[:, None]  # (BLOCK_B, 1): a padded step keeps the state
        h = tl.where(real, h_new, h)
        tl.store(gates_ptr + at, h_new, mask=inside)
        tl.store(out_ptr + at, tl.where(real, h_new, 0.0), mask=inside)
    tl.store(hT_ptr + at_state, h, mask=inside)


@triton.jit(do_not_specialize=["B", "T"])
def rnn_backward(
    gates_ptr,  # (B, T, D, H): in h, out da
    extra_ptr,  # unused
    out_ptr,  # (B, T, D, H): h, for h_prev
    d_out_ptr,  # (B, T, D, H): dy
    h0_ptr,  # (D, B, H)
    c0_ptr,  # unused
    d_hT_ptr,  # (D, B, H)
    d_cT_ptr,  # unused
    dh0_ptr,  # (D, B, H): out
    dc0_ptr,  # unused
    w_ptr,  # (D, H, H)
    du_ptr,  # (D, P, H, H): out, this program's partial dU (zeros in, when accumulated in memory)
    db_ptr,  # (D, P, H): out, this program's partial db_hh
    lengths_ptr,  # (B,)
    scratch_ptr,  # (D, P, BLOCK_B, HP): da staged, when U or dU is not on chip
    B,
    T,
    H,
    D,
    BLOCK_B: tl.constexpr,
    HP: tl.constexpr,
    KC: tl.constexpr,
    WEIGHT_ON_CHIP: tl.constexpr,
    GRAD_ON_CHIP: tl.constexpr,
    HAS_LENGTHS: tl.constexpr,
    PRECISION: tl.constexpr,
):
    block, d, blocks = tl.program_id(0), tl.program_id(1), tl.num_programs(0)
    rows = block * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, HP)
    inside = (rows < B)[:, None] & (cols < H)[None, :]
    length = load_lengths(lengths_ptr, rows, B, T, HAS_LENGTHS)
    acc_t = gates_ptr.dtype.element_ty
    at_state = state_offsets(rows, cols, d, B, H)
    h0 = tl.load(h0_ptr + at_state, mask=inside, other=0.0).to(acc_t)
    dh = tl.load(d_hT_ptr + at_state, mask=inside, other=0.0).to(acc_t)  # (BLOCK_B, HP)
    tile = scratch_tile(scratch_ptr, d, block, blocks, BLOCK_B, HP)
    if WEIGHT_ON_CHIP:
        u = gate_weight(w_ptr, d, 0, 1, H, cols)
    if GRAD_ON_CHIP:
        du = tl.zeros((HP, HP), acc_t)
    db = tl.zeros((HP,), acc_t)
    for s in range(T):
        t = time_of(T - 1 - s, d, T)
        t_prev = t - 1 + 2 * d  # the time whose state step t read
        real = (t < length)[:, None]
        # h_prev is the initial state before a sequence's first real step.
        prev_real = ((t_prev >= 0) & (t_prev < T) & (t_prev < length))[:, None]
        at = step_offsets(rows, cols, t, d, T, D, H)
        at_prev = step_offsets(rows, cols, t_prev, d, T, D, H)
        h = tl.load(gates_ptr + at, mask=inside, other=0.0)
        h_prev = tl.where(prev_real, tl.load(out_ptr + at_prev, mask=inside & prev_real, other=0.0).to(acc_t), h0)
        dh_t = dh + tl.load(d_out_ptr + at, mask=inside & real, other=0.0).to(acc_t)
        da = tl.where(real, dh_t * (1.0 - h * h), 0.0)
        tl.store(gates_ptr + at, da, mask=inside)
        if not WEIGHT_ON_CHIP or not GRAD_ON_CHIP:
            tl.debug_barrier()  # every thread is done with the previous step's tile (and its partial dU)
            stage(tile, HP, 0, da, BLOCK_B, HP)
            tl.debug_barrier()  # all of da is written before any thread reads a chunk
        if WEIGHT_ON_CHIP:
            dh_prev = matmul(da, u, PRECISION)
        else:  # U from L2, KC of its rows at a time
            dh_prev = tl.zeros((BLOCK_B, HP), acc_t)
            for j0 in range(0, HP, KC):
                da_j = staged_chunk(tile, HP, 0, j0, BLOCK_B, KC)  # (BLOCK_B, KC)
                dh_prev = matmul_add(dh_prev, da_j, gate_weight_chunk(w_ptr, d, 0, 1, H, j0, cols, KC), PRECISION)
        dh = tl.where(real, dh_prev, dh_t)  # on a padded step dh_t is dh: it passes through
        h_op = h_prev.to(w_ptr.dtype.element_ty)
        if GRAD_ON_CHIP:
            du = accumulate(du, da, h_op, PRECISION)
        else:
            accumulate_in_memory(du_ptr, d, block, blocks, 0, 1, H, cols, tile, HP, h_op, BLOCK_B, HP, KC, PRECISION)
        db += tl.sum(da, axis=0)
    tl.store(dh0_ptr + at_state, dh, mask=inside)
    if GRAD_ON_CHIP:
        store_partial(du_ptr, d, block, blocks, 0, 1, H, cols, du)
    store_bias_partial(db_ptr, d, block, blocks, 0, 1, H, cols, db)
