"""How one layer is cut into programs and what each program keeps on chip: chosen once per call, in Python.

The rules come from what the GPU accepts (``docs/triton.md``):

* ``tl.arange`` sizes are powers of two, and on NVIDIA GPUs ``tl.dot`` needs an inner size of at least 16 for
  every 16-, 32- and 64-bit dtype (Triton 3.6 ``min_dot_size``). The inner sizes here are the padded hidden size
  (h @ U^T, da @ U) and the batch block (da^T @ h_prev), so both are powers of two of at least 16;
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
MAX_BLOCK_B = 64  # rows per program: beyond this the per-step tiles crowd the registers
CHUNK = 16  # rows of U per product where it is read from L2: tl.dot's smallest K, the fewest registers
MAX_HIDDEN_PAD = 256  # one program holds a whole hidden state: beyond this its tiles no longer fit
# What a program may keep on chip for the whole sequence. An H100/H200 SM has 256 KB of registers and one
# persistent program per SM here; half of it leaves room for the states, the gates and the step's temporaries.
# H=51 pads to 64: an LSTM's U is 64 KB in fp32 and 128 KB in fp64 (on chip); H=128 fp32 is 256 KB (L2).
ON_CHIP_BYTES = 128 << 10
# And per gate, a tile of at most 64 x 64 held on chip (128 x 128 for 16-bit operands): ptxas for sm_90 spills
# kilobytes per thread from a 128 x 128 fp32 tile (no tensor cores for IEEE fp32) and none from 64 x 64 ones.
MAX_ON_CHIP_PAD = {2: 128, 4: 64, 8: 64}  # by bytes per element
DEFAULT_SMS = 132  # an H100/H200 SXM: the SM count used where no GPU is there to ask (the interpreter)
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# tl.dot's input_precision for fp32 operands: IEEE FMA; one TF32 tensor-core pass (10-bit mantissa products, fp32
# sums), what cuDNN's RNNs do by default; three TF32 passes (about fp32's accuracy, on tensor cores).
FP32_PRECISIONS = ("ieee", "tf32", "tf32x3")


@dataclass(frozen=True)
class Plan:
    block_b: int  # batch rows per program
    hidden_pad: int  # H padded to a power of two >= MIN_DOT
    weight_on_chip: bool  # U loaded once per program (else read from L2 every step)
    grad_on_chip: bool  # the backward's partial dU held by the program (else in its own slab in L2)
    chunk: int  # rows of U per product where U (or dU) is in L2
    num_warps: int
    precision: str  # tl.dot's input_precision
    operand_dtype: torch.dtype  # of the recurrent matmuls' inputs: 16-bit under autocast
    acc_dtype: torch.dtype  # of their sums, the states and the saved gates: fp32, or fp64

    def blocks(self, batch: int) -> int:
        """Programs per direction."""
        return -(-batch // self.block_b)


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
    fp32_precision: str | None = None,
) -> Plan:
    """The layout for ``directions`` x ``batch`` sequences of a cell with ``gates`` blocks of ``hidden`` units."""
    hidden_pad = padded(hidden)
    if hidden_pad > MAX_HIDDEN_PAD:
        raise ValueError(
            f"model.impl=triton runs hidden sizes up to {MAX_HIDDEN_PAD} (one program holds a whole hidden "
            f"state), got {hidden}; use model.impl=fused or loop"
        )
    # The fewest rows per program, as long as every program gets an SM of its own: a step's latency hardly
    # grows with the rows, but programs beyond the SM count wait for a whole sequence.
    block_b = MIN_DOT
    while block_b < MAX_BLOCK_B and -(-batch // block_b) * directions > sms:
        block_b *= 2
    tile = gates * hidden_pad * hidden_pad
    weight_bytes = tile * operand_dtype.itemsize
    weight_on_chip = weight_bytes <= ON_CHIP_BYTES and hidden_pad <= MAX_ON_CHIP_PAD[operand_dtype.itemsize]
    grad_bytes = tile * acc_dtype.itemsize + (weight_bytes if weight_on_chip else 0)
    grad_on_chip = grad_bytes <= ON_CHIP_BYTES and hidden_pad <= MAX_ON_CHIP_PAD[acc_dtype.itemsize]
    return Plan(
        block_b=block_b,
        hidden_pad=hidden_pad,
        weight_on_chip=weight_on_chip,
        grad_on_chip=grad_on_chip,
        chunk=min(CHUNK, hidden_pad),
        num_warps=4 if hidden_pad <= 32 else 8,
        precision=dot_precision(operand_dtype, fp32_precision),
        operand_dtype=operand_dtype,
        acc_dtype=acc_dtype,
    )
