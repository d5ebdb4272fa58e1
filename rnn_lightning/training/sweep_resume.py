"""A sweep resumed: ``python train.py -m <the same overrides> hydra.sweep.dir=<its folder>`` goes on where it stopped.

Hydra cannot resume a sweep: it starts every job of the command again. So each job decides in ``train()``, from what
its folder holds, and every launcher (basic, parallel, SLURM) gets the same decision:

- **completed** with the same overrides: not run again. Its recorded best value goes back to the sweeper, and its
  checkpoints, record and TensorBoard run stay as they are (Hydra rewrites ``.hydra/`` before any job starts).
- **interrupted** (Ctrl-C, SIGTERM), or **killed** (its record says ``running`` and no live process holds the
  folder's lock, ``run_folder.py``): resumes from ``checkpoints/last.ckpt`` with the threads it ran with, so that with
  deterministic settings it ends bit for bit where an uninterrupted job ends. Without a last.ckpt it starts over.
- **failed**: runs again from the start. Its record is kept as ``metrics.earlier-N.json`` (``record.py``), its
  checkpoints and TensorBoard run beside it as ``checkpoints.earlier-N/`` and ``tensorboard.earlier-N/``.
- recorded **overrides that differ** from the command's: refused, naming the difference (another sweep's folder).

The console says per job which of these it did, when it starts, and how it ended (:class:`SweepJob`).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import signal
from pathlib import Path
from types import TracebackType
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from rnn_lightning.errors import ConfigError, first_line
from rnn_lightning.training import parallel
from rnn_lightning.training.callbacks.graceful_stop import Interrupted
from rnn_lightning.training.naming import job_overrides, run_name

log = logging.getLogger("rnn_lightning")
SET_ASIDE = ("checkpoints", "tensorboard")  # what a failed job's new start would mix with its own
HYDRA_MADE = {".hydra", "train.log", ".lock"}  # what a job's folder holds before its training starts


class SweepJob:
    """Around one job of a sweep: decides what its folder needs (above), says so, and says how the job ended.

    ``cfg`` is the config to train (with ``ckpt_path`` set for a resumed job); ``completed_earlier`` means there is
    nothing to train and ``best_val`` is the job's recorded value. Outside a sweep it changes nothing.
    """

    def __init__(self, cfg: DictConfig, output_dir: Path, zero: bool = True) -> None:
        self.cfg, self.output_dir, self.zero = cfg, Path(output_dir), zero
        self.completed_earlier, self.best_val = False, None
        self.in_sweep = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
        self.label = ""

    def __enter__(self) -> SweepJob:
        if not self.in_sweep:
            return self
        number = int(HydraConfig.get().job.num)
        self.label = f"job {number} ({run_name().replace(',', ' ')})"
        if parallel.in_parallel_sweep():
            parallel.quiet_console(number)
            parallel.leave_terminal_group()
            stopped = Path(str(HydraConfig.get().sweep.dir)) / parallel.STOPPING
            if stopped.exists():
                name = stopped.read_text().strip() or "SIGINT"
                forget_unstarted(self.output_dir)
                raise Interrupted(signal.Signals[name], f"the sweep was stopped ({name}) before {self.label} started")
        started = self.decide() if self.zero and self.cfg.get("ckpt_path") is None else "started"
        say(f"{self.label}: {started}")
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if not self.in_sweep or self.completed_earlier:
            return
        record = read_record(self.output_dir) or {}
        if error is None:
            best, monitor = record.get("best_val"), record.get("monitor", "best value")
            shown = "-" if not isinstance(best, int | float) or math.isnan(best) else f"{best:.4g}"
            say(f"{self.label}: completed in {record.get('wall_seconds', 0):.1f} s, best {monitor}={shown}")
        elif isinstance(error, Interrupted | KeyboardInterrupt):
            say(f"{self.label}: interrupted after {record.get('epochs', 0)} epoch(s); the same command resumes it")
        else:
            say(f"{self.label}: failed: {first_line(error)}")

    def decide(self) -> str:
        """Completed, resume, start over or refuse, from the folder's record; what was done, for the console."""
        record = read_record(self.output_dir)
        if record is None:
            if any((self.output_dir / name).exists() for name in SET_ASIDE):
                number = set_aside(self.output_dir)
                return f"started; the folder's earlier files without a readable record moved to *.earlier-{number}"
            return "started"
        check_same_overrides(self.output_dir, record.get("overrides"), job_overrides(), self.label)
        status, epochs = record.get("status"), record.get("epochs", 0)
        if status == "completed":
            self.completed_earlier, self.best_val = True, record.get("best_val")
            shown = "-" if self.best_val is None else f"{self.best_val:.4g}"
            return f"completed earlier, not run again (best {record.get('monitor')}={shown})"
        how = "killed" if status == "running" else status  # we hold the folder's lock: its old holder is gone
        last = self.output_dir / "checkpoints" / "last.ckpt"
        if status in ("interrupted", "running") and last.is_file():
            with open_dict(self.cfg):
                self.cfg.ckpt_path = str(last)
                if self.cfg.get("threads") is None and isinstance(record.get("threads"), int):
                    self.cfg.threads = record["threads"]  # float sums depend on the thread count
            return f"{how} earlier after {epochs} epoch(s); resuming from checkpoints/last.ckpt"
        number = set_aside(self.output_dir)
        reason = f": {record.get('error')}" if status == "failed" and record.get("error") else ""
        return (
            f"{how} earlier{reason}; started again from the start (the earlier record and checkpoints kept as "
            f"metrics.earlier-{number}.json, checkpoints.earlier-{number}/)"
        )


