"""Forward + backward speed and peak memory of rnn / lstm / gru x {loop, fused, triton, torch}.

``python -m benchmarks.cells`` (``make bench``; ``--quick`` for a short run, ``--json`` for rows,
``--floor`` for a ``gemm`` row per cell: the matrix products alone, see ``floor.py``; ``--device cuda`` for the GPU:
rows fused, triton and torch, which there is cuDNN).

Protocol, the same for every implementation:

* the three layers of a cell kind hold the same weights (``torch`` is ``torch.nn.RNN/LSTM/GRU`` via
  ``reference.torch_twin``); one step is ``zero_grad(set_to_none)``, forward, ``out.backward(g)`` with a
  fixed dense upstream gradient ``g``. The input requires grad (as a layer inside a network sees it)
  unless ``--no-input-grad``;
* time: median of ``--repeats`` runs after ``--warmup`` runs. The implementations of one cell / shape /
  dtype take turns run by run, so background load falls on all of them alike, and ``ratio`` divides by
  the ``torch`` row of that same group (same process, same minutes). The clock (``--clock``): on CPU
  with one thread, the calling thread's CPU time, which holds the whole step (ops, MKL, the autograd
  engine's CPU backward, page faults) but not the time other processes hold the core; with more threads
  wall clock; on CUDA, CUDA events around the step (the device's time for its queued work). ``--clock wall``
  forces wall clock on CPU;
* threads: set explicitly (``--threads``, default 1) and printed. One thread is the default because
  this project's 2-core machines are shared: with two OpenMP threads, every small op waits for the
  other core, and timings swing tenfold with the neighbours' load. Pass ``--threads 2`` on a quiet one;
* peak memory on CPU: one extra run under ``torch.profiler`` with ``profile_memory=True``, whose event
  stream has one record per allocation and per free through PyTorch's CPU allocator (activations
  saved for backward, temporaries, outputs, gradients); the peak of their running sum, above what
  was live before the step, is the CPU counterpart of ``torch.cuda.max_memory_allocated``, which is
  what CUDA uses. (tracemalloc would see none of it: tensor memory is not Python's.)
* page faults: the table also shows the minor page faults per step (MB, median; Linux and macOS).
  They are part of the time, and they depend on the allocator's history: glibc maps a large buffer
  fresh from the kernel on every call, or serves it from heap pages it already holds, and which one
  happens can change with whatever the process allocated earlier. torch.nn's LSTM (oneDNN) is the
  sensitive one here: 45 MB of faults per step at the sentiment shapes, 25-40% of its time. To time
  the arithmetic alone, turn glibc's mapping and trimming off for the run:
  ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 python -m benchmarks.cells``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

try:
    import resource
except ImportError:  # Windows: no fault counts
    resource = None  # type: ignore[assignment]

from benchmarks.floor import GemmFloor
from rnn_lightning.nn.layer import Recurrent
from rnn_lightning.nn.reference import torch_twin

CELLS = ("rnn", "lstm", "gru")
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}
IMPLS = ("loop", "fused", "triton", "torch")
# What runs where by default: the Triton kernels on a GPU, the loop on a CPU (on a GPU it is a launch-bound reference).
DEFAULT_IMPLS = {"cpu": ("loop", "fused", "torch"), "cuda": ("fused", "triton", "torch")}


@dataclass(frozen=True)
class Shape:
    name: str
    batch: int
    steps: int
    inputs: int
    hidden: int
    dtypes: tuple[str, ...]

    def describe(self) -> str:
        return f"B={self.batch} T={self.steps} I={self.inputs} H={self.hidden}"


SHAPES = {
    s.name: s
    for s in (
        Shape("sine", 98, 999, 1, 51, ("float32", "float64")),
        Shape("sentiment-b200", 200, 51, 50, 128, ("float32",)),
        Shape("sentiment-b500", 500, 51, 50, 128, ("float32",)),
    )
}


def build_layers(cell: str, shape: Shape, dtype: torch.dtype, device: str, impls: list[str]) -> dict[str, nn.Module]:
    """The requested implementations of one cell kind, all holding the same weights."""
    torch.manual_seed(0)
    loop = Recurrent(cell, shape.inputs, shape.hidden, impl="loop").to(device=device, dtype=dtype)
    layers: dict[str, nn.Module] = {}
    for impl in impls:
        if impl == "torch":
            layers[impl] = torch_twin(loop)
        elif impl == "loop":
            layers[impl] = loop
        else:
            layer = Recurrent(cell, shape.inputs, shape.hidden, impl=impl).to(device=device, dtype=dtype)
            layer.load_state_dict(loop.state_dict())
            layers[impl] = layer
    return layers


class TrainingStep:
    """One forward + backward; ``reset`` clears the gradients first, as an optimiser loop would, and is
    kept out of the measurements (a profiler cannot size a free of memory allocated before it started)."""

    def __init__(self, layer: nn.Module, x: torch.Tensor, upstream: torch.Tensor) -> None:
        self.layer, self.x, self.upstream = layer, x, upstream

    def reset(self) -> None:
        self.layer.zero_grad(set_to_none=True)
        self.x.grad = None

    def __call__(self) -> None:
        out, _ = self.layer(self.x)
        out.backward(self.upstream)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource is not None else 0


def median_times(
    steps: dict[str, TrainingStep | GemmFloor], repeats: int, warmup: int, device: str, clock: Callable[[], float]
) -> tuple[dict[str, float], dict[str, float]]:
    """Median ms and median MB of minor page faults per step, per implementation, on ``clock``;
    implementations take turns run by run."""
    for _ in range(warmup):
        for step in steps.values():
            step.reset()
            step()
    times: dict[str, list[float]] = {impl: [] for impl in steps}
    faults: dict[str, list[float]] = {impl: [] for impl in steps}
    for _ in range(repeats):
        for impl, step in steps.items():
            step.reset()
            _sync(device)
            if device.startswith("cuda"):  # CUDA events: the device's own time of the step's work, queued and all
                start_event, end_event = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                before = _faults()
                start_event.record()
                step()
                end_event.record()
                end_event.synchronize()
                times[impl].append(start_event.elapsed_time(end_event))
            else:
                before, start = _faults(), clock()
                step()
                times[impl].append((clock() - start) * 1e3)
            faults[impl].append((_faults() - before) * 4096 / 2**20)
    return (
        {impl: statistics.median(ts) for impl, ts in times.items()},
        {impl: statistics.median(fs) for impl, fs in faults.items()},
    )


def peak_mb(step: TrainingStep, device: str) -> float:
    """Peak MB allocated during one step, above what was allocated before it (see the module doc)."""
    step.reset()
    if device.startswith("cuda"):
        _sync(device)
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        _sync(device)
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    # One record per allocation (+bytes) and per free (-bytes), on the allocator's clock.
    records = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    )
    live = peak = 0
    for _, nbytes in records:
        live += nbytes
        peak = max(peak, live)
    return peak / 2**20


def measure(args: argparse.Namespace) -> tuple[list[dict], list[float]]:
    """Rows in the documented JSON form, and beside them each row's page faults (MB per step)."""
    rows, faults = [], []
    for shape in (SHAPES[name] for name in args.shapes):
        for dtype_name in args.dtypes or shape.dtypes:
            dtype = getattr(torch, dtype_name)
            for cell in args.cells:
                layers = build_layers(cell, shape, dtype, args.device, args.impls)
                gen = torch.Generator().manual_seed(1)
                x = torch.randn(shape.batch, shape.steps, shape.inputs, generator=gen, dtype=dtype)
                x = x.to(args.device).requires_grad_(args.input_grad)
                upstream = torch.randn(shape.batch, shape.steps, shape.hidden, generator=gen, dtype=dtype)
                steps: dict[str, TrainingStep | GemmFloor] = {
                    impl: TrainingStep(layer, x, upstream.to(args.device)) for impl, layer in layers.items()
                }
                if args.floor:
                    steps["gemm"] = GemmFloor(cell, x, shape.hidden)
                ms, fault_mb = median_times(steps, args.repeats, args.warmup, args.device, CLOCKS[args.clock])
                peaks = {
                    impl: peak_mb(step, args.device) if args.memory and impl != "gemm" else None
                    for impl, step in steps.items()
                }
                for impl in steps:
                    rows.append(
                        {
                            "cell": cell,
                            "impl": impl,
                            "shape": shape.name,
                            "dtype": dtype_name,
                            "device": args.device,
                            "ms": round(ms[impl], 2),
                            "peak_mb": round(peaks[impl], 2) if peaks[impl] is not None else None,
                            "ratio": round(ms[impl] / ms["torch"], 3) if "torch" in ms else None,
                        }
                    )
                    faults.append(fault_mb[impl])
                if args.progress:
                    print(f"  done {shape.name} {dtype_name} {cell}", file=sys.stderr, flush=True)
    return rows, faults


