"""The benchmark's floor does exactly the matrix products of torch.nn's forward + backward, no more, no less."""

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import cells as bench
from benchmarks.floor import GemmFloor
from rnn_lightning.nn.layer import Recurrent
from rnn_lightning.nn.reference import torch_twin

B, T, I, H = 4, 5, 3, 6


def flops(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_floor_counts_the_flops_of_torch_nn(cell, input_grad):
    torch.manual_seed(0)
    twin = torch_twin(Recurrent(cell, I, H).double())
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=input_grad)
    upstream = torch.randn(B, T, H, dtype=torch.float64)
    expected = flops(bench.TrainingStep(twin, x, upstream))
    assert expected > 0
    assert flops(GemmFloor(cell, x, H)) == expected


def test_bench_floor_rows(capsys):
    bench.main(["--cells", "rnn", "--shapes", "sentiment-b200", "--repeats", "1", "--warmup", "0", "--json", "--floor"])
    rows = json.loads(capsys.readouterr().out)
    assert [r["impl"] for r in rows] == ["loop", "fused", "torch", "gemm"]
    floor = rows[-1]
    assert floor["peak_mb"] is None and floor["ms"] > 0
    assert floor["ratio"] == pytest.approx(floor["ms"] / rows[2]["ms"], rel=1e-2)