def say(line: str) -> None:
    """A job's start or end line: on the console under any launcher, and in its train.log."""
    log.info("%s", line, extra={"job_line": True})


def read_record(folder: Path) -> dict[str, Any] | None:
    """The folder's metrics.json, or None where there is none or it cannot be read (cut off mid-write)."""
    try:
        record = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def check_same_overrides(folder: Path, recorded: list[str] | None, now: list[str], label: str) -> None:
    """A job folder is resumed only by the job that made it: the same overrides, in any order."""
    if recorded is None or sorted(recorded) == sorted(now):
        return
    before, after = as_settings(recorded), as_settings(now)
    differ = [f"{before[key]} -> {after[key]}" for key in after if key in before and before[key] != after[key]]
    differ += [f"{after[key]} (new)" for key in after if key not in before]
    differ += [f"{before[key]} (not in this command)" for key in before if key not in after]
    message = (
        f"{folder} holds a job with other overrides than this sweep's {label}: {', '.join(differ)}. Resume a sweep "
        f"with the command that started it (that job ran with: {' '.join(recorded) or 'no overrides'}), or start "
        "this one in a new folder (leave hydra.sweep.dir at its default)."
    )
    log.error("%s", message)
    raise ConfigError(message)


def as_settings(overrides: list[str]) -> dict[str, str]:
    """``{"batch": "batch=200", "+x": "+x=1"}``: each override by the key it sets."""
    return {line.split("=", 1)[0].lstrip("~"): line for line in overrides}


def forget_unstarted(folder: Path) -> None:
    """Remove the folder Hydra made for a job that a stopped sweep does not start, where it holds nothing else (its
    config, an empty log, the lock): the report then lists the job as queued, as it is."""
    log_file = folder / "train.log"
    if {entry.name for entry in folder.iterdir()} <= HYDRA_MADE and not (log_file.exists() and log_file.read_text()):
        shutil.rmtree(folder, ignore_errors=True)


def set_aside(folder: Path) -> int:
    """Move the folder's checkpoints and TensorBoard run to ``*.earlier-N``, N the number its metrics.json will be kept
    under (``record.keep_earlier_record``), so that a new start neither mixes with them nor is refused for them."""
    number = 1
    while any((folder / name).exists() for name in (f"metrics.earlier-{number}.json", f"checkpoints.earlier-{number}")):
        number += 1
    for name in SET_ASIDE:
        if (folder / name).exists():
            (folder / name).rename(folder / f"{name}.earlier-{number}")
    return number
