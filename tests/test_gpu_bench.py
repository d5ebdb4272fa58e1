"""The GPU check's benchmark rows: forward and backward apart, a ratio to torch's in the same case, what each row's
products ran in and cuDNN's algorithm, and a failing implementation costs only its own row. On the CPU, at the
rehearsal's tiny sizes."""

from dataclasses import replace

import pytest
import torch

from benchmarks import gpu_bench
from benchmarks.gpu_report import read_lines

CASES = {case.name: gpu_bench.tiny(case) for case in gpu_bench.CASES}


def test_a_case_gives_a_row_per_implementation_with_both_halves_and_a_ratio():
    case = replace(CASES["sentiment"], impls=("fused", "loop", "torch"))
    rows = gpu_bench.measure(case, "cpu", repeats=2, seconds=10, warmup=0)
    assert [r["impl"] for r in rows] == ["fused", "loop", "torch"]
    for row in rows:
        assert row["fwd_ms"] > 0 and row["bwd_ms"] > 0 and row["runs"] == 2
        assert row["ms"] == pytest.approx(row["fwd_ms"] + row["bwd_ms"], abs=2e-3)
        assert row["ratio"] == pytest.approx(row["ms"] / rows[-1]["ms"], rel=1e-2, abs=1e-3)  # rounded to 3 places
        assert row["shape"] == "B=4 T=6 I=50 H=8 bi lengths" and row["peak_mb"] is None
        assert row["cudnn"] == "standard / standard (assumed H100)"  # packed: lengths
    assert rows[-1]["ratio"] == 1.0
    assert rows[0]["precision"] == "ieee" and rows[-1]["precision"] == gpu_bench.precision("torch", case)


def test_precision_and_cudnn_algorithm_follow_the_case():
    sine32 = CASES["sine-fp32"]
    assert gpu_bench.case_algorithms(gpu_bench.CASES[1], "cpu").startswith("persist_static_small_h / persist")
    assert gpu_bench.case_algorithms(gpu_bench.CASES[0], "cpu").startswith("standard / standard")  # float64
    assert gpu_bench.precision("triton", CASES["sine-fp64"]) == "fp64"
    assert gpu_bench.precision("triton", replace(sine32, fp32_precision="tf32x3")) == "tf32x3"
    with gpu_bench.Fp32Setting("ieee"):
        assert gpu_bench.precision("torch", sine32) == "ieee"
        assert gpu_bench.precision("triton", sine32) == "ieee"  # None follows cuDNN's setting
    assert torch.backends.cudnn.rnn.fp32_precision == "tf32"  # back as it was


def test_an_implementation_that_fails_costs_only_its_own_row(monkeypatch):
    real = gpu_bench.first_run

    def first_run(bench, device):
        if bench.impl == "fused":
            raise RuntimeError("out of resources: shared memory\nmore")
        return real(bench, device)

    monkeypatch.setattr(gpu_bench, "first_run", first_run)
    rows = gpu_bench.measure(replace(CASES["sine-fp64"], impls=("fused", "torch")), "cpu", 1, 10, 0)
    assert rows[0]["error"] == "RuntimeError: out of resources: shared memory" and "ms" not in rows[0]
    assert rows[1]["ratio"] == 1.0


def test_cuda_graphs_are_skipped_off_cuda_and_rows_are_appended_whole(tmp_path):
    rows = gpu_bench.measure(CASES["user-cell"], "cpu", 1, 10, 0)
    assert [r["impl"] for r in rows] == ["loop", "graph", "torch"]
    assert rows[1]["error"] == "CUDA graphs need a CUDA device" and rows[0]["cell"] == "examples.cells.PeepholeLSTM"
    path = tmp_path / "bench.jsonl"
    gpu_bench.append_rows(path, rows[:2])
    gpu_bench.append_rows(path, rows[2:])
    assert read_lines(path) == rows
