"""A NaN or infinite loss stops the run with a message naming where, keeps the last good checkpoints, records failed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from hydra_compose import TINY_SINE, compose_config

from rnn_lightning.models.sine import SineForecaster
from rnn_lightning.training.numerics import FiniteGuard, NonFiniteError
from rnn_lightning.training.run import train

ADAM_SINE = [*TINY_SINE, "optim=adam", "optim.lr=0.01", "batch=49", "epochs=3"]  # 2 batches per epoch


def test_a_nan_loss_in_epoch_2_stops_and_keeps_epoch_1s_checkpoints(tmp_path, monkeypatch):
    real_loss = SineForecaster.training_loss

    def nan_from_epoch_2(self, batch):
        loss = real_loss(self, batch)
        return loss * float("nan") if self.current_epoch == 1 else loss

    monkeypatch.setattr(SineForecaster, "training_loss", nan_from_epoch_2)
    with pytest.raises(NonFiniteError) as raised:
        train(compose_config(ADAM_SINE, tmp_path))
    message = "train/loss is nan in epoch 2/3 (global step 2): stopped before it reached the weights"
    assert message in str(raised.value) and "Lower optim.lr (now 0.01)" in str(raised.value)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "failed" and message in record["error"]
    # last.ckpt and best are those of epoch 1 (index 0), with finite weights; epoch 2 wrote nothing.
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best-epoch000.ckpt", "last.ckpt"]
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and last["global_step"] == 2
    assert all(torch.isfinite(w).all() for w in last["state_dict"].values())


def test_a_diverging_lbfgs_run_fails_without_saving_a_diverged_model(tmp_path):
    """The brief's example: fixed LBFGS steps of size 1e6. The weights blow up at once; the forecast overflows."""
    cfg = compose_config([*TINY_SINE, "optim.lr=1e6", "optim.line_search_fn=null", "optim.max_iter=4"], tmp_path)
    with pytest.raises(NonFiniteError, match=r"val/forecast_mse is inf after epoch 1/15 .*the model has diverged"):
        train(cfg)
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"
    assert not list((tmp_path / "checkpoints").glob("*.ckpt"))


def test_a_checkpoint_of_nan_weights_is_refused_before_it_is_written():
    trainer = SimpleNamespace(current_epoch=4, max_epochs=9, global_step=70)
    weights = {"rnn.weight": torch.tensor([1.0, float("inf")]), "steps": torch.tensor([3])}
    with pytest.raises(NonFiniteError, match=r"not finite in epoch 5/9 \(global step 70\) \(rnn.weight\)"):
        FiniteGuard().on_save_checkpoint(trainer, None, {"state_dict": weights})
    FiniteGuard().on_save_checkpoint(trainer, None, {"state_dict": {"rnn.weight": torch.ones(2)}})
