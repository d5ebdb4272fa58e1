"""The config's schema: the settings rnn-lightning reads itself, typed, so that Hydra checks them when it composes.

Registered in Hydra's ConfigStore as ``rnn_lightning_schema``; ``conf/config.yaml`` starts from it. Hydra then refuses a
key the schema lacks (``epoch=3``) and a value of the wrong type (``batch=abc``) before any job starts. The values
themselves live in the YAML files (``MISSING`` here); the ranges are checked in ``__post_init__``, which runs when the
preflight turns the composed config into objects (``OmegaConf.to_object``).

The nodes that are handed whole to a class (``data``, ``module``, ``optim``, ``scheduler``, ``trainer``,
``callbacks``) are ``Any`` here: their keys are that class's arguments, which the preflight checks against its
signature. Importing this module imports neither torch nor Lightning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from rnn_lightning.errors import ConfigError

SEED_RANGE = (0, 2**32 - 1)  # what numpy's and torch's generators accept (Lightning's seed_everything)


def whole_number(value: Any, key: str, meaning: str, least: int = 1) -> None:
    if value == MISSING:
        return  # the schema alone, before the YAML files give the values
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        which = "positive whole" if least == 1 else f"whole number >= {least} of"
        raise ConfigError(f"{key}={value} must be a {which} number of {meaning}; e.g. {key}={max(least, 1)} or more.")


@dataclass
class ModelSettings:
    """The recurrent network (``conf/model/``): which cell, how wide and deep, and how it runs."""

    cell: str = MISSING
    hidden_size: int = MISSING
    num_layers: int = MISSING
    bidirectional: bool = MISSING
    dropout: float = MISSING
    impl: str = MISSING
    fp32_precision: str | None = None

    def __post_init__(self) -> None:
        whole_number(self.hidden_size, "model.hidden_size", "units per recurrent layer")
        whole_number(self.num_layers, "model.num_layers", "stacked recurrent layers")
        if self.dropout != MISSING and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout={self.dropout} must be in [0, 1); e.g. model.dropout=0.3.")


@dataclass
class Monitor:
    """The metric that picks the best checkpoint, stops early and is returned to a sweeper."""

    metric: str = MISSING
    mode: str = MISSING

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max", MISSING):
            raise ConfigError(f"monitor.mode={self.mode} must be min or max (which way {self.metric} improves).")


@dataclass
class Paths:
    output_dir: str = MISSING


@dataclass
class Config:
    task_name: str = MISSING
    batch: int = MISSING
    epochs: int = MISSING
    seed: int = MISSING
    ckpt_path: str | None = None
    early_stopping_patience: int | None = None
    threads: int | None = None
    monitor: Monitor = field(default_factory=Monitor)
    model: ModelSettings = field(default_factory=ModelSettings)
    paths: Paths = field(default_factory=Paths)
    data: Any = MISSING
    module: Any = MISSING
    optim: Any = MISSING
    scheduler: Any = None
    trainer: Any = MISSING
    callbacks: Any = field(default_factory=dict)

    def __post_init__(self) -> None:
        whole_number(self.batch, "batch", "examples per batch (per process under DDP)")
        whole_number(self.epochs, "epochs", "passes over the training data")
        if self.seed != MISSING and (isinstance(self.seed, bool) or not SEED_RANGE[0] <= self.seed <= SEED_RANGE[1]):
            raise ConfigError(f"seed={self.seed} must be a whole number from {SEED_RANGE[0]} to {SEED_RANGE[1]}.")
        if self.early_stopping_patience is not None:
            whole_number(self.early_stopping_patience, "early_stopping_patience", "epochs without improvement")
        if self.threads is not None:
            whole_number(self.threads, "threads", "CPU threads")


ConfigStore.instance().store(name="rnn_lightning_schema", node=Config)
