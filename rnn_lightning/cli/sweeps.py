"""The folders of a sweep: which ones are jobs, what each job's record says, and which sweep is the newest.

``train.py -m`` writes a sweep as ``multirun/DATE/TIME/`` with Hydra's multirun.yaml and a folder per job (0/, 1/, ...),
each with .hydra/ and, once it started, metrics.json. The report and the ensemble read sweeps through this file.

A job's state is its record's status, corrected by what can be seen now: a ``running`` record whose folder no live
process holds (its lock, ``training/run_folder.py``) was killed; a folder without a record that a process holds is
running (still preparing); a job of the sweep's command without a folder is queued (not started yet).
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from rnn_lightning.errors import UserError
from rnn_lightning.training.run_folder import run_folder_in_use

SWEEPS = Path("multirun")  # where `train.py -m` puts its sweeps: hydra.sweep.dir in conf/config.yaml
MISSING = "no metrics.json: crashed before writing it, or stopped before it started training"
KILLED = (
    "its record says running, but no process holds its folder: it was killed (SIGKILL, out of memory, a lost node); "
    "the sweep's command with hydra.sweep.dir=<this sweep> resumes it from its last.ckpt"
)


class ReportError(UserError):
    """Something the user can fix: a wrong folder, a malformed references file."""


@dataclass
class Job:
    name: str  # the folder below DIR, "/"-separated
    record: dict[str, Any]  # metrics.json, or a stand-in with status, error and the params that were asked for
    params_known: bool  # False: params are only the job's overrides (it left no readable metrics.json)

    @property
    def params(self) -> dict[str, Any]:
        return self.record.get("params") or {}

    @property
    def completed(self) -> bool:
        return self.record.get("status") == "completed"


def is_job(folder: Path) -> bool:
    return (folder / ".hydra").is_dir() or (folder / "metrics.json").is_file()


def newest_sweep(root: Path = SWEEPS) -> Path:
    """The sweep folder a command reads when it is given none: the last ``multirun/DATE/TIME`` in name order (Hydra's
    folder names sort by start time) that is a sweep, with Hydra's multirun.yaml or job folders; files and empty
    folders beside them are passed over.

    Raises:
        ReportError: no sweep folder under ``root``.
    """
    sweeps = [
        folder
        for folder in sorted(root.glob("*/*"))
        if folder.is_dir() and ((folder / "multirun.yaml").is_file() or any(map(is_job, folder.iterdir())))
    ]
    if not sweeps:
        raise ReportError(
            f"no sweep folder under {root}/ (a {root}/DATE/TIME folder with multirun.yaml or job folders). Run a "
            "sweep first (python train.py -m ...), or give the sweep's folder (with make: DIR=multirun/DATE/TIME)"
        )
    return sweeps[-1]


def find_jobs(root: Path) -> list[Job]:
    """Every folder at or below ``root`` with .hydra/ or metrics.json (not its subfolders), job 9 before job 10."""
    jobs = []
    for folder, subfolders, files in os.walk(root):
        if ".hydra" in subfolders or "metrics.json" in files:
            jobs.append(read_job(root, Path(folder)))
            subfolders.clear()
    return sort_jobs(jobs)


def sort_jobs(jobs: list[Job]) -> list[Job]:
    """Job 9 before job 10."""
    return sorted(jobs, key=lambda job: [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in job.name.split("/")])


def read_job(root: Path, folder: Path) -> Job:
    name = folder.relative_to(root).as_posix()
    try:
        return Job(name, json.loads((folder / "metrics.json").read_text(encoding="utf-8")), params_known=True)
    except FileNotFoundError:
        status, error = "missing", MISSING
    except (json.JSONDecodeError, UnicodeDecodeError) as failure:  # cut off mid-write by a full disk, say
        status, error = "unreadable", f"metrics.json: {failure}"
    return Job(name, {"status": status, "error": error, "params": requested_params(folder)}, params_known=False)


def job_states(root: Path, jobs: list[Job]) -> list[Job]:
    """``jobs`` as they stand now, and the sweep's queued ones: a ``running`` record whose folder no live process
    holds is ``killed``, a folder without a record that a process holds is ``running`` (still preparing)."""
    now = []
    for job in jobs:
        status, in_use = job.record.get("status"), run_folder_in_use(root / job.name)
        if status == "running" and not in_use:
            job = Job(job.name, {**job.record, "status": "killed", "error": KILLED}, job.params_known)
        elif status == "missing" and in_use:
            job = Job(job.name, {**job.record, "status": "running", "error": None}, job.params_known)
        now.append(job)
    return sort_jobs([*now, *queued_jobs(root, jobs)])


def queued_jobs(root: Path, jobs: list[Job]) -> list[Job]:
    """The jobs of the sweep's command (Hydra's multirun.yaml) that have no folder yet: not started."""
    started = {job.name for job in jobs}
    return [
        Job(name, {"status": "queued", "error": None, "params": params_of(overrides)}, params_known=False)
        for name, overrides in planned_jobs(root).items()
        if name not in started
    ]


def planned_jobs(root: Path) -> dict[str, list[str]]:
    """Each job's folder name and overrides, as Hydra's basic sweeper expands the command in multirun.yaml (every
    combination of the swept values, in the command's order); {} for another sweeper or a folder layout of one's
    own (``hydra.sweep.subdir``)."""
    path = root / "multirun.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    hydra = (config or {}).get("hydra") or {}
    sweeper, subdir = hydra.get("sweeper") or {}, (hydra.get("sweep") or {}).get("subdir")
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper") or subdir != "${hydra.job.num}":
        return {}
    lines = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
    choices: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides([*lines, *hydra["overrides"]["task"]]):
        key = override.get_key_element()
        if override.is_sweep_override() and override.is_discrete_sweep():
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
    return {str(number): list(job) for number, job in enumerate(itertools.product(*choices.values()))}


def requested_params(folder: Path) -> dict[str, Any]:
    """The job's overrides as params (``batch=200`` is ``{"batch": 200}``: params are keyed the way overrides are),
    so that the row of a job that left no metrics.json still says which combination it was."""
    path = folder / ".hydra" / "overrides.yaml"
    return params_of(yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None)


def params_of(overrides: list[str] | None) -> dict[str, Any]:
    pairs = [str(item).lstrip("+~").partition("=") for item in overrides or []]
    return {key: yaml.safe_load(value) for key, _, value in pairs}
