"""One training job from a composed config: check, seed, build, fit, test on the best checkpoint, record.

``train.py`` calls :func:`train` under ``@hydra.main``; tests call it with a config from Hydra's compose API. It returns
the best value of the monitored metric (not the last epoch's), so that an optimizing sweeper can use it.

Failures keep what is saved: settings are checked before anything is written (:mod:`.checks`), a folder
with another run's checkpoints is refused, an earlier metrics.json is kept beside the new one, a NaN loss stops before
it reaches a checkpoint (:mod:`.numerics`), and Ctrl-C / SIGTERM save a resumable ``last.ckpt``
(:mod:`.signals`). metrics.json ends as ``completed``, ``failed`` or ``interrupted`` with the message.

Under DDP every process runs this function (Lightning's ``ddp`` re-runs train.py per device; SLURM and torchrun start
one per device); only global rank 0 writes metrics.json, and the test set is scored once, by rank 0 alone.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from rnn_lightning.allocator import keep_freed_memory
from rnn_lightning.launch_id import register_launch_id
from rnn_lightning.training.callbacks import EpochSummary
from rnn_lightning.training.checkpoint_io import AtomicCheckpointIO
from rnn_lightning.training.checks import (
    check_config,
    check_output_dir,
    check_resume_data,
    read_resume_checkpoint,
    scheduler_settings,
)
from rnn_lightning.training.determinism import SeedEachBatch
from rnn_lightning.training.distributed import SameModelEverywhere, end_process_group, is_launch_zero
from rnn_lightning.training.numerics import FiniteGuard
from rnn_lightning.training.params import job_overrides, run_params
from rnn_lightning.training.record import RunRecord
from rnn_lightning.training.signals import GracefulStop, Interrupted, StopRequest

log = logging.getLogger("rnn_lightning")
# Lightning 2.6 calls a torch.utils._pytree API that torch 2.13 deprecates; nothing for a user to act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# check_output_dir refuses another run's checkpoints; what is left for Lightning to warn about is a resumed run's own.
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
# Also here, not only in train.py: a config composed without train.py (tests, a notebook) names its run folder too.
register_launch_id()

# A decimal with more than 4 digits after the point, as a whole override value in Hydra's override_dirname.
LONG_DECIMAL = re.compile(r"(?<==)-?\d+\.\d{5,}(?:e[-+]?\d+)?(?=,|$)")
FILE_NAME_BYTES = 255  # the limit of one path component on Linux and macOS file systems


class NoRecord:
    """What DDP ranks other than 0 keep instead of a RunRecord: they must not write rank 0's metrics.json."""

    def update(self, **fields: Any) -> None:
        pass

    def finish(self, status: str, error: BaseException | None = None, **fields: Any) -> None:
        pass


def train(cfg: DictConfig) -> float | None:
    if cfg.get("keep_freed_memory"):
        keep_freed_memory()  # sentiment epochs 5-10 % faster; see allocator.py (process-wide from here on)
    output_dir = Path(cfg.paths.output_dir)
    zero = is_launch_zero()
    if zero:
        keep_earlier_record(output_dir / "metrics.json")
        record: RunRecord | NoRecord = RunRecord(
            output_dir / "metrics.json",
            task=cfg.task_name,
            monitor=cfg.monitor.metric,
            mode=cfg.monitor.mode,
            overrides=job_overrides(),
            params=run_params(cfg),
            resumed_from=None if cfg.ckpt_path is None else str(cfg.ckpt_path),
        )
    else:
        record = NoRecord()
    stop = StopRequest()
    stop.install()
    try:
        return fit_and_test(cfg, output_dir, record, stop)
    except Interrupted as interrupt:
        record.finish("interrupted", interrupt)
        log.warning("%s", interrupt)
        if not zero:
            return None  # exit 0: Lightning's ddp launcher kills all processes when a child exits non-zero
        raise
    except KeyboardInterrupt as interrupt:  # only where handlers cannot be set (not the main thread)
        record.finish("interrupted", interrupt)
        raise
    except Exception as error:
        record.finish("failed", error)
        raise
    finally:
        stop.restore()


def keep_earlier_record(path: Path) -> None:
    """Rename a metrics.json left by an earlier run in this folder (a resumed or a failed one) instead of losing it."""
    if not path.exists():
        return
    number = 1
    while (kept := path.with_name(f"metrics.earlier-{number}.json")).exists():
        number += 1
    path.rename(kept)
    log.info("kept the earlier %s as %s", path.name, kept.name)


