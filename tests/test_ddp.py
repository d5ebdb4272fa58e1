"""Data-parallel training on two CPU processes (gloo) trains what one process trains with twice the batch.

``batch`` is per process: N processes with batch=b take N*b examples per optimizer step, and EpochShuffle gives
process r every N-th example of the epoch's order, so step j sees the same examples as step j of one process with
batch=N*b. DDP averages the N gradients of b-example means, which is the gradient of the N*b-example mean; what
remains is the order of floating-point sums. Adam divides by the square root of tiny second moments for rarely seen
words, which magnifies those 1e-7 differences in a few embedding entries (measured: 1.2e-4 at most, after 80 steps at
lr 0.01); the tolerance is 1e-3 for weights, two reviews (of 2662) for test accuracy and two (of 800) for validation.
Validation is split over the processes (torchmetrics syncs it); the test set is scored once, by rank 0 alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "model.hidden_size=16",
    # Dropout masks are drawn per process (SeedEachBatch seeds with the rank), so with dropout two processes would
    # train another model than one; without it, the two runs differ only in the order of floating-point sums.
    "module.embedding_dropout=0.0",
    "module.word_dropout=0.0",
    "optim.lr=0.01",
    "epochs=2",
    "trainer.limit_train_batches=40",
    "trainer.deterministic=true",
]
TEST_REVIEWS = 2662
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two CPU processes need two cores"),
]


def _train_py(data: Path, *args: str) -> subprocess.Popen:
    flags = [arg for arg in args if arg.startswith("-")]  # Hydra's flags (-m) go before the overrides
    overrides = [arg for arg in args if not arg.startswith("-")]
    command = [sys.executable, str(ROOT / "train.py"), *flags, *SMALL, f"data.data_dir={data}", *overrides]
    return subprocess.Popen(command, cwd=data.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, stderr[-3000:]


def _record(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    """The parameters, not the running metrics' states (train_loss.total, val_acc_best.max_value, ...) beside them."""
    state = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return {name: t for name, t in state.items() if not name.split(".")[0].startswith(("train_", "val_", "test_"))}


def assert_same_training(single: Path, parallel: Path) -> None:
    one, two = _record(single), _record(parallel)
    assert one["status"] == two["status"] == "completed" and one["epochs"] == two["epochs"] == 2
    assert abs(one["test"]["test/acc"] - two["test"]["test/acc"]) <= 2 / TEST_REVIEWS
    assert abs(one["best_val"] - two["best_val"]) <= 2 / 800
    for name, weight in _weights(single).items():
        torch.testing.assert_close(_weights(parallel)[name], weight, rtol=0, atol=1e-3)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, polarity_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("single")
    _finish(_train_py(polarity_dir, "trainer=cpu", "batch=64", f"hydra.run.dir={folder}"))
    assert _record(folder)["test"]["test/acc"] > 0.58  # it learned something, so that agreement means something
    return folder


DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "batch=32"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory, polarity_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("ddp") / "run"
    _finish(_train_py(polarity_dir, *DDP, f"hydra.run.dir={folder}"))
    return folder


def test_ddp_on_two_cpu_processes_matches_one_process_with_twice_the_batch(single, ddp_run):
    assert_same_training(single, ddp_run)
    # One process wrote the run's files: one metrics.json (no second writer's leftovers), one TensorBoard run.
    assert sorted(p.name for p in ddp_run.glob("metrics*.json")) == ["metrics.json"]
    assert len(list((ddp_run / "tensorboard").iterdir())) == 1 and (ddp_run / "figures" / "confusion.png").exists()


def test_sigterm_to_rank_0_alone_stops_both_processes_and_the_resumed_run_matches(ddp_run, polarity_dir, tmp_path):
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    process = _train_py(polarity_dir, *DDP, f"hydra.run.dir={run}")
    while not last.exists():  # the end of epoch 1: the signal lands in epoch 2
        assert process.poll() is None, process.stderr.read()[-3000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # rank 0 only: Lightning's launcher started rank 1 as its child
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stderr[-3000:]
    assert _record(run)["status"] == "interrupted"
    _finish(_train_py(polarity_dir, *DDP, f"hydra.run.dir={run}", f"ckpt_path={last}"))
    assert (_record(run)["test"], _record(run)["best_val"]) == (_record(ddp_run)["test"], _record(ddp_run)["best_val"])
    for name, weight in _weights(ddp_run).items():
        assert torch.equal(_weights(run)[name], weight), name


def test_ddp_spawn_works_inside_a_sweep(single, polarity_dir, tmp_path):
    spawn = ["trainer=ddp_spawn", "trainer.accelerator=cpu", "trainer.devices=2", "batch=32"]
    _finish(_train_py(polarity_dir, "-m", *spawn, "optim=adam,sgdm", f"hydra.sweep.dir={tmp_path}"))
    assert [_record(tmp_path / job)["params"]["optim"] for job in ("0", "1")] == ["adam", "sgdm"]
    assert_same_training(single, tmp_path / "0")
    assert _record(tmp_path / "1")["status"] == "completed"
