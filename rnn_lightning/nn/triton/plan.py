"""How one layer is cut into programs and what each program keeps on chip: chosen once per call, in Python.

The rules come from what the GPU accepts (``docs/triton.md``):

* ``tl.arange`` sizes are powers of two, and on NVIDIA GPUs ``tl.dot`` needs an inner size of at least 16 for
  every 16-, 32- and 64-bit dtype (Triton 3.6 ``min_dot_size``; M and N may be smaller). The kernels' only inner
  size is the padded hidden size (h @ U^T, da @ U; dW_hh is a torch matmul after the launch), at least 16;
* one batch row per warp, 4 rows and warps up to a padded hidden size of 64 and 8 above: in IEEE fp32 the
  products' layout is then the loads' and stores' (one conversion through shared memory per forward step, 11
  with 16 rows on 8 warps; read in the TTGIR by ``compiled.py``), each warp re-reads U from shared memory once
  per step, so fewer warps read it fewer times, and of the layouts tried these have the fewest registers and no
  spill at the project's shapes;
* fp32 dots run in the precision the layer asks for (``FP32_PRECISIONS``); by default in the one torch lets
  cuDNN's RNNs use (``torch_rnn_precision``), so that a comparison with torch.nn on cuDNN is like for like;
* a program never waits for another, so any number of programs may be resident or queued, and the interpreter,
  which runs them one after another, sees the same results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

MIN_DOT = 16  # smallest inner size of tl.dot on NVIDIA GPUs, and a power of two for tl.arange
ROWS = 8  # batch rows per program, and its warps: one row per warp; 4 of each up to a padded hidden size of 64
MAX_BLOCK_B = 64  # rows per program where the batch outnumbers the SMs: beyond this the tiles crowd the registers
CHUNK = 16  # rows of U per product where it is read from L2: tl.dot's smallest K, the fewest registers
MAX_HIDDEN_PAD = 256  # one program holds a whole hidden state: beyond this its tiles no longer fit
# Triton keeps a loop-invariant tl.dot operand in shared memory, so U stays on chip for the whole sequence where
# it fits there beside the step's layout conversions (this much room; measured: 2-12 KB). An H100/H200 block may
# have 227 KB: U of an LSTM at H = 51 (padded to 64) is 64 KB in fp32, 128 KB in fp64; a GRU's at H = 128 fp32
# 192 KB. Where it does not fit, each step reads KC rows of U at a time from L2 (or L1), and the products' operand
# chunks take about 2 KC rows of U per gate in shared memory.
CONVERSION_ROOM = 24 << 10
SM90_SHARED_BYTES = 227 << 10
# IEEE fp32 products run on the FMA units, where Triton gives each thread its columns of U for every k: a whole
# 128 x 128 fp32 tile on chip spills (504 bytes per thread for a GRU), 64 x 64 ones do not.
MAX_FMA_ON_CHIP_PAD = 64
DEFAULT_SMS = 132  # an H100/H200 SXM: the SM count used where no GPU is there to ask (the interpreter)
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# tl.dot's input_precision for fp32 operands: IEEE FMA; one TF32 tensor-core pass (10-bit mantissa products, fp32
# sums), what cuDNN's RNNs do by default; three TF32 passes (about fp32's accuracy, on tensor cores).
FP32_PRECISIONS = ("ieee", "tf32", "tf32x3")


@dataclass(frozen=True)
class Plan:
    block_b: int  # batch rows per program
    hidden_pad: int  # H padded to a power of two >= MIN_DOT
    weight_on_chip: bool  # U loaded once per program and kept in shared memory (else read from L2 every step)
    chunk: int  # rows of U per product where U is in L2
    num_warps: int
    precision: str  # tl.dot's input_precision
    operand_dtype: torch.dtype  # of the recurrent matmuls' inputs: 16-bit under autocast
    acc_dtype: torch.dtype  # of their sums, the states and the saved gates: fp32, or fp64

    def blocks(self, batch: int) -> int:
        """Programs per direction."""
        return -(-batch // self.block_b)

    def constexprs(self, has_lengths: bool) -> dict[str, Any]:
        """The compile-time arguments every cell's kernels take, by their names there."""
        return {
            "BLOCK_B": self.block_b,
            "HP": self.hidden_pad,
            "KC": self.chunk,
            "WEIGHT_ON_CHIP": self.weight_on_chip,
            "HAS_LENGTHS": has_lengths,
            "PRECISION": self.precision,
        }


def padded(n: int) -> int:
    """The smallest power of two >= n and >= MIN_DOT."""
    return max(MIN_DOT, 1 << (n - 1).bit_length())


