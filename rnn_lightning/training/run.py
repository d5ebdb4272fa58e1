"""One training job from a composed config: plan, build, fit, test on the best checkpoint, record.

``python -m rnn_lightning.train`` (and ``train.py``) calls :func:`train` under ``@hydra.main``; tests call it with a
config from Hydra's compose API. It returns the best value of the monitored metric (not the last epoch's), so that an
optimizing sweeper can use it.

Failures keep what is saved: the settings are checked and the run is built before anything is written into the run
folder (a refused run records itself only where the folder has no record yet), a folder with another run's
checkpoints is refused, an earlier metrics.json is kept beside the new one, a NaN or diverged loss stops before it
reaches a checkpoint (``callbacks/guard.py``), and Ctrl-C / SIGTERM save a resumable ``last.ckpt``
(``callbacks/graceful_stop.py``). metrics.json ends as ``completed``, ``failed`` or ``interrupted`` with the message of
the error that started it; the full traceback goes to the job's log file (train.log).

Under DDP every process runs this function (Lightning's ``ddp`` re-runs train.py per device; SLURM and torchrun start
one per device); only global rank 0 writes metrics.json, and the test set is scored once, by rank 0 alone.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from rnn_lightning.errors import first_line
from rnn_lightning.training.build import Run, build, one_process_tester
from rnn_lightning.training.callbacks.graceful_stop import STOP_REQUEST, Interrupted
from rnn_lightning.training.callbacks.test_report import TestReport
from rnn_lightning.training.distributed import end_process_group, is_launch_zero
from rnn_lightning.training.naming import job_overrides
from rnn_lightning.training.preflight import Plan, make_plan, output_dir_of
from rnn_lightning.training.record import (
    NoRecord,
    RecordProgress,
    RunRecord,
    first_error,
    keep_earlier_record,
    record_refusal,
)
from rnn_lightning.training.run_folder import RunFolderLock
from rnn_lightning.training.sweep_resume import SweepJob

log = logging.getLogger("rnn_lightning")
# Lightning 2.6 calls a torch.utils._pytree API that torch 2.13 deprecates; nothing for a user to act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# check_output_dir refuses another run's checkpoints; what is left for Lightning to warn about is a resumed run's own.
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
# 16-mixed on a CPU: build.py says what runs instead, in the run's log.
warnings.filterwarnings("ignore", message=r".*AMP with fp16 is not supported on CPU")


def train(cfg: DictConfig) -> float | None:
    output_dir, zero = output_dir_of(cfg), is_launch_zero()
    # DDP's other processes train in rank 0's folder, which rank 0 holds.
    with RunFolderLock(output_dir) if zero else contextlib.nullcontext(), SweepJob(cfg, output_dir, zero) as job:
        # A resumed sweep: a job completed before is not run again, a stopped one resumes (sweep_resume.py).
        return job.best_val if job.completed_earlier else train_in(job.cfg, output_dir, zero)


def train_in(cfg: DictConfig, output_dir: Path, zero: bool) -> float | None:
    STOP_REQUEST.reset()
    STOP_REQUEST.install()
    try:
        try:
            plan = make_plan(cfg)
            run = build(plan)
        except Exception as refused:
            if zero:
                record_refusal(output_dir / "metrics.json", refused, overrides=job_overrides())
            log_to_file(refused, refused)
            raise
        record = open_record(plan, str(run.trainer.precision)) if zero else NoRecord()
        # First among the callbacks: the epoch is recorded before one of them stops the run at its start.
        run.trainer.callbacks.insert(0, RecordProgress(record, run.best))
        return fit_and_test(run, plan, record)
    finally:
        STOP_REQUEST.restore()


def fit_and_test(run: Run, plan: Plan, record: RunRecord | NoRecord) -> float | None:
    try:
        with STOP_REQUEST.deferred():
            run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=plan.ckpt_path)
        distributed = run.trainer.world_size > 1
        end_process_group()
        if not run.trainer.is_global_zero:
            return None
        return test_and_record(run, plan, record, distributed)
    except Interrupted as interrupt:
        record.finish("interrupted", interrupt)
        log.warning("%s", interrupt)
        if not is_launch_zero():
            return None  # exit 0: Lightning's ddp launcher kills all processes when a child exits non-zero
        raise
    except KeyboardInterrupt as interrupt:  # only where handlers cannot be set (not the main thread)
        record.finish("interrupted", interrupt)
        raise
    except Exception as raised:
        error = first_error(raised)
        record.finish("failed", error)
        log_to_file(raised, error)
        if error is raised:
            raise
        raise error from None


def log_to_file(raised: BaseException, error: BaseException) -> None:
    """The whole traceback into the job's log files (Hydra's train.log) only; the console has Hydra's report."""
    files = [handler for handler in logging.getLogger().handlers if isinstance(handler, logging.FileHandler)]
    trace = (type(raised), raised, raised.__traceback__)
    entry = log.makeRecord(log.name, logging.ERROR, __file__, 0, "the run failed: %s", (first_line(error),), trace)
    for handler in files:
        if entry.levelno >= handler.level:
            handler.handle(entry)


