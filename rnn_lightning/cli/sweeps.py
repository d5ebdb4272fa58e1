"""The folders of a sweep: which ones are jobs, what each job's record says, and which sweep is the newest.

``train.py -m`` writes a sweep as ``multirun/DATE/TIME/`` with Hydra's multirun.yaml and a folder per job (0/, 1/, ...),
each with .hydra/ and, once it started, metrics.json. The report and the ensemble read sweeps through this file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rnn_lightning.errors import UserError

SWEEPS = Path("multirun")  # where `train.py -m` puts its sweeps: hydra.sweep.dir in conf/config.yaml
MISSING = "no metrics.json: crashed before writing it, or still running"


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


def requested_params(folder: Path) -> dict[str, Any]:
    """The job's overrides as params (``batch=200`` is ``{"batch": 200}``: params are keyed the way overrides are),
    so that the row of a job that left no metrics.json still says which combination it was."""
    path = folder / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    pairs = [str(item).lstrip("+~").partition("=") for item in overrides or []]
    return {key: yaml.safe_load(value) for key, _, value in pairs}
