"""From a composed config to the objects of one run: checks, Trainer, data module, LightningModule.

Everything a user can get wrong is refused here, before ``fit`` starts and before anything is written: the config
(``checks.py``), a checkpoint to resume (``resume.py``), the Trainer's devices (parsed by Lightning itself when the
Trainer is built, then ``check_trainer``), the data files (the data module's own checks).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig

from rnn_lightning.training.callbacks import (
    EpochLearningRate,
    EpochSummary,
    LayerSummary,
    SaidEarlyStopping,
    TerminalProgressBar,
)
from rnn_lightning.training.checkpoint_io import AtomicCheckpointIO
from rnn_lightning.training.checks import (
    ConfigError,
    check_config,
    check_output_dir,
    check_trainer,
    plain,
    schedule_of,
)
from rnn_lightning.training.determinism import SeedEachBatch
from rnn_lightning.training.distributed import SameModelEverywhere
from rnn_lightning.training.numerics import FiniteGuard
from rnn_lightning.training.resume import Checkpoint, check_resume_data, read_resume_checkpoint
from rnn_lightning.training.run_name import run_name, swept_keys
from rnn_lightning.training.signals import GracefulStop, StopRequest
from rnn_lightning.training.tensorboard import TaskTensorBoardLogger

log = logging.getLogger("rnn_lightning")


@dataclass
class Run:
    trainer: L.Trainer
    module: L.LightningModule
    datamodule: L.LightningDataModule
    best: ModelCheckpoint  # the best checkpoint by the monitored metric
    logger: TaskTensorBoardLogger
    resume: Checkpoint | None


def build_run(cfg: DictConfig, output_dir: Path, stop: StopRequest) -> Run:
    check_config(cfg)
    check_output_dir(output_dir, cfg.ckpt_path)
    resume = read_resume_checkpoint(cfg)
    if resume is not None and resume.path.resolve().parent != (output_dir / "checkpoints").resolve():
        # Lightning then reloads only the best checkpoint's path, not its score: "best" starts over here.
        log.warning("resuming into a new folder; to continue that run exactly, add hydra.run.dir=%s", run_dir(resume))
    L.seed_everything(cfg.seed, workers=True)
    if cfg.trainer.get("deterministic"):
        # cuBLAS picks its reduction order by workspace unless told; this fixes it (the setting CUDA's docs give for
        # reproducible results), and torch.use_deterministic_algorithms refuses CUDA matmuls without it.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    best = ModelCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="best-epoch{epoch:03d}",
        auto_insert_metric_name=False,
        monitor=cfg.monitor.metric,
        mode=cfg.monitor.mode,
    )
    logger = TaskTensorBoardLogger(output_dir, task=cfg.task_name, version=run_name(), swept=swept_keys())
    trainer = build_trainer(
        cfg,
        callbacks=[best, last_checkpoint(output_dir), *callbacks(cfg, output_dir, stop)],
        plugins=[AtomicCheckpointIO()],  # SIGKILL mid-save must leave the previous last.ckpt, not half a new one
        # metrics.csv beside TensorBoard: every logged value per epoch, for scripts (a new version per resume).
        logger=[logger, CSVLogger(output_dir, name="csv")],
        enable_progress_bar=is_terminal(),
        enable_model_summary=False,  # LayerSummary instead, in callbacks(), where the config asks for one
    )
    check_trainer(trainer, cfg)
    check_triton(cfg, trainer)
    note_float64_on_gpu(trainer)
    datamodule = instantiate_plainly(cfg.data)
    # Built before fit so that the module can be sized by the data (the vocabulary). Every DDP process does this
    # itself; SameModelEverywhere checks that they agree.
    datamodule.prepare_data()
    datamodule.setup("fit")
    data_inputs = datamodule.model_inputs()
    check_resume_data(resume, data_inputs)
    module = build_module(cfg, **data_inputs)
    # The precision's dtype now, as Lightning would give it at setup: a resumed checkpoint is loaded before that,
    # and 64-bit weights copied into a float32 module would be rounded (the resumed run would drift).
    module = trainer.precision_plugin.convert_module(module)
    return Run(trainer, module, datamodule, best, logger, resume)


def check_triton(cfg: DictConfig, trainer: L.Trainer) -> None:
    """model.impl=triton where it cannot run (no CUDA, or no Triton) fails now, not at the first batch."""
    if cfg.model.impl != "triton":
        return
    from rnn_lightning.nn.triton import check_runnable

    try:
        check_runnable(trainer.strategy.root_device)
    except (ImportError, RuntimeError) as error:
        raise ConfigError(str(error)) from None


def note_float64_on_gpu(trainer: L.Trainer) -> None:
    if str(trainer.precision).startswith("64") and trainer.strategy.root_device.type == "cuda":
        log.info(
            "training in float64 on %s: fast on data-centre GPUs (A100, H100, H200), 32-64x slower than float32 on "
            "consumer ones; trainer.precision=32-true trains in float32",
            torch.cuda.get_device_name(trainer.strategy.root_device),
        )


def run_dir(checkpoint: Checkpoint) -> Path:
    return checkpoint.path.resolve().parent.parent


def build_trainer(cfg: DictConfig, **arguments: Any) -> L.Trainer:
    """The Trainer of ``cfg.trainer``; the one place a Trainer is made (fit, and a one-process test under DDP)."""
    try:
        return instantiate(cfg.trainer, **arguments)
    except InstantiationException as error:
        if isinstance(error.__cause__, MisconfigurationException | ValueError):
            said = str(error.__cause__).strip().splitlines()[0] if str(error.__cause__).strip() else "no reason given"
            raise ConfigError(
                f"trainer.accelerator={cfg.trainer.get('accelerator')} trainer.devices={cfg.trainer.get('devices')} "
                f"cannot run here; Lightning says: {said} Use trainer=cpu to train on this machine's CPU, or "
                "trainer.accelerator=auto to take whatever it has (python train.py --cfg job prints the settings)."
            ) from None
        raise


def one_process_tester(cfg: DictConfig, logger: TaskTensorBoardLogger) -> L.Trainer:
    """A one-device Trainer for the test set after DDP: Lightning's own advice, so that each review is scored
    exactly once by the process that writes the results."""
    return build_trainer(
        cfg,
        strategy="auto",
        devices=1,
        num_nodes=1,
        logger=logger,
        callbacks=[],
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def instantiate_plainly(node: DictConfig, **kwargs: Any) -> Any:
    """``instantiate``, but a constructor's own error (the data module's "data.max_len must be ...") comes out as
    itself rather than inside Hydra's InstantiationException, whose first line only names the class."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, Exception):
            raise error.__cause__ from None
        raise


