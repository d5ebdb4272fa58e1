"""The sine module: LBFGS really lowers the loss, forecasting feeds outputs back, bidirectional is refused."""

import lightning as L
import pytest
import torch

from rnn_lightning.data.sine import SineDataModule
from rnn_lightning.models.sine import SineForecaster

LBFGS = {
    "_target_": "torch.optim.LBFGS",
    "_partial_": True,
    "lr": 1.0,
    "max_iter": 20,
    "history_size": 50,
    "line_search_fn": "strong_wolfe",
}


def small_trainer(tmp_path, epochs):
    return L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=tmp_path,
        precision="64-true",
    )


def test_lbfgs_lowers_the_training_loss_through_manual_optimization(tmp_path):
    torch.manual_seed(0)
    data = SineDataModule(length=80, context=40)
    data.setup("fit")
    model = SineForecaster(model={"cell": "lstm", "hidden_size": 12}, optim=LBFGS)
    assert model.automatic_optimization is False
    inputs, targets = next(iter(data.train_dataloader()))
    before = model.training_loss((inputs, targets)).item()
    small_trainer(tmp_path, epochs=3).fit(model, datamodule=data)
    after = model.to(torch.float64).training_loss((inputs, targets)).item()
    # 3 LBFGS steps of 20 evaluations take a sine this short from ~0.5 to well under a tenth of that.
    assert before > 0.1
    assert after < before / 20


def test_forecast_feeds_its_own_outputs_back():
    torch.manual_seed(0)
    model = SineForecaster(model={"cell": "gru", "hidden_size": 6}).double()
    waves = torch.randn(2, 30, dtype=torch.float64)
    forecast = model.forecast(waves, context=10)
    assert forecast.shape == (2, 20)
    # Step by step by hand: read the context, then feed each prediction back in.
    with torch.no_grad():
        out, state = model(waves[:, :10, None])
        step, expected = out[:, -1:], [out[:, -1, 0]]
        for _ in range(19):
            step, state = model(step, state)
            expected.append(step[:, 0, 0])
    torch.testing.assert_close(forecast, torch.stack(expected, dim=1), rtol=0, atol=1e-12)
    # Changing the truth after the context changes nothing: the forecast never peeks.
    peeked = waves.clone()
    peeked[:, 10:] = 5.0
    torch.testing.assert_close(model.forecast(peeked, context=10), forecast, rtol=0, atol=0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_fused_and_loop_models_forecast_alike(cell):
    # The fused path hands single steps (every forecast step after the context) to the cell itself.
    torch.manual_seed(0)
    loop = SineForecaster(model={"cell": cell, "hidden_size": 6, "impl": "loop"}).double()
    fused = SineForecaster(model={"cell": cell, "hidden_size": 6, "impl": "fused"}).double()
    fused.load_state_dict(loop.state_dict())
    waves = torch.randn(2, 30, dtype=torch.float64)
    torch.testing.assert_close(fused.forecast(waves, context=10), loop.forecast(waves, context=10), rtol=0, atol=1e-12)


def test_bidirectional_is_refused_on_the_forecast_task():
    with pytest.raises(ValueError, match="bidirectional=true is impossible on the sine task"):
        SineForecaster(model={"bidirectional": True})


def test_checkpoint_loads_with_no_extra_arguments(tmp_path):
    model = SineForecaster(model={"cell": "rnn", "hidden_size": 5, "num_layers": 2}, head_hidden=4, optim=LBFGS)
    trainer = small_trainer(tmp_path, epochs=1)
    trainer.fit(model, datamodule=SineDataModule(length=40, context=20))
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = SineForecaster.load_from_checkpoint(path)  # weights_only load: hyperparameters are plain data
    assert loaded.hparams.model == {"cell": "rnn", "hidden_size": 5, "num_layers": 2}
    assert loaded.automatic_optimization is False
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a.float(), b, rtol=0, atol=0, msg=name)  # loaded as float32
