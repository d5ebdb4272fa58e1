"""GRU forward and reverse-time backward kernels, one launch each per layer (grid: batch blocks x directions).

Forward, step t, in PyTorch's formulation; the x-side parts a_x,r = x W_r^T + b_ir + b_hr, a_x,z likewise and
a_x,n = x W_n^T + b_in are computed before the launch, b_hn stays inside the reset gate:

    r = σ(a_x,r + h_prev U_r^T)    z = σ(a_x,z + h_prev U_z^T)
    m = h_prev U_n^T + b_hn        n = tanh(a_x,n + r m)          h = (1 - z) n + z h_prev

Saved: r, z, n (over a_x in ``gates``), m (``hidden_n``), h (the outputs). Backward, last step first:

    dh_t = dh + dy_t       da_n = dh_t (1 - z)(1 - n²)      dm = da_n r
    da_r = da_n m r (1 - r)                                  da_z = dh_t (h_prev - n) z (1 - z)
    dh ← dh_t z + da_r U_r + da_z U_z + dm U_n

On a padded step all of them are 0 and dh passes through. da_r, da_z, da_n (the x side) overwrite ``gates``,
dm overwrites m in ``hidden_n``: the hidden side of the n gate, whose gradients are dU_n = dm^T h_prev and
db_hn = Σ dm (b_hn sits inside the reset gate), while dU_r, dU_z take da_r, da_z. The layer computes them with
one matmul each after the launch. Each step issues its loads for the next step first (the input projection
forward; the gates, m, h_prev and dy backward), so that their latency passes during this step's products.
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
def gru_forward(
    gates_ptr,  # (B, T, D, 3H): in a_x, out r, z, n
    hidden_n_ptr,  # (B, T, D, H): out m = h_prev U_n^T + b_hn
    out_ptr,  # (B, T, D, H): out h, zero on padded steps
    h0_ptr,  # (D, B, H)
    c0_ptr,  # unused
    hT_ptr,  # (D, B, H): out, the final h
    cT_ptr,  # unused
    w_ptr,  # (D, 3H, H): weight_hh = [U_r; U_z; U_n]
    b_ptr,  # (D, 3H): bias_hh, of which b_hn is read here
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
    b_hn = tl.load(b_ptr + (d * 3 + 2) * H + cols, mask=cols < H, other=0.0).to(acc_t)[None, :]  # (1, HP)
    b_hn = tl.zeros((BLOCK_B, HP), acc_t) + b_hn  # the n product's starting value
    if WEIGHT_ON_CHIP:  # loaded once, held by the program for the whole sequence
        u_r = gate_weight_t(w_ptr, d, 0, 3, H, cols)
        u_z = gate_weight_t(w_ptr, d, 1, 3, H, cols)
        u_n = gate_weight_t(w_ptr, d, 2, 3, H, cols)
    else:
        tile = scratch_tile(scratch_ptr, BLOCK_B, HP)
    at = step_offsets(rows, cols, time_of(0, d, T), d, T, D, 3 * H)
    x_r = load_step(gates_ptr + at, inside, True)  # a_x of the first step; each step then loads the next one's
    x_z = load_step(gates_ptr + at + H, inside, True)
    x_n = load_step(gates_ptr + at + 2 * H, inside, True)
    for s in range(T):
        t = time_of(s, d, T)
        at_next = step_offsets(rows, cols, time_of(s + 1, d, T), d, T, D, 3 * H)
        has_next = s + 1 < T
        next_r = load_step(gates_ptr + at_next, inside, has_next)  # in flight during this step's products
        next_z = load_step(gates_ptr + at_next + H, inside, has_next)
        next_n = load_step(gates_ptr + at_next + 2 * H, inside, has_next)
        if WEIGHT_ON_CHIP:
            a_r = matmul_add(x_r, h, u_r, PRECISION)
            a_z = matmul_add(x_z, h, u_z, PRECISION)
            m = matmul_add(b_hn, h, u_n, PRECISION)
        else:  # U from L2, KC of its rows at a time
            stage_operand(tile, h, BLOCK_B, HP)
            a_r, a_z, m = x_r, x_z, b_hn
            for k0 in range(0, HP, KC):
                h_k = staged_chunk(tile, HP, 0, k0, BLOCK_B, KC)  # (BLOCK_B, KC)
                a_r = matmul_add(a_r, h_k, gate_weight_t_chunk(w_ptr, d, 0, 3, H, k0, cols, KC), PRECISION)
                a_z = matmul_add(a_z, h_k, gate_weight_t_chunk(w_ptr, d, 1, 3, H, k0, cols, KC), PRECISION)
                m = matmul_add(m, h_k, gate_weight_t_chunk(w_ptr, d, 2, 3, H, k0, cols, KC), PRECISION)
        r = sigmoid(a_r)
        z = sigmoid(a_z)
        n = tanh(x_n + r * m)
        h_new = (1.0 - z) * n + z * h
        real = (t < length)[:, None]  # (BLOCK_B, 1): a padded step keeps the state
        h = tl.where(real, h_new, h)
        at = step_offsets(rows, cols, t, d, T, D, 3 * H)
        at_h = step_offsets(rows, cols, t, d, T, D, H)
        tl.store(gates_ptr + at, r, mask=inside)
        tl.store(gates_ptr + at + H, z, mask=inside)
        tl.store(gates_ptr + at + 2 * H, n, mask=inside)
        tl.store(hidden_n_ptr + at_h, m, mask=inside)
        tl.store(out_ptr + at_h, tl.where(real, h_new, 0.0), mask=inside)
        x_r, x_z, x_n = next_r, next_z, next_n
    tl.store(hT_ptr + at_state, h, mask=inside)


@triton.jit(do_not_specialize=["B", "T"])
def gru_backward(
    gates_ptr,  # (B, T, D, 3H): in r, z, n; out da_r, da_z, da_n
    hidden_n_ptr,  # (B, T, D, H): in m; out dm
    out_ptr,  # (B, T, D, H): h, for h_prev
    d_out_ptr,  # (B, T, D, H): dy
    h0_ptr,  # (D, B, H)
    c0_ptr,  # unused
    d_hT_ptr,  # (D, B, H)
    d_cT_ptr,  # unused
    dh0_ptr,  # (D, B, H): out
    dc0_ptr,  # unused
    w_ptr,  # (D, 3H, H)
    lengths_ptr,  # (B,)
    scratch_ptr,  # (D, P, BLOCK_B, 3 HP): da_r, da_z, dm staged, when U is in L2
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
    h0 = load_state(h0_ptr, at_state, inside, acc_t)
    dh = load_state(d_hT_ptr, at_state, inside, acc_t)  # (BLOCK_B, HP)
    if WEIGHT_ON_CHIP:
        u_r = gate_weight(w_ptr, d, 0, 3, H, cols)
        u_z = gate_weight(w_ptr, d, 1, 3, H, cols)
        u_n = gate_weight(w_ptr, d, 2, 3, H, cols)
    else:
        tile = scratch_tile(scratch_ptr, BLOCK_B, 3 * HP)
    # What the first step (the last time) reads; each step then loads the next one's (at t_prev), including the
    # h_prev of the one after.
    t, t_prev, _, has_next = backward_step(0, d, T, length)
    at = step_offsets(rows, cols, t, d, T, D, 3 * H)
    at_h = step_offsets(rows, cols, t, d, T, D, H)
    r = load_step(gates_ptr + at, inside, True)
    z = load_step(gates_ptr + at + H, inside, True)
    n = load_step(gates_ptr + at + 2 * H, inside, True)
    m = load_step(hidden_n_ptr + at_h, inside, True)
    dy = load_real_step(d_out_ptr + at_h, inside, t, length, True).to(acc_t)
    h_before = load_step(out_ptr + step_offsets(rows, cols, t_prev, d, T, D, H), inside, has_next).to(acc_t)
    for s in range(T):
        t, t_prev, real, has_next = backward_step(s, d, T, length)
        t_prev2 = t_prev - 1 + 2 * d  # the time whose state the next step reads
        at_next = step_offsets(rows, cols, t_prev, d, T, D, 3 * H)
        at_h_next = step_offsets(rows, cols, t_prev, d, T, D, H)
        next_r = load_step(gates_ptr + at_next, inside, has_next)  # in flight during this step's products
        next_z = load_step(gates_ptr + at_next + H, inside, has_next)
        next_n = load_step(gates_ptr + at_next + 2 * H, inside, has_next)
        next_m = load_step(hidden_n_ptr + at_h_next, inside, has_next)
        next_dy = load_real_step(d_out_ptr + at_h_next, inside, t_prev, length, has_next).to(acc_t)
        at_before2 = step_offsets(rows, cols, t_prev2, d, T, D, H)
        next_h_before = load_step(out_ptr + at_before2, inside, (t_prev2 >= 0) & (t_prev2 < T)).to(acc_t)
        h_prev = state_read(t_prev, has_next, length, h_before, h0)
        dh_t = dh + dy
        da_n = tl.where(real, dh_t * (1.0 - z) * (1.0 - n * n), 0.0)
        da_r = da_n * m * r * (1.0 - r)
        da_z = tl.where(real, dh_t * (h_prev - n) * z * (1.0 - z), 0.0)
        dm = da_n * r
        dh_prev = dh_t * z
        if WEIGHT_ON_CHIP:
            dh_prev += matmul(da_r, u_r, PRECISION) + matmul(da_z, u_z, PRECISION) + matmul(dm, u_n, PRECISION)
        else:  # U from L2, KC of its rows at a time
            tl.debug_barrier()  # every thread is done with the previous step's tile
            stage(tile, 3 * HP, 0, da_r, BLOCK_B, HP)
            stage(tile, 3 * HP, HP, da_z, BLOCK_B, HP)
            stage(tile, 3 * HP, 2 * HP, dm, BLOCK_B, HP)
            tl.debug_barrier()  # all of them are written before any thread reads a chunk
            for j0 in range(0, HP, KC):
                for gate in tl.static_range(3):
                    da_j = staged_chunk(tile, 3 * HP, gate * HP, j0, BLOCK_B, KC)  # (BLOCK_B, KC)
                    dh_prev = matmul_add(
                        dh_prev, da_j, gate_weight_chunk(w_ptr, d, gate, 3, H, j0, cols, KC), PRECISION
                    )
        dh = tl.where(real, dh_prev, dh_t)  # on a padded step dh_t is dh: it passes through
        at = step_offsets(rows, cols, t, d, T, D, 3 * H)
        at_h = step_offsets(rows, cols, t, d, T, D, H)
        tl.store(gates_ptr + at, da_r, mask=inside)
        tl.store(gates_ptr + at + H, da_z, mask=inside)
        tl.store(gates_ptr + at + 2 * H, da_n, mask=inside)
        tl.store(hidden_n_ptr + at_h, dm, mask=inside)
        r, z, n, m, dy, h_before = next_r, next_z, next_n, next_m, next_dy, next_h_before
    tl.store(dh0_ptr + at_state, dh, mask=inside)
