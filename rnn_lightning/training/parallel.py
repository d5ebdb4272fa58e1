"""Several jobs of a sweep at once on one machine: ``hydra/launcher=parallel`` (Hydra's joblib launcher).

Each job runs in a worker process of its own (loky). What a job decides for itself, in ``train()``, so that it holds
under any launcher that starts jobs this way:

- **Threads.** ``threads=null`` means all cores for a single run, and cores / jobs at once here (the launcher's
  ``n_jobs``): two jobs that each start a thread per core would fight over the same cores and both run slower.
- **GPUs.** On a machine with N GPUs, job k trains on GPU k mod N (``trainer.devices=[k mod N]``, set before the
  Trainer exists, which works in a worker that already used CUDA for an earlier job). ``n_jobs`` above N puts
  several jobs on one GPU; small models leave most of it idle.
- **The console.** Each job's train.log has its own lines only (Hydra configures the logging per job); the console,
  which all workers share, gets one line per job as it starts and one as it ends, and the warnings, marked with the
  job's number. No progress bars: two would draw over each other.
- **Ctrl-C.** The workers leave the terminal's process group, so that a signal reaches the sweep's process alone:
  :class:`StopTogether` there passes it on once to each training job (each saves its ``last.ckpt`` after the current
  batch, as a single run does), lets no queued job start, waits for the running ones to end, and exits 130 (SIGINT)
  or 143 (SIGTERM). A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rnn_lightning.training.run_folder import run_folder_in_use

log = logging.getLogger("rnn_lightning")
PARALLEL_LAUNCHER = "JoblibLauncher"  # the class hydra/launcher=parallel names (conf/hydra/launcher/parallel.yaml)
STOPPING = ".stopping"  # in the sweep folder while a stopped sweep waits for its jobs: queued jobs do not start
PROGRESS_BAR = "rnn_lightning.training.callbacks.console.progress"
EPOCH_LINES = "rnn_lightning.training.callbacks.console.EpochSummary"
SINGLE_DEVICE = (1, "1", [0], "auto")


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a job runs: its CPU threads (None: torch's default, all cores), its Trainer and callback settings."""

    threads: int | None
    trainer: dict[str, Any]
    callbacks: dict[str, dict[str, Any]]
    gpu: int | None = None  # the GPU this job was given among several, or None


def in_parallel_sweep() -> bool:
    """Whether this process runs a job of a sweep whose jobs run at once, in worker processes."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return False
    return str(OmegaConf.select(HydraConfig.get(), "launcher._target_", default="")).endswith(PARALLEL_LAUNCHER)


def jobs_at_once(n_jobs: int | None = None, cores: int | None = None) -> int:
    """The launcher's ``n_jobs`` as joblib reads it: -1 is one job per core, -2 one fewer, and so on."""
    n_jobs = int(HydraConfig.get().launcher.n_jobs) if n_jobs is None else n_jobs
    cores = usable_cores() if cores is None else cores
    return max(1, n_jobs if n_jobs > 0 else cores + 1 + n_jobs)


