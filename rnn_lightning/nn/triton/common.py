"""Triton helpers shared by the cell kernels: activations, time order, offsets into the buffers, tiles of U.

Every program holds a block of ``BLOCK_B`` batch rows and the whole hidden state, padded from H to ``HP``
columns (a power of two, at least 16: ``tl.arange`` needs a power of two and ``tl.dot`` an inner size of at
least 16 on the GPU). Loads outside ``H`` or outside the batch read 0 and stores there are masked, so padded
columns hold exact zeros: U's padded rows and columns are 0, and no padded value reaches a real one.

Buffer layouts (``docs/triton.md``): gates and saved extras are ``(B, T, D, width)``, the outputs
``(B, T, D, H)`` (= ``(B, T, D * H)``), states ``(D, B, H)``, ``weight_hh`` ``(D, G * H, H)``.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def tanh(x):
    # tanh(x) = 2 σ(2x) - 1: one exp, in every dtype, on the GPU and in the interpreter alike.
    return 2.0 * sigmoid(2.0 * x) - 1.0


@triton.jit
def time_of(s, d, T):
    """Step s of direction d happens at time t: t = s forward (d = 0), t = T - 1 - s reversed (d = 1)."""
    return s + d * (T - 1 - 2 * s)


@triton.jit
def step_offsets(rows, cols, t, d, T, D, width):
    """(BLOCK_B, HP) offsets of rows' step t of direction d in a (B, T, D, width) buffer."""
    return ((rows.to(tl.int64) * T + t) * D + d)[:, None] * width + cols[None, :]


@triton.jit
def state_offsets(rows, cols, d, B, H):
    """(BLOCK_B, HP) offsets of rows in a (D, B, H) state."""
    return (d * B + rows.to(tl.int64))[:, None] * H + cols[None, :]


@triton.jit
def load_lengths(lengths_ptr, rows, B, T, HAS_LENGTHS: tl.constexpr):
    """(BLOCK_B,) real steps of each row; T for every row without lengths, so every step is real."""
    length = tl.zeros_like(rows) + T
    if HAS_LENGTHS:
        length = tl.load(lengths_ptr + rows, mask=rows < B, other=0).to(tl.int32)
    return length


@triton.jit
def load_step(ptrs, mask, valid):
    """A (BLOCK_B, HP) tile of one step's buffer: 0 where masked, and everywhere where ``valid`` (a scalar) is false:
    the step after the last one, which a step loads ahead of time."""
    return tl.load(ptrs, mask=mask & valid, other=0.0)


@triton.jit
def gate_weight_t(w_ptr, d, g, G, H, cols):
    """U_g^T as a (k, j) tile (HP, HP): U_g^T[k, j] = weight_hh[d, g H + j, k]; for h @ U_g^T."""
    k = cols[:, None]
    j = cols[None, :]
    return tl.load(w_ptr + ((d * G + g) * H + j) * H + k, mask=(k < H) & (j < H), other=0.0)


@triton.jit
def gate_weight(w_ptr, d, g, G, H, cols):
    """U_g as a (j, k) tile (HP, HP): U_g[j, k] = weight_hh[d, g H + j, k]; for da_g @ U_g."""
    j = cols[:, None]
    k = cols[None, :]
    return tl.load(w_ptr + ((d * G + g) * H + j) * H + k, mask=(k < H) & (j < H), other=0.0)


@triton.jit
def matmul(a, b, PRECISION: tl.constexpr):
    """a @ b in b's dtype (the operand dtype: 16-bit under autocast), accumulated in a's (fp32 or fp64)."""
    return tl.dot(a.to(b.dtype), b, input_precision=PRECISION, out_dtype=a.dtype)


@triton.jit
def matmul_add(acc, a, b, PRECISION: tl.constexpr):
    """acc + a @ b, in b's dtype, accumulated in acc's."""
    return tl.dot(a.to(b.dtype), b, acc, input_precision=PRECISION, out_dtype=acc.dtype)


# Where U does not fit on chip, a step's products run KC rows of U at a time, read from L2. The left operand
# (h forward, the da backward) is then staged in this program's own scratch tile, because a tensor held in
# registers cannot be sliced; tl.debug_barrier() (a CTA barrier: one program, never across programs) orders
# the tile's writes before its reads and this step's reads before the next step's writes.


@triton.jit
def scratch_tile(scratch_ptr, d, block, blocks, BLOCK_B: tl.constexpr, width):
    """This program's (BLOCK_B, width) tile of the (D, P, BLOCK_B, width) scratch."""
    return scratch_ptr + (d * blocks + block).to(tl.int64) * BLOCK_B * width


@triton.jit
def stage(tile_ptr, width, col0, values, BLOCK_B: tl.constexpr, HP: tl.constexpr):
    """values (BLOCK_B, HP) into columns col0 .. col0 + HP of the tile (padding included: no mask needed)."""
    at = tl.arange(0, BLOCK_B)[:, None] * width + col0 + tl.arange(0, HP)[None, :]
    tl.store(tile_ptr + at, values)


@triton.jit
def staged_chunk(tile_ptr, width, col0, k0, BLOCK_B: tl.constexpr, KC: tl.constexpr):
    """(BLOCK_B, KC): columns col0 + k0 .. + KC of the staged tile."""
    return tl.load(tile_ptr + tl.arange(0, BLOCK_B)[:, None] * width + col0 + k0 + tl.arange(0, KC)[None, :])


@triton.jit
def gate_weight_t_chunk(w_ptr, d, g, G, H, k0, cols, KC: tl.constexpr):
    """(KC, HP) rows k0 .. k0 + KC of U_g^T: U_g^T[k, j] = weight_hh[d, g H + j, k]."""
    k = k0 + tl.arange(0, KC)[:, None]
    j = cols[None, :]
    return tl.load(w_ptr + ((d * G + g) * H + j) * H + k, mask=(k < H) & (j < H), other=0.0)


@triton.jit
def gate_weight_chunk(w_ptr, d, g, G, H, j0, cols, KC: tl.constexpr):
    """(KC, HP) rows j0 .. j0 + KC of U_g: U_g[j, k] = weight_hh[d, g H + j, k]."""
    j = j0 + tl.arange(0, KC)[:, None]
    k = cols[None, :]
    return tl.load(w_ptr + ((d * G + g) * H + j) * H + k, mask=(k < H) & (j < H), other=0.0)
