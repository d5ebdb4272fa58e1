"""GRU forward and reverse-time backward kernels, one launch each per layer (grid: batch blocks x directions).

Forward, step t, in PyTorch's formulation; the x-side parts a_x,r = x W_r^T + b_ir + b_hr, a_x,z likewise and
a_x,n = x W_n^T + b_in are computed before the launch, b_hn stays inside the reset gate:

    r = σ(a_x,r + h_prev U_r^T)    z = σ(a_x,z + h_prev U_z^T)
    m = h_prev U_n^T + b_hn        n = tanh(a_x,n + r m)          h = (1 - z) n + z h_prev

Saved: r, z, n (over a_x in ``gates``), m (``hidden_n``), h (the outputs). Backward, last step first:

    dh_t = dh + dy_t       da_n = dh_t (1 - z)(1 - n²)      dm = da_n r
    da_r = da_n m r (1 - r)                                  da_z = dh_t (h_prev - n) z (1 - z)
    dh ← dh_t z + da_r U_r + da_z U_z + dm U_n
    dU_r += da_r^T h_prev   dU_z += da_z^T h_prev   dU_n += dm^T h_prev   db_hh += Σ_rows (da_r, da_z, dm)

On a padded step all of them are 0 and dh passes through. da_r, da_z, da_n (the x side) overwrite ``gates``.
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
    block, d, blocks = tl.program_id(0), tl.program_id(1), tl.num_programs(0)
    rows = block * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, HP)
    inside = (rows < B)[:, None] & (cols < H)[None, :]  # (BLOCK_B, HP)
    length = load_lengths(lengths_ptr, rows, B, T, HAS_LENGTHS)
    acc_t = gates_ptr.dtype.element_ty
    at_state = state_offsets(rows, cols, d, B, H)
    h = tl.load(h0_ptr + at_state, mask=inside, other=0.0).to(acc_t)  # (BLOCK_B, HP)
    b_hn = tl.load(b_ptr + (d * 3 + 2) * H + cols, mask=cols < H, other=0.0).to(acc_t)[None, :]  # (1, HP)
    if WEIGHT_ON_CHIP:  # loaded once, held by the program for the whole sequence
        u_r = gate_weight_t(w_ptr, d, 0, 3, H, cols)
        u_z = gate_weight_t(w_ptr, d, 1, 3, H, cols)
        u_n = gate_weight_t(w_ptr, d, 2, 3, H, cols)
    else:
        tile = scratch_tile(scratch_ptr, d, block, blocks, BLOCK_B, HP)
    for s in range(T):
        t = time_of(s, d, T)
        if WEIGHT_ON_CHIP:
            hu_r = matmul(h, u_r, PRECISION)
            hu_z = matmul(h, u_z, PRECISION)
            hu_n = matmul(h, u_n, PRECISION)
        else:  # U from L2, KC of its rows at a time
            tl.debug_barrier()  # every thread is done reading the previous step's h
            stage(tile, HP, 0, h, BLOCK_B, HP)
            tl.debug_barrier()  # all of h is written before any thread reads a chunk
            hu_r = tl.zeros((BLOCK_B, HP), acc_t)
            hu_z = tl.zeros((BLOCK_B, HP), acc_t)
            hu_n = tl.zeros((BLOCK_B, HP), acc_t)
            for k0 in range(0, HP, KC):
                h_k = staged_chunk(tile, HP, 0, k0, BLOCK_B, KC)  # (BLOCK_B, KC)
                hu_r = matmul_add(hu_r, h_k, gate_weight_t_chunk(w_ptr, d, 0, 3, H, k0, cols, KC), PRECISION)
                hu_z = matmul_add(hu_z, h_k, gate_weight_t_chunk(w_ptr, d, 1, 3, H, k0, cols, KC), PRECISION)
                hu_n = matmul_add(hu_n, h_k, gate_weight_t_chunk(w_ptr, d, 2, 3, H, k0, cols, KC), PRECISION)
        at = step_offsets(rows, cols, t, d, T, D, 3 * H)
        at_h = step_offsets(rows, cols, t, d, T, D, H)
        r = sigmoid(tl.load(gates_ptr + at, mask=inside, other=0.0) + hu_r)
        z = sigmoid(tl.load(gates_ptr + at + H, mask=inside, other=0.0) + hu_z)
        m = hu_n + b_hn
        n = tanh(tl.load(gates_ptr + at + 2 * H, mask=inside, other=0.0) + r * m)
        h_new = (1.0 - z) * n + z * h
        real = (t < length)[:, None]  # (BLOCK_B, 1): a padded step keeps the state
        h = tl.where(real, h_new, h)
        tl.store(gates_ptr + at, r, mask=inside)
        tl.store(gates_ptr + at + H, z, mask=inside)
        tl.store(gates_ptr + at + 2 * H, n, mask=inside)
        tl.store(hidden_n_ptr + at_h, m, mask=inside)
        tl.store(out_ptr + at_h, tl.where(real, h_new, 0.0), mask=inside)
    tl.store(hT_ptr + at_state, h, mask=inside)


@triton.jit(do_not_specialize=["B", "T"])
def gru_backward(
    gates_ptr,  # (B, T, D, 3H): in r, z, n; out da_r, da_z, da_n
    hidden_n_ptr,  # (B, T, D, H): m
    out_ptr,  # (B, T, D, H): h, for h_prev
    d_out_ptr,  # (B, T, D, H): dy
    h0_ptr,  # (D, B, H)
    c0_ptr,  # unused
    d_hT_ptr,  # (D, B, H)
    d_cT_ptr,  # unused
    dh0_ptr,  # (D, B, H): out
    dc0_ptr,  # unused
    w_ptr,  # (D, 3H, H)
    du_ptr,  # (D, P, 3H, H): out, this program's partial dU (zeros in, when accumulated in memory)
    db_ptr,  # (D, P, 3H): out, this program's partial db_hh
    lengths_ptr,  # (B,)
    scratch_ptr,  # (D, P, BLOCK_B, 3 HP): da_r, da_z, dm staged, when U or dU is not on chip
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
    tile = scratch_tile(scratch_ptr, d, block, blocks, BLOCK_B, 3 * HP)
    if WEIGHT_ON_CHIP:
        u_r = gate_weight(w_ptr, d, 0, 3, H, cols)
        u_z = gate_weight(w_ptr, d, 1, 3, H, cols)
        u_n = gate_weight(w_ptr, d, 2, 3, H, cols)
    if GRAD_ON_CHIP:
        du_r = tl.zeros((HP, HP), acc_t)
        du_z = tl.zeros((HP, HP), acc_t)
        du_n = tl.zeros((HP, HP), acc_t)
    db_r = tl.zeros((HP,), acc_t)
    db_z = tl.zeros((HP,), acc_t)
    db_n = tl.zeros((HP,), acc_t)
    for s in range(T):
        t = time_of(T - 1 - s, d, T)
        t_prev = t - 1 + 2 * d  # the time whose state step t read
        real = (t < length)[:, None]
        # h_prev is the initial state before a sequence's first real step.
        prev_real = ((t_prev >= 0) & (t_prev < T) & (t_prev < length))[:, None]
        at = step_offsets(rows, cols, t, d, T, D, 3 * H)
        at_h = step_offsets(rows, cols, t, d, T, D, H)
        at_prev = step_offsets(rows, cols, t_prev, d, T, D, H)
        r = tl.load(gates_ptr + at, mask=inside, other=0.0)
        z = tl.load(gates_ptr + at + H, mask=inside, other=0.0)
        n = tl.load(gates_ptr + at + 2 * H, mask=inside, other=0.0)
        m = tl.load(hidden_n_ptr + at_h, mask=inside, other=0.0)
        h_prev = tl.where(prev_real, tl.load(out_ptr + at_prev, mask=inside & prev_real, other=0.0).to(acc_t), h0)
        dh_t = dh + tl.load(d_out_ptr + at_h, mask=inside & real, other=0.0).to(acc_t)
        da_n = tl.where(real, dh_t * (1.0 - z) * (1.0 - n * n), 0.0)
        da_r = da_n * m * r * (1.0 - r)
        da_z = tl.where(real, dh_t * (h_prev - n) * z * (1.0 - z), 0.0)
        dm = da_n * r
        tl.store(gates_ptr + at, da_r, mask=inside)
        tl.store(gates_ptr + at + H, da_z, mask=inside)
        tl.store(gates_ptr + at + 2 * H, da_n, mask=inside)
        if not WEIGHT_ON_CHIP or not GRAD_ON_CHIP:
            tl.debug_barrier()  # every thread is done with the previous step's tile (and its partial dU)
            stage(tile, 3 * HP, 0, da_r, BLOCK_B, HP)
            stage(tile, 3 * HP, HP, da_z, BLOCK_B, HP)
            stage(tile, 3 * HP, 2 * HP, dm, BLOCK_B, HP)
            tl.debug_barrier()  # all of them are written before any thread reads a chunk
        dh_prev = dh_t * z
        if WEIGHT_ON_CHIP:
            dh_prev += matmul(da_r, u_r, PRECISION) + matmul(da_z, u_z, PRECISION) + matmul(dm, u_n, PRECISION)
        else:  # U from L2, KC of its rows at a time
            for j0 in range(0, HP, KC):
                for gate in tl.static_range(3):
                    da_j = staged_chunk(tile, 3 * HP, gate * HP, j0, BLOCK_B, KC)  # (BLOCK_B, KC)
                    dh_prev = matmul_add(
                        dh_prev, da_j, gate_weight_chunk(w_ptr, d, gate, 3, H, j0, cols, KC), PRECISION
                    )
        dh = tl.where(real, dh_prev, dh_t)  # on a padded step dh_t is dh: it passes through
        h_op = h_prev.to(w_ptr.dtype.element_ty)
        if GRAD_ON_CHIP:
            du_r = accumulate(du_r, da_r, h_op, PRECISION)
            du_z = accumulate(du_z, da_z, h_op, PRECISION)
            du_n = accumulate(du_n, dm, h_op, PRECISION)
        else:
            for gate in tl.static_range(3):
                accumulate_in_memory(
                    du_ptr, d, block, blocks, gate, 3, H, cols, tile, 3 * HP, h_op, BLOCK_B, HP, KC, PRECISION
                )
        db_r += tl.sum(da_r, axis=0)
        db_z += tl.sum(da_z, axis=0)
        db_n += tl.sum(dm, axis=0)
    tl.store(dh0_ptr + at_state, dh, mask=inside)
    if GRAD_ON_CHIP:
        store_partial(du_ptr, d, block, blocks, 0, 3, H, cols, du_r)
        store_partial(du_ptr, d, block, blocks, 1, 3, H, cols, du_z)
        store_partial(du_ptr, d, block, blocks, 2, 3, H, cols, du_n)
    store_bias_partial(db_ptr, d, block, blocks, 0, 3, H, cols, db_r)
    store_bias_partial(db_ptr, d, block, blocks, 1, 3, H, cols, db_z)
    store_bias_partial(db_ptr, d, block, blocks, 2, 3, H, cols, db_n)
