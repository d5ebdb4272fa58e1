"""Sweep jobs at once on one machine (``hydra/launcher=parallel``, parallel.py): the cores and GPUs split between the
jobs, each job's log its own, one console line per job as it starts and ends, the results of a serial sweep, and
Ctrl-C stopping every job after it saved its last.ckpt."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from hydra_compose import QUICK_LBFGS, TINY_SINE, compose_config, start_sweep
from omegaconf import DictConfig, open_dict, read_write

from rnn_lightning.training import parallel
from rnn_lightning.training.preflight import make_plan

ROOT = Path(__file__).resolve().parents[1]


def parallel_job(tmp_path: Path, number: int, n_jobs: int, *overrides: str) -> DictConfig:
    """Job ``number`` of a sweep whose launcher runs ``n_jobs`` at once, as the job's process sees its config."""
    cfg = compose_config(list(overrides), tmp_path / str(number))
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = "MULTIRUN"
        cfg.hydra.job.num = number
        cfg.hydra.launcher = {"_target_": f"hydra_plugins.joblib.{parallel.PARALLEL_LAUNCHER}", "n_jobs": n_jobs}
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.mark.parametrize("number, gpu", [(0, 0), (1, 1), (2, 2), (3, 0), (7, 1)])
def test_job_k_trains_on_gpu_k_mod_n(tmp_path, monkeypatch, number, gpu):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    plan = make_plan(parallel_job(tmp_path, number, 3, "trainer=gpu"))
    assert plan.trainer["devices"] == [gpu] and plan.trainer["accelerator"] == "gpu"
    auto = make_plan(parallel_job(tmp_path, number, 6, "trainer=auto"))  # n_jobs=6: two jobs on each GPU
    assert auto.trainer["devices"] == [gpu]


def test_jobs_of_their_own_devices_and_cpu_jobs_are_left_where_they_are(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    for overrides, devices in [(["trainer=cpu"], 1), (["trainer=gpu", "trainer.devices=[3]"], [3])]:
        assert make_plan(parallel_job(tmp_path, 1, 2, *overrides)).trainer["devices"] == devices
    ddp = parallel.gpu_of_job(1, {"accelerator": "gpu", "devices": 2, "strategy": "ddp_spawn"})
    assert ddp == (None, {"accelerator": "gpu", "devices": 2, "strategy": "ddp_spawn"})
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert make_plan(parallel_job(tmp_path, 1, 2, "trainer=auto")).trainer["devices"] == 1  # no GPU: the CPU


def test_the_cores_are_split_between_the_jobs_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, "usable_cores", lambda: 16)
    assert make_plan(parallel_job(tmp_path, 0, 4)).threads == 4
    assert make_plan(parallel_job(tmp_path, 0, -1)).threads == 1  # joblib's -1: one job per core
    assert make_plan(parallel_job(tmp_path, 0, 32)).threads == 1
    assert make_plan(parallel_job(tmp_path, 0, 4, "threads=3")).threads == 3  # set: as it is
    assert parallel.jobs_at_once(-2, cores=16) == 15
    single = compose_config([], tmp_path / "single")
    assert make_plan(single).threads is None  # a single run: torch's default, all cores


def test_no_progress_bar_in_a_parallel_job_and_a_console_that_shows_its_lines_only(tmp_path):
    plan = make_plan(parallel_job(tmp_path, 2, 2))
    assert plan.callbacks["console"] == {"_target_": parallel.EPOCH_LINES}
    shown = parallel.JobConsole()
    line = lambda level, **extra: type("R", (), {"levelno": level, **extra})()  # noqa: E731
    assert shown.filter(line(20, job_line=True)) and shown.filter(line(30)) and not shown.filter(line(20))


# Four tiny sine jobs of 6 epochs, 10 batches each.
SWEEP = [*TINY_SINE, QUICK_LBFGS, "trainer=cpu", "epochs=6", "batch=10", "seed=1,2,3,4"]


