"""The run folder must be writable (a Hydra callback, set in conf/config.yaml).

Hydra 1.3's ``run_job`` creates the job's folder and opens its log file (``train.log``) before it calls the task, so
an unwritable folder ends in ``ValueError: Unable to configure handler 'file'``, with the real ``PermissionError``
buried in the traceback. ``on_run_start`` / ``on_multirun_start`` run before ``run_job``: they try the folder
(``hydra.run.dir``, or ``hydra.sweep.dir``) and stop with one line that names it and says what to do.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


class RunFolder(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(config, "hydra.sweep.dir")


def check_writable(config: DictConfig, key: str) -> None:
    """Create the folder ``key`` names if needed and write a file there, or stop with one line that says what to do."""
    try:
        folder = Path(str(OmegaConf.select(config, key))).resolve()
    except Exception:
        return  # an interpolation that only Hydra's run_job can resolve: it reports its own errors
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        blocking = next(p for p in (folder, *folder.parents) if p.exists())  # the folder, or where it cannot be made
        raise SystemExit(
            f"cannot write the run's outputs into {folder} ({error.strerror}). Make {blocking} writable "
            f"(chmod u+w {blocking}) or choose another folder with {key}=<folder>."
        ) from None