def compute_dtypes(param_dtype: torch.dtype, device_type: str) -> tuple[torch.dtype, torch.dtype]:
    """(operand dtype, accumulation dtype) for parameters of ``param_dtype``, under the current autocast: the loop's
    rule (and the fused path's, ``nn/fused/precision.py``): 16-bit products, everything else in fp32 (or fp64)."""
    if param_dtype not in DTYPES:
        raise ValueError(f"model.impl=triton runs {[str(t) for t in DTYPES]} parameters, not {param_dtype}")
    acc = torch.float64 if param_dtype == torch.float64 else torch.float32
    if param_dtype != torch.float64 and autocast_on(device_type):  # autocast leaves float64 alone
        return torch.get_autocast_dtype(device_type), acc  # the matmuls in 16-bit, as the loop's are
    return param_dtype, acc


def autocast_on(device_type: str) -> bool:
    return torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)


def check_fp32_precision(setting: str | None) -> str | None:
    """``setting`` if it is one tl.dot knows, or None (follow torch); else a ValueError that lists the valid ones."""
    if setting is not None and setting not in FP32_PRECISIONS:
        raise ValueError(
            f"fp32_precision must be one of {list(FP32_PRECISIONS)}, or None to follow torch's setting for cuDNN's "
            f"RNNs (torch.backends.cudnn.rnn.fp32_precision); got {setting!r}"
        )
    return setting


def torch_rnn_precision(cudnn: Any = None) -> str:
    """``"tf32"`` where torch lets cuDNN's RNNs run fp32 products in TF32 (its default), else ``"ieee"``.

    The Triton path stands where torch.nn's cuDNN RNN would, so it follows that setting, read through torch's newer
    API (torch >= 2.9; the getter gives the value in force, "none" meaning no TF32). The older ``allow_tf32`` flags
    are read only where that API is missing: once anything has set a ``fp32_precision``, reading them raises.
    """
    cudnn = torch.backends.cudnn if cudnn is None else cudnn
    rnn = getattr(cudnn, "rnn", None)
    if rnn is not None and hasattr(rnn, "fp32_precision"):
        return "tf32" if rnn.fp32_precision == "tf32" else "ieee"
    return "tf32" if cudnn.allow_tf32 else "ieee"


def dot_precision(operand_dtype: torch.dtype, setting: str | None = None) -> str:
    """tl.dot's input_precision for the recurrent products: ``setting`` (or torch's, when None) for fp32 operands;
    float64 and 16-bit operands have one precision, "ieee"."""
    check_fp32_precision(setting)
    if operand_dtype != torch.float32:
        return "ieee"
    return setting or torch_rnn_precision()


def choose_plan(
    batch: int,
    hidden: int,
    gates: int,
    directions: int,
    operand_dtype: torch.dtype,
    acc_dtype: torch.dtype,
    sms: int = DEFAULT_SMS,
    shared_bytes: int = SM90_SHARED_BYTES,
    fp32_precision: str | None = None,
) -> Plan:
    """The layout for ``directions`` x ``batch`` sequences of a cell with ``gates`` blocks of ``hidden`` units, on
    a GPU with ``sms`` SMs and ``shared_bytes`` of shared memory per block."""
    hidden_pad = padded(hidden)
    if hidden_pad > MAX_HIDDEN_PAD:
        raise ValueError(
            f"model.impl=triton runs hidden sizes up to {MAX_HIDDEN_PAD} (one program holds a whole hidden "
            f"state), got {hidden}; use model.impl=fused or loop"
        )
    precision = dot_precision(operand_dtype, fp32_precision)
    rows = ROWS if hidden_pad > 64 else ROWS // 2
    # The fewest rows per program, as long as every program gets an SM of its own: a step's latency hardly
    # grows with the rows, but programs beyond the SM count wait for a whole sequence.
    block_b = rows
    while block_b < MAX_BLOCK_B and -(-batch // block_b) * directions > sms:
        block_b *= 2
    chunk = min(CHUNK, hidden_pad)
    on_fma = operand_dtype == torch.float32 and precision == "ieee"
    weight_bytes = gates * hidden_pad * hidden_pad * operand_dtype.itemsize
    weight_on_chip = weight_bytes + CONVERSION_ROOM <= shared_bytes and not (
        on_fma and hidden_pad > MAX_FMA_ON_CHIP_PAD
    )
    chunk_bytes = gates * hidden_pad * 2 * chunk * operand_dtype.itemsize
    if not weight_on_chip and chunk_bytes + CONVERSION_ROOM > shared_bytes:
        raise ValueError(
            f"model.impl=triton: a {gates}-gate cell with hidden size {hidden} in {operand_dtype} needs more shared "
            f"memory than this GPU's {shared_bytes >> 10} KB per block, even with its weight read from L2; use "
            "model.impl=fused, or a smaller hidden size or dtype"
        )
    return Plan(
        block_b=block_b,
        hidden_pad=hidden_pad,
        weight_on_chip=weight_on_chip,
        chunk=chunk,
        num_warps=rows,
        precision=precision,
        operand_dtype=operand_dtype,
        acc_dtype=acc_dtype,
    )