def sweep(folder: Path, *extra: str) -> subprocess.Popen:
    return start_sweep(SWEEP, folder, *extra, own_group=True)


def job_lines(said: str) -> list[str]:
    return [line.split("] ", 1)[1] for line in said.splitlines() if re.search(r"\] job \d \(seed=\d\): ", line)]


def results(folder: Path) -> list[tuple]:
    records = [json.loads((folder / str(n) / "metrics.json").read_text()) for n in range(4)]
    return [(r["status"], r["best_val"], r["test"], r["epochs"], r["threads"]) for r in records]


@pytest.mark.parallel
@pytest.mark.slow
def test_four_jobs_two_at_a_time_each_log_its_own_and_the_results_of_a_serial_sweep(tmp_path):
    together, serial = tmp_path / "together" / "sweep", tmp_path / "serial" / "sweep"
    for folder in (together, serial):
        folder.parent.mkdir()
    # The jobs of a 2-at-a-time sweep on this machine's cores take cores / 2 threads: the serial sweep takes as many.
    threads = max(1, parallel.usable_cores() // 2)
    runs = sweep(together, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2"), sweep(serial, f"threads={threads}")
    said, _ = runs[0].communicate(timeout=300)
    assert runs[0].returncode == 0 and runs[1].wait(timeout=300) == 0, said[-3000:]
    assert results(together) == results(serial) and {r[0] for r in results(together)} == {"completed"}
    lines = job_lines(said)
    assert len(lines) == 8 and sorted(line.split(":")[0] for line in lines) == sorted(
        f"job {n} (seed={n + 1})" for n in range(4) for _ in "se"
    )
    at_once, most = 0, 0
    for line in lines:
        at_once += 1 if line.endswith(": started") else -1
        most = max(most, at_once)
    assert most == 2  # two at a time, never more
    assert not [line for line in said.splitlines() if "epoch 1/6" in line]  # the rest is in each job's log only
    for number in range(4):
        log = (together / str(number) / "train.log").read_text()
        assert f"Seed set to {number + 1}" in log and "epoch 6/6" in log
        assert sum("Seed set to" in line for line in log.splitlines()) == 1  # no other job's lines


@pytest.mark.parallel
@pytest.mark.slow
def test_ctrl_c_stops_every_job_after_its_last_checkpoint_and_the_same_command_resumes_the_sweep(tmp_path):
    stopped, serial = tmp_path / "stopped" / "sweep", tmp_path / "serial" / "sweep"
    for folder in (stopped, serial):
        folder.parent.mkdir()
    threads = max(1, parallel.usable_cores() // 2)
    reference = sweep(serial, f"threads={threads}")
    interrupted = sweep(stopped, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2")
    deadline = time.monotonic() + 240
    while not all(epochs(stopped / n) >= 2 for n in "01") and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(interrupted.pid, signal.SIGINT)  # Ctrl-C: the terminal signals every process of the group
    said, _ = interrupted.communicate(timeout=120)
    assert interrupted.returncode == 130, said[-3000:]
    records = [json.loads((stopped / n / "metrics.json").read_text()) for n in "01"]
    assert [r["status"] for r in records] == ["interrupted", "interrupted"], said[-3000:]
    assert all((stopped / n / "checkpoints" / "last.ckpt").is_file() for n in "01")
    assert not (stopped / "2").exists() and not (stopped / "3").exists()  # queued jobs did not start
    assert "SIGINT received: 2 running job(s) save their last.ckpt and stop" in said
    resumed = sweep(stopped, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2")
    said, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and reference.wait(timeout=300) == 0, said[-3000:]
    assert sum("interrupted earlier after" in line for line in job_lines(said)) == 2
    assert results(stopped) == results(serial)


def epochs(job: Path) -> int:
    try:
        return json.loads((job / "metrics.json").read_text()).get("epochs", 0)
    except (OSError, ValueError):
        return 0
