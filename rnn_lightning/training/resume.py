"""The checks that a checkpoint can continue this run: same task, model shape, optimizer and its settings, schedule
and vocabulary (the file itself is read by ``models/checkpoint.py``).

Lightning restores the optimizer's and the scheduler's whole state from the checkpoint, their settings included
(``lr``, ``momentum``, ``T_max``, ...): a run resumed with other values would go on with the saved ones without a word,
while its record showed the new ones. So any difference is refused, with the checkpoint's values to resume with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rnn_lightning.errors import ConfigError
from rnn_lightning.models.checkpoint import Checkpoint, read_checkpoint
from rnn_lightning.models.optimization import Schedule
from rnn_lightning.training.options import option_name

if TYPE_CHECKING:
    from rnn_lightning.training.preflight import Plan

# Hyperparameters that fix the shapes of a module's weights: a checkpoint loads only into the same values.
MODEL_SHAPE_KEYS = ("cell", "hidden_size", "num_layers", "bidirectional")
MODULE_SHAPE_KEYS = ("embedding_dim", "head_hidden", "readout")


def read_resume_checkpoint(plan: Plan) -> Checkpoint | None:
    """The checkpoint ``ckpt_path`` names, checked against this run's plan; None if unset."""
    if not plan.ckpt_path:
        return None
    checkpoint = read_checkpoint(plan.ckpt_path)
    if checkpoint.task != plan.task:
        raise ConfigError(
            f"ckpt_path={plan.ckpt_path} is a {checkpoint.task} checkpoint, but this run has task={plan.task}. "
            f"Resume it with task={checkpoint.task} (and the model settings it was trained with), or leave ckpt_path "
            f"unset to train {plan.task} from scratch."
        )
    _check_same_shapes(plan, checkpoint.hparams)
    _check_same_optimizer(plan, checkpoint.hparams.get("optim") or {})
    _check_same_schedule(plan, Schedule.of(checkpoint.hparams.get("scheduler")).settings())
    return checkpoint


def _check_same_shapes(plan: Plan, hparams: dict[str, Any]) -> None:
    saved = {**{f"module.{k}": hparams.get(k) for k in MODULE_SHAPE_KEYS if k in hparams}}
    saved |= {f"model.{k}": v for k, v in (hparams.get("model") or {}).items() if k in MODEL_SHAPE_KEYS}
    now = {f"module.{k}": plan.module.get(k) for k in MODULE_SHAPE_KEYS} | {
        f"model.{k}": plan.model.get(k) for k in MODEL_SHAPE_KEYS
    }
    differ = [key for key in saved if key in now and saved[key] != now[key]]
    if differ:
        raise ConfigError(
            f"ckpt_path={plan.ckpt_path} holds a model of another shape than this run's "
            f"({', '.join(f'{key}={now[key]}' for key in differ)}); its weights cannot load. Resume with the "
            f"checkpoint's settings: {' '.join(f'{key}={saved[key]}' for key in differ)}"
        )


def _check_same_optimizer(plan: Plan, saved: dict[str, Any]) -> None:
    trained_with, now = str(saved.get("_target_", "")), str(plan.optim.get("_target_"))
    if trained_with and trained_with != now:
        raise ConfigError(
            f"ckpt_path={plan.ckpt_path} was trained with {trained_with}, this run uses {now} "
            f"(optim={option_name('optim', now)}); the saved optimizer state only loads into the same optimizer. "
            f"Resume with optim={option_name('optim', trained_with)}."
        )
    _refuse_other_settings(plan, "optim", saved, plan.optim, "optimizer")


def _check_same_schedule(plan: Plan, saved: dict[str, Any]) -> None:
    now = plan.schedule.settings()
    was_option, now_option = (
        option_name("scheduler", saved.get("_target_")),
        option_name("scheduler", now.get("_target_")),
    )
    if saved.get("_target_") != now.get("_target_"):
        raise ConfigError(
            f"ckpt_path={plan.ckpt_path} was trained with scheduler={was_option}, this run uses "
            f"scheduler={now_option}; the checkpoint's scheduler state only continues the same schedule. Resume with "
            f"scheduler={was_option}."
        )
    _refuse_other_settings(plan, "scheduler", saved, now, "scheduler")


def _refuse_other_settings(plan: Plan, node: str, saved: dict[str, Any], now: dict[str, Any], what: str) -> None:
    keys = [key for key in sorted(saved.keys() | now.keys()) if not key.startswith("_")]
    differ = [key for key in keys if saved.get(key) != now.get(key)]
    if not differ or not saved:
        return
    option = option_name(node, now.get("_target_"))
    raise ConfigError(
        f"ckpt_path={plan.ckpt_path} was trained with other {node}={option} settings than this run's "
        f"({', '.join(f'{node}.{key}={now.get(key)}' for key in differ)}); the checkpoint's {what} state would "
        f"replace them without a word. Resume with the checkpoint's settings: "
        f"{' '.join(f'{node}.{key}={saved.get(key)}' for key in differ)}"
    )


def check_resume_data(resume: Checkpoint | None, data_inputs: dict[str, Any]) -> None:
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
