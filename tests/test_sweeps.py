"""Sweeps: each launch its own folder, a failing job does not stop the others, and the SLURM launcher's configs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra_compose import QUICK_LBFGS, TINY_SINE, compose_config
from omegaconf import OmegaConf

from rnn_lightning.launch_id import launch_id

ROOT = Path(__file__).resolve().parents[1]
FOLDER = re.compile(r"\d\d-\d\d-\d\d_([0-9a-f]{6})")


def _train_py(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_run_and_sweep_folders_end_with_this_launchs_id(tmp_path):
    cfg = compose_config([], tmp_path)
    for key in ("hydra.run.dir", "hydra.sweep.dir"):
        folder = OmegaConf.select(cfg, key)
        assert FOLDER.fullmatch(Path(folder).name) and folder.endswith(f"_{launch_id()}")
    assert OmegaConf.select(cfg, "hydra.sweep.dir") == OmegaConf.select(cfg, "hydra.sweep.dir")  # cached


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
    assert completed["status"] == "completed" and completed["params"]["hidden_size"] == 8
    assert (tmp_path / "1" / "checkpoints" / "last.ckpt").exists()
    assert "Error executing job with overrides:" in stderr and "model.hidden_size=0" in stderr


def test_the_slurm_launcher_asks_for_one_task_per_device_on_each_node(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[slurm]'")
    cfg = compose_config(["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"], tmp_path)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["tasks_per_node"], launcher["nodes"], launcher["timeout_min"]) == (4, 2, 240)


@pytest.mark.slow
def test_a_two_job_sweep_through_the_submitit_local_launcher(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[slurm]'")
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
