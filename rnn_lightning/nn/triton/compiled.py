"""What the GPU compiler makes of a layer's kernels, without a GPU: registers, spills, shared memory, the time loop.

``triton.compile`` builds the kernels for an H100/H200 (sm_90) the way a launch would, from the same plan
(``plan.choose_plan``), and ``ptxas -v`` (the one Triton ships and uses) reports registers and spills per thread.
The time loop is read in the TTGIR: how many products it holds, how many layout conversions go through shared
memory, and whether any load reads an address the same step stores to (a read-modify-write, such as a partial
dW_hh summed in global memory, would wait on its own store every step).

    python -m rnn_lightning.nn.triton.compiled gru,128,64,2,float32,float32,tf32 lstm,51,98,1,float64,float64,ieee

prints one JSON line per kernel of each layer (kind, hidden size, batch, directions, parameter and operand
dtypes, fp32 precision). It must run without ``TRITON_INTERPRET`` (the interpreter replaces the kernels).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import get_ptxas
from triton.compiler import ASTSource

from rnn_lightning.nn.triton import launch
from rnn_lightning.nn.triton.plan import Plan, choose_plan

SM90 = GPUTarget("cuda", 90, 32)
POINTER_DTYPES = {torch.float16: "*fp16", torch.bfloat16: "*bf16", torch.float32: "*fp32", torch.float64: "*fp64"}
IN_ACC = ("gates_ptr", "cells_ptr", "hidden_n_ptr", "extra_ptr", "scratch_ptr")  # buffers in the accumulation dtype
CELLS = {"rnn": launch.RNNCell, "lstm": launch.LSTMCell, "gru": launch.GRUCell}


def compile_layer(
    kind: str, hidden: int, batch: int, directions: int, param: torch.dtype, operand: torch.dtype, precision: str
) -> list[dict[str, Any]]:
    """Both kernels of one layer, as a launch with these sizes would build them (lengths on): one dict each."""
    kernels = launch.KERNELS[CELLS[kind]]
    acc = torch.float64 if param == torch.float64 else torch.float32
    plan = choose_plan(batch, hidden, kernels.gates, directions, operand, acc, fp32_precision=precision)
    return [compile_kernel(kernel, plan, param, operand) for kernel in (kernels.forward, kernels.backward)]


def compile_kernel(kernel: Any, plan: Plan, param: torch.dtype, operand: torch.dtype) -> dict[str, Any]:
    constexprs = plan.constexprs(has_lengths=True)
    signature = {}
    for name in kernel.arg_names:
        if name in constexprs:
            signature[name] = "constexpr"
        elif not name.endswith("_ptr"):
            signature[name] = "i32"
        elif name == "lengths_ptr":
            signature[name] = "*i64"
        else:
            dtype = operand if name == "w_ptr" else plan.acc_dtype if name in IN_ACC else param
            signature[name] = POINTER_DTYPES[dtype]
    compiled = triton.compile(
        ASTSource(kernel, signature, constexprs), target=SM90, options={"num_warps": plan.num_warps}
    )
    ptx = compiled.asm["ptx"]
    loop = time_loop(compiled.asm["ttgir"])
    return {
        "kernel": kernel.__name__,
        "precision": plan.precision,
        "block_b": plan.block_b,
        "num_warps": plan.num_warps,
        "weight_on_chip": plan.weight_on_chip,
        "shared_bytes": compiled.metadata.shared,
        **ptxas_report(ptx),
        "tf32_in_ptx": "tf32" in ptx,
        "atomics_in_ptx": "atom." in ptx,
        "loop_products": loop.count("tt.dot "),
        "loop_conversions": loop.count("ttg.convert_layout ") + loop.count("ttg.local_alloc "),
        "loop_read_modify_writes": read_modify_writes(loop),
    }


def ptxas_report(ptx: str) -> dict[str, int]:
    """Registers and spilled bytes per thread, from the ptxas Triton compiles with (sm_90a)."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder, "kernel.ptx")
        source.write_text(ptx)
        command = [get_ptxas(90).path, "-lineinfo", "-v", "--gpu-name=sm_90a", str(source), "-o", f"{source}.o"]
        log = subprocess.run(command, capture_output=True, text=True, check=True).stderr
    registers = re.search(r"Used (\d+) registers", log)
    stores, loads = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log).groups()
    return {"registers": int(registers.group(1)), "spill_store_bytes": int(stores), "spill_load_bytes": int(loads)}


def time_loop(ttgir: str) -> str:
    """The kernel's longest ``scf.for``, its time loop (nested chunk loops included), as TTGIR text."""
    return max((loop_at(ttgir, start.start()) for start in re.finditer(r"scf\.for ", ttgir)), key=len)


def loop_at(ttgir: str, start: int) -> str:
    """The ``scf.for`` at ``start``: its line ends with the ``{`` of its body (the types before it hold braces too)."""
    depth = 0
    for end in range(ttgir.rindex("{", start, ttgir.index("\n", start)), len(ttgir)):
        depth += {"{": 1, "}": -1}.get(ttgir[end], 0)
        if depth == 0:
            return ttgir[start : end + 1]
    raise ValueError("unbalanced TTGIR")


def read_modify_writes(loop: str) -> int:
    """Pointer values the loop both loads from and stores to (a load of what the same step stores)."""
    loaded = set(re.findall(r"tt\.load (%[\w.#]+)", loop))
    stored = set(re.findall(r"tt\.store (%[\w.#]+)", loop))
    return len(loaded & stored)


def main(configs: list[str]) -> None:
    """Each config ``kind,hidden,batch,directions,param dtype,operand dtype,precision``: one JSON line per kernel."""
    for config in configs:
        kind, hidden, batch, directions, param, operand, precision = config.split(",")
        dtypes = getattr(torch, param), getattr(torch, operand)
        for row in compile_layer(kind, int(hidden), int(batch), int(directions), *dtypes, precision):
            print(json.dumps({"config": config, **row}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
