"""A checkpoint write that dies half-way leaves the previous file whole."""

from __future__ import annotations

import pytest
import torch

from rnn_lightning.training.callbacks.checkpoint_io import AtomicCheckpointIO


def test_a_failed_write_keeps_the_previous_checkpoint_and_a_good_one_replaces_it(tmp_path, monkeypatch):
    last = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1}, last)
    assert torch.load(last, weights_only=True) == {"epoch": 1}

    def dies_half_way(obj, file):
        file.write(b"half a checkpoint")
        raise KeyboardInterrupt  # what a kill looks like from inside: the write never finishes

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2}, last)
    assert torch.load(last, weights_only=True) == {"epoch": 1}
    assert sorted(p.name for p in last.parent.glob("*.ckpt")) == ["last.ckpt"]  # the leftover is hidden

    monkeypatch.undo()
    io.save_checkpoint({"epoch": 3}, last)
    assert torch.load(last, weights_only=True) == {"epoch": 3}
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]  # the leftover was reused and renamed
