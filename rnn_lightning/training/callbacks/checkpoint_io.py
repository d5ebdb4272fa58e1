"""Checkpoint files that are either the old one or the complete new one, even if the process is killed mid-write.

Lightning writes through an fsspec transaction whose temporary file lives in the system temp folder; committing it is
``shutil.move``, which is a rename only when that folder is on the same filesystem as the checkpoints. On a cluster
node (/tmp on a local disk, outputs on NFS) it becomes a copy, and a SIGKILL during the copy leaves a truncated
``last.ckpt`` where the previous epoch's good one was. Here the temporary file sits beside the target (a hidden
``.<name>.tmp`` that no ``*.ckpt`` pattern matches), is flushed to disk, and is renamed over the target with
``os.replace``, which POSIX makes atomic within one filesystem.

A write that fails (a full disk) removes its temporary file, so the disk is not left fuller than before, and raises the
``OSError`` that started it: torch's zip writer turns it into ``RuntimeError: ... unexpected pos``, which says nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from rnn_lightning.training.record import write_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)  # remote storage: fsspec's own commit
            return
        write_atomically(
            Path(path),
            lambda file: torch.save(checkpoint, file),
            sync=True,
            note="; the checkpoints written before are kept",
        )
