"""Plumbing shared by the fused kernels: step order, time blocks, padding masks.

A recurrence over n steps is laid out as n + 1 state *slots*: the state before the first step sits in
slot 0 (forward direction) or slot n (reversed), and step j reads slot ``j + read`` and writes slot
``j + write``. Slot lists hold views, so one indexing rule serves both directions without copies. The
engine cuts time into blocks and builds the slots of one block at a time (``Slots(n, reverse)``), so
that only O(block) Python view objects are alive at once: T-long lists of views made every call cost
gen-2 garbage collections of the whole process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

# Size of one time block's per-step buffers. Why blocks: a buffer far above glibc's mmap threshold comes
# back from the kernel as fresh pages on every call, and page faults cost ~0.3 ms per MB here (one 80 MB
# buffer: 30 ms, as much as the arithmetic); and the backward's vectorised coefficient pass, its per-step
# loop and its weight-gradient matmuls find a block still in cache. Why this size: measured, 1.5-2 MB is
# fastest for the sine and the sentiment shapes; 0.25 MB costs the LSTM 60% more (per-block overhead),
# 8 MB 20-40% more.
BLOCK_BYTES = 2 << 20


@dataclass(frozen=True)
class Slots:
    """Where step j reads and writes its state, for n steps in one direction."""

    steps: int
    reverse: bool

    @property
    def read(self) -> int:
        return 1 if self.reverse else 0

    @property
    def write(self) -> int:
        return 0 if self.reverse else 1

    @property
    def final(self) -> int:
        return 0 if self.reverse else self.steps

    def chain(self, before: Tensor, written: Sequence[Tensor]) -> list[Tensor]:
        """The n + 1 slots, given the state before the first step and the n per-step views in time order."""
        return [*written, before] if self.reverse else [before, *written]

    def forward_steps(self) -> range:
        return range(self.steps - 1, -1, -1) if self.reverse else range(self.steps)

    def backward_steps(self) -> range:
        return range(self.steps) if self.reverse else range(self.steps - 1, -1, -1)

    def blocks(self, size: int) -> list[tuple[int, int]]:
        """``[start, stop)`` time blocks in the order the forward pass visits them."""
        bounds = [(a, min(a + size, self.steps)) for a in range(0, self.steps, size)]
        return bounds[::-1] if self.reverse else bounds

    def previous_pieces(self, states: Tensor, before: Tensor) -> list[tuple[slice, Tensor]]:
        """The states a block's steps read, as ``(rows, states)`` pieces: ``states`` (n, B, H) shifted by
        one step, and ``before`` (B, H), the state written just before the block, for its first step."""
        n = states.shape[0]
        if self.reverse:
            return [(slice(0, n - 1), states[1:]), (slice(n - 1, n), before.unsqueeze(0))]
        return [(slice(0, 1), before.unsqueeze(0)), (slice(1, n), states[:-1])]

    def last_row(self, steps_in_block: int) -> int:
        """Row of a block's buffer written by its last step in forward order."""
        return 0 if self.reverse else steps_in_block - 1

    def mul_previous(self, target: Tensor, states: Tensor, before: Tensor) -> None:
        """``target (n, B, H) *=`` the states the block's steps read (see ``previous_pieces``)."""
        for rows, prev in self.previous_pieces(states, before):
            target[rows].mul_(prev)


def block_steps(step_bytes: int) -> int:
    """How many time steps of ``step_bytes`` each make one block."""
    return max(1, BLOCK_BYTES // max(step_bytes, 1))


def padding_mask(lengths: Tensor | None, steps: int, like: Tensor) -> Tensor | None:
    """(T, B, 1) boolean, True on padded steps (t >= length); None without lengths."""
    if lengths is None:
        return None
    t = torch.arange(steps, device=lengths.device).unsqueeze(1)  # (T, 1)
    return (t >= lengths.unsqueeze(0)).unsqueeze(2).to(like.device)
