"""Who writes the run's files under DDP, and the check that every process built the same model from its data."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rnn_lightning.training.distributed import RANK_VARIABLES, SameModelEverywhere, is_launch_zero, module_fingerprint


@pytest.mark.parametrize(
    ("environment", "zero"),
    [
        ({}, True),
        ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True),  # Lightning's ddp, the process that starts the others
        ({"LOCAL_RANK": "1"}, False),  # ... and one it started
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),  # the first process of the second machine
        ({"RANK": "3", "LOCAL_RANK": "1"}, False),  # torchrun
        ({"SLURM_PROCID": "0"}, True),  # a one-task SLURM job
        ({"SLURM_PROCID": "5"}, False),
    ],
)
def test_only_global_rank_zero_writes_metrics_json(environment, zero, monkeypatch):
    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert is_launch_zero() is zero


class _Module:
    def __init__(self, vocab: list[str]) -> None:
        self.hparams = {"vocab_size": len(vocab), "hidden_size": 8}
        self.vocab = vocab


class _Strategy:
    """Seen from rank 1 of two: broadcast hands out rank 0's fingerprint; rank 0 always agrees with itself, so the
    decision over both processes is rank 1's own."""

    def __init__(self, zero: _Module) -> None:
        self.zero = zero

    def broadcast(self, value: str, src: int = 0) -> str:
        return module_fingerprint(self.zero)

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        return decision


def test_processes_that_built_different_vocabularies_are_stopped():
    zero = _Module(["<pad>", "<unk>", "good", "bad"])
    trainer = SimpleNamespace(world_size=2, global_rank=1, strategy=_Strategy(zero))
    SameModelEverywhere().setup(trainer, _Module(["<pad>", "<unk>", "good", "bad"]), "fit")
    with pytest.raises(RuntimeError, match="built different models from their data .* this is rank 1"):
        SameModelEverywhere().setup(trainer, _Module(["<pad>", "<unk>", "bad", "good"]), "fit")
