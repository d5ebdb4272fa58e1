"""Faults a new user meets: two runs in one folder, a failure mid-run that must be one message, a cell of the user's
that is broken, and messages that must name the right setting (a signal during validation: tests/test_interrupt.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra_compose import QUICK_LBFGS, TINY_SINE, compose_config
from torch import nn

from rnn_lightning.errors import ConfigError, UserError
from rnn_lightning.train import task as train_task
from rnn_lightning.training.run import train
from rnn_lightning.training.run_folder import RunFolderLock, run_folder_in_use

ROOT = Path(__file__).resolve().parents[1]


def _record(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def test_a_run_folder_in_use_by_a_live_run_is_refused_and_a_killed_one_leaves_nothing_stuck(tmp_path):
    run = tmp_path / "run"
    with RunFolderLock(run):
        assert run_folder_in_use(run)
        with pytest.raises(ConfigError, match=rf"^{run} is in use by another run \(process {os.getpid()}\)"):
            train(compose_config([*TINY_SINE, QUICK_LBFGS, "epochs=1"], run))
        assert not (run / "metrics.json").exists()  # the live run's folder: nothing written into it
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from rnn_lightning.training.run_folder import RunFolderLock as L\n"
         f"with L(__import__('pathlib').Path({str(run)!r})): print('held', flush=True); __import__('time').sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held" and run_folder_in_use(run)
    holder.kill()
    holder.wait()
    assert not run_folder_in_use(run)
    train(compose_config([*TINY_SINE, QUICK_LBFGS, "epochs=1"], run))
    assert _record(run)["status"] == "completed"


def test_a_failure_mid_run_is_a_user_error_with_the_best_so_far_recorded(polarity_dir, tmp_path):
    """A diverged loss reaches Hydra as one message (its traceback goes to train.log); the record keeps the best value
    of the epochs before it, whose checkpoint is kept."""
    tiny = ["model.hidden_size=4", "module.embedding_dim=8", "module.embeddings=null", "trainer.limit_val_batches=1"]
    schedule = ["scheduler=step", "scheduler.step_size=1", "scheduler.gamma=1e9", "trainer.limit_train_batches=2"]
    overrides = [f"data.data_dir={polarity_dir}", *tiny, *schedule, "epochs=3", "trainer.limit_test_batches=1"]
    with pytest.raises(Exception) as raised:
        train_task.__wrapped__(compose_config(overrides, tmp_path))
    assert type(raised.value).__name__ == "ShownAlone" and str(raised.value).startswith("train/loss is ")
    assert isinstance(raised.value.__cause__, UserError)
    record = _record(tmp_path)
    best = next((tmp_path / "checkpoints").glob("best-*.ckpt"))
    assert record["status"] == "failed" and record["epochs"] == 1 and best.name == "best-epoch000.ckpt"
    assert record["best_val"] is not None and 0.0 <= record["best_val"] <= 1.0


def _without_root_powers() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: no folder is unwritable here")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def test_an_unwritable_checkpoint_folder_is_found_before_the_first_epoch_in_one_line(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints").chmod(0o555)
    try:
        done = subprocess.run(
            [*_without_root_powers(), sys.executable, str(ROOT / "train.py"), *TINY_SINE, QUICK_LBFGS, "epochs=1",
             "trainer=cpu", f"hydra.run.dir={run}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        (run / "checkpoints").chmod(0o755)
    assert done.returncode == 1
    assert f"{run / 'checkpoints'} is not writable: the run could not save a single checkpoint." in done.stderr
    assert "Traceback" not in done.stderr and "epoch 1/1" not in done.stdout


class BareTensor(nn.Module):
    """Returns its new h as a tensor, not as a one-tuple."""

    state_size = 1

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size, self.step = hidden_size, nn.Linear(input_size + hidden_size, hidden_size)

    def initial_state(self, x):
        return (x.new_zeros(x.shape[0], self.hidden_size),)

    def forward(self, x, state):
        return self.step(torch.cat([x, state[0]], dim=1)).tanh()


class WrongWidth(BareTensor):
    def forward(self, x, state):
        return (super().forward(x, state)[:, :2],)


class OneArgument(BareTensor):
    def __init__(self, input_size: int) -> None:
        super().__init__(input_size, 4)


@pytest.mark.parametrize(
    ("cell", "said"),
    [
        ("BareTensor", "BareTensor.forward(x_t, state) must return its new state as a tuple of state_size tensors, "
         "got Tensor"),
        ("WrongWidth", "WrongWidth.forward(x_t, state) must return a state shaped like its input [(2, 8)], got "
         "[(2, 2)]"),
        ("OneArgument", "building it as cell(input_size, hidden_size) failed: TypeError: "),
    ],
)  # fmt: skip
def test_a_broken_cell_of_yours_is_named_in_its_own_terms_before_training(cell, said, tmp_path):
    path = f"test_faults.{cell}"
    with pytest.raises(ConfigError) as raised:
        train(compose_config([*TINY_SINE, QUICK_LBFGS, f"model.cell={path}"], tmp_path))
    message = str(raised.value)
    assert message.startswith(f"model.cell={path} cannot run as a recurrent cell: {said}"), message
    assert message.endswith(f"rnn_lightning.check_cell('{path}') runs every check of our own cells on it.")
    assert not (tmp_path / "checkpoints").exists()


def test_messages_name_the_setting_the_user_gave(tmp_path, monkeypatch, polarity_dir):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # a CPU machine, Triton or not
    with pytest.raises(ConfigError, match=r"^model.impl=triton runs on a CUDA GPU, and this run trains on cpu: use"):
        train(compose_config([*TINY_SINE, QUICK_LBFGS, "model.impl=triton"], tmp_path / "triton"))
    with pytest.raises(ConfigError, match=r"^seed=-1 must be a whole number from 0 to 4294967295\.$"):
        train(compose_config([*TINY_SINE, "seed=-1"], tmp_path / "seed"))
    glove = tmp_path / "absent.txt"
    with pytest.raises(ConfigError) as missing:
        train(compose_config([f"data.data_dir={polarity_dir}", f"module.embeddings={glove}"], tmp_path / "glove"))
    assert str(missing.value).startswith(f"module.embeddings={glove}: The GloVe vectors file {glove} does not exist.")
    assert "source=" not in str(missing.value)


def test_16_mixed_on_a_cpu_is_recorded_as_what_ran(tmp_path):
    train(compose_config([*TINY_SINE, "optim=adam", "epochs=1", "trainer.precision=16-mixed"], tmp_path))
    record = _record(tmp_path)
    assert record["precision"] == "bf16-mixed" and record["params"]["trainer.precision"] == "bf16-mixed"


def test_cfg_job_with_a_mistyped_key_names_the_key_meant(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--cfg", "job", "epoch=3"], cwd=tmp_path, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and "did you mean epochs=3?" in done.stderr and "+epoch=3" not in done.stderr


def test_callbacks_come_from_the_config_and_the_best_checkpoint_cannot_be_left_out(tmp_path):
    with pytest.raises(ConfigError, match=r"^no checkpoint callback watches val/forecast_mse: the run needs one"):
        train(compose_config([*TINY_SINE, QUICK_LBFGS, "~callbacks.best_checkpoint"], tmp_path / "without"))
    train(compose_config([*TINY_SINE, QUICK_LBFGS, "epochs=1", "~callbacks.test_report"], tmp_path / "fewer"))
    assert _record(tmp_path / "fewer")["status"] == "completed"
    assert not (tmp_path / "fewer" / "figures").exists()  # the test report was the one that draws them
