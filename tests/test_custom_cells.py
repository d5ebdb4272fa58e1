"""A cell of your own: by import path in the config, on both tasks, with check_cell's checks and clear refusals."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from hydra_compose import QUICK_LBFGS, TINY_SINE, compose_config
from torch import nn

from rnn_lightning import Recurrent, check_cell
from rnn_lightning.errors import ConfigError
from rnn_lightning.models.sentiment import SentimentClassifier
from rnn_lightning.nn import registry
from rnn_lightning.training.run import train

TINY_SENTIMENT = ["model.hidden_size=4", "epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2"]


class BatchStatistics(nn.Module):
    """Normalises each step over the batch: padded rows leak into real ones, which check_cell must catch."""

    state_size = 1

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.step = nn.Linear(input_size + hidden_size, hidden_size)

    def initial_state(self, x):
        return (x.new_zeros(x.shape[0], self.hidden_size),)

    def forward(self, x, state):
        return (torch.tanh(self.step(torch.cat([x - x.mean(0), state[0]], dim=1))),)


class HalfGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return torch.tanh(a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return 0.5 * grad * (1 - torch.tanh(a) ** 2)  # half the true derivative


class WrongBackward(BatchStatistics):
    def forward(self, x, state):
        return (HalfGradient.apply(self.step(torch.cat([x, state[0]], dim=1))),)


class WrongStateSize(BatchStatistics):
    state_size = 2


@pytest.mark.parametrize(
    "cell", ["rnn", "lstm", "gru", "examples.cells.PeepholeLSTM", "examples.cells.MinimalGatedUnit"]
)
def test_our_cells_and_the_examples_pass_check_cell(cell):
    check_cell(cell)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (BatchStatistics, "BatchStatistics: what the padding holds changed the outputs"),
        (WrongBackward, "WrongBackward: autograd's gradients differ from finite differences"),
        (WrongStateSize, "initial_state(x) must return state_size=2 tensors of shape (3, 4)"),
    ],
)
def test_check_cell_finds_what_is_wrong(cell, message):
    with pytest.raises(AssertionError) as raised:
        check_cell(cell)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("nosuchpackage.cells.Cell", "cell 'nosuchpackage.cells.Cell': cannot import module 'nosuchpackage.cells'"),
        ("examples.cells.Nope", "cell 'examples.cells.Nope': module 'examples.cells' has no 'Nope'"),
        ("torch.nn.Linear", "cell 'torch.nn.Linear' is not a recurrent cell: it must be an nn.Module subclass"),
        ("transformer", "unknown cell 'transformer'; choose one of ['gru', 'lstm', 'rnn'], or give the import path"),
    ],
)
def test_a_bad_model_cell_is_refused_before_training(cell, message, tmp_path):
    with pytest.raises(ConfigError) as raised:
        train(compose_config([*TINY_SINE, QUICK_LBFGS, f"model.cell={cell}"], tmp_path))
    assert message in str(raised.value)
    assert not (tmp_path / "checkpoints").exists()


def test_fast_paths_refuse_a_cell_of_yours_and_auto_falls_back_to_the_loop_once(caplog):
    for impl in ("fused", "triton"):
        with pytest.raises(ValueError, match=f"model.impl={impl} runs the built-in cells only .* not PeepholeLSTM"):
            Recurrent("examples.cells.PeepholeLSTM", 3, 4, impl=impl)
    registry._told_loop.discard("PeepholeLSTM")
    with caplog.at_level(logging.INFO, logger="rnn_lightning"):
        layers = [Recurrent("examples.cells.PeepholeLSTM", 3, 4, num_layers=2) for _ in range(2)]
    told = [r.message for r in caplog.records if "PeepholeLSTM is not a built-in cell" in r.message]
    assert len(told) == 1 and "readable loop path" in told[0]
    x = torch.randn(2, 5, 3)
    assert registry.choose_impl(layers[0].impl, layers[0].cells[0], x) == "loop"
    assert registry.choose_impl("auto", Recurrent("lstm", 3, 4).cells[0], x) == "fused"


def test_a_cell_of_yours_trains_on_sentiment_stacked_and_bidirectional(polarity_dir, tmp_path):
    cell = "examples.cells.PeepholeLSTM"
    overrides = [f"data.data_dir={polarity_dir}", *TINY_SENTIMENT, f"model.cell={cell}"]
    train(compose_config([*overrides, "model.num_layers=2", "model.bidirectional=true"], tmp_path))
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "completed" and record["params"]["model.cell"] == cell
    assert 0.0 <= record["test"]["test/acc"] <= 1.0
    model = SentimentClassifier.load_from_checkpoint(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert type(model.rnn.cells[0]).__name__ == "PeepholeLSTM" and len(model.rnn.cells) == 4
    assert model.rnn.cells[3].peep.shape == (3, 4)


def test_a_cell_of_yours_trains_on_sine(tmp_path):
    train(compose_config([*TINY_SINE, QUICK_LBFGS, "epochs=1", "model.cell=examples.cells.MinimalGatedUnit"], tmp_path))
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "completed" and record["test"]["test/train_mse"] < 1.0


def test_auto_takes_triton_on_cuda_only_for_built_in_cells_it_fits(monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setattr(registry, "triton_available", lambda: True)
    on_gpu = SimpleNamespace(is_cuda=True)  # choose_impl reads only where the input lives
    assert registry.choose_impl("auto", Recurrent("gru", 3, 256).cells[0], on_gpu) == "triton"
    assert registry.choose_impl("auto", Recurrent("gru", 3, 384).cells[0], on_gpu) == "fused"  # over the kernels' 256
    assert registry.choose_impl("auto", Recurrent("examples.cells.PeepholeLSTM", 3, 8).cells[0], on_gpu) == "loop"
    monkeypatch.setattr(registry, "triton_available", lambda: False)
    assert registry.choose_impl("auto", Recurrent("gru", 3, 8).cells[0], on_gpu) == "fused"
