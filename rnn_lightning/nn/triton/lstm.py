"""LSTM forward and reverse-time backward kernels, one launch each per layer (grid: batch blocks x directions).

Forward, step t, with a_* the pre-activations (x-side part a_x = x W^T + b_ih + b_hh computed before the launch):

    i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)     a_* = a_x,* + h_prev U_*^T
    c = f c_prev + i g        h = o tanh(c)

Saved: i, f, g, o (over a_x in ``gates``), c (``cells``, kept on padded steps), h (the outputs).
Backward, from the last step to the first, with dh and dc flowing back from the later steps:

    dh_t = dh + dy_t            dc_t = dc + dh_t o (1 - tanh²c)
    da_i = dc_t g i (1 - i)     da_f = dc_t c_prev f (1 - f)
    da_g = dc_t i (1 - g²)      da_o = dh_t tanh(c) o (1 - o)
    dh ← Σ_* da_* U_*           dc ← dc_t f

On a padded step all da are 0 and dh, dc pass through unchanged. The da overwrite ``gates``, where the
layer turns them into dx, dW_ih, db_ih and dW_hh = da^T h_prev, db_hh with one matmul or sum each: the time
loop holds only what the next step needs. Each step issues its loads for the next step first (the input
projection forward; the gates, c and dy backward), so that their latency passes during this step's products.
"""

from __future__ import annotations

import triton
import triton.language as tl

