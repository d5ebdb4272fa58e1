"""Random numbers of a training batch that depend on (seed, epoch, batch, process) only.

Dropout draws its masks from torch's global generator, whose state after N batches is the sum of everything drawn
before, including draws nobody thinks of (each DataLoader iterator takes one for its worker seeds). A run resumed from a
checkpoint starts from ``seed_everything`` again, so without this its masks would differ from the uninterrupted run's.
Reseeding before every batch makes them a function of where training is, not of how it got there; the process rank
is part of the seed so that DDP processes do not share masks.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch


def batch_seed(seed: int, epoch: int, batch: int, rank: int) -> int:
    """A 63-bit seed mixed from the four numbers (a SeedSequence, so nearby tuples give unrelated streams)."""
    return int(np.random.SeedSequence([seed, epoch, batch, rank]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class SeedEachBatch(L.Callback):
    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        seed = batch_seed(self.seed, trainer.current_epoch, batch_idx, trainer.global_rank)
        # The generators this process draws from, not torch.manual_seed's every one: on a CUDA machine that would
        # reseed each GPU's generator every batch, and a process only trains on its own.
        torch.random.default_generator.manual_seed(seed)
        if module.device.type == "cuda":
            with torch.cuda.device(module.device):
                torch.cuda.manual_seed(seed)
        elif module.device.type == "mps":
            torch.mps.manual_seed(seed)
