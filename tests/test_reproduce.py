"""make reproduce: sweeps run through train.py, a failed sweep is recorded, the report cites the course report."""

import json

import pytest

from rnn_lightning.cli import reproduce
from rnn_lightning.cli.reproduce import Experiment

TINY = ["epochs=1", "data.length=60", "data.context=30", "model.hidden_size=6", "optim.max_iter=3", "trainer=cpu"]


def test_reproduce_reports_every_sweep_and_cites_the_course_report(tmp_path, monkeypatch):
    monkeypatch.setattr(
        reproduce,
        "EXPERIMENTS",
        [
            Experiment("sine_lbfgs", ["task=sine", "model=rnn,lstm", *TINY]),
            Experiment("broken", ["task=sine", *TINY, "model.hidden_size=0"]),  # fails when the model is built
            Experiment("glove", ["task=sine", *TINY], needs="a_module_that_is_not_installed"),
        ],
    )
    code = reproduce.main(["--out", str(tmp_path)])
    assert code == 1  # one sweep failed, so the whole reproduction says so
    sweeps = {s["name"]: s["status"] for s in json.loads((tmp_path / "sweeps.json").read_text())}
    assert sweeps["sine_lbfgs"] == "completed"
    assert sweeps["broken"].startswith("failed")
    assert sweeps["glove"] == "skipped"
    broken = json.loads((tmp_path / "broken" / "0" / "metrics.json").read_text())
    assert broken["status"] == "failed" and "hidden_size" in broken["error"]
    report = (tmp_path / "report.md").read_text()
    assert "test/train_mse 2.22e-05 (course report)" in report  # beside the rnn row
    assert "test/train_mse 7.23e-06 (course report)" in report  # beside the lstm row
    assert "- broken: failed" in report
    for name in ("forecast_sine_lbfgs_rnn_lbfgs.png", "forecast_sine_lbfgs_lstm_lbfgs.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 10_000


def test_reproduce_reports_the_ensemble_of_a_seed_sweep(polarity_dir, tmp_path, monkeypatch):
    tiny_sentiment = ["model=gru", "model.hidden_size=8", "epochs=1", "trainer=cpu", f"data.data_dir={polarity_dir}"]
    quick = ["trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]
    monkeypatch.setattr(
        reproduce,
        "EXPERIMENTS",
        [
            Experiment("seeds", [*tiny_sentiment, "seed=1,2"], quick, ensemble=True),
            Experiment("broken_seeds", [*tiny_sentiment, "model.hidden_size=0"], quick, ensemble=True),
        ],
    )
    assert reproduce.main(["--out", str(tmp_path), "--quick"]) == 1  # the broken sweep
    report = (tmp_path / "report.md").read_text()
    ensembles = report.split("## Ensembles")[1]
    accuracies = [
        json.loads((tmp_path / "seeds" / job / "metrics.json").read_text())["test"]["test/acc"] for job in "01"
    ]
    mean = f"{sum(accuracies) / 2:.2%}"
    assert f"- seeds: 2 models, {mean} ±" in ensembles
    assert "- broken_seeds: no ensemble (" in ensembles


def test_course_report_numbers_are_the_published_ones():
    values = {
        (r["match"].get("optim"), r["match"].get("batch"), r["match"]["model"]): r["value"]
        for r in reproduce.COURSE_REPORT
    }
    assert values[("sgdm", 200, "rnn")] == pytest.approx(0.713)
    assert values[("sgdm", 500, "rnn")] == pytest.approx(0.705)
    assert values[("adam", 200, "rnn")] == pytest.approx(0.725)
    assert values[("adam", 500, "rnn")] == pytest.approx(0.734)
    assert values[("lbfgs", None, "rnn")] == pytest.approx(2.22e-5)
    assert values[("lbfgs", None, "lstm")] == pytest.approx(7.23e-6)
