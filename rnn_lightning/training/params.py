"""The parameters of a run: what tells jobs apart in metrics.json, the sweep report and TensorBoard's hparams view.

One flat ``{key: value}`` dict, keyed the way a user overrides them: a few settings every run has (``SUMMARY``), then
every key the job's overrides name (``module.readout``, ``experiment``, ...), so whatever a sweep varies is there.
Config groups give their option name (``optim: sgdm``), other keys their resolved value.
"""

from __future__ import annotations

from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from rnn_lightning.training.options import option_name

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
# Where a run reads or writes, not what it is: never a parameter.
NOT_PARAMETERS = ("ckpt_path", "paths", "data.data_dir", "hydra")


def job_overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def override_keys(overrides: list[str]) -> list[str]:
    """The keys or groups the overrides set (``model.hidden_size``, ``optim``), in their order."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    keys = [override.key_or_group for override in parsed]
    return [key for key in keys if not any(key == skip or key.startswith(skip + ".") for skip in NOT_PARAMETERS)]


def run_params(cfg: DictConfig) -> dict[str, Any]:
    choices = dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}
    params: dict[str, Any] = {}
    for key in (*SUMMARY, *override_keys(job_overrides())):
        if key not in params:
            params[key] = _value(cfg, key, choices)
    return params


def _value(cfg: DictConfig, key: str, choices: dict[str, Any]) -> Any:
    if key == "task":
        return cfg.task_name
    if key in ("optim", "scheduler") and key not in choices:  # a config composed without Hydra's choices
        return option_name(key, (OmegaConf.to_container(cfg.get(key)) or {}).get("_target_"))
    if key in choices:
        return choices[key]
    value = OmegaConf.select(cfg, key, default=None)
    if OmegaConf.is_config(value):
        return str(OmegaConf.to_container(value, resolve=True))
    return value
