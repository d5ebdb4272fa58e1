"""Where things are: the config folder the package ships, and user paths resolved against where the user runs.

A checkout keeps ``conf/`` beside the package; an installed wheel carries it inside the package (pyproject.toml maps
``conf/`` to ``rnn_lightning/conf``), so ``python -m rnn_lightning.train`` finds its configs from any folder.
A relative path a user gives (``data.data_dir=data/rt-polarity``) means a folder below the one the command was started
in, as Hydra's own ``outputs/`` does, even though a job may run with another working folder.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CONF_DIR = PACKAGE_DIR / "conf" if (PACKAGE_DIR / "conf").is_dir() else PACKAGE_DIR.parent / "conf"


def launch_dir() -> Path:
    """The folder the command was started in (Hydra's ``runtime.cwd`` inside a job, else the current folder)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.cwd)
    return Path(os.getcwd())


def user_path(path: str | os.PathLike[str]) -> Path:
    """``~`` expanded; a relative path taken relative to :func:`launch_dir`."""
    expanded = Path(path).expanduser()
    return expanded if expanded.is_absolute() else launch_dir() / expanded
