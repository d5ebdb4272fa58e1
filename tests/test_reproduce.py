"""make reproduce: sweeps run through train.py, a failed sweep is recorded and the others go on, the report cites the
course report, and the figures come from what the jobs wrote (forecast.png, csv/version_*/metrics.csv)."""

import json
from pathlib import Path

import pytest

from rnn_lightning.cli import reproduce
from rnn_lightning.cli.reproduce import Experiment
from rnn_lightning.cli.reproduce_figures import logged_by_epoch, validation_accuracy_figure, write_figures
from rnn_lightning.cli.sweeps import find_jobs

TINY = ["epochs=1", "data.length=60", "data.context=30", "model.hidden_size=6", "optim.max_iter=3", "trainer=cpu"]


def test_reproduce_reports_every_sweep_and_cites_the_course_report(tmp_path, monkeypatch):
    monkeypatch.setattr(
        reproduce,
        "EXPERIMENTS",
        [
            # Fails first, at once (Hydra finds no such model), and the other sweeps still run; ensemble=True: a
            # failed sweep has no ensemble, and the report says why.
            Experiment("broken", ["task=sine", "model=no_such_cell", *TINY], ensemble=True),
            Experiment("sine_lbfgs", ["task=sine", "model=rnn,lstm", *TINY]),
            Experiment("glove", ["task=sine", *TINY], needs="a_module_that_is_not_installed"),
        ],
    )
    assert reproduce.main(["--out", str(tmp_path)]) == 1  # one sweep failed, so the whole reproduction says so
    sweeps = {s["name"]: s["status"] for s in json.loads((tmp_path / "sweeps.json").read_text())}
    assert sweeps == {"broken": "failed (exit 1)", "sine_lbfgs": "completed", "glove": "skipped"}
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# Reproduction of the course report\n\n2 jobs: 2 completed.\n")
    assert "Smoke check" not in report and str(tmp_path) not in report
    rows = {row.split(" | ")[-2]: row for row in report.replace("**", "").splitlines() if row.startswith("| ")}
    assert rows["sine_lbfgs/0"].endswith("| test/train_mse 2.22e-05 (course report) |")  # keyed by the job column
    assert rows["sine_lbfgs/1"].endswith("| test/train_mse 7.23e-06 (course report) |")
    assert "Sweeps\n\n- broken: failed (exit 1), " in report and "\n- sine_lbfgs: completed, " in report
    assert "\n- glove: skipped (a_module_that_is_not_installed is not installed)\n" in report
    assert "\n## Ensembles\n\n- broken: no ensemble (broken " in report  # the sweep's folder, not the path to it
    for job, cell in [("0", "rnn"), ("1", "lstm")]:
        copy = tmp_path / "figures" / f"forecast_sine_lbfgs_{job}_{cell}_lbfgs.png"
        assert copy.read_bytes() == (tmp_path / "sine_lbfgs" / job / "figures" / "forecast.png").read_bytes()
        assert f"![{copy.stem}](figures/{copy.name})" in report
    assert not (tmp_path / "figures" / "sentiment_val_acc.png").exists()  # no sentiment jobs, no accuracy figure


@pytest.mark.slow  # a real two-seed sentiment sweep and its ensemble: ~40 s; make test-full runs it
def test_quick_reproduce_says_smoke_check_and_reports_the_ensemble(polarity_dir, tmp_path, monkeypatch):
    tiny_sentiment = ["model=gru", "model.hidden_size=8", "epochs=2", "trainer=cpu", f"data.data_dir={polarity_dir}"]
    quick = ["trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]
    monkeypatch.setattr(
        reproduce, "EXPERIMENTS", [Experiment("seeds", [*tiny_sentiment, "seed=1,2"], quick, ensemble=True)]
    )
    assert reproduce.main(["--out", str(tmp_path), "--quick"]) == 0
    report = (tmp_path / "report.md").read_text()
    title, note = report.split("\n\n")[:2]
    assert title == "# Reproduction of the course report: quick smoke check"
    assert note.startswith("> **Smoke check, not results.**") and "sliver of the data" in note
    records = [json.loads((tmp_path / "seeds" / job / "metrics.json").read_text()) for job in "01"]
    mean = f"{sum(record['test']['test/acc'] for record in records) / 2:.2%}"
    assert f"## Ensembles\n\n- seeds: 2 models, {mean} ±" in report
    assert (tmp_path / "figures" / "sentiment_val_acc.png").stat().st_size > 10_000
    # The figure's curves are the jobs' logged val/acc: two epochs each, the best of them the job's best_val.
    lines = validation_accuracy_figure(tmp_path, find_jobs(tmp_path)).axes[0].lines
    assert [line.get_label() for line in lines] == ["seeds/0: gru adam batch 64", "seeds/1: gru adam batch 64"]
    for line, record in zip(lines, records):
        assert list(line.get_xdata()) == [1, 2]
        assert max(line.get_ydata()) == pytest.approx(record["best_val"])


def test_nothing_to_report_when_every_sweep_was_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "EXPERIMENTS", [Experiment("glove", ["task=sine"], needs="not_installed_here")])
    monkeypatch.chdir(tmp_path)
    assert reproduce.main(["--out", "out"]) == 1  # nothing was reproduced
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.startswith("# Reproduction of the course report\n\nNothing to report: no job folders under out;")
    assert "## Sweeps\n\n- glove: skipped (not_installed_here is not installed)\n" in report
    assert str(tmp_path) not in report