def usable_cores() -> int:
    """The cores this process may run on (taskset, cgroups and SLURM narrow it), not all of the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def place_job(threads: int | None, trainer: dict[str, Any], callbacks: dict[str, dict[str, Any]]) -> Placement:
    """The job's threads, device and console callback: unchanged outside a parallel sweep and where set."""
    if not in_parallel_sweep():
        return Placement(threads, trainer, callbacks)
    if threads is None:
        threads = max(1, usable_cores() // jobs_at_once())
    gpu, trainer = gpu_of_job(int(HydraConfig.get().job.num), trainer)
    if callbacks.get("console", {}).get("_target_") == PROGRESS_BAR:
        callbacks = {**callbacks, "console": {"_target_": EPOCH_LINES}}
    return Placement(threads, trainer, callbacks, gpu)


def gpu_of_job(number: int, trainer: dict[str, Any]) -> tuple[int | None, dict[str, Any]]:
    """Job ``number`` on GPU ``number mod N``, for a one-device job that would train on a GPU; else as it is.

    A job with its own devices (``trainer.devices=[2]``, or DDP over several) and a CPU job are left alone.
    """
    if str(trainer.get("accelerator", "auto")) not in ("auto", "gpu", "cuda"):
        return None, trainer
    if trainer.get("devices", 1) not in SINGLE_DEVICE or "ddp" in str(trainer.get("strategy", "auto")):
        return None, trainer
    import torch  # here, not at the top: the sweep's own process reads this module and needs no torch

    count = torch.cuda.device_count()  # counts without creating a CUDA context
    if count == 0:
        return None, trainer
    gpu = number % count
    return gpu, {**trainer, "devices": [gpu]}


def leave_terminal_group() -> None:
    """Make this worker its own process group, out of the terminal's: Ctrl-C then reaches the sweep's process only,
    which passes it on once (a second copy would mean "stop at once" to the job)."""
    with contextlib.suppress(OSError):  # already a group or session leader
        os.setpgid(0, 0)


def stopping(sweep_dir: Path) -> bool:
    return (sweep_dir / STOPPING).exists()


class JobConsole(logging.Filter):
    """On the console the jobs share: this job's start and end lines (``extra={"job_line": True}``) and its
    warnings; everything else goes to its train.log only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return bool(getattr(record, "job_line", False)) or record.levelno >= logging.WARNING


class JobPrefix(logging.Formatter):
    """The console's own format, with ``job N:`` before a warning (a start or end line names its job already)."""

    def __init__(self, inner: logging.Formatter, number: int) -> None:
        super().__init__()
        self.inner, self.prefix = inner, f"job {number}: "

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "job_line", False):
            return self.inner.format(record)
        marked = logging.makeLogRecord({**record.__dict__, "msg": self.prefix + record.getMessage(), "args": None})
        return self.inner.format(marked)


def quiet_console(number: int) -> None:
    """Put :class:`JobConsole` on the console handlers Hydra configured for this job (not on its train.log)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.addFilter(JobConsole())
            handler.setFormatter(JobPrefix(handler.formatter or logging.Formatter(), number))


class StopTogether(Callback):
    """In the sweep's own process (a Hydra callback, conf/config.yaml): Ctrl-C or SIGTERM stops the whole sweep
    after every running job has saved its ``last.ckpt``. Acts only under the parallel launcher; the basic launcher
    trains in this process, where the job's own handler does this."""

    def __init__(self, poll_seconds: float = 0.2) -> None:
        self.poll_seconds = poll_seconds
        self.sweep_dir: Path | None = None
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not str(OmegaConf.select(config, "hydra.launcher._target_", default="")).endswith(PARALLEL_LAUNCHER):
            return
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        (self.sweep_dir / STOPPING).unlink(missing_ok=True)  # left by the stopped sweep this one resumes
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self.handle)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()

    def handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None or self.sweep_dir is None:
            raise KeyboardInterrupt  # the second signal: the launcher ends its workers now
        self.signum = signum
        (self.sweep_dir / STOPPING).write_text(name)
        training = training_jobs(self.sweep_dir)
        log.warning(
            "%s received: %d running job(s) save their last.ckpt and stop; no queued job starts (again: stop now). "
            "Resume with the same command and hydra.sweep.dir=%s",
            name,
            len(training),
            self.sweep_dir,
        )
        for pid in training.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        while any(run_folder_in_use(folder) for folder in training):
            time.sleep(self.poll_seconds)
        raise SystemExit(128 + signum)


def training_jobs(sweep_dir: Path) -> dict[Path, int]:
    """The job folders of ``sweep_dir`` whose run folder lock a live process holds, with that process's id."""
    jobs = {}
    for lock in sorted(sweep_dir.glob("*/.lock")):
        if run_folder_in_use(lock.parent):
            with contextlib.suppress(ValueError, OSError):
                jobs[lock.parent] = int(lock.read_text().split()[0])
    return jobs