def format_table(rows: list[dict], faults: list[float]) -> str:
    """One line per row; ``x torch`` is time / torch's time, ``mem x torch`` the same for peak memory,
    ``faults MB`` the minor page faults per step."""
    head = (
        f"{'shape':<16}{'dtype':<9}{'cell':<6}{'impl':<7}{'ms':>10}{'x torch':>9}{'peak MB':>10}{'mem x torch':>13}"
        f"{'faults MB':>11}"
    )
    lines = [head, "-" * len(head)]
    torch_peak = {(r["shape"], r["dtype"], r["cell"]): r["peak_mb"] for r in rows if r["impl"] == "torch"}
    previous = None
    for r, fault_mb in zip(rows, faults):
        group = (r["shape"], r["dtype"], r["cell"])
        if previous is not None and group[:2] != previous[:2]:
            lines.append("")
        previous = group
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        peak = f"{r['peak_mb']:.1f}" if r["peak_mb"] is not None else "-"
        base = torch_peak.get(group)
        mem = f"{r['peak_mb'] / base:.2f}" if r["peak_mb"] is not None and base else "-"
        lines.append(
            f"{r['shape']:<16}{r['dtype']:<9}{r['cell']:<6}{r['impl']:<7}{r['ms']:>10.1f}{ratio:>9}{peak:>10}{mem:>13}"
            f"{fault_mb:>11.1f}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cells", description=__doc__.split("\n")[0])
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    parser.add_argument(
        "--impls", nargs="+", choices=IMPLS, help="default: loop fused torch on CPU, fused triton torch on CUDA"
    )
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "float64"], help="default: per shape")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per implementation (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per implementation first")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--clock", choices=["auto", "wall", "cpu"], default="auto", help="auto: cpu with 1 CPU thread, else wall"
    )
    parser.add_argument("--no-input-grad", dest="input_grad", action="store_false", help="input needs no grad")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory runs")
    parser.add_argument(
        "--floor", action="store_true", help="add a 'gemm' row: the matrix products alone (bench_floor.py)"
    )
    parser.add_argument("--quick", action="store_true", help="3 repeats, 1 warm-up, sine float32 and b200 only")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args(argv)
    args.impls = args.impls or list(DEFAULT_IMPLS["cuda" if args.device.startswith("cuda") else "cpu"])
    if args.quick:
        args.repeats, args.warmup = 3, 1
        args.shapes = [s for s in args.shapes if s in ("sine", "sentiment-b200")] or args.shapes
        args.dtypes = args.dtypes or ["float32"]
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1, --warmup at least 0")
    if args.clock == "auto":
        args.clock = "cpu" if args.device == "cpu" and args.threads == 1 else "wall"
    if args.clock == "cpu" and (args.device != "cpu" or args.threads != 1):
        parser.error("--clock cpu measures the calling thread: only with --device cpu --threads 1")
    args.progress = not args.json and sys.stderr.isatty()
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    clock = "thread CPU time" if args.clock == "cpu" else "wall clock"
    setup = (
        f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} clock={clock} "
        f"input_grad={args.input_grad} repeats={args.repeats} warmup={args.warmup}"
    )
    rows, faults = measure(args)
    if args.json:
        print(setup, file=sys.stderr)
        print(json.dumps(rows, indent=1))
        return
    print(f"forward+backward, median ms ({setup})")
    for name in args.shapes:
        print(f"  {name}: {SHAPES[name].describe()}")
    print(format_table(rows, faults))


if __name__ == "__main__":
    main()
