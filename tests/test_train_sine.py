"""train.py end to end on the sine task: composed config, a real multirun sweep, resume from last.ckpt."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra_compose import QUICK_LBFGS, TINY_SINE, compose_config

from rnn_lightning.training.run import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
def test_fast_dev_run_through_the_composed_config(model, tmp_path):
    cfg = compose_config([*TINY_SINE, QUICK_LBFGS, f"model={model}", "+trainer.fast_dev_run=true"], tmp_path)
    assert cfg.optim._target_ == "torch.optim.LBFGS"  # task=sine brings LBFGS
    assert cfg.trainer.precision == "64-true"
    train(cfg)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "completed"
    assert record["params"]["model"] == model and record["params"]["optim"] == "lbfgs"
    assert record["test"]["test/forecast_mse"] >= 0.0
    assert 0.0 < record["test"]["test/train_mse"] < 10.0  # one-step MSE on the training waves (values in [-1, 1])
    assert (tmp_path / "figures" / "forecast.png").stat().st_size > 10_000


def test_command_line_optim_wins_over_the_task_default(tmp_path):
    cfg = compose_config(["task=sine", "optim=adam"], tmp_path)
    assert cfg.optim._target_ == "torch.optim.Adam"


def test_returns_the_best_not_the_last_monitored_value(tmp_path):
    cfg = compose_config([*TINY_SINE, "epochs=3", "optim=adam", "optim.lr=0.05"], tmp_path)
    best = train(cfg)
    events = torch.load(next((tmp_path / "checkpoints").glob("best-*.ckpt")), weights_only=False)
    callback = next(v for k, v in events["callbacks"].items() if k.startswith("ModelCheckpoint"))
    assert best == pytest.approx(float(callback["best_model_score"]))
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["best_val"] == pytest.approx(best) and record["epochs"] == 3


def test_resume_from_last_checkpoint_continues_at_the_right_epoch(tmp_path):
    first = compose_config([*TINY_SINE, QUICK_LBFGS, "epochs=2"], tmp_path / "first")
    train(first)
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 1  # epochs 0 and 1 done
    second = compose_config([*TINY_SINE, QUICK_LBFGS, "epochs=4", f"ckpt_path={last}"], tmp_path / "second")
    train(second)
    resumed = torch.load(tmp_path / "second" / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["epoch"] == 3
    assert json.loads((tmp_path / "second" / "metrics.json").read_text())["epochs"] == 4


def test_multirun_sweep_writes_one_folder_per_job(tmp_path):
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        *TINY_SINE,
        "trainer=cpu",
        "epochs=1",
        "optim=adam,sgdm",
        "batch=49,98",
        f"hydra.sweep.dir={tmp_path}",
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    seen = set()
    for job in jobs:
        record = json.loads((job / "metrics.json").read_text())
        assert record["status"] == "completed"
        seen.add((record["params"]["optim"], record["params"]["batch"]))
        runs = list((job / "tensorboard").iterdir())
        assert len(runs) == 1 and "batch=" in runs[0].name and "optim=" in runs[0].name
        assert list(runs[0].glob("events.out.tfevents.*"))
        assert (job / "checkpoints" / "last.ckpt").exists()
    assert seen == {("adam", 49), ("adam", 98), ("sgdm", 49), ("sgdm", 98)}
