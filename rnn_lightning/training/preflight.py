"""From the composed config to a frozen :class:`Plan` of plain values: the one reader of the config.

Hydra has already checked the keys and types the schema declares (``schema.py``). Here, once, before anything is
read, built or written: the ranges (the schema's ``__post_init__``), keys added with ``+`` that nothing would read,
the arguments of every class a node is handed to (its signature says what it takes), the combinations that cannot
work, the run folder, and a checkpoint to resume (``resume.py``). Each mistake is a :class:`ConfigError` that names
the setting and says what to do. Everything after this (``build.py``, ``run.py``) reads the plan, never the config.
"""

from __future__ import annotations

import dataclasses
import inspect
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from rnn_lightning.errors import ConfigError
from rnn_lightning.models.checkpoint import Checkpoint
from rnn_lightning.models.optimization import Schedule, is_lbfgs
from rnn_lightning.paths import user_path
from rnn_lightning.training import schema
from rnn_lightning.training.naming import job_overrides, override_keys
from rnn_lightning.training.options import option_name
from rnn_lightning.training.parallel import place_job
from rnn_lightning.training.resume import read_resume_checkpoint
from rnn_lightning.training.suggest import LISTS_THEM, closest

# Nodes handed whole to a class (their _target_), and the arguments the caller passes itself.
CONSTRUCTED = {
    "data": (),
    "module": ("model", "optim", "scheduler"),
    "optim": ("params",),
    "scheduler": ("optimizer",),
    "trainer": (),
}
# What a run's parameters always show (metrics.json, the sweep report, TensorBoard's HParams), before the overrides.
SUMMARY = (
    "task",
    "model.cell",
    "model.hidden_size",
    "model.num_layers",
    "model.bidirectional",
    "model.impl",
    "optim",
    "optim.lr",
    "scheduler",
    "batch",
    "epochs",
    "seed",
)


@dataclass(frozen=True)
class Plan:
    task: str
    output_dir: Path
    seed: int
    threads: int | None
    monitor: schema.Monitor
    model: dict[str, Any]  # the recurrent layer's arguments (model.*)
    module: dict[str, Any]  # the LightningModule's _target_ and settings (module.*)
    data: dict[str, Any]  # the data module's _target_ and settings, data_dir resolved
    optim: dict[str, Any]
    schedule: Schedule
    trainer: dict[str, Any]  # the Trainer's arguments
    callbacks: dict[str, dict[str, Any]]
    ckpt_path: str | None
    resume: Checkpoint | None
    params: dict[str, Any]


def make_plan(cfg: DictConfig) -> Plan:
    settings = _typed(cfg)
    plain = {name: _plain(cfg.get(name)) for name in ("data", "module", "optim", "scheduler", "trainer", "callbacks")}
    _check_combinations(settings, plain)
    schedule = _check_schedule(plain["scheduler"], plain["module"], settings.monitor, plain["trainer"])
    _check_arguments(plain)
    output_dir = Path(settings.paths.output_dir)
    check_output_dir(output_dir, settings.ckpt_path)
    data = dict(plain["data"])
    if "data_dir" in data:
        data["data_dir"] = str(user_path(data["data_dir"]))  # where the user ran, as Hydra's outputs/ are
    model = dataclasses.asdict(settings.model)
    callbacks = {name: node for name, node in plain["callbacks"].items() if node}
    # Jobs of a parallel sweep share the cores and GPUs: threads, device, console (parallel.py).
    placed = place_job(settings.threads, plain["trainer"], callbacks)
    plan = Plan(
        task=settings.task_name,
        output_dir=output_dir,
        seed=settings.seed,
        threads=placed.threads,
        monitor=settings.monitor,
        model=model,
        module=plain["module"],
        data=data,
        optim=plain["optim"],
        schedule=schedule,
        trainer=placed.trainer,
        callbacks=placed.callbacks,
        ckpt_path=settings.ckpt_path,
        resume=None,
        params=run_params(cfg),
    )
    return dataclasses.replace(plan, resume=read_resume_checkpoint(plan))


def output_dir_of(cfg: DictConfig) -> Path:
    """The run folder, where even a refused run's record goes."""
    return Path(cfg.paths.output_dir)


