"""The run folder around a job (a Hydra callback, set in conf/config.yaml): it must be writable, and a failed run must
not rewrite the recorded config of the run whose checkpoints the folder holds.

Hydra 1.3's ``run_job`` creates the job's folder, opens its log file (``train.log``) and writes ``.hydra/config.yaml``,
``hydra.yaml`` and ``overrides.yaml`` before it calls the task and before the first job callback (``on_job_start``)
runs. So:

* an unwritable folder ends in ``ValueError: Unable to configure handler 'file'``, with the real ``PermissionError``
  buried in the traceback. ``on_run_start`` / ``on_multirun_start`` run before ``run_job``: they try the folder
  (``hydra.run.dir``, or ``hydra.sweep.dir``) and stop with one line that names it and says what to do;
* a refused resume (``ckpt_path=RUN/checkpoints/last.ckpt hydra.run.dir=RUN`` with another model size) would leave
  ``RUN/.hydra/`` describing the refused settings, not the checkpoints'. The same two hooks keep a copy of the
  ``.hydra/`` files already there, and ``on_job_end`` puts them back when the job failed without writing a checkpoint,
  so that a folder's recorded config always describes its checkpoints.

This sees the jobs that run in this process (Hydra's basic launcher); the submitit launchers run ``run_job`` in their
own processes, where ``on_run_start`` and ``on_multirun_start`` did not run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


class RunFolder(Callback):
    def __init__(self) -> None:
        self.saved: dict[Path, dict[str, bytes]] = {}  # each existing job folder's .hydra/ files, by name
        self.checkpoints: dict[Path, dict[str, tuple[int, int]]] = {}  # and its checkpoints' (size, mtime)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = _folder(config, "hydra.run.dir")
        if folder is not None:
            check_writable(folder, "hydra.run.dir")
            self._keep(folder)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = _folder(config, "hydra.sweep.dir")
        if folder is not None:
            check_writable(folder, "hydra.sweep.dir")
            for recorded in folder.glob("**/.hydra"):
                self._keep(recorded.parent)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        folder = Path(str(config.hydra.runtime.output_dir)).resolve()
        saved = self.saved.get(folder)
        if job_return.status != JobStatus.FAILED or not saved or _checkpoints(folder) != self.checkpoints[folder]:
            return
        for name, content in saved.items():
            (folder / ".hydra" / name).write_bytes(content)

    def _keep(self, folder: Path) -> None:
        recorded = folder / ".hydra"
        if recorded.is_dir():
            self.saved[folder] = {p.name: p.read_bytes() for p in recorded.iterdir() if p.is_file()}
            self.checkpoints[folder] = _checkpoints(folder)


def check_writable(folder: Path, key: str) -> None:
    """Create ``folder`` if needed and write a file there, or stop with one line that says what to do."""
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


def _folder(config: DictConfig, key: str) -> Path | None:
    try:
        folder = OmegaConf.select(config, key)
    except Exception:
        return None  # an interpolation that only Hydra's run_job can resolve: it reports its own errors
    return None if folder is None else Path(str(folder)).resolve()


def _checkpoints(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in (folder / "checkpoints").glob("*.ckpt")}