HEADER = "epoch,step,test/acc,train/loss,val/acc,val/acc_best\n"


def write_sentiment_job(root: Path, name: str, versions: list[str], seed: int) -> Path:
    job = root / name
    params = {"task": "sentiment", "model.cell": "lstm", "optim": "adam", "batch": 64, "seed": seed}
    job.mkdir(parents=True)
    (job / "metrics.json").write_text(json.dumps({"status": "completed", "task": "sentiment", "params": params}))
    for number, rows in enumerate(versions):
        (job / "csv" / f"version_{number}").mkdir(parents=True)
        (job / "csv" / f"version_{number}" / "metrics.csv").write_text(HEADER + rows)
    return job


def test_figures_are_drawn_from_metrics_csv_with_resumed_versions_in_order(tmp_path):
    # version_1 resumed in epoch 1: its row for epoch 1 wins; the test row (epoch 3) has no val/acc.
    first = "0,9,,0.69,0.50,0.50\n0,9,,0.68,,\n1,19,,,0.55,0.55\n"
    resumed = "1,19,,,0.62,0.62\n2,29,,,0.66,0.66\n3,30,0.64,,,\n"
    resumed_job = write_sentiment_job(tmp_path, "sweep/0", [first, resumed], seed=1)
    write_sentiment_job(tmp_path, "sweep/1", ["0,9,,0.7,0.52,0.52\n"], seed=2)
    assert logged_by_epoch(resumed_job) == {
        0: {"train/loss": 0.68, "val/acc": 0.50, "val/acc_best": 0.50},
        1: {"val/acc": 0.62, "val/acc_best": 0.62},
        2: {"val/acc": 0.66, "val/acc_best": 0.66},
        3: {"test/acc": 0.64},
    }
    lines = validation_accuracy_figure(tmp_path, find_jobs(tmp_path)).axes[0].lines
    assert [(list(line.get_xdata()), list(line.get_ydata())) for line in lines] == [
        ([1, 2, 3], [0.50, 0.62, 0.66]),
        ([1], [0.52]),
    ]
    sine = tmp_path / "sweep" / "2"
    (sine / "figures").mkdir(parents=True)
    (sine / "figures" / "forecast.png").write_bytes(b"a forecast")
    sine_params = {"task": "sine", "model.cell": "rnn", "optim": "lbfgs"}
    (sine / "metrics.json").write_text(json.dumps({"status": "completed", "task": "sine", "params": sine_params}))
    written = write_figures(tmp_path)
    assert [path.name for path in written] == ["forecast_sweep_2_rnn_lbfgs.png", "sentiment_val_acc.png"]
    assert written[0].read_bytes() == b"a forecast"


def test_no_accuracy_figure_without_logged_val_acc(tmp_path):
    write_sentiment_job(tmp_path, "0", [], seed=1)  # no csv/ at all: crashed before its first epoch
    assert validation_accuracy_figure(tmp_path, find_jobs(tmp_path)) is None


def test_course_report_numbers_are_the_published_ones():
    values = {
        (r["match"].get("optim"), r["match"].get("batch"), r["match"]["model.cell"]): r["value"]
        for r in reproduce.COURSE_REPORT
    }
    assert values[("sgdm", 200, "rnn")] == pytest.approx(0.713)
    assert values[("sgdm", 500, "rnn")] == pytest.approx(0.705)
    assert values[("adam", 200, "rnn")] == pytest.approx(0.725)
    assert values[("adam", 500, "rnn")] == pytest.approx(0.734)
    assert values[("lbfgs", None, "rnn")] == pytest.approx(2.22e-5)
    assert values[("lbfgs", None, "lstm")] == pytest.approx(7.23e-6)
