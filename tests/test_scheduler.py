"""Learning-rate schedules: the lr each epoch trains with, under automatic (Adam) and manual (LBFGS) optimization.

A one-weight task whose validation metric follows a script makes every scheduler decision known in advance; the
composed-config runs check the pipeline around it (TensorBoard's train/lr, metrics.json, checkpoints, resume).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra_compose import TINY_SINE, compose_config
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from rnn_lightning.models.base import LR_LOG_NAME, RecurrentTask
from rnn_lightning.models.optimization import Schedule
from rnn_lightning.models.sine import SineForecaster
from rnn_lightning.training.run import train

OPTIMS = {
    "adam": {"_target_": "torch.optim.Adam", "lr": 0.01},
    "lbfgs": {"_target_": "torch.optim.LBFGS", "lr": 1.0, "max_iter": 2},  # manual optimization
}


class Scripted(RecurrentTask):
    """One weight, one batch per epoch; validation logs ``val/score = script[epoch]``. Records each epoch's lr."""

    def __init__(self, optim: dict, scheduler: dict, script: list[float]) -> None:
        super().__init__(optim, scheduler)
        self.weight = nn.Parameter(torch.ones(1))
        self.script = script
        self.lrs: list[float] = []

    def training_loss(self, batch: list[Tensor]) -> Tensor:
        return (self.weight * batch[0]).pow(2).mean()

    def validation_step(self, batch: list[Tensor], batch_idx: int) -> None:
        self.log("val/score", self.script[self.current_epoch])

    def on_train_epoch_start(self) -> None:
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])


def scripted_lrs(optim: str, scheduler_overrides: list[str], script: list[float], tmp_path: Path) -> list[float]:
    """The lr of each epoch of a Scripted run with the real conf/scheduler/ file and these overrides."""
    composed = compose_config(scheduler_overrides, tmp_path).scheduler
    scheduler = Schedule.of(OmegaConf.to_container(composed, resolve=True) if composed else None).settings()
    module = Scripted(OPTIMS[optim], scheduler, script)
    data = DataLoader(TensorDataset(torch.ones(4, 1)), batch_size=4)
    trainer = L.Trainer(
        max_epochs=len(script),
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, train_dataloaders=data, val_dataloaders=data)
    return module.lrs


@pytest.mark.parametrize("optim", ["adam", "lbfgs"])
def test_plateau_halves_the_lr_after_patience_epochs_without_improvement(optim, tmp_path):
    # plateau.yaml: factor 0.5, patience 2. Epoch 1 improves; 2, 3, 4 do not (the third is past patience: halve);
    # epoch 5 improves again and resets the count; 6, 7 do not, which is still within patience.
    plateau = ["scheduler=plateau", "scheduler.monitor=val/score", "scheduler.mode=min"]
    lrs = scripted_lrs(optim, plateau, [3.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0], tmp_path)
    lr = OPTIMS[optim]["lr"]
    assert lrs == pytest.approx([lr] * 5 + [lr / 2] * 3, rel=1e-12)


@pytest.mark.parametrize("optim", ["adam", "lbfgs"])
def test_step_schedule_changes_the_lr_every_step_size_epochs(optim, tmp_path):
    lrs = scripted_lrs(optim, ["scheduler=step", "scheduler.step_size=2", "scheduler.gamma=0.1"], [0.0] * 5, tmp_path)
    lr = OPTIMS[optim]["lr"]
    assert lrs == pytest.approx([lr, lr, lr / 10, lr / 10, lr / 100], rel=1e-12)


@pytest.fixture(scope="module")
def cosine_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("cosine")
    train(compose_config([*TINY_SINE, "optim=adam", "optim.lr=0.01", "scheduler=cosine", "epochs=4"], run))
    return run


def test_cosine_through_the_composed_config_follows_the_closed_form(cosine_run):
    # Epoch k of T trains with lr0 * (1 + cos(pi k / T)) / 2 (eta_min = 0); after the T-th step the lr is eta_min.
    expected = [0.01 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(4)]
    events = EventAccumulator(str(next((cosine_run / "tensorboard").iterdir())))
    events.Reload()
    rates = events.Scalars(f"sine/{LR_LOG_NAME}")  # TensorBoard's tags carry the task (training/tensorboard.py)
    assert [event.value for event in rates] == pytest.approx(expected, rel=1e-6)  # float32
    assert [event.step for event in rates] == [0, 1, 2, 3]  # each epoch's rate at that epoch
    last = torch.load(cosine_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-15)
    assert last["lr_schedulers"][0]["T_max"] == 4  # T_max: ${epochs}
    record = json.loads((cosine_run / "metrics.json").read_text())
    assert record["status"] == "completed" and record["params"]["scheduler"] == "cosine"


def test_checkpoints_carry_the_schedule_and_older_ones_still_load(cosine_run, tmp_path):
    last = cosine_run / "checkpoints" / "last.ckpt"
    loaded = SineForecaster.load_from_checkpoint(last)
    assert loaded.schedule.target == "torch.optim.lr_scheduler.CosineAnnealingLR"
    assert loaded.schedule.arguments["T_max"] == 4
    # A checkpoint written before schedules existed has no "scheduler" hyperparameter: it loads without one.
    older = torch.load(last, weights_only=True)
    del older["hyper_parameters"]["scheduler"]
    torch.save(older, tmp_path / "older.ckpt")
    assert not SineForecaster.load_from_checkpoint(tmp_path / "older.ckpt").schedule


@pytest.mark.parametrize(
    "schedule",
    [
        # Lightning steps a plateau schedule only after the epoch's checkpoint is saved, and a resumed run skips that
        # step: without the module stepping it itself, the resumed schedule is one reduction behind.
        ["optim=adam", "optim.lr=0.05", "scheduler=plateau", "scheduler.patience=0"],
        ["optim.max_iter=3", "scheduler=step", "scheduler.step_size=1"],  # LBFGS: stepped by the module
    ],
    ids=["adam-plateau", "lbfgs-step"],
)
def test_resumed_schedule_ends_exactly_where_an_uninterrupted_one_does(schedule, tmp_path):
    train(compose_config([*TINY_SINE, *schedule, "epochs=4"], tmp_path / "whole"))
    train(compose_config([*TINY_SINE, *schedule, "epochs=2"], tmp_path / "split"))
    halfway = tmp_path / "split" / "checkpoints" / "last.ckpt"
    train(compose_config([*TINY_SINE, *schedule, "epochs=4", f"ckpt_path={halfway}"], tmp_path / "split"))
    whole, split = (
        torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True) for run in ("whole", "split")
    )
    assert whole["lr_schedulers"] == split["lr_schedulers"]
    assert whole["lr_schedulers"][0]["last_epoch"] == 4  # stepped once per epoch
    assert whole["optimizer_states"][0]["param_groups"] == split["optimizer_states"][0]["param_groups"]
    for name, weight in whole["state_dict"].items():
        assert torch.equal(weight, split["state_dict"][name]), name