def open_record(plan: Plan, precision: str) -> RunRecord:
    """metrics.json of a run that starts training; ``precision`` is what runs (16-mixed on a CPU runs bf16-mixed)."""
    kept = keep_earlier_record(plan.output_dir / "metrics.json")
    if kept is not None:
        log.info("kept the earlier metrics.json as %s", kept.name)
    return RunRecord(
        plan.output_dir / "metrics.json",
        task=plan.task,
        monitor=plan.monitor.metric,
        mode=plan.monitor.mode,
        overrides=job_overrides(),
        params={**plan.params, **({"trainer.precision": precision} if "trainer.precision" in plan.params else {})},
        precision=precision,
        threads=torch.get_num_threads(),
        resumed_from=plan.ckpt_path,
    )


def test_and_record(run: Run, plan: Plan, record: RunRecord | NoRecord, distributed: bool) -> float | None:
    """Score the best checkpoint on the test set (once, on one process), log the run's hparams, finish the record."""
    best = best_score(run.best)
    epochs = completed_epochs(run.trainer, plan.output_dir / "checkpoints" / "last.ckpt")
    record.update(best_val=best, epochs=epochs)
    reports = [callback for callback in run.trainer.callbacks if isinstance(callback, TestReport)]
    tester = one_process_tester(plan, run.logger, reports) if distributed else run.trainer
    # verbose=False: the log's last line states the test metrics; Lightning's own table would be a second copy.
    tested = tester.test(
        run.module, datamodule=run.datamodule, ckpt_path=run.best.best_model_path or None, verbose=False
    )
    test_metrics = {name: float(value) for loader in tested for name, value in loader.items()}  # one dict a loader
    # This job's row in TensorBoard's HParams table: its params, and its results by their names in metrics.json.
    run.logger.log_results(plan.params, {"best_val": math.nan if best is None else best, **test_metrics})
    record.finish("completed", test=test_metrics, epochs=epochs)
    tested_text = "  ".join(f"{name}={value:.4g}" for name, value in test_metrics.items())
    shown = "-" if best is None else f"{best:.4g}"
    log.info("best %s=%s  %s  outputs in %s", plan.monitor.metric, shown, tested_text, shown_path(plan.output_dir))
    return best


def shown_path(path: Path) -> Path:
    """``path`` relative to where the user started, when it is below it (outputs/DATE/TIME), else as it is."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def best_score(checkpoint: ModelCheckpoint) -> float | None:
    """The best monitored value. ddp_spawn sends only the best checkpoint's path back from its worker processes, so
    the score is read from that checkpoint's own copy of the callback state."""
    if checkpoint.best_model_score is not None:
        return float(checkpoint.best_model_score)
    if not checkpoint.best_model_path:
        return None
    saved = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    score = saved.get("callbacks", {}).get(checkpoint.state_key, {}).get("best_model_score")
    return None if score is None else float(score)


def completed_epochs(trainer: L.Trainer, last: Path) -> int:
    """Epochs trained. Under ddp_spawn the loops ran in the worker processes and this Trainer's counters stayed at 0;
    last.ckpt, written at the end of the last epoch, has the 0-based index of that epoch."""
    if trainer.current_epoch > 0 or not last.exists():
        return trainer.current_epoch
    return int(torch.load(last, map_location="cpu", weights_only=True)["epoch"]) + 1
