"""LSTM forward and reverse-time backward kernels, one launch each per layer (grid: batch blocks x directions).

Forward, step t, with a_* the pre-activations (x-side part a_x = x W^T + b_ih + b_hh computed before the launch):

    i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)     a_* = a_x,* + h_prev U_*^T
    c = f c_prev + i g        h = o tanh(c)

Saved: i, f, g, o (over a_x in ``gates``), c (``cells``, kept on padded steps), h (the outputs).
Backward, from the last step to the first, with dh and dc flowing back from the later steps:

    dh_t = dh + dy_t            dc_t = dc + dh_t o (1 - tanh²c)
    da_i = dc_t g i (1 - i)     da_f = dc_t c_prev f (1 - f)
    da_g = dc_t i (1 - g²)      da_o = dh_t tanh(c) o (1 - o)
    dh ← Σ_* da_* U_*           dc ← dc_t f           dU_* += da_*^T h_prev      db_hh,* += Σ_rows da_*

On a padded step all da are 0 and dh, dc pass through unchanged. The da overwrite ``gates``, where the
layer turns them into dx, dW_ih and db_ih with one matmul each.
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
    sigmoid,
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
def lstm_forward(
    gates_ptr,  # (B, T, D, 4H): in a_x, out i, f, g, o
    cells_ptr,  # (B, T, D, H): out c
    out_ptr,  # (B, T, D, H): out h, zero on padded steps
    h0_ptr,  # (D, B, H)
    c0_ptr,  # (D, B, H)
    hT_ptr,  # (D, B, H): out, the final h
    cT_ptr,  # (D, B, H): out, the final c
    w_ptr,  # (D, 4H, H): weight_hh = [U_i; U_f; U_g; U_o]
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
    c = tl.load(c0_ptr + at_state, mask=inside, other=0.0).to(acc_t)
    if WEIGHT_ON_CHIP:  # loaded once, held by the program for the whole sequence
        u_i = gate_weight_t(w_ptr, d, 0, 4, H, cols)
        u_f = gate_weight_t(w_ptr, d, 1, 4, H, cols)
        u_g = gate_weight_t(w_ptr, d, 2, 4, H, cols)
        u_o = gate_weight_t(w_ptr, d, 3, 4, H, cols)
    else:
        tile = scratch_tile(scratch_ptr, d, block, blocks, BLOCK_B, HP)
    for s in range(T):
        t = time_of(s, d, T)
        if WEIGHT_ON_CHIP:
            hu_i = matmul(h, u_i, PRECISION)
            hu_f = matmul(h, u_f, PRECISION)
            hu_g = matmul(h, u_g, PRECISION)
            hu_o = matmul(h, u_o, PRECISION)
        else:  # U from L2, KC of its rows at a time
            tl.debug_barrier()  # every thread is done reading the previous step's h
            stage(tile, HP, 0, h, BLOCK_B, HP)
            tl.debug_barrier()  # all of h is written before any thread reads a chunk
            hu_i = tl.zeros((BLOCK_B, HP), acc_t)
            hu_f = tl.zeros((BLOCK_B, HP), acc_t)
            hu_g = tl.zeros((BLOCK_B, HP), acc_t)
            hu_o = tl.zeros((BLOCK_B, HP), acc_t)
            for k0 in range(0, HP, KC):
                h_k = staged_chunk(tile, HP, 0, k0, BLOCK_B, KC)  # (BLOCK_B, KC)
                hu_i = matmul_add(hu_i, h_k, gate_weight_t_chunk(w_ptr, d, 0, 4, H, k0, cols, KC), PRECISION)
                hu_f = matmul_add(hu_f, h_k, gate_weight_t_chunk(w_ptr, d, 1, 4, H, k0, cols, KC), PRECISION)
                hu_g = matmul_add(hu_g, h_k, gate_weight_t_chunk(w_ptr, d, 2, 4, H, k0, cols, KC), PRECISION)
                hu_o = matmul_add(hu_o, h_k, gate_weight_t_chunk(w_ptr, d, 3, 4, H, k0, cols, KC), PRECISION)
        at = step_offsets(rows, cols, t, d, T, D, 4 * H)
        at_h = step_offsets(rows, cols, t, d, T, D, H)
        i = sigmoid(tl.load(gates_ptr + at, mask=inside, other=0.0) + hu_i)
        f = sigmoid(tl.load(gates_ptr + at + H, mask=inside, other=0.0) + hu_f)
        g = tanh(tl.load(gates_ptr + at + 2 * H, mask=inside, other=0.0) + hu_g)
        o = sigmoid(tl.load(gates_ptr + at + 3 * H, mask=inside, other=0.0) + hu_o)
        c_new = f * c + i * g
        h_new = o * tanh(c_new)
        real = (t < length)[:, None]  # (BLOCK_B, 1): a padded step keeps the state
        c = tl.where(real, c_new, c)
        h = tl.where(real, h_new, h)
        tl.store(gates_ptr + at, i, mask=inside)
        tl.store(gates_ptr + at + H, f, mask=inside)
        tl.store(gates_ptr + at + 2 * H, g, mask=inside)
        tl.store(gates_ptr + at + 3 * H, o, mask=inside)
        tl.store(cells_ptr + at_h, c, mask=inside)
        tl.store(out_ptr + at_h, tl.where(real, h_new, 0.0), mask=inside)
    tl.store(hT_ptr + at_state, h, mask=inside)
    tl.store(cT_ptr + at_state, c, mask=inside)


@triton.jit(do_not_specialize=["B", "T"])
def lstm_backward(
    gates_ptr,  # (B, T, D, 4H): in i, f, g, o; out da_i, da_f, da_g, da_o
    cells_ptr,  # (B, T, D, H): c
    out_ptr,  # (B, T, D, H): h, for h_prev
    d_out_ptr,  # (B, T, D, H): dy
    h0_ptr,  # (D, B, H)
    c0_ptr,  # (D, B, H)
    d_hT_ptr,  # (D, B, H)
    d_cT_ptr,  # (D, B, H)
    dh0_ptr,  # (D, B, H): out
    dc0_ptr,  # (D, B, H): out
    w_ptr,  # (D, 4H, H)
    du_ptr,  # (D, P, 4H, H): out, this program's partial dU (zeros in, when accumulated in memory)
    db_ptr,  # (D, P, 4H): out, this program's partial db_hh
    lengths_ptr,  # (B,)
    scratch_ptr,  # (D, P, BLOCK_B, 4 HP): the da staged, when U or dU is not on chip
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
    op_t = w_ptr.dtype.element_ty
    at_state = state_offsets(rows, cols, d, B, H)
    h0 = tl.load(h0_ptr + at_state, mask=inside, other=0.0).to(acc_t)
    c0 = tl.load(c0_ptr + at_state, mask=inside, other=0.0).to(acc_t)
    dh = tl.load(d_hT_ptr + at_state, mask=inside, other=0.0).to(acc_t)  # (BLOCK_B, HP)
    dc = tl.load(d_cT_ptr + at_state, mask=inside, other=0.0).to(acc_t)
    tile = scratch_tile(scratch_ptr, d, block, blocks, BLOCK_B, 4 * HP)
    if WEIGHT_ON_CHIP:
        u_i = gate_weight(w_ptr, d, 0, 4, H, cols)
        u_f = gate_weight(w_ptr, d, 1, 4, H, cols)
        u_g = gate_weight(w_ptr, d, 2, 4, H, cols)
        u_o = gate_weight(w_ptr, d, 3, 4, H, cols)
    if GRAD_ON_CHIP:
        du_i = tl.zeros((HP, HP), acc_t)
        du_f = tl.zeros((HP, HP), acc_t)
        du_g = tl.zeros((HP, HP), acc_t)
        du_o = tl.zeros((HP, HP), acc_t)
    db_i = tl.zeros((HP,), acc_t)
    db_f = tl.zeros((HP,), acc_t)
    db_g = tl.zeros((HP,), acc_t)
    db_o = tl.zeros((HP,), acc_t)
    for s in range(T):
        t = time_of(T - 1 - s, d, T)
        t_prev = t - 1 + 2 * d  # the time whose state step t read
        real = (t < length)[:, None]
        # h_prev and c_prev are the initial state before a sequence's first real step.
        prev_real = ((t_prev >= 0) & (t_prev < T) & (t_prev < length))[:, None]
        at = step_offsets(rows, cols, t, d, T, D, 4 * H)
        at_h = step_offsets(rows, cols, t, d, T, D, H)
        at_prev = step_offsets(rows, cols, t_prev, d, T, D, H)
        i = tl.load(gates_ptr + at, mask=inside, other=0.0)
        f = tl.load(gates_ptr + at + H, mask=inside, other=0.0)
        g = tl.load(gates_ptr + at + 2 * H, mask=inside, other=0.0)
        o = tl.load(gates_ptr + at + 3 * H, mask=inside, other=0.0)
        c = tl.load(cells_ptr + at_h, mask=inside, other=0.0)
        c_prev = tl.where(prev_real, tl.load(cells_ptr + at_prev, mask=inside & prev_real, other=0.0), c0)
        h_prev = tl.where(prev_real, tl.load(out_ptr + at_prev, mask=inside & prev_real, other=0.0).to(acc_t), h0)
        dh_t = dh + tl.load(d_out_ptr + at_h, mask=inside & real, other=0.0).to(acc_t)
        tanh_c = tanh(c)
        dc_t = dc + dh_t * o * (1.0 - tanh_c * tanh_c)
        da_i = tl.where(real, dc_t * g * i * (1.0 - i), 0.0)
        da_f = tl.where(real, dc_t * c_prev * f * (1.0 - f), 0.0)
        da_g = tl.where(real, dc_t * i * (1.0 - g * g), 0.0)
        da_o = tl.where(real, dh_t * tanh_c * o * (1.0 - o), 0.0)
        tl.store(gates_ptr + at, da_i, mask=inside)
        tl.store(gates_ptr + at + H, da_f, mask=inside)
        tl.store(gates_ptr + at + 2 * H, da_g, mask=inside)
        tl.store(gates_ptr + at + 3 * H, da_o, mask=inside)
        if not WEIGHT_ON_CHIP or not GRAD_ON_CHIP:
            tl.debug_barrier()  # every thread is done with the previous step's tile (and its partial dU)
            stage(tile, 4 * HP, 0, da_i, BLOCK_B, HP)
            stage(tile, 4 * HP, HP, da_f, BLOCK_B, HP)
            stage(tile, 4 * HP, 2 * HP, da_g, BLOCK_B, HP)
            stage(tile, 4 * HP, 3 * HP, da_o, BLOCK_B, HP)
            tl.debug_barrier()  # all the da are written before any thread reads a chunk
        if WEIGHT_ON_CHIP:
            dh_prev = matmul(da_i, u_i, PRECISION) + matmul(da_f, u_f, PRECISION)
            dh_prev += matmul(da_g, u_g, PRECISION) + matmul(da_o, u_o, PRECISION)
        else:  # U from L2, KC of its rows at a time
            dh_prev = tl.zeros((BLOCK_B, HP), acc_t)
            for j0 in range(0, HP, KC):
                for gate in tl.static_range(4):
                    da_j = staged_chunk(tile, 4 * HP, gate * HP, j0, BLOCK_B, KC)  # (BLOCK_B, KC)
                    dh_prev = matmul_add(
                        dh_prev, da_j, gate_weight_chunk(w_ptr, d, gate, 4, H, j0, cols, KC), PRECISION
                    )
        dh = tl.where(real, dh_prev, dh_t)  # on a padded step dh_t is dh: it passes through
        dc = tl.where(real, dc_t * f, dc)
        h_op = h_prev.to(op_t)
        if GRAD_ON_CHIP:
            du_i = accumulate(du_i, da_i, h_op, PRECISION)
            du_f = accumulate(du_f, da_f, h_op, PRECISION)
            du_g = accumulate(du_g, da_g, h_op, PRECISION)
            du_o = accumulate(du_o, da_o, h_op, PRECISION)
        else:
            for gate in tl.static_range(4):
                accumulate_in_memory(
                    du_ptr, d, block, blocks, gate, 4, H, cols, tile, 4 * HP, h_op, BLOCK_B, HP, KC, PRECISION
                )
        db_i += tl.sum(da_i, axis=0)
        db_f += tl.sum(da_f, axis=0)
        db_g += tl.sum(da_g, axis=0)
        db_o += tl.sum(da_o, axis=0)
    tl.store(dh0_ptr + at_state, dh, mask=inside)
    tl.store(dc0_ptr + at_state, dc, mask=inside)
    if GRAD_ON_CHIP:
        store_partial(du_ptr, d, block, blocks, 0, 4, H, cols, du_i)
        store_partial(du_ptr, d, block, blocks, 1, 4, H, cols, du_f)
        store_partial(du_ptr, d, block, blocks, 2, 4, H, cols, du_g)
        store_partial(du_ptr, d, block, blocks, 3, 4, H, cols, du_o)
    store_bias_partial(db_ptr, d, block, blocks, 0, 4, H, cols, db_i)
    store_bias_partial(db_ptr, d, block, blocks, 1, 4, H, cols, db_f)
    store_bias_partial(db_ptr, d, block, blocks, 2, 4, H, cols, db_g)
    store_bias_partial(db_ptr, d, block, blocks, 3, 4, H, cols, db_o)
