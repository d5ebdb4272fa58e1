"""From a :class:`~rnn_lightning.training.preflight.Plan` to the objects of one run: Trainer, data module, module.

The plan's settings are already checked; what is left can only be found by building: the devices Lightning parses,
the data files (the data module's own checks), the cell a user named. Constructors raise in their own words; the one
``try`` in :func:`build` says which settings those words are about.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import CSVLogger

from rnn_lightning.data.glove import GloveFileMissingError
from rnn_lightning.errors import ConfigError, UserError
from rnn_lightning.models.checkpoint import Checkpoint
from rnn_lightning.models.optimization import is_lbfgs
from rnn_lightning.nn import CELLS
from rnn_lightning.nn.registry import cell_class
from rnn_lightning.nn.testing import check_interface
from rnn_lightning.training.callbacks.checkpoint_io import AtomicCheckpointIO
from rnn_lightning.training.distributed import check_processes
from rnn_lightning.training.naming import run_name, swept_keys
from rnn_lightning.training.preflight import Plan
from rnn_lightning.training.resume import check_resume_data
from rnn_lightning.training.tensorboard import TaskTensorBoardLogger

log = logging.getLogger("rnn_lightning")
SETTING = re.compile(r"\b(model|module|data|optim|scheduler|trainer)\.\w+")  # a message that names a setting


@dataclass
class Run:
    trainer: L.Trainer
    module: L.LightningModule
    datamodule: L.LightningDataModule
    best: ModelCheckpoint  # the best checkpoint by the monitored metric
    logger: TaskTensorBoardLogger
    resume: Checkpoint | None


def build(plan: Plan) -> Run:
    if plan.resume is not None and plan.resume.path.resolve().parent != (plan.output_dir / "checkpoints").resolve():
        # Lightning then reloads only the best checkpoint's path, not its score: "best" starts over here.
        log.warning("resuming into a new folder; to continue that run exactly, add hydra.run.dir=%s", run_dir(plan))
    if plan.threads is not None:
        torch.set_num_threads(plan.threads)
    L.seed_everything(plan.seed, workers=True)
    if plan.trainer.get("deterministic"):
        # cuBLAS picks its reduction order by workspace unless told; this fixes it (the setting CUDA's docs give for
        # reproducible results), and torch.use_deterministic_algorithms refuses CUDA matmuls without it.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    trainer, logger, best = trainer_of(plan)
    check_triton(plan, trainer)
    datamodule, module = model_of(plan, trainer)
    note_float64_on_gpu(trainer)
    return Run(trainer, module, datamodule, best, logger, plan.resume)


def trainer_of(plan: Plan) -> tuple[L.Trainer, TaskTensorBoardLogger, ModelCheckpoint]:
    """The Trainer with the config's callbacks and our loggers, its devices checked, and its best checkpoint."""
    callbacks = [made for made in (instantiate(node) for node in plan.callbacks.values()) if made is not None]
    logger = TaskTensorBoardLogger(plan.output_dir, task=plan.task, version=run_name(), swept=swept_keys())
    trainer = build_trainer(
        plan,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],  # SIGKILL mid-save must leave the previous last.ckpt, not half a new one
        # metrics.csv beside TensorBoard: every logged value per epoch, for scripts (a new version per resume).
        logger=[logger, CSVLogger(plan.output_dir, name="csv")],
        enable_model_summary=False,  # callbacks.layer_summary instead, which lists the layers alone
        enable_progress_bar=any(isinstance(c, ProgressBar) for c in callbacks),  # else callbacks.console's lines
    )
    check_processes(trainer, plan.trainer, lbfgs=is_lbfgs(plan.optim))
    if str(trainer.precision) != str(plan.trainer.get("precision")):
        log.info(
            "trainer.precision=%s runs as %s on this %s (float16 autocast needs a GPU); metrics.json records %s",
            plan.trainer.get("precision"), trainer.precision, trainer.strategy.root_device.type, trainer.precision,
        )  # fmt: skip
    best = next((c for c in trainer.checkpoint_callbacks if c.monitor == plan.monitor.metric), None)
    if best is None:
        raise ConfigError(
            f"no checkpoint callback watches {plan.monitor.metric}: the run needs one to pick the model its test "
            "scores. Keep callbacks.best_checkpoint (conf/callbacks/default.yaml), or add a ModelCheckpoint with "
            f"monitor={plan.monitor.metric}."
        )
    return trainer, logger, best


def model_of(plan: Plan, trainer: L.Trainer) -> tuple[L.LightningDataModule, L.LightningModule]:
    """The data module, set up (the module is sized by its vocabulary), and the module in the Trainer's dtype."""
    with settings_of("data"):
        datamodule = instantiate(plan.data)
        # Every DDP process does this itself; SameModelEverywhere checks that they agree.
        datamodule.prepare_data()
        datamodule.setup("fit")
    data_inputs = datamodule.model_inputs()
    check_resume_data(plan.resume, data_inputs)
    check_user_cell(plan.model)
    with settings_of("module"):
        try:
            module = build_module(plan, data_inputs)
        except GloveFileMissingError as missing:  # the data layer's words name its own argument, source=
            said = re.sub(r" \(source=[^)]*\)", "", str(missing))
            raise ConfigError(f"module.embeddings={plan.module.get('embeddings')}: {said}") from missing
    # The precision's dtype now, as Lightning would give it at setup: a resumed checkpoint is loaded before that,
    # and 64-bit weights copied into a float32 module would be rounded (the resumed run would drift).
    return datamodule, trainer.precision_plugin.convert_module(module)


