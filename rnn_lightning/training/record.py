"""``metrics.json``: what a job did, written when it starts, after every epoch, and when it ends.

A job that crashes hard leaves ``status: running`` behind, which tells a report that it never finished; its
``epochs`` says how many epochs it had completed (and checkpointed) by then.
Writes go to a temporary file first and are renamed into place, so the file is never half-written; a write that fails
removes its temporary file, and on a full disk the last record is written over the running one in place. A run refused
before training writes a ``failed`` record only where the folder has none: an earlier run's record stays as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from rnn_lightning.errors import WriteFailedError, first_line

log = logging.getLogger("rnn_lightning")


def first_error(error: BaseException) -> BaseException:
    """The error that started it: one raised *while handling* another (Python's "During handling of the above
    exception, another exception occurred") is a consequence, e.g. torch's ``unexpected pos`` after a write failed
    with ENOSPC. An error raised *from* another on purpose (``raise ... from``) is kept: it says more."""
    while error.__context__ is not None and error.__cause__ is None and not error.__suppress_context__:
        error = error.__context__
    return error


class RunRecord:
    def __init__(self, path: Path, **fields: Any) -> None:
        self.path = Path(path)
        self.started = time.monotonic()
        self.fields: dict[str, Any] = {
            "status": "running",
            "error": None,
            "best_val": None,
            "test": {},
            "epochs": 0,
            "wall_seconds": 0.0,
            **fields,
        }
        self.write()

    def update(self, **fields: Any) -> None:
        self.fields.update(fields)
        self.write()

    def finish(self, status: str, error: BaseException | None = None, **fields: Any) -> None:
        """The last write; it never raises, so that it cannot hide the error it records (it logs its own)."""
        wall = round(time.monotonic() - self.started, 2)
        self.fields.update(status=status, error=None if error is None else first_line(error), wall_seconds=wall)
        self.fields.update(fields)
        try:
            self.write()
        except OSError as failed:
            if failed.errno == errno.ENOSPC and self._rewrite_in_place():
                return
            log.error("could not record the run's end (%s) in %s: %s", status, self.path, first_line(failed))

    def write(self) -> None:
        write_atomically(self.path, lambda file: file.write(self._text()))

    def _text(self) -> bytes:
        return (json.dumps(self.fields, indent=2, default=_plain) + "\n").encode()

    def _rewrite_in_place(self) -> bool:
        """A full disk has no room for a second copy, but the record's own blocks are allocated already: the last
        record is written over the running one (a few KiB, the same block), not beside it."""
        try:
            with open(self.path, "r+b") as file:
                file.write(self._text())
                file.truncate()
        except OSError:
            return False
        return True


def write_atomically(path: Path, write: Callable[[BinaryIO], Any], sync: bool = False, note: str = "") -> None:
    """``write`` the file into a hidden temporary one beside ``path`` (flushed to disk with ``sync``) and rename it
    over ``path``: readers see the old file or the whole new one. A failed write removes its temporary file, and an
    ``OSError`` (a full disk) comes out naming ``path`` and ``note``, whatever a library made of it on the way."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as file:
            write(file)
            if sync:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        cause = first_error(error)
        if isinstance(cause, OSError):
            raise WriteFailedError(cause.errno, f"{cause.strerror} while writing {path}{note}") from cause
        raise


def _plain(value: Any) -> Any:
    """Tensors and numpy scalars become plain numbers."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


class NoRecord:
    """What DDP ranks other than 0 keep instead of a RunRecord: they must not write rank 0's metrics.json."""

    def update(self, **fields: Any) -> None:
        pass

    def finish(self, status: str, error: BaseException | None = None, **fields: Any) -> None:
        pass


class RecordProgress(L.Callback):
    """Writes the completed epochs and the best monitored value so far into the record as each new epoch starts,
    after the previous one's checkpoints were written (Lightning runs the checkpoint callbacks last at an epoch's
    end), and when training ends: a run that stops later still says how far it got and what its best checkpoint
    scored."""

    def __init__(self, record: RunRecord | NoRecord, best: ModelCheckpoint) -> None:
        self.record = record
        self.best = best

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:  # under ddp_spawn every worker has a copy of the record
            score = self.best.best_model_score
            best = None if score is None else float(score)  # one read per epoch
            self.record.update(epochs=trainer.current_epoch, best_val=best)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.on_train_epoch_start(trainer, module)


def keep_earlier_record(path: Path) -> Path | None:
    """Rename a metrics.json left by an earlier run in this folder (a resumed or a failed one) instead of losing it."""
    if not path.exists():
        return None
    number = 1
    while (kept := path.with_name(f"metrics.earlier-{number}.json")).exists():
        number += 1
    path.rename(kept)
    return kept


def record_refusal(path: Path, error: BaseException, **fields: Any) -> None:
    """A run refused before training: ``failed`` with its error, unless the folder has a record (an earlier run's,
    which a refused resume must not change)."""
    if path.exists():
        return
    with contextlib.suppress(OSError):  # an unwritable folder: the error says so
        RunRecord(path, **fields).finish("failed", error)
