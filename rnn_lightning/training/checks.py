"""Settings a user can get wrong, checked before anything is read, built or trained.

Every message names the setting and its value and says what to do. :func:`check_config` needs the config only;
:func:`check_output_dir` and :func:`read_resume_checkpoint` look at files; :func:`check_resume_data` needs the data
module. Settings that belong to a data module (``data.max_len``, the data files) are checked by the data module
itself, which also runs outside ``train()``; ``train()`` builds it before the Trainer, so those fail before training
too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from rnn_lightning.training.record import first_line

# The config option that selects each optimizer, to tell the user what to type.
OPTIM_OPTIONS = {"torch.optim.Adam": "adam", "torch.optim.SGD": "sgdm", "torch.optim.LBFGS": "lbfgs"}
# The same for the learning-rate schedulers (scheduler=none has no _target_).
SCHEDULER_OPTIONS = {
    "torch.optim.lr_scheduler.CosineAnnealingLR": "cosine",
    "torch.optim.lr_scheduler.ReduceLROnPlateau": "plateau",
    "torch.optim.lr_scheduler.StepLR": "step",
}
# The metrics a plateau schedule can watch, per task, and which way each improves: those logged before the module
# steps the schedule in its on_train_epoch_end.
PLATEAU_METRICS = {
    "sentiment": {"train/loss": "min", "train/acc": "max", "val/loss": "min", "val/acc": "max", "val/acc_best": "max"},
    "sine": {"train/loss": "min", "val/forecast_mse": "min", "val/forecast_mse_best": "min"},
}
# Hyperparameters that fix the shapes of a module's weights: a checkpoint loads only into the same values.
SHAPE_KEYS = ("cell", "hidden_size", "num_layers", "bidirectional", "embedding_dim", "head_hidden", "readout")


class ConfigError(ValueError):
    """A setting the user can fix; raised before training starts."""


def check_config(cfg: DictConfig) -> None:
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
    _check_devices(cfg)
    _check_scheduler(cfg)


def _positive_int(value: Any, key: str, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}={value} must be a positive whole number of {meaning}; e.g. {key}=1 or more.")


def is_lbfgs(cfg: DictConfig) -> bool:
    return str(cfg.optim.get("_target_", "")).endswith("LBFGS")


def _check_precision(cfg: DictConfig) -> None:
    precision = str(cfg.trainer.precision)
    if is_lbfgs(cfg) and precision.startswith(("16", "bf16")):
        raise ConfigError(
            f"optim=lbfgs cannot train with trainer.precision={precision}: its curvature estimates and line search "
            "compare losses that 16-bit floats round away (and Lightning's 16-mixed gradient scaler refuses LBFGS). "
            "Use trainer.precision=32-true or 64-true (the sine default), or a first-order optimizer (optim=adam)."
        )


def scheduler_settings(cfg: DictConfig) -> dict[str, Any]:
    """The scheduler config as plain data; {} for scheduler=none (and for a config composed without the group)."""
    node = cfg.get("scheduler")
    return dict(OmegaConf.to_container(node, resolve=True)) if node else {}


def scheduler_option(settings: dict[str, Any]) -> str:
    """What to type for these scheduler settings: scheduler=cosine, scheduler=none, ..."""
    target = settings.get("_target_")
    if not target:
        return "none"
    return SCHEDULER_OPTIONS.get(str(target), f"<the option whose _target_ is {target}>")


def _check_scheduler(cfg: DictConfig) -> None:
    settings = scheduler_settings(cfg)
    if not settings:
        return
    target = str(settings.get("_target_"))
    try:
        scheduler_class = get_class(target)
    except Exception:
        scheduler_class = None
    if not (isinstance(scheduler_class, type) and issubclass(scheduler_class, LRScheduler)):
        raise ConfigError(
            f"scheduler._target_={target} is not a learning-rate scheduler class. Choose scheduler=none, cosine, "
            "plateau or step, or name a class of torch.optim.lr_scheduler "
            "(e.g. torch.optim.lr_scheduler.ExponentialLR)."
        )
    for key in ("step_size", "T_max"):
        if key in settings:
            _positive_int(settings[key], f"scheduler.{key}", "epochs")
    if issubclass(scheduler_class, ReduceLROnPlateau):
        _check_plateau(cfg, settings)
    # Build it once over a throwaway optimizer: the scheduler's own checks (factor < 1, a misspelt +scheduler.key)
    # then fail here, not after the Trainer has started.
    arguments = {k: v for k, v in settings.items() if k not in ("_target_", "_partial_", "monitor")}
    try:
        scheduler_class(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), **arguments)
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"scheduler={scheduler_option(settings)} cannot be built from its settings ({first_line(error)}). Fix "
            "that scheduler.* value (python train.py --cfg job prints them all)."
        ) from None


def _check_plateau(cfg: DictConfig, settings: dict[str, Any]) -> None:
    monitor, mode = settings.get("monitor"), settings.get("mode", "min")
    logged = PLATEAU_METRICS.get(cfg.task_name, {})
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


def available_devices(accelerator: str) -> tuple[int, str]:
    """How many devices of this kind this machine has, and what they are called in a message.

    A CPU "device" under DDP is one process; more processes than cores only time-share them, so cores are the honest
    count (those this process may run on, which a cluster job may restrict).
    """
    from lightning.fabric.accelerators.cuda import num_cuda_devices  # does not initialise CUDA (fork-safe)

    cuda = num_cuda_devices()
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and cuda > 0):
        return cuda, "CUDA GPU(s) (torch.cuda.device_count())"
    if accelerator == "mps" or (accelerator == "auto" and torch.backends.mps.is_available()):
        return (1 if torch.backends.mps.is_available() else 0), "MPS device(s)"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores, "CPU cores"


def requested_devices(devices: Any, available: int, auto: int) -> tuple[int, int | None]:
    """(how many devices ``trainer.devices`` asks for, the highest device index it names or None).

    ``auto`` is what Lightning's ``devices=auto`` means for the accelerator: all GPUs, one CPU process.
    """
    if isinstance(devices, str):
        text = devices.strip()
        if text == "auto":
            return auto, None
        devices = [int(part) for part in text.split(",") if part.strip()] if "," in text else int(text)
    if isinstance(devices, list | tuple) or OmegaConf.is_list(devices):
        ids = [int(d) for d in devices]
        return len(ids), max(ids, default=None)
    count = int(devices)
    return (available if count == -1 else count), None


def _check_devices(cfg: DictConfig) -> None:
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator not in ("cpu", "gpu", "cuda", "mps", "auto"):
        return  # TPUs and the like: Lightning's own checks apply
    available, what = available_devices(accelerator)
    devices = cfg.trainer.get("devices", 1)
    try:
        count, highest = requested_devices(devices, available, auto=available if "GPU" in what else 1)
    except (TypeError, ValueError):
        raise ConfigError(
            f"trainer.devices={devices} is not a device count (2), a list of device ids ([0,1] or '0,1'), -1 or auto."
        ) from None
    if available == 0:
        raise ConfigError(
            f"trainer.accelerator={accelerator} but this machine has no {what}. Use trainer=cpu, or "
            "trainer.accelerator=auto to take whatever is there."
        )
    if count < 1 or count > available or (highest is not None and highest >= available):
        raise ConfigError(
            f"trainer.devices={devices} asks for more than this machine has: {available} {what}. Set "
            f"trainer.devices to at most {available} (1 trains without data parallelism); under SLURM or torchrun "
            "it is the number per node."
        )
    world = count * int(cfg.trainer.get("num_nodes", 1) or 1)
    if world > 1 and is_lbfgs(cfg):
        raise ConfigError(
            f"optim=lbfgs cannot run on {world} processes (trainer.devices={devices}, "
            f"trainer.num_nodes={cfg.trainer.get('num_nodes', 1)}): each process would take its own line-search "
            "decisions from its own loss, and the processes would drift apart. Train it in one process "
            "(trainer.devices=1 trainer.num_nodes=1, trainer=cpu or gpu), or use optim=adam."
        )
    _check_ddp_in_sweep(cfg, world)


def _check_ddp_in_sweep(cfg: DictConfig, world: int) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    strategy = str(cfg.trainer.get("strategy", "auto"))
    if world < 2 or not strategy.startswith("ddp") or strategy.startswith(("ddp_spawn", "ddp_fork", "ddp_notebook")):
        return
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    if SLURMEnvironment.detect() or TorchElasticEnvironment.detect():
        return  # the cluster started one process per device; Lightning starts none
    raise ConfigError(
        f"trainer.strategy={strategy} with {world} processes inside a -m sweep: Lightning starts the extra processes "
        "by running `python train.py` again with the same arguments, which would start the whole sweep again in "
        "each. Use trainer=ddp_spawn in sweeps on one machine, or hydra/launcher=slurm (one task per device)."
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


@dataclass
class ResumeCheckpoint:
    path: Path
    task: str
    hparams: dict[str, Any]
    vocabulary: list[str] | None


def checkpoint_task(hparams: dict[str, Any]) -> str | None:
    """Which task wrote a checkpoint, from its module's hyperparameters."""
    if "vocab_size" in hparams:
        return "sentiment"
    if "context" in hparams:
        return "sine"
    return None


