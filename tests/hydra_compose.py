"""Compose the real config with Hydra's compose API, the way train.py would, for tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import rnn_lightning.training.schema  # noqa: F401  registers the schema conf/config.yaml starts from
from rnn_lightning.paths import CONF_DIR

ROOT = Path(__file__).resolve().parents[1]  # the checkout, with train.py

FAST_CPU = ["trainer=cpu", "trainer.enable_model_summary=false"]
TINY_SINE = ["task=sine", "data.length=60", "data.context=30", "model.hidden_size=8"]
QUICK_LBFGS = "optim.max_iter=4"  # only where the task default (LBFGS) is in use


def compose_config(overrides: list[str], output_dir: Path, device: str = "cpu") -> DictConfig:
    """The composed config with Hydra's own node set, as inside a real job; outputs under output_dir. ``device="gpu"``
    trains on a CUDA GPU (tests/test_cuda.py)."""
    GlobalHydra.instance().clear()
    first = FAST_CPU if device == "cpu" else [f"trainer={device}", *FAST_CPU[1:]]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*first, *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


# Objects a test hands to a run as callbacks, through the config as a user's own callback would go in.
PROVIDED: dict[str, object] = {}


def provided(name: str) -> object:
    return PROVIDED[name]


def with_callbacks(**callbacks: object) -> list[str]:
    """Overrides that add these callback objects to a run (``+callbacks.NAME``, the way a user adds one)."""
    PROVIDED.update(callbacks)
    return [line for name in callbacks for line in (f"+callbacks.{name}._target_=hydra_compose.provided",
                                                   f"+callbacks.{name}.name={name}")]  # fmt: skip


def start_sweep(overrides: list[str], folder: Path, *extra: str, own_group: bool = False) -> subprocess.Popen:
    """A real ``python train.py -m`` sweep into ``folder``, started beside it; ``own_group``: in a process group of its
    own, as a terminal starts a command (Ctrl-C then goes to the whole group)."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), "-m", *overrides, f"hydra.sweep.dir={folder}", *extra],
        cwd=folder.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=own_group,
    )
