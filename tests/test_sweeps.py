"""Sweeps: each launch its own folder, a failing job does not stop the others, the SLURM launcher's configs, and
hyperparameter search with the Optuna sweeper."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from extras import require_extra
from hydra_compose import QUICK_LBFGS, TINY_SINE, compose_config
from omegaconf import OmegaConf

from rnn_lightning.cli.report import build_report
from rnn_lightning.training.naming import fit_file_name, run_name

ROOT = Path(__file__).resolve().parents[1]
FOLDER = re.compile(r"\d\d-\d\d-\d\d_(\d{6})")  # HH-MM-SS_microseconds


def _train_py(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_run_and_sweep_folders_end_with_microseconds_that_stay_fixed(tmp_path):
    cfg = compose_config([], tmp_path)
    for key in ("hydra.run.dir", "hydra.sweep.dir"):
        assert FOLDER.fullmatch(Path(OmegaConf.select(cfg, key)).name), OmegaConf.select(cfg, key)
    first = OmegaConf.select(cfg, "hydra.sweep.dir")
    time.sleep(0.01)
    assert OmegaConf.select(cfg, "hydra.sweep.dir") == first  # Hydra's `now` is cached: every job agrees


def test_two_sweeps_started_together_write_to_separate_folders(tmp_path):
    """Each sweep creates its folder and then fails to compose its second job (optim=nope), before any training:
    the folders are what is tested, in about a second per process."""
    sweeps = [_train_py("-m", "optim=adam,nope", cwd=tmp_path) for _ in range(2)]
    for sweep in sweeps:
        _, stderr = sweep.communicate(timeout=180)
        assert sweep.returncode != 0 and "Could not find 'optim/nope'" in stderr
    folders = sorted(tmp_path.glob("multirun/*/*"))
    assert len(folders) == 2, folders
    assert len({FOLDER.fullmatch(folder.name).group(1) for folder in folders}) == 2
    assert all((folder / "multirun.yaml").exists() for folder in folders)


def test_a_failing_job_does_not_stop_the_sweep_which_still_fails_at_the_end(tmp_path):
    sweep = _train_py(
        "-m", *TINY_SINE, QUICK_LBFGS, "epochs=1", "model.hidden_size=0,8", f"hydra.sweep.dir={tmp_path}", cwd=tmp_path
    )
    _, stderr = sweep.communicate(timeout=300)
    assert sweep.returncode == 1, stderr[-3000:]
    failed, completed = (json.loads((tmp_path / job / "metrics.json").read_text()) for job in ("0", "1"))
    first_line = "ConfigError: model.hidden_size=0 must be a positive whole number of units per recurrent layer; e.g."
    assert failed["status"] == "failed" and failed["error"].startswith(first_line)
    assert "\n" not in failed["error"]
    assert completed["status"] == "completed" and completed["params"]["model.hidden_size"] == 8
    assert (tmp_path / "1" / "checkpoints" / "last.ckpt").exists()
    assert "Error executing job with overrides:" in stderr and "model.hidden_size=0" in stderr


def test_the_slurm_launcher_asks_for_one_task_per_device_on_each_node(tmp_path):
    require_extra("slurm")
    cfg = compose_config(["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"], tmp_path)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["tasks_per_node"], launcher["nodes"], launcher["timeout_min"]) == (4, 2, 240)


@pytest.mark.slow
def test_a_two_job_sweep_through_the_submitit_local_launcher(tmp_path):
    require_extra("slurm")
    sweep = _train_py(
        "-m",
        "hydra/launcher=slurm_local",
        *TINY_SINE,
        QUICK_LBFGS,
        "epochs=1",
        "model=rnn,gru",
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    _, stderr = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, stderr[-3000:]
    records = [json.loads((tmp_path / job / "metrics.json").read_text()) for job in ("0", "1")]
    assert [(r["status"], r["params"]["model"]) for r in records] == [("completed", "rnn"), ("completed", "gru")]
    assert len(list((tmp_path / ".submitit").glob("*/*_result.pkl"))) == 2  # each job ran in a submitit process


def test_the_optuna_sweeper_takes_its_direction_from_the_tasks_monitor_mode(tmp_path):
    require_extra("optuna")
    sentiment = compose_config(["experiment=tune_sentiment"], tmp_path)
    sweeper = OmegaConf.to_container(sentiment.hydra.sweeper, resolve=True)
    assert sweeper["_target_"].endswith("OptunaSweeper") and sweeper["direction"] == "maximize"
    assert sweeper["sampler"]["seed"] == 42 and sweeper["n_jobs"] == 1 and sweeper["max_failure_rate"] == 1.0
    assert sweeper["params"]["optim.lr"] == "tag(log, interval(1e-4, 3e-3))"
    sine = compose_config(["hydra/sweeper=tune", "task=sine"], tmp_path)
    assert OmegaConf.select(sine, "hydra.sweeper.direction") == "minimize"


def test_an_optuna_study_runs_each_trial_as_a_sweep_job_and_minimizes_the_sine_forecast_error(tmp_path):
    require_extra("optuna")
    sweep = _study(tmp_path, "model.hidden_size=choice(4, 8, 16)")
    _, stderr = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, stderr[-3000:]
    jobs = [tmp_path / str(n) for n in range(3)]
    records = [json.loads((job / "metrics.json").read_text()) for job in jobs]
    assert [record["status"] for record in records] == ["completed"] * 3
    for job in jobs:  # one TensorBoard run per trial, in the trial's own folder
        runs = list((job / "tensorboard").iterdir())
        assert len(runs) == 1 and list(runs[0].glob("events.out.tfevents.*"))
    results = OmegaConf.load(tmp_path / "optimization_results.yaml")
    best = min(records, key=lambda record: record["best_val"])
    assert results.best_value == pytest.approx(best["best_val"])  # minimize: the task's monitor.mode is min
    assert results.best_params["model.hidden_size"] == best["params"]["model.hidden_size"]
    report = build_report(tmp_path)
    assert report.exit_code == 0 and len(report.jobs) == 3
    assert f"model.hidden_size={best['params']['model.hidden_size']} (optimization_results.yaml" in report.markdown


def test_a_failed_trial_does_not_end_the_study_but_the_sweep_exits_1_at_the_end(tmp_path):
    require_extra("optuna")
    sweep = _study(tmp_path, "model.hidden_size=choice(0, 8)")
    _, stderr = sweep.communicate(timeout=300)
    assert sweep.returncode == 1, stderr[-3000:]
    statuses = {n: json.loads((tmp_path / str(n) / "metrics.json").read_text())["status"] for n in range(3)}
    failed = [str(n) for n, status in statuses.items() if status == "failed"]
    # The seeded draws hold both, and a failure before the last trial: the study went on after it.
    assert "completed" in statuses.values() and failed and int(failed[0]) < 2
    assert (tmp_path / "optimization_results.yaml").exists()
    assert f"{len(failed)} sweep job(s) failed: {', '.join(failed)} in {tmp_path}" in stderr


def _study(folder: Path, search: str) -> subprocess.Popen:
    """A 3-trial study of tiny sine runs into ``folder``."""
    return _train_py(
        "-m",
        "hydra/sweeper=tune",
        "hydra.sweeper.n_trials=3",
        *(override for override in TINY_SINE if not override.startswith("model.hidden_size=")),  # searched here
        QUICK_LBFGS,
        "trainer=cpu",
        "epochs=1",
        search,
        f"hydra.sweep.dir={folder}",
        cwd=folder,
    )


def test_tensorboard_run_names_round_long_decimals_and_fit_a_folder_name(tmp_path):
    compose_config(["optim.lr=0.0003574712922600243", "module.head_dropout=0.5"], tmp_path)
    assert "module.head_dropout=0.5,optim.lr=0.0003575" in run_name()
    long = fit_file_name("a" * 300 + "1")
    assert len(long.encode()) == 255 and long != fit_file_name("a" * 300 + "2")  # the hash tells them apart