def read_resume_checkpoint(cfg: DictConfig) -> ResumeCheckpoint | None:
    """The checkpoint ``ckpt_path`` names, checked against this run's task, model and optimizer; None if unset."""
    if not cfg.ckpt_path:
        return None
    path = Path(str(cfg.ckpt_path)).expanduser()
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} does not exist{where}. Give the path of a checkpoint file, such as "
            "outputs/<date>/<time>_<id>/checkpoints/last.ckpt, or leave ckpt_path unset to start a new run."
        )
    try:
        # weights_only, as Lightning loads it: a checkpoint is data, and loading must not run code.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} cannot be read as a checkpoint ({first_line(error)}). Give a .ckpt file "
            "written by train.py."
        ) from None
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    task = checkpoint_task(hparams) if isinstance(hparams, dict) else None
    if task is None or "state_dict" not in checkpoint:
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} is not a checkpoint written by train.py (it has no task module "
            "hyperparameters). Give a .ckpt file from an outputs/.../checkpoints/ folder."
        )
    if task != cfg.task_name:
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} is a {task} checkpoint, but this run has task={cfg.task_name}. Resume it with "
            f"task={task} (and the model settings it was trained with), or leave ckpt_path unset to train "
            f"{cfg.task_name} from scratch."
        )
    _check_same_shapes(cfg, hparams)
    _check_same_optimizer(cfg, hparams)
    _check_same_scheduler(cfg, hparams)
    return ResumeCheckpoint(path, task, hparams, checkpoint.get("vocabulary"))