@contextlib.contextmanager
def settings_of(node: str) -> Iterator[None]:
    """A constructor's ValueError or TypeError, said in its own words, as a ConfigError about ``node``'s settings
    (named unless the words name a setting already). User errors (a missing file) pass as they are."""
    try:
        try:
            yield
        except InstantiationException as wrapped:  # Hydra's wrapper, whose message only names the class
            raise (wrapped.__cause__ if isinstance(wrapped.__cause__, Exception) else wrapped) from None
    except UserError:
        raise
    except (ValueError, TypeError) as error:
        said = str(error).strip() or type(error).__name__
        raise ConfigError(said if SETTING.search(said) else f"{node}: {said}") from error


def check_user_cell(model: dict[str, Any]) -> None:
    """A cell of the user's own is tried once, on a tiny batch, before anything trains: a wrong constructor or state
    is said in the cell's terms, not as a traceback from deep inside the layer."""
    if model["cell"] in CELLS:
        return
    with settings_of("model.cell"):
        cell_class(model["cell"])  # an unknown name or a module that does not import: the registry's own words
    try:
        check_interface(model["cell"], model["hidden_size"])
    except AssertionError as error:
        raise ConfigError(
            f"model.cell={model['cell']} cannot run as a recurrent cell: {error}. "
            f"rnn_lightning.check_cell({model['cell']!r}) runs every check of our own cells on it."
        ) from None


def build_module(plan: Plan, data_inputs: dict[str, Any]) -> L.LightningModule:
    """The task's LightningModule from plain values only, so its checkpoint loads with ``weights_only=True``: the
    model settings as one dict, the task's module settings, what the data decided, and the optimizer and schedule
    configs, which stay data until ``configure_optimizers``."""
    arguments = dict(plan.module)
    module_class = get_class(arguments.pop("_target_"))
    return module_class(
        model=plan.model, **arguments, **data_inputs, optim=plan.optim, scheduler=plan.schedule.settings()
    )


def build_trainer(plan: Plan, **arguments: Any) -> L.Trainer:
    """The Trainer of ``plan.trainer``; the one place a Trainer is made (fit, and a one-process test under DDP)."""
    settings = {key: value for key, value in plan.trainer.items() if key not in arguments}
    try:
        return instantiate(settings, **arguments)
    except Exception as error:
        cause = error.__cause__ if error.__cause__ is not None else error
        if not isinstance(cause, MisconfigurationException | ValueError):
            raise
        said = str(cause).strip().splitlines()[0] if str(cause).strip() else "no reason given"
        raise ConfigError(
            f"trainer.accelerator={plan.trainer.get('accelerator')} trainer.devices={plan.trainer.get('devices')} "
            f"cannot run here; Lightning says: {said} Use trainer=cpu to train on this machine's CPU, or "
            "trainer.accelerator=auto to take whatever it has (python train.py --cfg job prints the settings)."
        ) from None


def one_process_tester(plan: Plan, logger: TaskTensorBoardLogger, callbacks: list[L.Callback]) -> L.Trainer:
    """A one-device Trainer for the test set after DDP: Lightning's own advice, so that each review is scored
    exactly once by the process that writes the results."""
    return build_trainer(
        plan,
        strategy="auto",
        devices=1,
        num_nodes=1,
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def check_triton(plan: Plan, trainer: L.Trainer) -> None:
    """model.impl=triton where it cannot run (no CUDA, or no Triton) fails now, not at the first batch."""
    if plan.model["impl"] != "triton":
        return
    device = trainer.strategy.root_device
    if device.type != "cuda" and not os.environ.get("TRITON_INTERPRET"):
        raise ConfigError(
            f"model.impl=triton runs on a CUDA GPU, and this run trains on {device.type}: use model.impl=auto (the "
            "fused path on a CPU) or fused; on a machine with a GPU, add trainer=gpu."
        )
    from rnn_lightning.nn.triton import check_runnable

    try:
        check_runnable(device)
    except (ImportError, RuntimeError) as error:
        raise ConfigError(str(error)) from None


def note_float64_on_gpu(trainer: L.Trainer) -> None:
    if str(trainer.precision).startswith("64") and trainer.strategy.root_device.type == "cuda":
        log.info(
            "training in float64 on %s: fast on data-centre GPUs (A100, H100, H200), 32-64x slower than float32 on "
            "consumer ones; trainer.precision=32-true trains in float32",
            torch.cuda.get_device_name(trainer.strategy.root_device),
        )


def run_dir(plan: Plan) -> Any:
    return plan.resume.path.resolve().parent.parent if plan.resume is not None else plan.output_dir
