"""A NaN or infinite loss stops the run with a message naming where, keeps the last good checkpoints, records failed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from hydra_compose import TINY_SINE, compose_config

from rnn_lightning.models.sine import SineForecaster
from rnn_lightning.training.callbacks.guard import FiniteGuard, NonFiniteError
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


def test_on_a_gpu_a_nan_step_is_zeroed_on_the_device_and_stops_the_run_at_the_epoch_end(tmp_path, monkeypatch):
    """The deferred mode FiniteGuard uses on CUDA, forced here on the CPU: no read per step, the same guarantees."""
    real_loss = SineForecaster.training_loss

    def nan_in_epoch_2(self, batch):
        loss = real_loss(self, batch)
        return loss * float("nan") if self.current_epoch == 1 and self.global_step == 2 else loss

    monkeypatch.setattr(SineForecaster, "training_loss", nan_in_epoch_2)
    monkeypatch.setattr(FiniteGuard, "__init__", _deferred_init(FiniteGuard.__init__))
    with pytest.raises(NonFiniteError) as raised:
        train(compose_config(ADAM_SINE, tmp_path))
    assert "train/loss was NaN or infinite at global step 2 (found at the end of epoch 2/3" in str(raised.value)
    assert "no NaN reached the weights, and this epoch's checkpoints were not written" in str(raised.value)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best-epoch000.ckpt", "last.ckpt"]
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and all(torch.isfinite(w).all() for w in last["state_dict"].values())


def _deferred_init(init):
    def forced(self, monitor=None, deferred=None):
        init(self, monitor=monitor, deferred=True)

    return forced


def test_a_deferred_bad_step_has_its_gradients_zeroed_before_the_optimizer_sees_them():
    guard = FiniteGuard(deferred=True)
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    module = SimpleNamespace(device=torch.device("cpu"), automatic_optimization=True)
    trainer = SimpleNamespace(precision="32-true", world_size=1, global_step=0, current_epoch=0, max_epochs=1)
    guard.on_fit_start(trainer, module)
    for step, grad in enumerate([[1.0, 2.0, 3.0], [1.0, float("nan"), float("inf")], [4.0, 5.0, 6.0]]):
        trainer.global_step = step
        weight.grad = torch.tensor(grad)
        guard.on_before_optimizer_step(trainer, module, optimizer)
        assert weight.grad.tolist() == ([0.0, 0.0, 0.0] if step == 1 else grad)
    assert int(guard.first_bad_step) == 1  # the first bad step is kept, not the last one
