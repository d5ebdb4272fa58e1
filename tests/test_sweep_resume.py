"""A sweep resumed with its own command and ``hydra.sweep.dir``: each job decides from its folder (sweep_resume.py).

The fast tests run one sweep job in this process (Hydra's compose API, the job's config marked as a sweep's); the
real-sweep tests run ``python train.py -m`` and stop it from outside, with SIGTERM and with SIGKILL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra_compose import QUICK_LBFGS, TINY_SINE, compose_config, start_sweep, with_callbacks
from omegaconf import DictConfig, open_dict, read_write
from test_interrupt import RESUMABLE, SignalAt, assert_same_outcome

from rnn_lightning.cli.report import build_report
from rnn_lightning.errors import ConfigError
from rnn_lightning.training.callbacks.graceful_stop import Interrupted
from rnn_lightning.training.run import train

ROOT = Path(__file__).resolve().parents[1]
JOB = [*TINY_SINE, QUICK_LBFGS, "epochs=2", "threads=1"]


def sweep_job(overrides: list[str], sweep: Path, number: int = 0) -> DictConfig:
    """The config of job ``number`` of a sweep into ``sweep``, as Hydra hands it to train() inside ``-m``."""
    cfg = compose_config(overrides, sweep / str(number))
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = "MULTIRUN"
        cfg.hydra.job.num = number
        cfg.hydra.sweep.dir = str(sweep)
    HydraConfig.instance().set_config(cfg)
    return cfg


def record(folder: Path, name: str = "metrics.json") -> dict:
    return json.loads((folder / name).read_text())


def mtimes(job: Path, checkpoints: str = "checkpoints") -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in (job / checkpoints).iterdir()}


def test_a_completed_job_is_not_trained_again_and_returns_its_recorded_value(tmp_path, caplog):
    best = train(sweep_job(JOB, tmp_path))
    job = tmp_path / "0"
    before, text = mtimes(job), (job / "metrics.json").read_text()
    caplog.set_level("INFO", logger="rnn_lightning")
    again = train(sweep_job(JOB, tmp_path))
    assert again == best and isinstance(best, float)
    assert mtimes(job) == before and (job / "metrics.json").read_text() == text  # nothing written
    assert not list(job.glob("metrics.earlier-*.json"))
    said = [r.getMessage() for r in caplog.records if getattr(r, "job_line", False)]
    assert len(said) == 1 and said[0].endswith(f": completed earlier, not run again (best val/forecast_mse={best:.4g})")


def test_a_failed_job_runs_again_from_the_start_beside_its_earlier_record_and_checkpoints(tmp_path, caplog):
    train(sweep_job(JOB, tmp_path))
    job = tmp_path / "0"
    failed = {**record(job), "status": "failed", "error": "TrainingStopped: the loss was NaN in epoch 2"}
    (job / "metrics.json").write_text(json.dumps(failed))
    old_checkpoints = mtimes(job)
    caplog.set_level("INFO", logger="rnn_lightning")
    train(sweep_job(JOB, tmp_path))
    assert record(job, "metrics.earlier-1.json") == failed
    assert mtimes(job, "checkpoints.earlier-1") == old_checkpoints
    assert (job / "tensorboard.earlier-1").is_dir()
    again = record(job)
    assert (again["status"], again["resumed_from"], again["epochs"]) == ("completed", None, 2)
    said = [r.getMessage() for r in caplog.records if getattr(r, "job_line", False)]
    assert said[0].endswith(
        ": failed earlier: TrainingStopped: the loss was NaN in epoch 2; started again from the start (the earlier "
        "record and checkpoints kept as metrics.earlier-1.json, checkpoints.earlier-1/)"
    )
    assert re.search(r": completed in [\d.]+ s, best val/forecast_mse=", said[1])


def test_a_job_folder_with_other_overrides_is_refused_naming_the_difference(tmp_path):
    train(sweep_job(JOB, tmp_path))
    job = tmp_path / "0"
    text = (job / "metrics.json").read_text()
    other = [*(line for line in JOB if line != QUICK_LBFGS), "optim.max_iter=5", "seed=7"]
    with pytest.raises(ConfigError) as refused:
        train(sweep_job(other, tmp_path))
    message = str(refused.value)
    assert message.startswith(f"{job} holds a job with other overrides than this sweep's job 0 (")
    assert ": optim.max_iter=4 -> optim.max_iter=5, seed=7 (new). Resume a sweep with the command" in message
    assert (job / "metrics.json").read_text() == text  # the other sweep's record as it was


def test_a_killed_job_resumes_from_its_last_checkpoint_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """SIGKILL leaves last.ckpt of the last whole epoch and a record that says running; here the run is stopped in
    this process at a chosen batch and its record made to say what a killed run's says."""
    uninterrupted = tmp_path / "whole"
    train(sweep_job(RESUMABLE, uninterrupted))
    stopped = tmp_path / "stopped"
    with pytest.raises(Interrupted):
        train(sweep_job([*RESUMABLE, *with_callbacks(signal_at=SignalAt(signal.SIGTERM, epoch=1, batch=3))], stopped))
    job = stopped / "0"
    killed = {**record(job), "status": "running", "error": None}
    killed["overrides"] = record(uninterrupted / "0")["overrides"]  # the sweep's command, without the test's signal
    (job / "metrics.json").write_text(json.dumps(killed))
    train(sweep_job(RESUMABLE, stopped))
    assert record(job)["resumed_from"] == str(job / "checkpoints" / "last.ckpt")
    assert record(job, "metrics.earlier-1.json")["status"] == "running"
    assert_same_outcome(uninterrupted / "0", job)