from rnn_lightning.nn.triton.common import (
    backward_step,
    gate_weight,
    gate_weight_chunk,
    gate_weight_t,
    gate_weight_t_chunk,
    load_lengths,
    load_real_step,
    load_state,
    load_step,
    matmul,
    matmul_add,
    program_tile,
    scratch_tile,
    sigmoid,
    stage,
    stage_operand,
    staged_chunk,
    state_offsets,
    state_read,
    step_offsets,
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
    d, rows, cols, inside = program_tile(B, H, BLOCK_B, HP)
    length = load_lengths(lengths_ptr, rows, B, T, HAS_LENGTHS)
    acc_t = gates_ptr.dtype.element_ty
    at_state = state_offsets(rows, cols, d, B, H)
    h = load_state(h0_ptr, at_state, inside, acc_t)  # (BLOCK_B, HP)
    c = load_state(c0_ptr, at_state, inside, acc_t)
    if WEIGHT_ON_CHIP:  # loaded once, held by the program for the whole sequence
        u_i = gate_weight_t(w_ptr, d, 0, 4, H, cols)
        u_f = gate_weight_t(w_ptr, d, 1, 4, H, cols)
        u_g = gate_weight_t(w_ptr, d, 2, 4, H, cols)
        u_o = gate_weight_t(w_ptr, d, 3, 4, H, cols)
    else:
        tile = scratch_tile(scratch_ptr, BLOCK_B, HP)
    t = time_of(0, d, T)
    at = step_offsets(rows, cols, t, d, T, D, 4 * H)
    x_i = load_step(gates_ptr + at, inside, True)  # a_x of the first step; each step then loads the next one's
    x_f = load_step(gates_ptr + at + H, inside, True)
    x_g = load_step(gates_ptr + at + 2 * H, inside, True)
    x_o = load_step(gates_ptr + at + 3 * H, inside, True)
    for s in range(T):
        t = time_of(s, d, T)
        t_next = time_of(s + 1, d, T)
        at_next = step_offsets(rows, cols, t_next, d, T, D, 4 * H)
        has_next = s + 1 < T
        next_i = load_step(gates_ptr + at_next, inside, has_next)  # in flight during this step's products
        next_f = load_step(gates_ptr + at_next + H, inside, has_next)
        next_g = load_step(gates_ptr + at_next + 2 * H, inside, has_next)
        next_o = load_step(gates_ptr + at_next + 3 * H, inside, has_next)
        if WEIGHT_ON_CHIP:
            a_i = matmul_add(x_i, h, u_i, PRECISION)
            a_f = matmul_add(x_f, h, u_f, PRECISION)
            a_g = matmul_add(x_g, h, u_g, PRECISION)
            a_o = matmul_add(x_o, h, u_o, PRECISION)
        else:  # U from L2, KC of its rows at a time
            stage_operand(tile, h, BLOCK_B, HP)
            a_i, a_f, a_g, a_o = x_i, x_f, x_g, x_o
            for k0 in range(0, HP, KC):
                h_k = staged_chunk(tile, HP, 0, k0, BLOCK_B, KC)  # (BLOCK_B, KC)
                a_i = matmul_add(a_i, h_k, gate_weight_t_chunk(w_ptr, d, 0, 4, H, k0, cols, KC), PRECISION)
                a_f = matmul_add(a_f, h_k, gate_weight_t_chunk(w_ptr, d, 1, 4, H, k0, cols, KC), PRECISION)
                a_g = matmul_add(a_g, h_k, gate_weight_t_chunk(w_ptr, d, 2, 4, H, k0, cols, KC), PRECISION)
                a_o = matmul_add(a_o, h_k, gate_weight_t_chunk(w_ptr, d, 3, 4, H, k0, cols, KC), PRECISION)
        i = sigmoid(a_i)
        f = sigmoid(a_f)
        g = tanh(a_g)
        o = sigmoid(a_o)
        c_new = f * c + i * g
        h_new = o * tanh(c_new)
        real = (t < length)[:, None]  # (BLOCK_B, 1): a padded step keeps the state
        c = tl.where(real, c_new, c)
        h = tl.where(real, h_new, h)
        at = step_offsets(rows, cols, t, d, T, D, 4 * H)
        at_h = step_offsets(rows, cols, t, d, T, D, H)
        tl.store(gates_ptr + at, i, mask=inside)
        tl.store(gates_ptr + at + H, f, mask=inside)
        tl.store(gates_ptr + at + 2 * H, g, mask=inside)
        tl.store(gates_ptr + at + 3 * H, o, mask=inside)
        tl.store(cells_ptr + at_h, c, mask=inside)
        tl.store(out_ptr + at_h, tl.where(real, h_new, 0.0), mask=inside)
        x_i, x_f, x_g, x_o = next_i, next_f, next_g, next_o
    tl.store(hT_ptr + at_state, h, mask=inside)
    tl.store(cT_ptr + at_state, c, mask=inside)


@triton.jit(do_not_specialize=["B", "T"])
def lstm_backward(
    gates_ptr,  # (B, T, D, 4H): in i, f, g, o; out da_i, da_f, da_g, da_o
    cells_ptr,  # (B, T, D, H): c
    out_ptr,  # unused: h_prev is needed only for dW_hh, one matmul after the launch
    d_out_ptr,  # (B, T, D, H): dy
    h0_ptr,  # unused
    c0_ptr,  # (D, B, H)
    d_hT_ptr,  # (D, B, H)
    d_cT_ptr,  # (D, B, H)
    dh0_ptr,  # (D, B, H): out
    dc0_ptr,  # (D, B, H): out
    w_ptr,  # (D, 4H, H)
    lengths_ptr,  # (B,)
    scratch_ptr,  # (D, P, BLOCK_B, 4 HP): the da staged, when U is in L2
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
    d, rows, cols, inside = program_tile(B, H, BLOCK_B, HP)
    length = load_lengths(lengths_ptr, rows, B, T, HAS_LENGTHS)
    acc_t = gates_ptr.dtype.element_ty
    at_state = state_offsets(rows, cols, d, B, H)
    c0 = load_state(c0_ptr, at_state, inside, acc_t)
    dh = load_state(d_hT_ptr, at_state, inside, acc_t)  # (BLOCK_B, HP)
    dc = load_state(d_cT_ptr, at_state, inside, acc_t)
    if WEIGHT_ON_CHIP:
        u_i = gate_weight(w_ptr, d, 0, 4, H, cols)
        u_f = gate_weight(w_ptr, d, 1, 4, H, cols)
        u_g = gate_weight(w_ptr, d, 2, 4, H, cols)
        u_o = gate_weight(w_ptr, d, 3, 4, H, cols)
    else:
        tile = scratch_tile(scratch_ptr, BLOCK_B, 4 * HP)
    # What the first step (the last time) reads; each step then loads the next one's (at t_prev) and the c_prev
    # of the one after, and hands on its own c_prev as the next step's c.
    t, t_prev, _, has_next = backward_step(0, d, T, length)
    at = step_offsets(rows, cols, t, d, T, D, 4 * H)
    at_h = step_offsets(rows, cols, t, d, T, D, H)
    i = load_step(gates_ptr + at, inside, True)
    f = load_step(gates_ptr + at + H, inside, True)
    g = load_step(gates_ptr + at + 2 * H, inside, True)
    o = load_step(gates_ptr + at + 3 * H, inside, True)
    c = load_step(cells_ptr + at_h, inside, True)
    dy = load_real_step(d_out_ptr + at_h, inside, t, length, True).to(acc_t)
    c_before = load_step(cells_ptr + step_offsets(rows, cols, t_prev, d, T, D, H), inside, has_next)
    for s in range(T):
        t, t_prev, real, has_next = backward_step(s, d, T, length)
        t_prev2 = t_prev - 1 + 2 * d  # the time whose state the next step reads
        at_next = step_offsets(rows, cols, t_prev, d, T, D, 4 * H)
        at_h_next = step_offsets(rows, cols, t_prev, d, T, D, H)
        next_i = load_step(gates_ptr + at_next, inside, has_next)  # in flight during this step's products
        next_f = load_step(gates_ptr + at_next + H, inside, has_next)
        next_g = load_step(gates_ptr + at_next + 2 * H, inside, has_next)
        next_o = load_step(gates_ptr + at_next + 3 * H, inside, has_next)
        next_dy = load_real_step(d_out_ptr + at_h_next, inside, t_prev, length, has_next).to(acc_t)
        at_h_prev2 = step_offsets(rows, cols, t_prev2, d, T, D, H)
        next_c_before = load_step(cells_ptr + at_h_prev2, inside, (t_prev2 >= 0) & (t_prev2 < T))
        c_prev = state_read(t_prev, has_next, length, c_before, c0)
        dh_t = dh + dy
        tanh_c = tanh(c)
        dc_t = dc + dh_t * o * (1.0 - tanh_c * tanh_c)
        da_i = tl.where(real, dc_t * g * i * (1.0 - i), 0.0)
        da_f = tl.where(real, dc_t * c_prev * f * (1.0 - f), 0.0)
        da_g = tl.where(real, dc_t * i * (1.0 - g * g), 0.0)
        da_o = tl.where(real, dh_t * tanh_c * o * (1.0 - o), 0.0)
        if WEIGHT_ON_CHIP:
            dh_prev = matmul(da_i, u_i, PRECISION)
            dh_prev = matmul_add(dh_prev, da_f, u_f, PRECISION)
            dh_prev = matmul_add(dh_prev, da_g, u_g, PRECISION)
            dh_prev = matmul_add(dh_prev, da_o, u_o, PRECISION)
        else:  # U from L2, KC of its rows at a time
            tl.debug_barrier()  # every thread is done with the previous step's tile
            stage(tile, 4 * HP, 0, da_i, BLOCK_B, HP)
            stage(tile, 4 * HP, HP, da_f, BLOCK_B, HP)
            stage(tile, 4 * HP, 2 * HP, da_g, BLOCK_B, HP)
            stage(tile, 4 * HP, 3 * HP, da_o, BLOCK_B, HP)
            tl.debug_barrier()  # all the da are written before any thread reads a chunk
            dh_prev = tl.zeros((BLOCK_B, HP), acc_t)
            for j0 in range(0, HP, KC):
                for gate in tl.static_range(4):
                    da_j = staged_chunk(tile, 4 * HP, gate * HP, j0, BLOCK_B, KC)  # (BLOCK_B, KC)
                    dh_prev = matmul_add(
                        dh_prev, da_j, gate_weight_chunk(w_ptr, d, gate, 4, H, j0, cols, KC), PRECISION
                    )
        dh = tl.where(real, dh_prev, dh_t)  # on a padded step dh_t is dh: it passes through
        dc = tl.where(real, dc_t * f, dc)
        at = step_offsets(rows, cols, t, d, T, D, 4 * H)
        tl.store(gates_ptr + at, da_i, mask=inside)
        tl.store(gates_ptr + at + H, da_f, mask=inside)
        tl.store(gates_ptr + at + 2 * H, da_g, mask=inside)
        tl.store(gates_ptr + at + 3 * H, da_o, mask=inside)
        i, f, g, o, dy = next_i, next_f, next_g, next_o, next_dy
        c, c_before = c_before, next_c_before
    tl.store(dh0_ptr + at_state, dh, mask=inside)
    tl.store(dc0_ptr + at_state, dc, mask=inside)