def _plain(node: Any) -> dict[str, Any]:
    """A config node as plain data; {} for an absent or empty one (scheduler=none)."""
    return dict(OmegaConf.to_container(node, resolve=True)) if node else {}


def _typed(cfg: DictConfig) -> schema.Config:
    """The schema's part of ``cfg`` as objects (their ``__post_init__`` checks the ranges), after refusing the keys
    ``+key`` added to a typed node: Hydra lets them in, and nothing reads them."""
    for prefix, node_type in (("", schema.Config), ("model.", schema.ModelSettings), ("monitor.", schema.Monitor)):
        node = cfg.get(prefix[:-1]) if prefix else cfg
        known = {field.name for field in dataclasses.fields(node_type)} | ({"hydra"} if not prefix else set())
        unread = [key for key in node if key not in known]
        if unread:
            key = prefix + unread[0]
            meant = closest(key, [prefix + name for name in known])
            hint = f"did you mean {meant}? ({LISTS_THEM})" if meant else f"{LISTS_THEM}."
            line = as_typed(key, node[unread[0]])
            raise ConfigError(f"{line}: nothing reads {key}, so the run would ignore it; {hint}")
    typed = OmegaConf.masked_copy(cfg, [field.name for field in dataclasses.fields(schema.Config)])
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema.Config), typed))


def _check_arguments(plain: dict[str, dict[str, Any]]) -> None:
    """Every key of a node handed to a class must be an argument of that class (its signature), or nothing reads it."""
    nodes = {name: (plain[name], CONSTRUCTED[name]) for name in CONSTRUCTED}
    nodes |= {f"callbacks.{name}": (node, ()) for name, node in plain["callbacks"].items() if node}
    for key, (node, passed) in nodes.items():
        target = node.get("_target_")
        if target is None:
            if node:  # scheduler=none, then +scheduler.gamma=0.5
                name, value = next(iter(node.items()))
                raise ConfigError(
                    f"{as_typed(f'{key}.{name}', value)}: {key} is none: there is no {key} to take {name} (choose "
                    f"one first, e.g. {key}=step), so the run would ignore it; {LISTS_THEM}."
                )
            continue
        accepted = _arguments(str(target), key)
        if accepted is None:
            continue
        for name, value in node.items():
            if key == "scheduler" and name == "monitor":
                continue  # the metric a plateau schedule watches: read by the module, not the class
            if not name.startswith("_") and (name not in accepted or name in passed):
                meant = closest(f"{key}.{name}", [f"{key}.{a}" for a in accepted if a not in passed])
                hint = f"did you mean {meant}={value}? ({LISTS_THEM})" if meant else f"remove it with ~{key}.{name}."
                line = as_typed(f"{key}.{name}", value)
                raise ConfigError(f"{line}: {target} takes no argument {name}, so the run would ignore it; {hint}")


def as_typed(key: str, value: Any) -> str:
    """``key=value`` as the user typed it (``+optim.momentum=0.9``), or as the config has it."""
    typed = [line for line in job_overrides() if line.lstrip("+~").split("=", 1)[0] == key]
    return typed[0] if typed else f"{key}={value}"


def _arguments(target: str, key: str) -> set[str] | None:
    """The keyword arguments ``target`` takes; None when it takes any (``**kwargs``)."""
    try:
        parameters = inspect.signature(get_object(target)).parameters.values()
    except Exception as error:
        raise ConfigError(f"{key}._target_={target} cannot be imported ({error}); {LISTS_THEM}.") from None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def _check_schedule(
    settings: dict[str, Any], module: dict[str, Any], monitor: schema.Monitor, trainer: dict[str, Any]
) -> Schedule:
    schedule = Schedule.of(settings)
    if not schedule:
        return schedule
    if schedule.scheduler_class() is None:
        raise ConfigError(
            f"scheduler._target_={schedule.target} is not a learning-rate scheduler class. Choose scheduler=none, "
            "cosine, plateau or step, or name a class of torch.optim.lr_scheduler "
            "(e.g. torch.optim.lr_scheduler.ExponentialLR)."
        )
    for key in ("step_size", "T_max"):
        if key in schedule.arguments:
            schema.whole_number(schedule.arguments[key], f"scheduler.{key}", "epochs")
    if schedule.is_plateau:
        _check_plateau(schedule, get_object(module["_target_"]), monitor, trainer)
    return schedule


