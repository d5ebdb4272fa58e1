"""The checks that a checkpoint can continue this run: same task, model shape, optimizer, schedule and vocabulary
(the file itself is read by ``models/checkpoint.py``)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from rnn_lightning.models.checkpoint import Checkpoint, read_checkpoint
from rnn_lightning.models.optimization import Schedule
from rnn_lightning.training.checks import ConfigError, plain, schedule_of
from rnn_lightning.training.options import option_name

# Hyperparameters that fix the shapes of a module's weights: a checkpoint loads only into the same values.
SHAPE_KEYS = ("cell", "hidden_size", "num_layers", "bidirectional", "embedding_dim", "head_hidden", "readout")


def read_resume_checkpoint(cfg: DictConfig) -> Checkpoint | None:
    """The checkpoint ``ckpt_path`` names, checked against this run's task, model and optimizer; None if unset."""
    if not cfg.ckpt_path:
        return None
    checkpoint = read_checkpoint(str(cfg.ckpt_path))
    if checkpoint.task != cfg.task_name:
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} is a {checkpoint.task} checkpoint, but this run has task={cfg.task_name}. "
            f"Resume it with task={checkpoint.task} (and the model settings it was trained with), or leave ckpt_path "
            f"unset to train {cfg.task_name} from scratch."
        )
    _check_same_shapes(cfg, checkpoint.hparams)
    _check_same_optimizer(cfg, checkpoint.hparams)
    _check_same_schedule(cfg, checkpoint.hparams)
    return checkpoint


def _check_same_shapes(cfg: DictConfig, hparams: dict[str, Any]) -> None:
    model, module = plain(cfg.model), plain(cfg.module)
    settings = {**module, **model}
    differ = [key for key in SHAPE_KEYS if key in hparams and key in settings and hparams[key] != settings[key]]
    if differ:
        names = {key: (f"model.{key}" if key in model else f"module.{key}") for key in differ}
        was = " ".join(f"{names[key]}={hparams[key]}" for key in differ)
        now = ", ".join(f"{names[key]}={settings[key]}" for key in differ)
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} holds a model of another shape than this run's ({now}); its weights cannot "
            f"load. Resume with the checkpoint's settings: {was}"
        )


def _check_same_optimizer(cfg: DictConfig, hparams: dict[str, Any]) -> None:
    trained_with = str((hparams.get("optim") or {}).get("_target_", ""))
    now = str(cfg.optim._target_)
    if trained_with and trained_with != now:
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} was trained with {trained_with}, this run uses {now} "
            f"(optim={option_name('optim', now)}); the saved optimizer state only loads into the same optimizer. "
            f"Resume with optim={option_name('optim', trained_with)}."
        )


def _check_same_schedule(cfg: DictConfig, hparams: dict[str, Any]) -> None:
    """Lightning restores the whole scheduler object from the checkpoint (its T_max, step_size, factor, ... as well
    as its progress), so a run resumed with other settings would silently go on with the saved ones."""
    saved = schedule_of_hparams(hparams)
    now = schedule_of(cfg).settings()
    was_option, now_option = (
        option_name("scheduler", saved.get("_target_")),
        option_name("scheduler", now.get("_target_")),
    )
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


def schedule_of_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    return Schedule.of(hparams.get("scheduler")).settings()


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
