"""The sine data: shapes, the train/val/test split, and determinism."""

import pytest
import torch

from rnn_lightning.data.sine import SineDataModule, sine_waves


def test_waves_follow_the_formula_with_distinct_integer_shifts():
    waves = sine_waves(100, 40, period=20.0, max_shift=80, seed=3)
    assert waves.shape == (100, 40) and waves.dtype == torch.float64
    t = torch.arange(40, dtype=torch.float64)
    shifts = []
    for wave in waves:
        matches = [s for s in range(-80, 80) if torch.allclose(torch.sin((t + s) / 20.0), wave, atol=1e-12)]
        assert len(matches) == 1
        shifts += matches
    assert len(set(shifts)) == 100  # no test sequence can be a copy of a training one


def test_too_few_shifts_for_the_sequences_is_refused():
    with pytest.raises(ValueError, match="raise data.max_shift to at least 50"):
        SineDataModule(n_sequences=100, max_shift=10)


def test_split_batches_and_targets_are_one_step_ahead():
    dm = SineDataModule(length=50, context=20, batch_size=98)
    dm.setup("fit")
    inputs, targets = next(iter(dm.train_dataloader()))
    assert inputs.shape == targets.shape == (98, 49, 1)
    train = dm.train_waves
    assert train.shape == (98, 50)
    # Every training pair is some training sequence shifted by one step.
    rows = [int(torch.argmin((train[:, :-1] - inp.squeeze(-1)).abs().sum(1))) for inp in inputs]
    assert sorted(rows) == list(range(98))
    for tgt, row in zip(targets, rows):
        torch.testing.assert_close(tgt.squeeze(-1), train[row, 1:], rtol=0, atol=0)
    forecast, one_step = dm.test_dataloader()
    torch.testing.assert_close(next(iter(forecast))[0], dm.waves[98:], rtol=0, atol=0)
    torch.testing.assert_close(next(iter(one_step))[0], train, rtol=0, atol=0)  # test/train_mse: every one, whole
    (val,) = next(iter(dm.val_dataloader()))
    torch.testing.assert_close(val, dm.waves[96:98], rtol=0, atol=0)  # training sequences, never 98/99


def test_same_seed_same_waves_other_seed_other_waves():
    a, b, c = SineDataModule(seed=1), SineDataModule(seed=1), SineDataModule(seed=2)
    for dm in (a, b, c):
        dm.setup("fit")
    torch.testing.assert_close(a.waves, b.waves, rtol=0, atol=0)
    assert not torch.allclose(a.waves, c.waves)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"n_train": 100}, "must leave at least one test sequence"),
        ({"n_val": 0}, "data.n_val=0 must be between 1"),
        ({"context": 1000}, "data.context=1000 must be between 1 and length-1=999"),
        ({"batch_size": 0}, "batch=0 must be a positive number"),
        ({"period": -1.0}, "data.period=-1.0 must be positive"),
    ],
)
def test_bad_sizes_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SineDataModule(**kwargs)
