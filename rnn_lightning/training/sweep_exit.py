"""A sweep with a failed job exits non-zero, whichever sweeper ran it (a Hydra callback, set in conf/config.yaml).

Hydra's basic sweeper runs every job of its batch and then re-raises the first failure, so ``python train.py -m ...``
exits 1. The Optuna sweeper (``hydra/sweeper=tune``, with ``max_failure_rate: 1.0``) instead tells the study that the
trial failed and goes on with the next one, and would exit 0 at the end: the failure would only show in the log and in
that job's metrics.json. This callback keeps the study going, and exits 1 once it has finished and written
optimization_results.yaml, naming the failed jobs.

It sees the jobs that ran in this process (Hydra's basic launcher). Launchers that run each job in a process of its own
(``hydra/launcher=slurm`` or ``slurm_local``) call the job callbacks there; under them the Optuna sweeper still exits 0
with failed trials, which ``python -m rnn_lightning.cli.report DIR`` lists (and exits 1 for).
"""

from __future__ import annotations

from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


class ExitNonZeroOnFailedJobs(Callback):
    def __init__(self) -> None:
        self.failed: list[str] = []  # the failed jobs' numbers, which are also their folder names in the sweep

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        # A single run has no job number (hydra.job.num is ??? there), and no sweep to fail at the end.
        number = OmegaConf.select(config, "hydra.job.num", default=None)
        if job_return.status == JobStatus.FAILED and number is not None:
            self.failed.append(str(number))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.failed:
            return
        # SystemExit, not an Exception: Hydra turns an Exception raised by a callback into a warning.
        raise SystemExit(
            f"{len(self.failed)} sweep job(s) failed: {', '.join(self.failed)} in {config.hydra.sweep.dir}; each "
            f"folder's metrics.json has the error, and `python -m rnn_lightning.cli.report {config.hydra.sweep.dir}` "
            "compares all jobs."
        )