# A real sweep: three tiny jobs of 4 epochs, 10 batches each, on one thread (the float64 sums depend on the count).
SWEEP = [*TINY_SINE, QUICK_LBFGS, "trainer=cpu", "epochs=4", "batch=10", "threads=1", "seed=1,2,3"]


def sweep(folder: Path, *extra: str) -> subprocess.Popen:
    return start_sweep(SWEEP, folder, *extra)


def wait_for_epochs(process: subprocess.Popen, job: Path, epochs: int, timeout: float = 240) -> None:
    """Until ``job``'s record says it has completed ``epochs`` epochs and is still running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            done = record(job)
        except (OSError, ValueError):
            done = {}
        if done.get("status") == "running" and done.get("epochs", 0) >= epochs:
            return
        time.sleep(0.02)
    raise AssertionError(f"{job} never reached epoch {epochs} while running: {process.communicate()[0][-3000:]}")


def report_without_walls(folder: Path) -> str:
    """report.md with its wall-time columns left out: the only values that differ from one launch to the next."""
    lines, wall = [], None
    for line in build_report(folder).markdown.splitlines():
        cells = line.removeprefix("| ").removesuffix(" |").split(" | ") if line.startswith("| ") else None
        if cells is None or "wall [s]" in cells:
            wall = cells.index("wall [s]") if cells else None
        lines.append(line if cells is None or wall is None else " | ".join(c for n, c in enumerate(cells) if n != wall))
    return "\n".join(lines)


def test_a_sweep_stopped_by_sigterm_and_resumed_reports_what_an_uninterrupted_one_does(tmp_path):
    whole, stopped = tmp_path / "whole" / "sweep", tmp_path / "stopped" / "sweep"
    for folder in (whole, stopped):
        folder.parent.mkdir()
    reference, interrupted = sweep(whole), sweep(stopped)
    wait_for_epochs(interrupted, stopped / "1", epochs=2)
    interrupted.send_signal(signal.SIGTERM)
    said = interrupted.communicate(timeout=120)[0]
    assert interrupted.returncode == 143, said[-3000:]
    assert [record(stopped / n)["status"] for n in "01"] == ["completed", "interrupted"]
    assert not (stopped / "2").exists()  # never started
    first = mtimes(stopped / "0")
    resumed = sweep(stopped)
    said = resumed.communicate(timeout=240)[0]
    assert resumed.returncode == 0, said[-3000:]
    assert reference.wait(timeout=240) == 0
    lines = [line.split("] ", 1)[1] for line in said.splitlines() if re.search(r"\] job \d \(seed=\d\): ", line)]
    skipped = r"job 0 \(seed=1\): completed earlier, not run again \(best val/forecast_mse=[\d.e-]+\)"
    assert re.fullmatch(skipped, lines[0])
    assert re.fullmatch(r"job 1 \(seed=2\): interrupted earlier after [23] epoch\(s\); resuming from .*", lines[1])
    assert lines[3] == "job 2 (seed=3): started"
    assert mtimes(stopped / "0") == first
    assert report_without_walls(stopped) == report_without_walls(whole)
    assert "| completed | " in report_without_walls(stopped)


@pytest.mark.slow
def test_a_sweep_killed_with_sigkill_resumes_the_killed_job_from_its_last_checkpoint(tmp_path):
    whole, killed = tmp_path / "whole" / "sweep", tmp_path / "killed" / "sweep"
    for folder in (whole, killed):
        folder.parent.mkdir()
    reference, victim = sweep(whole), sweep(killed)
    wait_for_epochs(victim, killed / "1", epochs=2)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    assert record(killed / "1")["status"] == "running"
    assert build_report(killed).jobs[1].record["status"] == "killed"
    resumed = sweep(killed)
    said = resumed.communicate(timeout=240)[0]
    assert resumed.returncode == 0 and reference.wait(timeout=240) == 0, said[-3000:]
    assert re.search(r"job 1 \(seed=2\): killed earlier after [23] epoch\(s\); resuming from", said)
    assert record(killed / "1")["resumed_from"] == str(killed / "1" / "checkpoints" / "last.ckpt")
    for number in "012":
        assert_same_outcome(whole / number, killed / number)
    assert os.path.exists(killed / "1" / "metrics.earlier-1.json")