def build_module(cfg: DictConfig, **data_inputs: Any) -> L.LightningModule:
    """The task's LightningModule from plain values only, so its checkpoint loads with ``weights_only=True``: the
    model node once (cell, sizes, impl), the task's module settings, what the data decided, and the optimizer and
    schedule configs, which stay data until ``configure_optimizers``."""
    arguments = plain(cfg.module)
    module_class = get_class(arguments.pop("_target_"))
    try:
        return module_class(
            **plain(cfg.model),
            **arguments,
            **data_inputs,
            optim=plain(cfg.optim),
            scheduler=schedule_of(cfg).settings(),
        )
    except ValueError as error:  # a bad model.cell or model.impl, found by the layer; the message says what to do
        raise ConfigError(str(error)) from None


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


def callbacks(cfg: DictConfig, output_dir: Path, stop: StopRequest) -> list[L.Callback]:
    found: list[L.Callback] = [
        TerminalProgressBar() if is_terminal() else EpochSummary(),
        SeedEachBatch(cfg.seed),
        FiniteGuard(monitor=cfg.monitor.metric),
        GracefulStop(stop, output_dir / "checkpoints" / "last.ckpt"),
        SameModelEverywhere(),
    ]
    if cfg.trainer.get("enable_model_summary", True):
        found.append(LayerSummary())
    if schedule_of(cfg):
        # One train/lr point per epoch (the rate the epoch trains with), beside the losses in TensorBoard.
        found.append(EpochLearningRate(logging_interval="epoch"))
    if cfg.early_stopping_patience:
        found.append(
            SaidEarlyStopping(monitor=cfg.monitor.metric, mode=cfg.monitor.mode, patience=cfg.early_stopping_patience)
        )
    return found


def is_terminal() -> bool:
    return sys.stdout.isatty()
