"""Triton helpers shared by the cell kernels: activations, the program's tile, time order, offsets and loads of
the buffers and states, tiles and chunks of U, staging. Triton inlines a jit function called from a kernel, so
they cost nothing at run time: the kernels compile to the instructions they would have with the helpers written
out (``compiled.py`` reads them). The kernels' parameter lists stay in each kernel: Triton shares one only as a
tuple argument, which would make ``HP``, ``BLOCK_B``, ``KC``, ``PRECISION`` fields (``plan.HP``) on every line
that uses them; ``Plan.constexprs`` builds the compile-time ones in one place for the launch and ``compiled.py``.

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
def program_tile(B, H, BLOCK_B: tl.constexpr, HP: tl.constexpr):
    """What program (p, d) of the (P, D) grid holds: its direction d, its batch rows (BLOCK_B,), the columns (HP,),
    and ``inside`` (BLOCK_B, HP), where a row is in the batch and a column in H: loads there, and only there, read."""
    block, d = tl.program_id(0), tl.program_id(1)
    rows = block * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, HP)
    inside = (rows < B)[:, None] & (cols < H)[None, :]
    return d, rows, cols, inside


@triton.jit
def time_of(s, d, T):
    """Step s of direction d happens at time t: t = s forward (d = 0), t = T - 1 - s reversed (d = 1)."""
    return s + d * (T - 1 - 2 * s)


@triton.jit
def backward_step(s, d, T, length):
    """Backward step s, the last time first: its time t; t_prev = t - 1 + 2d, the time of the state t read and of
    the next step; whether that step exists; and ``real`` (BLOCK_B, 1), the rows for which t is not padding."""
    t = time_of(T - 1 - s, d, T)
    t_prev = t - 1 + 2 * d
    real = (t < length)[:, None]
    has_next = (t_prev >= 0) & (t_prev < T)
    return t, t_prev, real, has_next


@triton.jit
def step_offsets(rows, cols, t, d, T, D, width):
    """(BLOCK_B, HP) offsets of rows' step t of direction d in a (B, T, D, width) buffer."""
    return ((rows.to(tl.int64) * T + t) * D + d)[:, None] * width + cols[None, :]


@triton.jit
def state_offsets(rows, cols, d, B, H):
    """(BLOCK_B, HP) offsets of rows in a (D, B, H) state."""
    return (d * B + rows.to(tl.int64))[:, None] * H + cols[None, :]


@triton.jit
def load_state(state_ptr, at_state, inside, acc_t):
    """(BLOCK_B, HP) rows of a (D, B, H) initial state or its gradient, in the accumulation dtype; 0 outside."""
    return tl.load(state_ptr + at_state, mask=inside, other=0.0).to(acc_t)


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
def load_real_step(ptrs, inside, t, length, valid):
    """``load_step``, and 0 in the rows for which step t is padding: dy there is the gradient of an output the
    model does not make (a padded step outputs 0), so it must not reach dh."""
    return load_step(ptrs, inside & (t < length)[:, None], valid)


@triton.jit
def state_read(t_prev, has_next, length, saved, initial):
    """The state a step read: the one saved at t_prev where that step is real, else (before a row's first real
    step) the initial state."""
    return tl.where((has_next & (t_prev < length))[:, None], saved, initial)


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
def scratch_tile(scratch_ptr, BLOCK_B: tl.constexpr, width):
    """Program (p, d)'s (BLOCK_B, width) tile of the (D, P, BLOCK_B, width) scratch."""
    block, d, blocks = tl.program_id(0), tl.program_id(1), tl.num_programs(0)
    return scratch_ptr + (d * blocks + block).to(tl.int64) * BLOCK_B * width


@triton.jit
def stage(tile_ptr, width, col0, values, BLOCK_B: tl.constexpr, HP: tl.constexpr):
    """values (BLOCK_B, HP) into columns col0 .. col0 + HP of the tile (padding included: no mask needed)."""
    at = tl.arange(0, BLOCK_B)[:, None] * width + col0 + tl.arange(0, HP)[None, :]
    tl.store(tile_ptr + at, values)


@triton.jit
def stage_operand(tile_ptr, values, BLOCK_B: tl.constexpr, HP: tl.constexpr):
    """A step's one left operand (BLOCK_B, HP), h forward or the RNN's da, as the whole (BLOCK_B, HP) tile."""
    tl.debug_barrier()  # every thread is done reading the previous step's tile
    stage(tile_ptr, HP, 0, values, BLOCK_B, HP)
    tl.debug_barrier()  # all of it is written before any thread reads a chunk


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
