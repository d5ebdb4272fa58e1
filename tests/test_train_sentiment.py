"""train.py on the real movie reviews: composed config, a real sweep, and predict from a checkpoint."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra_compose import compose_config

from rnn_lightning.cli.predict import classify, load_classifier
from rnn_lightning.training.run import train

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "model.hidden_size=16",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=4",
]


def test_sentiment_is_the_default_task_with_the_report_split(polarity_dir, tmp_path):
    cfg = compose_config([f"data.data_dir={polarity_dir}"], tmp_path)
    assert cfg.task_name == "sentiment" and cfg.optim._target_ == "torch.optim.Adam"
    assert (cfg.data.max_len, cfg.data.train_per_class, cfg.optim.lr) == (51, 4000, 0.001)


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
def test_fast_dev_run_through_the_composed_config(model, polarity_dir, tmp_path):
    cfg = compose_config(
        [f"model={model}", f"data.data_dir={polarity_dir}", "model.hidden_size=8", "+trainer.fast_dev_run=2"],
        tmp_path,
    )
    train(cfg)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "completed" and record["params"]["model"] == model
    assert 0.0 <= record["test"]["test/acc"] <= 1.0 and "test/f1" in record["test"]
    assert (tmp_path / "figures" / "confusion.png").stat().st_size > 5_000


def test_predict_round_trips_from_a_saved_checkpoint(polarity_dir, tmp_path):
    cfg = compose_config([f"data.data_dir={polarity_dir}", *TINY, "epochs=1", "model=gru"], tmp_path / "run")
    train(cfg)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    texts = ["an utterly charming film", "a dull , lifeless mess"]
    expected = classify(load_classifier(checkpoint), texts)
    env = {k: v for k, v in os.environ.items() if k != "RNN_LIGHTNING_DATA_DIR"}  # no data files needed
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnn_lightning.cli.predict",
            f"ckpt_path={checkpoint}",
            *(f"text={t}" for t in texts),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    lines = [line.split("\t") for line in done.stdout.strip().splitlines()]
    assert [(label, float(p), text) for label, p, text in lines] == [
        (label, pytest.approx(p, abs=1e-3), text) for (label, p), text in zip(expected, texts)
    ]
    assert all(0.5 <= float(p) <= 1.0 and label in ("positive", "negative") for label, p, _ in lines)


def test_predict_refuses_a_sine_checkpoint(tmp_path):
    from hydra_compose import QUICK_LBFGS, TINY_SINE

    train(compose_config([*TINY_SINE, QUICK_LBFGS, "epochs=1"], tmp_path))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnn_lightning.cli.predict",
            f"ckpt_path={tmp_path}/checkpoints/last.ckpt",
            "text=x",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        done.returncode != 0
        and "last.ckpt is a sine checkpoint; predict classifies text with a sentiment one" in done.stderr
    )


def test_sweep_over_optimizers_and_batches(polarity_dir, tmp_path):
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "trainer=cpu",
        "epochs=1",
        *TINY,
        "model=rnn",
        "optim=adam,sgdm",
        "batch=200,500",
        f"data.data_dir={polarity_dir}",
        f"hydra.sweep.dir={tmp_path}",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads((tmp_path / str(i) / "metrics.json").read_text()) for i in range(4)]
    assert {(r["params"]["optim"], r["params"]["batch"]) for r in records} == {
        ("adam", 200),
        ("adam", 500),
        ("sgdm", 200),
        ("sgdm", 500),
    }
    for job, record in enumerate(records):
        assert record["status"] == "completed" and record["epochs"] == 1
        assert 0.3 < record["test"]["test/acc"] < 0.8
        run = next((tmp_path / str(job) / "tensorboard").iterdir())
        assert list(run.glob("events.out.tfevents.*"))
        assert torch.load(tmp_path / str(job) / "checkpoints" / "last.ckpt", weights_only=True)["vocabulary"]
