"""Ctrl-C and SIGTERM: stop at a point where the state can be saved and resumed exactly.

Python's default turns SIGINT into a KeyboardInterrupt wherever the main thread happens to be, e.g. half-way through an
optimizer step that has updated some parameters and not others; a checkpoint written from there cannot be resumed
exactly. Lightning's own SIGTERM handling stops at batch ends but also in the middle of validation, and its Ctrl-C
handling ends the process with ``sys.exit(1)`` without saving anything.

So while training, :class:`StopRequest` only records the signal, and :class:`GracefulStop` acts on it after the current
batch: it writes ``checkpoints/last.ckpt`` there and raises :class:`Interrupted`. A signal during the epoch's
validation waits for the validation and the epoch's checkpoints (the best one included) and stops before the next
epoch starts, from the ``last.ckpt`` of the finished epoch; after the last epoch the run goes on to its test.
Outside training (reading data, testing) there is nothing half-done to save, and a signal raises at once. A second
signal always raises at once, for a user who does not want to wait for the batch to end.

:class:`Interrupted` is a ``SystemExit`` with code 128 + signal number (130 for SIGINT, 143 for SIGTERM, the shell's
convention): Hydra's job runner only catches ``Exception``, so it ends a ``-m`` sweep instead of starting the next job,
and the process exits without a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L

log = logging.getLogger("rnn_lightning")
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(SystemExit):
    """A stop asked for by a signal; ``str()`` is the message for the user and metrics.json."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type, tuple[int, str]]:
        # hydra/launcher=parallel's workers send it back to the sweep's process, which rebuilds it from these.
        return (Interrupted, (self.signum, self.message))


class StopRequest:
    """Turns SIGINT and SIGTERM into :class:`Interrupted`: at once, or, inside :meth:`deferred`, into a flag."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.phase = "preparing"  # named in the message of a signal that arrives outside training
        self._deferring = False
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def reset(self) -> None:
        """A new run in this process (the next job of a sweep) starts with no signal received."""
        self.signum, self.phase, self._deferring = None, "preparing", False

    def install(self) -> None:
        """Handle both signals in this process; a no-op outside the main thread, where Python forbids it."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in SIGNALS:
            self._previous.setdefault(signum, signal.getsignal(signum))
            signal.signal(signum, self.handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring, self.phase = True, "training"
        try:
            yield
        finally:
            self._deferring, self.phase = False, "testing"

    def handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._deferring and self.signum is None:
            self.signum = signum
            log.warning("%s received: saving a checkpoint after this batch, then stopping (again: stop now).", name)
            return
        raise Interrupted(signum, f"{name} received while {self.phase}; stopped at once.")

    def __getstate__(self) -> dict[str, Any]:
        # ddp_spawn pickles the callbacks into its worker processes; handlers belong to the process that set them.
        return {**self.__dict__, "_previous": {}}


# One per process, as signal handlers are: train() installs it, GracefulStop (built from the config) acts on it.
STOP_REQUEST = StopRequest()


class GracefulStop(L.Callback):
    """Acts on a :class:`StopRequest` at the next batch end or epoch end: saves ``last.ckpt``, raises Interrupted.

    Under DDP the processes decide together, in a collective, so that all stop at the same batch; that is done every
    ``every`` batches (and at each epoch end), not every batch: a collective per step would make each step wait for
    the slowest process and, on GPUs, for the device. One process decides alone, at every batch, for free.
    """

    def __init__(self, last_path: str | Path, every: int = 16, request: StopRequest | None = None) -> None:
        self.request = STOP_REQUEST if request is None else request
        self.last_path = Path(last_path)
        self.every = every

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # Lightning registers its SIGTERM handler just before the loops start and would stop mid-validation;
        # put ours back. Lightning's teardown restores the handlers from before fit(), which are also ours.
        self.request.install()

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        batches = args[-1] + 1  # the batch index Lightning passes: batches done in this epoch
        if trainer.world_size > 1 and batches % self.every:
            return
        if self._requested(trainer):
            trainer.save_checkpoint(self.last_path, weights_only=False)  # whole: optimizer, loops, callbacks
            self._stop(trainer, f"in epoch {trainer.current_epoch + 1}/{trainer.max_epochs} after {batches} batch(es)")

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # A signal during the previous epoch's validation: that epoch is complete, its checkpoints are written (the
        # checkpoint callbacks run last at an epoch's end), and last.ckpt continues from here exactly.
        if trainer.current_epoch > 0 and self._requested(trainer):
            self._stop(trainer, f"after epoch {trainer.current_epoch}/{trainer.max_epochs}")

    def _requested(self, trainer: L.Trainer) -> bool:
        # Under DDP a signal may reach one process only (kill PID); all must stop at the same batch or the others
        # would wait forever in their next collective.
        return bool(trainer.strategy.reduce_boolean_decision(self.request.requested, all=False))

    def _stop(self, trainer: L.Trainer, where: str) -> None:
        signum = self.request.signum if self.request.signum is not None else signal.SIGTERM
        raise Interrupted(
            signum,
            f"{signal.Signals(signum).name} received: stopped {where} (global step {trainer.global_step}) and saved "
            f"{self.last_path}; resume with ckpt_path={self.last_path} hydra.run.dir={self.last_path.parent.parent}",
        )
