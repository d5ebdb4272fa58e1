"""Settings a user can get wrong, checked before anything is read, built or trained.

Every message names the setting and its value and says what to do. :func:`check_config` needs the config only (and
refuses a ``+key`` that nothing would read, ``typos.py``); :func:`check_trainer` the Trainer built from it (Lightning
has parsed the devices by then); :func:`check_output_dir` looks at files. Checkpoints to resume from are checked in
``resume.py``. Settings that belong to a data module (``data.max_len``, the data files) are checked by the data module
itself, which also runs outside ``train()``; ``train()`` builds it before fitting, so those fail before training too.
Such a mistake is a *user error* (:func:`is_user_error`): train.py shows it as its message alone.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from hydra.utils import get_class
from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from omegaconf import DictConfig, OmegaConf

from rnn_lightning.errors import ConfigError, first_line
from rnn_lightning.models.optimization import Schedule, is_lbfgs
from rnn_lightning.training.options import option_name
from rnn_lightning.training.params import job_overrides
from rnn_lightning.training.typos import check_added_keys


class UserError(CompactHydraException):
    """A user error as train.py hands it to Hydra, which prints such an error's message alone, without a traceback
    (``HYDRA_FULL_ERROR=1`` shows it, the error it was raised from included)."""


def is_user_error(error: BaseException) -> bool:
    """A mistake the user can fix, found before training: a :class:`ConfigError`, or a ``ValueError`` or
    ``FileNotFoundError`` that the data code raised while the run was being built (a data module's own checks, which
    also run outside ``train()``). Anything else is a crash of our code, which keeps its traceback."""
    if isinstance(error, ConfigError):
        return True
    if not isinstance(error, ValueError | FileNotFoundError):
        return False
    frames = [frame for frame, _ in traceback.walk_tb(error.__traceback__)]
    building = any(frame.f_code.co_name == "build_run" for frame in frames)
    return building and frames[-1].f_globals.get("__name__", "").startswith("rnn_lightning.data.")


def plain(node: Any) -> dict[str, Any]:
    """A config node as plain data; {} for an absent or empty one (scheduler=none)."""
    return dict(OmegaConf.to_container(node, resolve=True)) if node else {}


def schedule_of(cfg: DictConfig) -> Schedule:
    return Schedule.of(plain(cfg.get("scheduler")))


def check_config(cfg: DictConfig) -> None:
    groups = HydraConfig.get().runtime.choices.keys() if HydraConfig.initialized() else ()
    unread = check_added_keys(cfg, job_overrides(), groups)
    if unread:
        raise ConfigError("\n".join(unread))
    _positive_int(cfg.batch, "batch", "examples per batch (per process under DDP)")
    _positive_int(cfg.epochs, "epochs", "passes over the training data")
    _positive_int(cfg.model.hidden_size, "model.hidden_size", "units per recurrent layer")
    _positive_int(cfg.model.num_layers, "model.num_layers", "stacked recurrent layers")
    lr = cfg.optim.lr
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        raise ConfigError(f"optim.lr={lr} must be a positive learning rate; try optim.lr=0.001 (Adam) or 1.0 (LBFGS).")
    if cfg.task_name == "sine" and cfg.model.bidirectional:
        raise ConfigError(
            "model.bidirectional=true is impossible on the sine task: its forecast feeds each prediction back in and "
            "cannot read the future it predicts. Use model.bidirectional=false (the default)."
        )
    _check_precision(cfg)
    _check_scheduler(cfg)


def _positive_int(value: Any, key: str, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}={value} must be a positive whole number of {meaning}; e.g. {key}=1 or more.")


def _check_precision(cfg: DictConfig) -> None:
    precision = str(cfg.trainer.precision)
    if is_lbfgs(cfg.optim) and precision.startswith(("16", "bf16")):
        raise ConfigError(
            f"optim=lbfgs cannot train with trainer.precision={precision}: its curvature estimates and line search "
            "compare losses that 16-bit floats round away (and Lightning's 16-mixed gradient scaler refuses LBFGS). "
            "Use trainer.precision=32-true or 64-true (the sine default), or a first-order optimizer (optim=adam)."
        )


def _check_scheduler(cfg: DictConfig) -> None:
    schedule = schedule_of(cfg)
    if not schedule:
        return
    scheduler_class = schedule.scheduler_class()
    if scheduler_class is None:
        raise ConfigError(
            f"scheduler._target_={schedule.target} is not a learning-rate scheduler class. Choose scheduler=none, "
            "cosine, plateau or step, or name a class of torch.optim.lr_scheduler "
            "(e.g. torch.optim.lr_scheduler.ExponentialLR)."
        )
    for key in ("step_size", "T_max"):
        if key in schedule.arguments:
            _positive_int(schedule.arguments[key], f"scheduler.{key}", "epochs")
    if schedule.is_plateau:
        _check_plateau(cfg, schedule)
    # Build it once over a throwaway optimizer: the scheduler's own checks (factor < 1, a misspelt +scheduler.key)
    # then fail here, not after the Trainer has started.
    try:
        schedule.build(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0))
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"scheduler={option_name('scheduler', schedule.target)} cannot be built from its settings "
            f"({first_line(error)}). Fix that scheduler.* value (python train.py --cfg job prints them all)."
        ) from None


def _check_plateau(cfg: DictConfig, schedule: Schedule) -> None:
    monitor, mode = schedule.monitor, schedule.arguments.get("mode", "min")
    logged = get_class(cfg.module._target_).EPOCH_METRICS
    if monitor not in logged:
        raise ConfigError(
            f"scheduler=plateau watches scheduler.monitor={monitor}, which the {cfg.task_name} task does not log "
            f"in time. Set scheduler.monitor to one of {', '.join(logged)}; the default is the task's monitor.metric "
            f"({cfg.monitor.metric})."
        )
    if mode != logged[monitor]:
        direction = "down" if logged[monitor] == "min" else "up"
        raise ConfigError(
            f"scheduler.mode={mode} but {monitor} improves when it goes {direction}; "
            f"set scheduler.mode={logged[monitor]}, or the learning rate would be cut while the model improves."
        )
    every = cfg.trainer.get("check_val_every_n_epoch", 1)
    if monitor.startswith("val/") and (cfg.trainer.get("limit_val_batches", 1.0) == 0 or every not in (1, None)):
        raise ConfigError(
            f"scheduler=plateau watches {monitor}, which needs validation after every epoch, but this run validates "
            f"{'never' if every in (1, None) else f'every {every} epochs'}. Validate every epoch (leave "
            "trainer.limit_val_batches and trainer.check_val_every_n_epoch at their defaults), or set "
            "scheduler.monitor=train/loss scheduler.mode=min."
        )


def cpu_cores() -> int:
    """The cores this process may run on, which a cluster job may restrict."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def check_trainer(trainer: L.Trainer, cfg: DictConfig) -> None:
    """What Lightning accepts but cannot work: checked on the Trainer, whose devices Lightning has parsed."""
    devices = cfg.trainer.get("devices")
    if trainer.accelerator.__class__.__name__ == "CPUAccelerator" and trainer.num_devices > cpu_cores():
        # A CPU "device" under DDP is one process; more processes than cores only time-share them.
        raise ConfigError(
            f"trainer.devices={devices} asks for more than this machine has: {cpu_cores()} CPU cores. Set "
            f"trainer.devices to at most {cpu_cores()} (1 trains without data parallelism); under SLURM or torchrun "
            "it is the number per node."
        )
    if trainer.world_size > 1 and is_lbfgs(cfg.optim):
        raise ConfigError(
            f"optim=lbfgs cannot run on {trainer.world_size} processes (trainer.devices={devices}, "
            f"trainer.num_nodes={trainer.num_nodes}): each process would take its own line-search decisions from its "
            "own loss, and the processes would drift apart. Train it in one process (trainer.devices=1 "
            "trainer.num_nodes=1, trainer=cpu or gpu), or use optim=adam."
        )
    _check_ddp_in_sweep(trainer, cfg)


