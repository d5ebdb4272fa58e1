"""The GPU check's benchmark: a row per case and implementation, appended to a JSON-lines file as each case ends.

    python -m benchmarks.gpu_bench --rows FILE [--cases NAME ...] [--rehearse]

Cases, most decisive first (a check cut short keeps the first ones):

* ``sine-fp64``: the sine default, LSTM H=51, batch 98, 999 steps, float64: triton, fused, loop, torch (cuDNN);
* ``sine-fp32``: the same in float32, each side in the fp32 precision torch's cuDNN RNN setting allows (TF32 by
  default): the like-for-like comparison;
* ``sentiment``: the network ``python train.py`` trains (conf/task/sentiment.yaml; a test checks it): one
  bidirectional GRU layer, H=128 over 50-d embeddings, batch 64, 51 steps, with lengths (drawn like the reviews':
  mean 22, sd 10), torch fed a packed sequence, as it would be;
* ``sine-fp32-ieee``: sine in float32 with IEEE products on both sides (cuDNN's TF32 off for the case);
* ``sentiment-uni``: one direction, batch 200, no lengths: where cuDNN runs its persistent small-H kernels;
* ``user-cell``: ``examples.cells.PeepholeLSTM`` at the sine shape on the loop, eager and as CUDA graphs
  (``torch.cuda.make_graphed_callables``: what a generic GPU path for any cell could gain), beside cuDNN's LSTM.

Protocol: the implementations of a case hold the same weights. Each first runs once alone (``first_s``: its wall
time, with Triton's compile and first check, cuDNN's setup or the graph capture), then ``--warmup`` times untimed;
then they take turns for up to ``--repeats`` runs within ``--case-seconds`` (at least 3). A run is the forward, then
the backward of a fixed random upstream gradient, each timed apart with CUDA events (on a CPU, the wall clock). Rows
carry the medians (``fwd_ms``, ``bwd_ms``, their sum ``ms``), ``ratio`` (ms over torch's in the same case), the peak
memory of a run, the fp32 precision of the row's products and cuDNN's algorithm for the case (``cudnn_algo.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from benchmarks.cudnn_algo import H100, Device, cudnn_algorithm
from rnn_lightning.nn.layer import Recurrent
from rnn_lightning.nn.reference import torch_twin
from rnn_lightning.nn.registry import triton_available


@dataclass(frozen=True)
class Case:
    name: str
    cell: str  # a built-in name, or a user cell's import path (the torch reference is then an LSTM)
    hidden: int
    inputs: int
    batch: int
    steps: int
    bidirectional: bool
    lengths: bool
    dtype: str
    impls: tuple[str, ...]
    fp32_precision: str | None = None  # for triton and for cuDNN's RNNs during the case; None: torch's setting
    layers: int = 1

    def shape(self) -> str:
        sides = ("bi" if self.bidirectional else "uni") + (f" x{self.layers}" if self.layers > 1 else "")
        return f"B={self.batch} T={self.steps} I={self.inputs} H={self.hidden} {sides}" + (" lengths" * self.lengths)


SINE = Case("sine-fp64", "lstm", 51, 1, 98, 999, False, False, "float64", ("triton", "fused", "loop", "torch"))
CASES = (
    SINE,
    replace(SINE, name="sine-fp32", dtype="float32", impls=("triton", "fused", "torch")),
    Case("sentiment", "gru", 128, 50, 64, 51, True, True, "float32", ("triton", "fused", "torch")),
    replace(SINE, name="sine-fp32-ieee", dtype="float32", impls=("triton", "torch"), fp32_precision="ieee"),
    Case("sentiment-uni", "gru", 128, 50, 200, 51, False, False, "float32", ("triton", "fused", "torch")),
    replace(SINE, name="user-cell", cell="examples.cells.PeepholeLSTM", impls=("loop", "graph", "torch")),
)
REHEARSAL_SIZES = {"hidden": 8, "batch": 4, "steps": 6}  # every case at a size the CPU and the interpreter run fast


def tiny(case: Case) -> Case:
    return replace(case, **{key: min(getattr(case, key), size) for key, size in REHEARSAL_SIZES.items()})


class Bench:
    """One implementation of a case: ``forward()`` then ``backward(out)``, each a half of one timed run."""

    def __init__(self, layer: nn.Module, x: Tensor, lengths: Tensor | None, upstream: Tensor, impl: str) -> None:
        self.layer, self.x, self.lengths, self.upstream, self.impl = layer, x, lengths, upstream, impl
        self.lengths_cpu = lengths.cpu() if lengths is not None else None  # packing wants them on the host

    def forward(self) -> Tensor:
        self.layer.zero_grad(set_to_none=True)
        self.x.grad = None
        if self.impl == "graph":
            return self.layer(self.x)
        if self.impl == "torch" and self.lengths is not None:
            packed = pack_padded_sequence(self.x, self.lengths_cpu, batch_first=True, enforce_sorted=False)
            out, _ = self.layer(packed)
            return pad_packed_sequence(out, batch_first=True, total_length=self.x.shape[1])[0]
        if self.impl == "torch":
            return self.layer(self.x)[0]
        return self.layer(self.x, lengths=self.lengths)[0]

    def backward(self, out: Tensor) -> None:
        out.backward(self.upstream)


class OutputsOnly(nn.Module):
    """The layer's outputs alone: what ``make_graphed_callables`` takes (a tensor, not a nested state tuple)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)[0]


