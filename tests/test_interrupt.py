"""Ctrl-C and SIGTERM save a resumable checkpoint; a resumed run ends exactly where an uninterrupted one does.

The fast tests signal this very process at a chosen batch (deterministic, and no interpreter start-up); the slow ones
(``make test-full``) kill a real ``python train.py`` from outside, with SIGTERM and with SIGKILL.

The configuration exercises what a resume can get wrong: several batches per epoch (the shuffled order and the
position inside the epoch), dropout (the random generator), Adam's moments, and 64-bit weights (sine's precision).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra_compose import TINY_SINE, compose_config, with_callbacks

from rnn_lightning.training.callbacks.graceful_stop import Interrupted, StopRequest
from rnn_lightning.training.run import train

ROOT = Path(__file__).resolve().parents[1]
RESUMABLE = [
    *TINY_SINE,
    "optim=adam",
    "optim.lr=0.01",
    "batch=14",  # 7 batches per epoch
    "epochs=2",
    "model.num_layers=2",
    "model.dropout=0.3",
    "trainer.deterministic=true",
]


class SignalAt(L.Callback):
    """Sends ``signum`` to this process when training reaches (epoch, batch)."""

    def __init__(self, signum: int, epoch: int, batch: int) -> None:
        self.signum, self.at = signum, (epoch, batch)

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: object, index: int) -> None:
        if (trainer.current_epoch, index) == self.at:
            os.kill(os.getpid(), self.signum)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def assert_same_outcome(reference: Path, resumed: Path) -> None:
    """Bit for bit: the same weights, the same best validation value and the same test metrics; and every value logged
    per epoch (train/loss of the interrupted epoch, val/*_best) the same as the uninterrupted run's."""
    expected, actual = weights(reference), weights(resumed)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    want, got = (json.loads((folder / "metrics.json").read_text()) for folder in (reference, resumed))
    assert got["status"] == "completed"
    assert (got["test"], got["best_val"], got["epochs"]) == (want["test"], want["best_val"], want["epochs"])
    assert logged_per_epoch(resumed) == logged_per_epoch(reference)


def logged_per_epoch(run: Path) -> dict[tuple[int, str], float]:
    """(epoch, name) -> value from metrics.csv; a resumed run has a version per launch, and its last word counts."""
    logged = {}
    for version in sorted((run / "csv").glob("version_*/metrics.csv")):
        for row in csv.DictReader(version.open()):
            for name, value in row.items():
                if value and name.startswith(("train/", "val/")):
                    logged[int(row["epoch"]), name] = float(value)
    return logged


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("uninterrupted")
    train(compose_config(RESUMABLE, folder))
    return folder


def _interrupt(run: Path, signum: int, monkeypatch: pytest.MonkeyPatch) -> Interrupted:
    """Train RESUMABLE into ``run``, sending ``signum`` at the start of the 4th batch of the 2nd epoch."""
    with pytest.raises(Interrupted) as raised:
        train(compose_config([*RESUMABLE, *with_callbacks(signal_at=SignalAt(signum, epoch=1, batch=3))], run))
    last = run / "checkpoints" / "last.ckpt"
    message = f"{signal.Signals(signum).name} received: stopped in epoch 2/2 after 4 batch(es) (global step 11)"
    assert f"{message} and saved {last}; resume with ckpt_path={last} hydra.run.dir={run}" == str(raised.value)
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "interrupted" and message in record["error"]
    assert record["epochs"] == 1  # how far it got: epoch 1 completed (and checkpointed), epoch 2 under way
    assert torch.load(last, weights_only=True)["global_step"] == 11  # saved after the batch it was in
    return raised.value


def test_sigterm_mid_epoch_saves_last_ckpt_and_the_resumed_run_matches(uninterrupted, tmp_path, monkeypatch):
    run = tmp_path / "run"
    assert _interrupt(run, signal.SIGTERM, monkeypatch).code == 143
    train(compose_config([*RESUMABLE, f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"], run))
    assert_same_outcome(uninterrupted, run)
    assert json.loads((run / "metrics.earlier-1.json").read_text())["status"] == "interrupted"


class SignalInValidation(L.Callback):
    """Sends ``signum`` to this process at the second validation batch of ``epoch`` (0-based)."""

    def __init__(self, signum: int, epoch: int) -> None:
        self.signum, self.epoch = signum, epoch

    def on_validation_batch_start(self, trainer: L.Trainer, module: L.LightningModule, *args: object) -> None:
        if trainer.current_epoch == self.epoch and not trainer.sanity_checking:
            os.kill(os.getpid(), self.signum)


def test_a_signal_during_validation_waits_for_the_epochs_checkpoints_and_resumes_exactly(uninterrupted, tmp_path):
    reference, run = uninterrupted, tmp_path / "run"
    signalled = with_callbacks(signal_in_validation=SignalInValidation(signal.SIGTERM, epoch=0))
    with pytest.raises(Interrupted) as raised:
        train(compose_config([*RESUMABLE, *signalled], run))
    last = run / "checkpoints" / "last.ckpt"
    assert str(raised.value).startswith(f"SIGTERM received: stopped after epoch 1/2 (global step 7) and saved {last}")
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "interrupted" and record["epochs"] == 1
    assert sorted(p.name for p in last.parent.iterdir()) == ["best-epoch000.ckpt", "last.ckpt"]
    states = torch.load(last, weights_only=True)["callbacks"]
    (best,) = [
        s["best_model_score"] for key, s in states.items() if "val/forecast_mse" in key and "best_model_score" in s
    ]
    assert record["best_val"] == pytest.approx(float(best), rel=0, abs=0)  # epoch 1's, not null
    train(compose_config([*RESUMABLE, f"ckpt_path={last}"], run))
    assert_same_outcome(reference, run)


def test_ctrl_c_stops_the_same_way(tmp_path, monkeypatch):
    """SIGINT goes through the same handler; resuming from its checkpoint is the SIGTERM test's business."""
    assert _interrupt(tmp_path / "run", signal.SIGINT, monkeypatch).code == 130


def test_outside_training_a_signal_stops_at_once_and_inside_a_second_one_does():
    request = StopRequest()
    with pytest.raises(Interrupted, match="SIGTERM received while preparing; stopped at once"):
        request.handle(signal.SIGTERM, None)
    with request.deferred():
        request.handle(signal.SIGINT, None)  # recorded, not raised: training stops at the next batch end
        assert request.requested and request.signum == signal.SIGINT
        with pytest.raises(Interrupted, match="SIGINT received while training") as raised:
            request.handle(signal.SIGINT, None)
    assert raised.value.code == 130


# Real processes killed from outside. Sentiment (real data, embedding dropout, Adam), small enough for seconds.
SCRIPT = [
    "model.hidden_size=8",
    "module.embedding_dropout=0.2",
    "batch=32",
    "epochs=4",
    "trainer=cpu",
    "trainer.limit_train_batches=12",
    "trainer.limit_val_batches=4",
    "trainer.limit_test_batches=8",
    "trainer.deterministic=true",
]


def _train_py(folder: Path, data: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "train.py"), *SCRIPT, f"data.data_dir={data}", f"hydra.run.dir={folder}"]
    return subprocess.Popen([*command, *extra], cwd=folder.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_epoch(process: subprocess.Popen, last: Path, epoch: int, timeout: float = 300) -> None:
    """Until last.ckpt holds the end of ``epoch`` (0-based); it is written atomically, so a load never sees half."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        if last.exists():
            try:
                if torch.load(last, weights_only=True)["epoch"] >= epoch:
                    return
            except (EOFError, RuntimeError):
                pass  # replaced while we read it
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint of epoch {epoch} after {timeout}s")


@pytest.fixture(scope="module")
def uninterrupted_script(tmp_path_factory: pytest.TempPathFactory, polarity_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("script") / "uninterrupted"
    process = _train_py(folder, polarity_dir)
    assert process.wait(timeout=600) == 0, process.stderr.read().decode()[-3000:]
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_train_py_killed_after_epoch_2_resumes_to_the_same_result(signum, uninterrupted_script, polarity_dir, tmp_path):
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    process = _train_py(run, polarity_dir)
    _wait_for_epoch(process, last, epoch=1)  # the checkpoint of the second epoch
    process.send_signal(signum)
    code = process.wait(timeout=300)
    record = json.loads((run / "metrics.json").read_text())
    if signum == signal.SIGKILL:
        # No chance to react: metrics.json still says running, last.ckpt is the end of epoch 2 (or 3, if it landed
        # while a later epoch was being saved): at most the work since the last checkpoint is lost.
        assert code == -signal.SIGKILL and record["status"] == "running"
        # The record counts an epoch when the next one starts, after its checkpoints: it may trail last.ckpt by one.
        assert 1 <= record["epochs"] <= torch.load(last, weights_only=True)["epoch"] + 1
    else:
        assert code == 143, process.stderr.read().decode()[-3000:]
        assert record["status"] == "interrupted" and "SIGTERM received: stopped in epoch" in record["error"]
    resumed = _train_py(run, polarity_dir, f"ckpt_path={last}")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()[-3000:]
    assert_same_outcome(uninterrupted_script, run)