def _check_ddp_in_sweep(trainer: L.Trainer, cfg: DictConfig) -> None:
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if trainer.world_size < 2 or not strategy.startswith("ddp"):
        return
    if strategy.startswith(("ddp_spawn", "ddp_fork", "ddp_notebook")):
        return
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    if SLURMEnvironment.detect() or TorchElasticEnvironment.detect():
        return  # the cluster started one process per device; Lightning starts none
    raise ConfigError(
        f"trainer.strategy={strategy} with {trainer.world_size} processes inside a -m sweep: Lightning starts the "
        "extra processes by running `python train.py` again with the same arguments, which would start the whole "
        "sweep again in each. Use trainer=ddp_spawn in sweeps on one machine, or hydra/launcher=slurm (one task per "
        "device)."
    )


def check_output_dir(output_dir: Path, ckpt_path: str | None) -> None:
    """Refuse to train into a folder holding another run's checkpoints (training would overwrite them).

    Resuming the folder's own run (``ckpt_path`` inside its ``checkpoints/``) is what that folder is for.
    """
    folder = Path(output_dir) / "checkpoints"
    existing = sorted(p.name for p in folder.glob("*.ckpt"))
    if not existing:
        return
    if ckpt_path and Path(ckpt_path).expanduser().resolve().parent == folder.resolve():
        return
    resume = folder / ("last.ckpt" if "last.ckpt" in existing else existing[-1])
    raise ConfigError(
        f"{output_dir} already holds checkpoints of an earlier run ({', '.join(existing)}); training there would "
        f"overwrite them. Continue that run with ckpt_path={resume}, or start a new one in another folder "
        "(leave hydra.run.dir at its default, which is new for every launch)."
    )
