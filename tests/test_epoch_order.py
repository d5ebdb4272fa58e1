"""The training order depends on (seed, epoch) only, splits over DDP processes like one big batch, and resumes."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from rnn_lightning.data import sampling
from rnn_lightning.data.sampling import EpochShuffle, ResumableLoader


def _order(sampler: EpochShuffle, epoch: int) -> list[int]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_an_epochs_order_depends_on_seed_and_epoch_not_on_history():
    walked = EpochShuffle(50, seed=3)
    orders = [_order(walked, epoch) for epoch in range(4)]
    assert _order(EpochShuffle(50, seed=3), 3) == orders[3]  # a resumed run jumps straight to epoch 3
    assert sorted(orders[0]) == list(range(50)) and len({tuple(o) for o in orders}) == 4
    assert _order(EpochShuffle(50, seed=4), 0) != orders[0]


@pytest.mark.parametrize("size", [12, 13])
def test_two_processes_with_batch_b_see_the_examples_of_one_process_with_batch_2b(size, monkeypatch):
    one = _order(EpochShuffle(size, seed=0), 1)
    shards = []
    for rank in (0, 1):
        sampler = EpochShuffle(size, seed=0)
        monkeypatch.setattr(sampling, "process_rank", lambda rank=rank: (rank, 2))
        shards.append(_order(sampler, 1))
        assert len(sampler) == len(shards[-1]) == (size + 1) // 2
    b = 3
    for step in range(size // (2 * b)):
        together = shards[0][step * b : (step + 1) * b] + shards[1][step * b : (step + 1) * b]
        assert sorted(together) == sorted(one[step * 2 * b : (step + 1) * 2 * b])
    # An odd size is padded, as DistributedSampler does, with the first index of the order.
    assert sorted(shards[0] + shards[1]) == sorted(one + one[: len(shards[0]) * 2 - size])


def test_a_loader_restored_mid_epoch_serves_the_rest_of_that_epoch_only():
    data = TensorDataset(torch.arange(20))

    def loader() -> ResumableLoader:
        return ResumableLoader(data, batch_size=4, sampler=EpochShuffle(20, seed=1))

    full = loader()
    full.sampler.set_epoch(2)
    batches = [batch[0].tolist() for batch in full]
    partial = iter(full)
    next(partial), next(partial)
    assert full.state_dict() == {"epoch": 2, "batches": 2}

    restored = loader()
    restored.load_state_dict({"epoch": 2, "batches": 2})
    restored.sampler.set_epoch(2)
    assert [batch[0].tolist() for batch in restored] == batches[2:]
    assert restored.state_dict() == {"epoch": 2, "batches": 5}
    restored.sampler.set_epoch(3)  # the next epoch starts from its first batch
    assert len(list(restored)) == 5

    other_epoch = loader()
    other_epoch.load_state_dict({"epoch": 2, "batches": 2})  # saved at the end of epoch 2, resumed at 3
    other_epoch.sampler.set_epoch(3)
    assert len(list(other_epoch)) == 5
