"""Training batches whose order depends on (seed, epoch) only, and a loader that can resume mid-epoch.

A ``DataLoader(shuffle=True, generator=torch.Generator().manual_seed(seed))`` draws each epoch's order from a generator
whose state is the sum of all earlier epochs; a run resumed from a checkpoint starts a fresh generator, so its epoch 3
would be the uninterrupted run's epoch 0 order. :class:`EpochShuffle` draws epoch ``e`` from ``(seed, e)`` instead;
Lightning calls ``set_epoch`` before every epoch (and forwards it through the ``DistributedSamplerWrapper`` it puts
around the sampler under DDP, which then hands each process every world-size-th index of the same order).

:class:`ResumableLoader` tells Lightning how far into the epoch it was (``state_dict``, saved in every checkpoint) and
skips that many batches when a run restarts from a mid-epoch checkpoint (``load_state_dict``, which Lightning calls
only then, before the epoch's iterator is created). With both, a run stopped by a signal after any batch and resumed
sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Sampler


class EpochShuffle(Sampler[int]):
    """A permutation of ``range(size)`` drawn from ``(seed, epoch)``."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        # A SeedSequence of both numbers: seeds (1, 2) and (2, 1) give unrelated orders, unlike seed + epoch.
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        return iter(order.tolist())


class ResumableLoader(DataLoader):
    """A DataLoader with Lightning's ``state_dict``/``load_state_dict`` protocol: batches served in the current epoch.

    Takes the same arguments as DataLoader, so that Lightning can rebuild it with a distributed sampler under DDP.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._epoch = 0
        self._served = 0
        self._resume: tuple[int, int] | None = None  # (epoch, batches already trained on) from a checkpoint

    def _sampler_epoch(self) -> int:
        return int(getattr(self.sampler, "epoch", 0))

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch, "batches": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = (int(state["epoch"]), int(state["batches"]))

    def __iter__(self) -> Iterator[Any]:
        # A generator: this body runs at the first next(), after Lightning's set_epoch for the epoch, even though
        # Lightning may call iter() earlier.
        self._epoch = self._sampler_epoch()
        skip = self._resume[1] if self._resume is not None and self._resume[0] == self._epoch else 0
        self._resume = None
        self._served = 0
        batches = super().__iter__()
        for _ in range(skip):
            next(batches, None)  # the order is fixed by the sampler, so dropping batches is all it takes
            self._served += 1
        for batch in batches:
            self._served += 1
            yield batch