def _check_same_shapes(cfg: DictConfig, hparams: dict[str, Any]) -> None:
    module = OmegaConf.to_container(cfg.module, resolve=True)
    differ = [key for key in SHAPE_KEYS if key in hparams and key in module and hparams[key] != module[key]]
    if differ:
        names = {key: (f"model.{key}" if key in cfg.model else f"module.{key}") for key in differ}
        was = " ".join(f"{names[key]}={hparams[key]}" for key in differ)
        now = ", ".join(f"{names[key]}={module[key]}" for key in differ)
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} holds a model of another shape than this run's ({now}); its weights cannot "
            f"load. Resume with the checkpoint's settings: {was}"
        )


def _check_same_optimizer(cfg: DictConfig, hparams: dict[str, Any]) -> None:
    trained_with = str((hparams.get("optim") or {}).get("_target_", ""))
    now = str(cfg.optim._target_)
    if trained_with and trained_with != now:
        option = OPTIM_OPTIONS.get(trained_with, f"<the option whose _target_ is {trained_with}>")
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} was trained with {trained_with}, this run uses {now} "
            f"(optim={OPTIM_OPTIONS.get(now, now)}); the saved optimizer state only loads into the same optimizer. "
            f"Resume with optim={option}."
        )


def _check_same_scheduler(cfg: DictConfig, hparams: dict[str, Any]) -> None:
    """Lightning restores the whole scheduler object from the checkpoint (its T_max, step_size, factor, ... as well
    as its progress), so a run resumed with other settings would silently go on with the saved ones."""
    saved = {k: v for k, v in (hparams.get("scheduler") or {}).items() if k != "_partial_"}  # {}: none, or older
    now = {k: v for k, v in scheduler_settings(cfg).items() if k != "_partial_"}
    was_option, now_option = scheduler_option(saved), scheduler_option(now)
    if saved.get("_target_") != now.get("_target_"):
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} was trained with scheduler={was_option}, this run uses scheduler={now_option}; "
            f"the checkpoint's scheduler state only continues the same schedule. Resume with scheduler={was_option}."
        )
    differ = [key for key in sorted(saved.keys() | now.keys()) if saved.get(key) != now.get(key)]
    if differ:
        was = " ".join(f"scheduler.{key}={saved.get(key)}" for key in differ)
        now_values = ", ".join(f"scheduler.{key}={now.get(key)}" for key in differ)
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} was trained with other scheduler={was_option} settings than this run's "
            f"({now_values}); the checkpoint's scheduler state would replace them without a word. Resume with the "
            f"checkpoint's settings: {was}"
        )


def check_resume_data(resume: ResumeCheckpoint | None, data_inputs: dict[str, Any]) -> None:
    """A sentiment checkpoint's vocabulary must be the one this run's data builds, word for word."""
    if resume is None or "vocab" not in data_inputs or resume.vocabulary is None:
        return
    if resume.vocabulary != data_inputs["vocab"]:
        was, now = len(resume.vocabulary), len(data_inputs["vocab"])
        raise ConfigError(
            f"ckpt_path={resume.path} was trained with a vocabulary of {was} words, but this run's data gives {now}"
            f"{' in another order' if was == now else ''}. The data settings differ (data.data_dir, data.min_freq, "
            "data.train_per_class, data.val_size, data.shuffle_before_split or seed); resume with those of the "
            "checkpoint's run (its .hydra/overrides.yaml lists them)."
        )