def _check_plateau(schedule: Schedule, module_class: Any, monitor: schema.Monitor, trainer: dict[str, Any]) -> None:
    watched, mode, logged = schedule.monitor, schedule.arguments.get("mode", "min"), module_class.EPOCH_METRICS
    if watched not in logged:
        raise ConfigError(
            f"scheduler=plateau watches scheduler.monitor={watched}, which the {module_class.task} task does not log "
            f"in time. Set scheduler.monitor to one of {', '.join(logged)}; the default is the task's monitor.metric "
            f"({monitor.metric})."
        )
    if mode != logged[watched]:
        direction = "down" if logged[watched] == "min" else "up"
        raise ConfigError(
            f"scheduler.mode={mode} but {watched} improves when it goes {direction}; "
            f"set scheduler.mode={logged[watched]}, or the learning rate would be cut while the model improves."
        )
    every = trainer.get("check_val_every_n_epoch", 1)
    if watched.startswith("val/") and (trainer.get("limit_val_batches", 1.0) == 0 or every not in (1, None)):
        raise ConfigError(
            f"scheduler=plateau watches {watched}, which needs validation after every epoch, but this run validates "
            f"{'never' if every in (1, None) else f'every {every} epochs'}. Validate every epoch (leave "
            "trainer.limit_val_batches and trainer.check_val_every_n_epoch at their defaults), or set "
            "scheduler.monitor=train/loss scheduler.mode=min."
        )


def _check_combinations(settings: schema.Config, plain: dict[str, dict[str, Any]]) -> None:
    lr = plain["optim"].get("lr")
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        raise ConfigError(f"optim.lr={lr} must be a positive learning rate; try optim.lr=0.001 (Adam) or 1.0 (LBFGS).")
    if settings.task_name == "sine" and settings.model.bidirectional:
        raise ConfigError(
            "model.bidirectional=true is impossible on the sine task: its forecast feeds each prediction back in and "
            "cannot read the future it predicts. Use model.bidirectional=false (the default)."
        )
    precision = str(plain["trainer"].get("precision"))
    if is_lbfgs(plain["optim"]) and precision.startswith(("16", "bf16")):
        raise ConfigError(
            f"optim=lbfgs cannot train with trainer.precision={precision}: its curvature estimates and line search "
            "compare losses that 16-bit floats round away (and Lightning's 16-mixed gradient scaler refuses LBFGS). "
            "Use trainer.precision=32-true or 64-true (the sine default), or a first-order optimizer (optim=adam)."
        )


def check_output_dir(output_dir: Path, ckpt_path: str | None) -> None:
    """Refuse to train into a folder holding another run's checkpoints (training would overwrite them).

    Resuming the folder's own run (``ckpt_path`` inside its ``checkpoints/``) is what that folder is for.
    """
    folder = output_dir / "checkpoints"
    if folder.is_dir() and not _writable(folder):
        raise ConfigError(
            f"{folder} is not writable: the run could not save a single checkpoint. Make it writable "
            f"(chmod u+w {folder}) or train in another folder (leave hydra.run.dir at its default)."
        )
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


def _writable(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def run_params(cfg: DictConfig) -> dict[str, Any]:
    """What tells this run apart: ``SUMMARY``, then every key the job's overrides name (whatever a sweep varies).
    Config groups give their option name (``optim: sgdm``), other keys their resolved value."""
    choices = dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}
    params: dict[str, Any] = {}
    for key in (*SUMMARY, *override_keys(job_overrides())):
        if key in params:
            continue
        if key == "task":
            params[key] = cfg.task_name
        elif key in ("optim", "scheduler") and key not in choices:  # composed without Hydra's choices
            params[key] = option_name(key, _plain(cfg.get(key)).get("_target_"))
        elif key in choices:
            params[key] = choices[key]
        else:
            value = OmegaConf.select(cfg, key, default=None)
            params[key] = str(OmegaConf.to_container(value, resolve=True)) if OmegaConf.is_config(value) else value
    return params
