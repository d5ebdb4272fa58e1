"""Training batches whose order depends on (seed, epoch) only, and a loader that can resume mid-epoch.

A ``DataLoader(shuffle=True, generator=torch.Generator().manual_seed(seed))`` draws each epoch's order from a generator
whose state is the sum of all earlier epochs; a run resumed from a checkpoint starts a fresh generator, so its epoch 3
would be the uninterrupted run's epoch 0 order. :class:`EpochShuffle` draws epoch ``e`` from ``(seed, e)`` instead;
Lightning calls ``set_epoch`` before every epoch.

:class:`ResumableLoader` tells Lightning how far into the epoch it was (``state_dict``, saved in every checkpoint) and
skips that many batches when a run restarts from a mid-epoch checkpoint (``load_state_dict``, which Lightning calls
only then, before the epoch's iterator is created). With both, a run stopped by a signal after any batch and resumed
sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process's DDP group; (0, 1) outside one. Read when an epoch starts, because the
    process group does not exist yet when the DataLoader is built."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochShuffle(Sampler[int]):
    """A permutation of ``range(size)`` drawn from ``(seed, epoch)``; under DDP, process r takes every world-th index
    of it from position r (the permutation padded, like DistributedSampler, to a multiple of the world size).

    So step j of N processes with ``batch=b`` trains on exactly the examples of step j of one process with
    ``batch=N*b``: DDP changes how the work is split, not what is learned (up to floating-point summation order).
    Our samplers split the data between processes themselves, so the Trainer runs with
    ``use_distributed_sampler=false`` (conf/trainer/auto.yaml) and does not wrap them in one of its own.
    """

    def __init__(self, size: int, seed: int) -> None:
        super().__init__()
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this before every epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.size / process_rank()[1])

    def __iter__(self) -> Iterator[int]:
        # A SeedSequence of both numbers: seeds (1, 2) and (2, 1) give unrelated orders, unlike seed + epoch.
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size).tolist()
        rank, world = process_rank()
        order += order[: len(self) * world - self.size]
        return iter(order[rank::world])


class EvenShards(Sampler[int]):
    """Validation and test order: the dataset's own; under DDP process r takes every world-th example from r.

    Unlike DistributedSampler nothing is padded, so metrics summed over the processes count each example once.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __len__(self) -> int:
        rank, world = process_rank()
        return len(range(rank, self.size, world))

    def __iter__(self) -> Iterator[int]:
        rank, world = process_rank()
        return iter(range(rank, self.size, world))


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