def build(case: Case, device: str) -> tuple[dict[str, Bench], dict[str, str]]:
    """The case's implementations holding the same weights, and why any could not be built."""
    dtype = getattr(torch, case.dtype)
    torch.manual_seed(0)
    user_cell = "." in case.cell
    reference_cell = "lstm" if user_cell else case.cell
    make = dict(num_layers=case.layers, bidirectional=case.bidirectional, fp32_precision=case.fp32_precision)
    loop = Recurrent(case.cell, case.inputs, case.hidden, impl="loop", **make).to(device, dtype)
    built = Recurrent(reference_cell, case.inputs, case.hidden, impl="loop", **make).to(device, dtype)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(case.batch, case.steps, case.inputs, generator=generator, dtype=dtype).to(device)
    x.requires_grad_()
    width = case.hidden * (2 if case.bidirectional else 1)
    upstream = torch.randn(case.batch, case.steps, width, generator=generator, dtype=dtype).to(device)
    lengths = None
    if case.lengths:
        drawn = torch.normal(22.0, 10.0, (case.batch,), generator=generator).round().clamp(1, case.steps).long()
        drawn[0] = case.steps  # the longest fills the padded batch
        lengths = drawn.to(device)
    benches, skipped = {}, {}
    for impl in case.impls:
        if impl == "triton" and not triton_available():
            skipped[impl] = "Triton is not installed"
        elif impl == "graph" and not device.startswith("cuda"):
            skipped[impl] = "CUDA graphs need a CUDA device"
        elif impl == "torch":
            benches[impl] = Bench(torch_twin(built), x, lengths, upstream, impl)
        elif impl in ("loop", "graph"):
            benches[impl] = Bench(loop if impl == "loop" else OutputsOnly(loop), x, lengths, upstream, impl)
        else:
            layer = Recurrent(case.cell, case.inputs, case.hidden, impl=impl, **make).to(device, dtype)
            layer.load_state_dict(loop.state_dict())
            benches[impl] = Bench(layer, x, lengths, upstream, impl)
    return benches, skipped


def first_run(bench: Bench, device: str) -> float:
    """Wall seconds of the first forward + backward: compiles, checks, captures and setups included."""
    _sync(device)
    start = time.perf_counter()
    if bench.impl == "graph":  # capture the loop's forward and backward, each as one CUDA graph
        bench.layer = torch.cuda.make_graphed_callables(bench.layer, (bench.x,))
    bench.backward(bench.forward())
    _sync(device)
    return time.perf_counter() - start


def timed_run(bench: Bench, device: str) -> tuple[float, float]:
    """(forward ms, backward ms) of one run: CUDA events on a GPU, the wall clock on a CPU."""
    if device.startswith("cuda"):
        start, middle, end = (torch.cuda.Event(enable_timing=True) for _ in range(3))
        _sync(device)
        start.record()
        out = bench.forward()
        middle.record()
        bench.backward(out)
        end.record()
        end.synchronize()
        return start.elapsed_time(middle), middle.elapsed_time(end)
    begin = time.perf_counter()
    out = bench.forward()
    half = time.perf_counter()
    bench.backward(out)
    return (half - begin) * 1e3, (time.perf_counter() - half) * 1e3


def peak_mb(bench: Bench, device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    _sync(device)
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    bench.backward(bench.forward())
    _sync(device)
    return round((torch.cuda.max_memory_allocated() - base) / 2**20, 1)


def measure(case: Case, device: str, repeats: int, seconds: float, warmup: int = 2) -> list[dict]:
    """The rows of one case."""
    benches, skipped = build(case, device)
    first: dict[str, float] = {}
    errors = dict(skipped)
    for impl, bench in list(benches.items()):
        try:
            first[impl] = first_run(bench, device)
            for _ in range(warmup):
                bench.backward(bench.forward())
        except Exception as error:  # one implementation failing must not cost the others their rows
            errors[impl] = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300] if str(error) else ''}"
            del benches[impl]
    halves: dict[str, list[tuple[float, float]]] = {impl: [] for impl in benches}
    started = time.perf_counter()
    for done in range(repeats):
        if done >= min(3, repeats) and time.perf_counter() - started > seconds:
            break
        for impl, bench in benches.items():
            halves[impl].append(timed_run(bench, device))
    medians = {
        impl: (statistics.median(f for f, _ in runs), statistics.median(b for _, b in runs))
        for impl, runs in halves.items()
    }
    reference = sum(medians["torch"]) if "torch" in medians else None
    common = {"case": case.name, "shape": case.shape(), "cell": case.cell, "dtype": case.dtype, "device": device}
    common["cudnn"] = case_algorithms(case, device)
    rows = []
    for impl in case.impls:
        row = {**common, "impl": impl, "precision": precision(impl, case)}
        if impl in medians:
            fwd, bwd = medians[impl]
            row |= {"fwd_ms": round(fwd, 3), "bwd_ms": round(bwd, 3), "ms": round(fwd + bwd, 3)}
            row |= {"ratio": round((fwd + bwd) / reference, 3) if reference else None, "runs": len(halves[impl])}
            row |= {"first_s": round(first[impl], 2), "peak_mb": peak_mb(benches[impl], device)}
        else:
            row["error"] = errors.get(impl, "not run")
        rows.append(row)
    return rows


