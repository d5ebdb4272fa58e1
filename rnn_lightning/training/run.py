"""One training job from a composed config: build, fit, test on the best checkpoint, record.

``train.py`` calls :func:`train` under ``@hydra.main``; tests call it with a config from Hydra's compose API. It returns
the best value of the monitored metric (not the last epoch's), so that an optimizing sweeper can use it.

Failures keep what is saved: settings are checked before anything is written (``build.py``), a folder with another
run's checkpoints is refused, an earlier metrics.json is kept beside the new one (and put back where it was if this
run is refused before training), a NaN or diverged loss stops before it reaches a checkpoint (``numerics.py``), and
Ctrl-C / SIGTERM save a resumable ``last.ckpt`` (``signals.py``). metrics.json ends as ``completed``, ``failed`` or
``interrupted`` with the message of the error that started it (not of one raised while handling it); the full
traceback goes to the job's log file (train.log).

Under DDP every process runs this function (Lightning's ``ddp`` re-runs train.py per device; SLURM and torchrun start
one per device); only global rank 0 writes metrics.json, and the test set is scored once, by rank 0 alone.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from rnn_lightning.training.build import Run, build_run, one_process_tester
from rnn_lightning.training.distributed import end_process_group, is_launch_zero
from rnn_lightning.training.params import job_overrides, run_params
from rnn_lightning.training.record import (
    NoRecord,
    RecordProgress,
    RunRecord,
    first_error,
    first_line,
    keep_earlier_record,
)
from rnn_lightning.training.signals import Interrupted, StopRequest

log = logging.getLogger("rnn_lightning")
# Lightning 2.6 calls a torch.utils._pytree API that torch 2.13 deprecates; nothing for a user to act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# check_output_dir refuses another run's checkpoints; what is left for Lightning to warn about is a resumed run's own.
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


def train(cfg: DictConfig) -> float | None:
    output_dir = Path(cfg.paths.output_dir)
    zero = is_launch_zero()
    record = open_record(cfg, output_dir) if zero else NoRecord()
    stop = StopRequest()
    stop.install()
    run = None
    try:
        run = build_run(cfg, output_dir, stop)
        run.trainer.callbacks.append(RecordProgress(record))  # here, where the record is: epochs as they complete
        distributed = fit(run, cfg, stop)
        if not run.trainer.is_global_zero:
            return None
        return test_and_record(run, cfg, record, distributed, output_dir)
    except Interrupted as interrupt:
        record.finish("interrupted", interrupt)
        log.warning("%s", interrupt)
        if not zero:
            return None  # exit 0: Lightning's ddp launcher kills all processes when a child exits non-zero
        raise
    except KeyboardInterrupt as interrupt:  # only where handlers cannot be set (not the main thread)
        record.finish("interrupted", interrupt)
        raise
    except Exception as raised:
        error = first_error(raised)
        if run is None and record.kept is not None:
            record.withdraw()  # refused before training: the folder's earlier record stays what it was
        else:
            record.finish("failed", error)
        log_to_file(raised, error)
        if error is raised:
            raise
        raise error from None
    finally:
        stop.restore()


def log_to_file(raised: BaseException, error: BaseException) -> None:
    """The whole traceback into the job's log files (Hydra's train.log) only; the console has Hydra's report."""
    files = [handler for handler in logging.getLogger().handlers if isinstance(handler, logging.FileHandler)]
    trace = (type(raised), raised, raised.__traceback__)
    entry = log.makeRecord(log.name, logging.ERROR, __file__, 0, "the run failed: %s", (first_line(error),), trace)
    for handler in files:
        if entry.levelno >= handler.level:
            handler.handle(entry)


def open_record(cfg: DictConfig, output_dir: Path) -> RunRecord:
    kept = keep_earlier_record(output_dir / "metrics.json")
    if kept is not None:
        log.info("kept the earlier metrics.json as %s", kept.name)
    return RunRecord(
        output_dir / "metrics.json",
        kept=kept,
        task=cfg.task_name,
        monitor=cfg.monitor.metric,
        mode=cfg.monitor.mode,
        overrides=job_overrides(),
        params=run_params(cfg),
        resumed_from=None if cfg.ckpt_path is None else str(cfg.ckpt_path),
    )


def fit(run: Run, cfg: DictConfig, stop: StopRequest) -> bool:
    """Train; whether it ran on several processes."""
    with stop.deferred():
        run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=cfg.ckpt_path)
    distributed = run.trainer.world_size > 1
    end_process_group()
    return distributed


def test_and_record(
    run: Run, cfg: DictConfig, record: RunRecord | NoRecord, distributed: bool, output_dir: Path
) -> float | None:
    """Score the best checkpoint on the test set (once, on one process), log the run's hparams, finish the record."""
    best = best_score(run.best)
    epochs = completed_epochs(run.trainer, output_dir / "checkpoints" / "last.ckpt")
    record.update(best_val=best, epochs=epochs)
    tester = one_process_tester(cfg, run.logger) if distributed else run.trainer
    # verbose=False: the log's last line states the test metrics; Lightning's own table would be a second copy.
    tested = tester.test(
        run.module, datamodule=run.datamodule, ckpt_path=run.best.best_model_path or None, verbose=False
    )
    test_metrics = {name: float(value) for name, value in tested[0].items()}
    # This job's row in TensorBoard's HParams table: its params, and its results by their names in metrics.json.
    results = {"best_val": math.nan if best is None else best, **test_metrics}
    run.logger.log_hyperparams(run_params(cfg), metrics=results)
    record.finish("completed", test=test_metrics, epochs=epochs)
    tested_text = "  ".join(f"{name}={value:.4g}" for name, value in test_metrics.items())
    log.info(
        "best %s=%s  %s  outputs in %s",
        cfg.monitor.metric,
        "-" if best is None else f"{best:.4g}",
        tested_text,
        shown_path(output_dir),
    )
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
