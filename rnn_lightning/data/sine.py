"""Sine waves for the many-to-many regression task.

N sequences of L points, ``sin((t + shift) / period)``, each with its own seeded integer shift. The first
``n_train`` sequences train the network one step ahead; the others are the test set, on which the model
reads ``context`` points and must forecast the rest from its own outputs. Validation (model selection,
early stopping) forecasts the last ``n_val`` *training* sequences, so the test sequences stay unseen.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from rnn_lightning.data.sampling import EpochShuffle, EvenShards, ResumableLoader


def sine_waves(n_sequences: int, length: int, period: float, max_shift: int, seed: int) -> torch.Tensor:
    """(N, L) float64 sine waves with distinct integer shifts drawn from [-max_shift, max_shift).

    Distinct, so that no test sequence is a copy of a training sequence.
    """
    if 2 * max_shift < n_sequences:
        raise ValueError(
            f"data.max_shift={max_shift} gives only {2 * max_shift} distinct shifts for "
            f"{n_sequences} sequences; raise data.max_shift to at least {(n_sequences + 1) // 2}"
        )
    generator = torch.Generator().manual_seed(seed)
    shifts = torch.randperm(2 * max_shift, generator=generator)[:n_sequences, None] - max_shift  # (N, 1)
    t = torch.arange(length).unsqueeze(0) + shifts  # (N, L)
    return torch.sin(t.double() / period)


class SineDataModule(L.LightningDataModule):
    def __init__(
        self,
        n_sequences: int = 100,
        length: int = 1000,
        period: float = 20.0,
        max_shift: int = 80,
        n_train: int = 98,
        n_val: int = 2,
        context: int = 500,
        batch_size: int = 98,
        seed: int = 2,
    ) -> None:
        super().__init__()
        _check_sizes(n_sequences, length, n_train, n_val, context, batch_size, period)
        sine_waves(n_sequences, 2, period, max_shift, seed)  # fail on a bad max_shift now, not in setup
        self.save_hyperparameters()
        self.waves: torch.Tensor | None = None

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        self.waves = sine_waves(hp.n_sequences, hp.length, hp.period, hp.max_shift, hp.seed)  # (N, L)

    def model_inputs(self) -> dict:
        """Nothing the forecaster needs beyond its config."""
        return {}

    @property
    def train_waves(self) -> torch.Tensor:
        return self.waves[: self.hparams.n_train]  # (n_train, L)

    @property
    def test_waves(self) -> torch.Tensor:
        return self.waves[self.hparams.n_train :]  # (N - n_train, L)

    def train_dataloader(self) -> DataLoader:
        series = self.train_waves.unsqueeze(-1)  # (n_train, L, 1)
        inputs, targets = series[:, :-1], series[:, 1:]  # predict each next point
        dataset = TensorDataset(inputs, targets)
        # Each epoch's order from (seed, epoch) alone, and resumable mid-epoch (see sampling.py).
        order = EpochShuffle(len(dataset), self.hparams.seed)
        return ResumableLoader(dataset, batch_size=self.hparams.batch_size, sampler=order)

    def val_dataloader(self) -> DataLoader:
        held = self.train_waves[-self.hparams.n_val :]  # (n_val, L), forecast, not one step ahead
        return DataLoader(TensorDataset(held), batch_size=len(held), sampler=EvenShards(len(held)))

    def test_dataloader(self) -> list[DataLoader]:
        """The test sequences, forecast; then the training sequences, whole, for the tested model's one-step MSE."""
        return [self._whole(self.test_waves), self._whole(self.train_waves)]  # (N - n_train, L), (n_train, L)

    @staticmethod
    def _whole(waves: torch.Tensor) -> DataLoader:
        return DataLoader(TensorDataset(waves), batch_size=len(waves), sampler=EvenShards(len(waves)))


def _check_sizes(
    n_sequences: int, length: int, n_train: int, n_val: int, context: int, batch_size: int, period: float
) -> None:
    if not 0 < n_train < n_sequences:
        raise ValueError(
            f"data.n_train={n_train} must leave at least one test sequence out of n_sequences={n_sequences}"
        )
    if not 0 < n_val <= n_train:
        raise ValueError(f"data.n_val={n_val} must be between 1 and n_train={n_train}")
    if not 0 < context < length:
        raise ValueError(f"data.context={context} must be between 1 and length-1={length - 1}")
    if batch_size <= 0:
        raise ValueError(f"batch={batch_size} must be a positive number of sequences per batch")
    if period <= 0:
        raise ValueError(f"data.period={period} must be positive")
