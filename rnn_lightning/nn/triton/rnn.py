"""Elman RNN forward and reverse-time backward kernels, one launch each per layer (grid: batch blocks x directions).

Forward, step t, with the x-side part a_x = x W^T + b_ih + b_hh computed before the launch:

    h = tanh(a_x + h_prev U^T)

Saved: h (over a_x in ``gates``, at full precision; the outputs may be 16-bit). Backward, last step first:

    dh_t = dh + dy_t     da = dh_t (1 - h²)     dh ← da U

On a padded step da = 0 and dh passes through. The da overwrite ``gates`` for dx, dW_ih, db_ih and
dW_hh = da^T h_prev, db_hh, one matmul or sum each after the launch. Each step issues its loads for the next
step first (a_x forward; h and dy backward), so that their latency passes during this step's product.
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
    stage_operand,
    staged_chunk,
    state_offsets,
    step_offsets,
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
    d, rows, cols, inside = program_tile(B, H, BLOCK_B, HP)
    length = load_lengths(lengths_ptr, rows, B, T, HAS_LENGTHS)
    acc_t = gates_ptr.dtype.element_ty
    at_state = state_offsets(rows, cols, d, B, H)
    h = load_state(h0_ptr, at_state, inside, acc_t)  # (BLOCK_B, HP)
    if WEIGHT_ON_CHIP:  # loaded once, held by the program for the whole sequence
        u = gate_weight_t(w_ptr, d, 0, 1, H, cols)
    else:
        tile = scratch_tile(scratch_ptr, BLOCK_B, HP)
    x = load_step(gates_ptr + step_offsets(rows, cols, time_of(0, d, T), d, T, D, H), inside, True)
    for s in range(T):
        t = time_of(s, d, T)
        at_next = step_offsets(rows, cols, time_of(s + 1, d, T), d, T, D, H)
        next_x = load_step(gates_ptr + at_next, inside, s + 1 < T)  # in flight during this step's product
        if WEIGHT_ON_CHIP:
            a = matmul_add(x, h, u, PRECISION)
        else:  # U from L2, KC of its rows at a time
            stage_operand(tile, h, BLOCK_B, HP)
            a = x
            for k0 in range(0, HP, KC):
                h_k = staged_chunk(tile, HP, 0, k0, BLOCK_B, KC)  # (BLOCK_B, KC)
                a = matmul_add(a, h_k, gate_weight_t_chunk(w_ptr, d, 0, 1, H, k0, cols, KC), PRECISION)
        h_new = tanh(a)
        real = (t < length)[:, None]  # (BLOCK_B, 1): a padded step keeps the state
        h = tl.where(real, h_new, h)
        at = step_offsets(rows, cols, t, d, T, D, H)
        tl.store(gates_ptr + at, h_new, mask=inside)
        tl.store(out_ptr + at, tl.where(real, h_new, 0.0), mask=inside)
        x = next_x
    tl.store(hT_ptr + at_state, h, mask=inside)


@triton.jit(do_not_specialize=["B", "T"])
def rnn_backward(
    gates_ptr,  # (B, T, D, H): in h, out da
    extra_ptr,  # unused
    out_ptr,  # unused: h_prev is needed only for dW_hh, one matmul after the launch
    d_out_ptr,  # (B, T, D, H): dy
    h0_ptr,  # unused
    c0_ptr,  # unused
    d_hT_ptr,  # (D, B, H)
    d_cT_ptr,  # unused
    dh0_ptr,  # (D, B, H): out
    dc0_ptr,  # unused
    w_ptr,  # (D, H, H)
    lengths_ptr,  # (B,)
    scratch_ptr,  # (D, P, BLOCK_B, HP): da staged, when U is in L2
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
    dh = load_state(d_hT_ptr, at_state, inside, acc_t)  # (BLOCK_B, HP)
    if WEIGHT_ON_CHIP:
        u = gate_weight(w_ptr, d, 0, 1, H, cols)
    else:
        tile = scratch_tile(scratch_ptr, BLOCK_B, HP)
    t = time_of(T - 1, d, T)  # the first step's (the last time's) h and dy; each step then loads the next one's
    at = step_offsets(rows, cols, t, d, T, D, H)
    h = load_step(gates_ptr + at, inside, True)
    dy = load_real_step(d_out_ptr + at, inside, t, length, True).to(acc_t)
    for s in range(T):
        t, t_prev, real, has_next = backward_step(s, d, T, length)
        at_next = step_offsets(rows, cols, t_prev, d, T, D, H)
        next_h = load_step(gates_ptr + at_next, inside, has_next)  # in flight during this step's product
        next_dy = load_real_step(d_out_ptr + at_next, inside, t_prev, length, has_next).to(acc_t)
        dh_t = dh + dy
        da = tl.where(real, dh_t * (1.0 - h * h), 0.0)
        if WEIGHT_ON_CHIP:
            dh_prev = matmul(da, u, PRECISION)
        else:  # U from L2, KC of its rows at a time
            stage_operand(tile, da, BLOCK_B, HP)
            dh_prev = tl.zeros((BLOCK_B, HP), acc_t)
            for j0 in range(0, HP, KC):
                da_j = staged_chunk(tile, HP, 0, j0, BLOCK_B, KC)  # (BLOCK_B, KC)
                dh_prev = matmul_add(dh_prev, da_j, gate_weight_chunk(w_ptr, d, 0, 1, H, j0, cols, KC), PRECISION)
        dh = tl.where(real, dh_prev, dh_t)  # on a padded step dh_t is dh: it passes through
        tl.store(gates_ptr + step_offsets(rows, cols, t, d, T, D, H), da, mask=inside)
        h, dy = next_h, next_dy
    tl.store(dh0_ptr + at_state, dh, mask=inside)
