"""The run folder: writable (a Hydra callback, set in conf/config.yaml), and used by one run at a time.

Hydra 1.3's ``run_job`` creates the job's folder and opens its log file (``train.log``) before it calls the task, so
an unwritable folder ends in ``ValueError: Unable to configure handler 'file'``, with the real ``PermissionError``
buried in the traceback. ``on_run_start`` / ``on_multirun_start`` run before ``run_job``: they try the folder
(``hydra.run.dir``, or ``hydra.sweep.dir``) and stop with one line that names it and says what to do.

Two runs in one folder at once would mix their checkpoints and records, so a run holds :class:`RunFolderLock` while it
trains: an ``flock`` on ``<folder>/.lock``, which the operating system releases when the process ends, however it ends
(a killed run leaves nothing stuck).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from rnn_lightning.errors import ConfigError


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


class RunFolderLock:
    """Held by the run training in ``folder``; a second run there is refused with the first one's process id."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / ".lock"
        self.file: int | None = None

    def __enter__(self) -> RunFolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            raise ConfigError(
                f"{self.path.parent} is in use by another run (process {holder}), which is still training there. "
                "Wait for it to end, or start this one in another folder (leave hydra.run.dir at its default)."
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self.file = descriptor
        return self

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            os.close(self.file)  # closing releases the lock; the file stays, empty of meaning
            self.file = None


def run_folder_in_use(folder: Path) -> bool:
    """Whether a live process holds ``folder``'s lock (a ``running`` record without one was killed)."""
    path = Path(folder) / ".lock"
    if not path.exists():
        return False
    descriptor = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False