def fit_and_test(cfg: DictConfig, output_dir: Path, record: RunRecord | NoRecord, stop: StopRequest) -> float | None:
    check_config(cfg)
    check_output_dir(output_dir, cfg.ckpt_path)
    resume = read_resume_checkpoint(cfg)
    if resume is not None and resume.path.resolve().parent != (output_dir / "checkpoints").resolve():
        # Lightning then reloads only the best checkpoint's path, not its score: "best" starts over here.
        run_dir = resume.path.resolve().parent.parent
        log.warning("resuming into a new folder; to continue that run exactly, add hydra.run.dir=%s", run_dir)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build(cfg.data)
    # Built before the Trainer so that the module can be sized by the data (the vocabulary). Every DDP process does
    # this itself; SameModelEverywhere checks that they agree.
    datamodule.prepare_data()
    datamodule.setup("fit")
    data_inputs = datamodule.model_inputs()
    check_resume_data(resume, data_inputs)
    module = build_module(cfg, **data_inputs)
    checkpoint = ModelCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="best-epoch{epoch:03d}",
        auto_insert_metric_name=False,
        monitor=cfg.monitor.metric,
        mode=cfg.monitor.mode,
    )
    logger = TensorBoardLogger(output_dir, name="tensorboard", version=run_name(), default_hp_metric=False)
    trainer = build(
        cfg.trainer,
        callbacks=[checkpoint, last_checkpoint(output_dir), *extra_callbacks(cfg, output_dir, stop)],
        plugins=[AtomicCheckpointIO()],  # SIGKILL mid-save must leave the previous last.ckpt, not half a new one
        # metrics.csv beside TensorBoard: every logged value per epoch, for scripts (a new version per resume).
        logger=[logger, CSVLogger(output_dir, name="csv")],
        enable_progress_bar=is_terminal(),
    )
    # Give the module the precision's dtype now, as Lightning would at setup: a resumed checkpoint is loaded before
    # that, and 64-bit weights copied into the float32 module would be rounded (the resumed run would drift).
    module = trainer.precision_plugin.convert_module(module)
    with stop.deferred():
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    distributed = trainer.world_size > 1
    end_process_group()
    if not trainer.is_global_zero:
        return None
    best = best_score(checkpoint)
    epochs = completed_epochs(trainer, output_dir / "checkpoints" / "last.ckpt")
    record.update(best_val=best, epochs=epochs)
    tester = single_process_tester(cfg, logger) if distributed else trainer
    tested = tester.test(module, datamodule=datamodule, ckpt_path=checkpoint.best_model_path or None)
    test_metrics = {name: float(value) for name, value in tested[0].items()}
    hparam_metrics = {f"hparams/{name}": value for name, value in test_metrics.items()}
    hparam_metrics["hparams/best_val"] = math.nan if best is None else best
    logger.log_hyperparams(run_params(cfg), metrics=hparam_metrics)
    record.finish("completed", test=test_metrics, epochs=epochs)
    log.info("best %s = %s; test %s; outputs in %s", cfg.monitor.metric, best, test_metrics, output_dir)
    return best


def build(node: DictConfig, **kwargs: Any) -> Any:
    """``instantiate``, but a constructor's own error (the data module's "data.max_len must be ...") comes out as
    itself rather than inside Hydra's InstantiationException, whose first line only names the class."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, Exception):
            raise error.__cause__ from None
        raise


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


def single_process_tester(cfg: DictConfig, logger: TensorBoardLogger) -> L.Trainer:
    """A one-device Trainer for the test set: under DDP, Lightning's DistributedSampler pads the test set to a
    multiple of the number of processes and scores those reviews twice; one process scores each exactly once."""
    return instantiate(
        cfg.trainer,
        strategy="auto",
        devices=1,
        num_nodes=1,
        logger=logger,
        callbacks=[],
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def build_module(cfg: DictConfig, **data_inputs: Any) -> L.LightningModule:
    """The task's LightningModule from plain values only, so its checkpoint loads with weights_only=True."""
    arguments = OmegaConf.to_container(cfg.module, resolve=True)
    module_class = get_class(arguments.pop("_target_"))
    # The optimizer and scheduler configs stay data; the module builds both in configure_optimizers.
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    return module_class(**arguments, **data_inputs, optim=optim, scheduler=scheduler_settings(cfg) or None)


def last_checkpoint(output_dir: Path) -> ModelCheckpoint:
    """``last.ckpt`` after every epoch. Lightning 2.6's ``save_last=True`` refreshes it only in epochs that
    also save a new best, so a crash after a run of non-improving epochs would lose them all."""
    return ModelCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="last",
        monitor=None,
        save_top_k=1,
        enable_version_counter=False,
    )


def extra_callbacks(cfg: DictConfig, output_dir: Path, stop: StopRequest) -> list[L.Callback]:
    callbacks: list[L.Callback] = [
        RichProgressBar() if is_terminal() else EpochSummary(),
        SeedEachBatch(cfg.seed),
        FiniteGuard(monitor=cfg.monitor.metric),
        GracefulStop(stop, output_dir / "checkpoints" / "last.ckpt"),
        SameModelEverywhere(),
    ]
    if scheduler_settings(cfg):
        # One train/lr point per epoch (the rate the epoch trains with), beside the losses in TensorBoard.
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    if cfg.early_stopping_patience:
        callbacks.append(
            EarlyStopping(monitor=cfg.monitor.metric, mode=cfg.monitor.mode, patience=cfg.early_stopping_patience)
        )
    return callbacks


def is_terminal() -> bool:
    return sys.stdout.isatty()


def run_name() -> str:
    """The job's overrides (``batch=200,optim=adam``), so TensorBoard names each sweep job by what differs."""
    if not HydraConfig.initialized():
        return "default"
    # A "/" in an override value (a path) would nest folders; keep the run one folder deep.
    name = (HydraConfig.get().job.override_dirname or "default").replace("/", "_")
    # An optimizing sweeper passes its draws with every digit (optim.lr=0.0003574712922600243); four tell the trials
    # apart in TensorBoard and keep the name short. metrics.json and .hydra/ keep the exact values.
    name = LONG_DECIMAL.sub(lambda number: f"{float(number.group()):.4g}", name)
    return fit_file_name(name)


def fit_file_name(name: str) -> str:
    """``name`` cut to the 255 bytes a file system allows in one folder name, with a hash of the whole to keep it
    unique: a search over many knobs still makes a name longer than that."""
    encoded = name.encode()
    if len(encoded) <= FILE_NAME_BYTES:
        return name
    digest = hashlib.sha1(encoded).hexdigest()[:8]
    return encoded[: FILE_NAME_BYTES - len(digest) - 1].decode(errors="ignore") + "_" + digest