def precision(impl: str, case: Case) -> str:
    """What the row's recurrent products ran in: fp64, fp32 in ieee/tf32/tf32x3, as each implementation decides."""
    if case.dtype != "float32":
        return case.dtype.replace("float", "fp")
    from rnn_lightning.nn.triton.plan import dot_precision, torch_rnn_precision

    if impl == "triton":
        return dot_precision(torch.float32, case.fp32_precision)
    if impl == "torch":
        return torch_rnn_precision()
    matmul = str(torch.backends.cuda.matmul.fp32_precision)  # the loop and fused paths' products are torch matmuls
    return "tf32" if matmul == "tf32" else "ieee"


def case_algorithms(case: Case, device: str) -> str:
    """cuDNN's algorithm for the case's torch row, ``forward / backward``."""
    where = H100
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        where = Device(props.major, props.minor, props.multi_processor_count)
    cell = "lstm" if "." in case.cell else case.cell
    shape = (cell, case.hidden, case.inputs, case.batch, case.steps, case.layers, case.bidirectional, case.dtype)
    shape += (case.lengths,)  # lengths: torch's input is packed
    fwd, bwd = (cudnn_algorithm(*shape, forward=f, device=where) for f in (True, False))
    return f"{fwd} / {bwd}" + ("" if device.startswith("cuda") else " (assumed H100)")


class Fp32Setting:
    """cuDNN's RNN fp32 precision set for one case (the ``ieee`` case), and back to what it was afterwards."""

    def __init__(self, setting: str | None) -> None:
        self.setting = setting

    def __enter__(self) -> None:
        self.before = torch.backends.cudnn.rnn.fp32_precision
        if self.setting is not None:
            torch.backends.cudnn.rnn.fp32_precision = self.setting

    def __exit__(self, *exc: object) -> None:
        torch.backends.cudnn.rnn.fp32_precision = self.before


def append_rows(path: Path, rows: list[dict]) -> None:
    """Appended and flushed to the disk at once: a check killed later still has them."""
    with path.open("a") as sink:
        for row in rows:
            sink.write(json.dumps(row) + "\n")
        sink.flush()
        os.fsync(sink.fileno())


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=Path, required=True, help="JSON-lines file the rows are appended to")
    parser.add_argument("--cases", nargs="+", choices=[c.name for c in CASES], help="default: all, in order")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per implementation at most (median)")
    parser.add_argument("--case-seconds", type=float, default=10.0, help="timed runs stop after this, past 3")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per implementation after the first")
    parser.add_argument("--rehearse", action="store_true", help="on the CPU at tiny sizes, to check the plumbing")
    args = parser.parse_args(argv)
    if not (torch.cuda.is_available() or args.rehearse):
        parser.error("needs a CUDA device; --rehearse runs the same cases on the CPU at tiny sizes")
    device = "cuda" if torch.cuda.is_available() and not args.rehearse else "cpu"
    if device == "cpu":  # the kernels through Triton's interpreter, which it reads when they are first imported
        os.environ.setdefault("TRITON_INTERPRET", "1")
        torch.set_num_threads(1)  # small ops on two threads wait for each other (benchmarks/cells.py)
    chosen = [c for c in CASES if not args.cases or c.name in args.cases]
    for case in (tiny(c) if args.rehearse else c for c in chosen):
        try:
            with Fp32Setting(case.fp32_precision):
                rows = measure(case, device, args.repeats, args.case_seconds, args.warmup)
        except Exception as error:  # the case is lost, not the cases after it
            rows = [
                {"case": case.name, "shape": case.shape(), "impl": impl, "error": repr(error)[:300]}
                for impl in case.impls
            ]
        append_rows(args.rows, rows)
        for row in rows:
            timing = f"{row['fwd_ms']:.2f} + {row['bwd_ms']:.2f} ms" if "ms" in row else row["error"]
            print(f"{case.name:<15} {row['impl']:<7} {row['precision']:<5} {timing}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
