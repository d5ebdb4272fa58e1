"""The sweep report keeps every job (crashed ones too), groups seeds, and writes md, csv and TensorBoard."""

import csv
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rnn_lightning.cli.report import build_report, fmt_number, fmt_seconds, fmt_stats, main
from rnn_lightning.cli.report_table import MISSING_ERROR, ReportError, Stats, find_job_dirs, group_rows

BASE_CONFIG = {
    "task": "sentiment",
    "seed": 42,
    "model": {"hidden_size": 128},
    "optim": {"lr": 0.001},
    "data": {"batch": 100},
    "trainer": {"epochs": 200},
}
SWEEP = {  # job -> (optim, batch, best_val, test metrics, epochs run, wall seconds)
    "0": ("adam", 50, 0.781, {"test/acc": 0.772, "test/f1": 0.768}, 12, 83.2),
    "1": ("adam", 200, 0.75, {"test/acc": 0.74, "test/f1": 0.73}, 20, 40.04),
    "2": ("sgdm", 50, 0.7, {"test/acc": 0.69, "test/f1": 0.65}, 30, 90.06),
    "3": ("sgdm", 200, 0.6, {"test/acc": 0.61, "test/forecast_mse": 7.2e-06}, 40, 10.0),
}
# Three seeds of one gru configuration; numbered past 9 so the row order also checks natural sorting.
SEEDS = {"8": (1, 0.80, 0.79), "9": (2, None, None), "10": (3, 0.84, 0.83)}
HEADER = ["job", "overrides", "task", "model", "optim", "batch", "lr", "epochs", "epochs_run", "seed"]
HEADER += [
    "monitor",
    "best_val",
    "test/acc",
    "test/f1",
    "test/forecast_mse",
    "wall_seconds",
    "status",
    "error",
]


def write_job(root: Path, name: str, overrides: list[str], metrics: dict | None) -> Path:
    """A Hydra job folder; ``metrics=None`` leaves out metrics.json, like a job that crashed early."""
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(BASE_CONFIG))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    return job


def job_metrics(overrides, model="lstm", optim="adam", batch=100, seed=42, **fields) -> dict:
    params = {"task": "sentiment", "model": model, "optim": optim, "lr": 0.001, "batch": batch}
    params |= {"epochs": 200, "seed": seed, "hidden_size": 128, "num_layers": 1, "bidirectional": False}
    base = {"task": "sentiment", "status": "completed", "error": None, "monitor": "val/acc", "mode": "max"}
    return base | {"overrides": overrides, "params": params} | fields


def write_sweep(root: Path) -> Path:
    """4 jobs of an optim x batch sweep, 3 seeds of a gru run (seed 2 failed), 1 job without metrics."""
    for name, (optim, batch, best, test, epochs, wall) in SWEEP.items():
        overrides = [f"optim={optim}", f"batch={batch}"]
        fields = {"best_val": best, "test": test, "epochs": epochs, "wall_seconds": wall}
        write_job(root, name, overrides, job_metrics(overrides, optim=optim, batch=batch, **fields))
    for name, (seed, best, acc) in SEEDS.items():
        overrides = ["model=gru", f"seed={seed}"]
        if best is None:
            error = "ValueError: batch must be positive, got -1\nTraceback (most recent call last): ..."
            fields = {"status": "failed", "error": error, "best_val": None, "test": {}, "epochs": 0}
        else:
            fields = {"best_val": best, "test": {"test/acc": acc}, "epochs": 15, "wall_seconds": 50.0 + seed}
        write_job(root, name, overrides, job_metrics(overrides, model="gru", seed=seed, **fields))
    missing = write_job(root, "11", ["optim=rmsprop", "batch=50"], None)
    hydra = {"hydra": {"runtime": {"choices": {"model": "lstm", "optim": "adam"}}}}
    (missing / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    return root


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_has_one_row_per_job_cell_by_cell(tmp_path):
    result = build_report(write_sweep(tmp_path / "sweep"), out=tmp_path / "out", tensorboard=False)
    rows = read_csv(tmp_path / "out" / "report.csv")
    assert list(rows[0]) == HEADER
    assert [row["job"] for row in rows] == ["0", "1", "2", "3", "8", "9", "10", "11"]
    assert rows[0] == {
        "job": "0", "overrides": "optim=adam batch=50", "task": "sentiment", "model": "lstm", "optim": "adam",
        "batch": "50", "lr": "0.001", "epochs": "200", "epochs_run": "12", "seed": "42", "monitor": "val/acc",
        "best_val": "0.781",
        "test/acc": "0.772", "test/f1": "0.768", "test/forecast_mse": "", "wall_seconds": "83.2",
        "status": "completed", "error": "",
    }  # fmt: skip
    assert rows[3]["test/forecast_mse"] == "7.2e-06" and rows[3]["test/f1"] == ""
    assert rows[5] == dict.fromkeys(HEADER, "") | {
        "job": "9", "overrides": "model=gru seed=2", "task": "sentiment", "model": "gru", "optim": "adam",
        "batch": "100", "lr": "0.001", "epochs": "200", "epochs_run": "0", "seed": "2", "monitor": "val/acc",
        "status": "failed", "error": "ValueError: batch must be positive, got -1",
    }  # fmt: skip
    # No metrics.json: settings recovered from config.yaml, hydra.yaml's choices and the overrides.
    assert rows[7] == dict.fromkeys(HEADER, "") | {
        "job": "11", "overrides": "optim=rmsprop batch=50", "task": "sentiment", "model": "lstm",
        "optim": "rmsprop", "batch": "50", "lr": "0.001", "epochs": "200", "seed": "42",
        "status": "missing", "error": MISSING_ERROR,
    }  # fmt: skip
    assert result.exit_code == 1
    assert result.paths == {
        "markdown": tmp_path / "out" / "report.md",
        "csv": tmp_path / "out" / "report.csv",
    }


def test_markdown_formats_numbers_and_escapes_pipes(tmp_path):
    root = write_sweep(tmp_path)
    metrics = json.loads((root / "9" / "metrics.json").read_text())
    (root / "9" / "metrics.json").write_text(json.dumps(metrics | {"error": "KeyError: 'a|b'"}))
    markdown = build_report(root, tensorboard=False).markdown
    lines = markdown.splitlines()
    assert lines[2] == "8 jobs: 6 ok, 1 failed, 1 missing."
    row_0 = "| 0 | optim=adam batch=50 | sentiment | lstm | adam | 50 | 0.001 | 200 | 12 | 42 | val/acc | 0.781 |"
    assert row_0 + " 0.772 | 0.768 |  | 83.2 | completed |  |" in lines
    assert any(line.startswith("| 2 |") and "| 90.1 |" in line for line in lines)
    assert any(line.startswith("| 3 |") and "| 7.2e-06 |" in line for line in lines)
    assert any(line.startswith("| 9 |") and line.endswith("| failed | KeyError: 'a\\|b' |") for line in lines)
    assert (root / "report.md").read_text() == markdown


def test_seeds_are_grouped_with_mean_and_sample_std(tmp_path):
    result = build_report(write_sweep(tmp_path), tensorboard=False)
    assert [[row.job for row in group.rows] for group in result.groups] == [
        ["0"], ["1"], ["2"], ["3"], ["8", "9", "10"], ["11"]
    ]  # fmt: skip
    gru = result.groups[4]
    assert gru.overrides == ["model=gru"]
    assert gru.seeds == [1, 2, 3]
    assert gru.count_label == "2 ok, 1 failed"
    best = gru.stats("best_val")
    assert best.n == 2
    assert best.mean == pytest.approx((0.80 + 0.84) / 2)
    assert best.std == pytest.approx(math.sqrt(((0.80 - 0.82) ** 2 + (0.84 - 0.82) ** 2) / (2 - 1)))
    wall = gru.stats("wall_seconds")
    assert (wall.n, wall.mean, wall.std) == (2, 52.0, pytest.approx(math.sqrt(2)))
    assert result.groups[0].stats("test/acc") == Stats(1, 0.772, None)
    header, _, *lines = result.markdown.split("## Grouped over seeds")[1].strip().splitlines()[2:]
    assert header.startswith("| overrides (without seed) | task | model | optim | batch | lr | seeds | jobs | n |")
    gru_line = "| model=gru | sentiment | gru | adam | 100 | 0.001 | 1, 2, 3 | 2 ok, 1 failed | 2 | val/acc |"
    assert gru_line + " 0.82 ± 0.02828 | 0.81 ± 0.02828 |  |  | 52.0 ± 1.4 |" in lines
    assert "| optim=adam batch=50 | sentiment | lstm | adam | 50 | 0.001 | 42 | 1 ok | 1 | val/acc | 0.781 ± – |" in (
        result.markdown
    )


def test_job_without_metrics_joins_its_seed_group(tmp_path):
    root = write_sweep(tmp_path)
    write_job(root, "12", ["model=gru", "seed=4"], None)
    groups = group_rows(build_report(root, tensorboard=False).rows)
    gru = next(group for group in groups if group.overrides == ["model=gru"])
    assert [row.job for row in gru.rows] == ["8", "9", "10", "12"]
    assert gru.count_label == "2 ok, 1 failed, 1 missing"
    assert gru.seeds == [1, 2, 3, 4]


def test_no_seed_table_when_no_jobs_share_a_configuration(tmp_path):
    for name, optim in [("0", "adam"), ("1", "sgdm")]:
        write_job(tmp_path, name, [f"optim={optim}"], job_metrics([f"optim={optim}"], optim=optim))
    result = build_report(tmp_path, tensorboard=False)
    assert "Grouped over seeds" not in result.markdown
    assert result.exit_code == 0


def test_job_folders_found_at_any_depth_in_natural_order(tmp_path):
    for name in ["b/10", "b/9", "a/2", "10", "9", "b/1/x"]:
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "metrics.json").write_text("{}")
    (tmp_path / "9" / "checkpoints" / ".hydra").mkdir(parents=True)  # inside a job: not another job
    (tmp_path / "report_tb" / "0" / ".hydra").mkdir(parents=True)  # our own output: never a job
    (tmp_path / "notes").mkdir()
    found = [path.relative_to(tmp_path).as_posix() for path in find_job_dirs(tmp_path)]
    assert found == ["9", "10", "a/2", "b/1/x", "b/9", "b/10"]


def test_unfinished_and_broken_metrics_are_reported_not_dropped(tmp_path):
    (tmp_path / "run_a").mkdir()
    (tmp_path / "run_a" / "metrics.json").write_text(json.dumps({"status": "running", "params": {"seed": 1}}))
    (tmp_path / "run_b").mkdir()
    (tmp_path / "run_b" / "metrics.json").write_text('{"status": "comp')  # writer died mid-file
    rows = build_report(tmp_path, tensorboard=False).rows
    assert [(r.job, r.status, r.best_val, r.test, r.overrides) for r in rows] == [
        ("run_a", "running", None, {}, []),
        ("run_b", "unreadable", None, {}, []),
    ]
    assert rows[1].error.startswith("metrics.json: Unterminated string")


def test_exit_codes(tmp_path, capsys):
    good = tmp_path / "good"
    write_job(good, "0", ["optim=adam"], job_metrics(["optim=adam"], best_val=0.5))
    assert main([str(good), "--no-tensorboard"]) == 0
    out = capsys.readouterr().out
    assert "| 0 | optim=adam |" in out and f"wrote {good / 'report.csv'}" in out

    assert main([str(write_sweep(tmp_path / "sweep")), "--no-tensorboard"]) == 1
    assert "2 of 8 jobs did not complete." in capsys.readouterr().err
    assert (tmp_path / "sweep" / "report.csv").exists()  # written despite the failures

    (tmp_path / "empty" / "logs").mkdir(parents=True)
    assert main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert f"no training jobs found under {tmp_path / 'empty'}" in err and "multirun folder" in err
    assert not (tmp_path / "empty" / "report.md").exists()


def test_module_entry_point(tmp_path):
    root = write_sweep(tmp_path)
    args = [sys.executable, "-m", "rnn_lightning.cli.report", str(root), "--no-tensorboard"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "## Grouped over seeds" in done.stdout


REFERENCES = [
    {
        "match": {"model": "gru", "optim": "adam"},
        "metric": "test/acc",
        "value": 0.713,
        "source": "course report",
    },
    {"match": {"optim": "SGDM", "batch": 200, "lr": "1e-3"}, "metric": "test/acc", "value": 0.65},
]


def test_reference_column(tmp_path):
    (tmp_path / "ref.yaml").write_text(yaml.safe_dump(REFERENCES))
    result = build_report(write_sweep(tmp_path / "sweep"), reference=tmp_path / "ref.yaml", tensorboard=False)
    rows = read_csv(tmp_path / "sweep" / "report.csv")
    course = "test/acc 0.713 (course report)"
    expected = ["", "", "", "test/acc 0.65 (reference)", course, course, course, ""]
    assert [row["reference"] for row in rows] == expected
    assert f"| 2 | val/acc | 0.82 ± 0.02828 | 0.81 ± 0.02828 |  |  | 52.0 ± 1.4 | {course} |" in result.markdown


def test_reference_file_in_json_is_read_the_same(tmp_path):
    (tmp_path / "ref.json").write_text(json.dumps([REFERENCES[0] | {"value": 1e-3}]))
    build_report(write_sweep(tmp_path / "sweep"), reference=tmp_path / "ref.json", tensorboard=False)
    rows = read_csv(tmp_path / "sweep" / "report.csv")
    assert [row["reference"] for row in rows][4:7] == ["test/acc 0.001 (course report)"] * 3


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"match": {}}, "must hold a list of entries"),
        ([{"match": {"optimizer": "adam"}, "metric": "test/acc", "value": 0.7}], "matches on ['optimizer']"),
        ([{"match": {"optim": "adam"}, "metric": "test/acc", "value": "high"}], "'value' must be a number"),
        ([{"match": {"optim": "adam"}, "metric": "test/acc", "value": 0.7, "sorce": "x"}], "unknown key(s)"),
    ],
)
def test_bad_reference_file_is_a_clear_error(tmp_path, capsys, entries, message):
    (tmp_path / "ref.yaml").write_text(yaml.safe_dump(entries))
    root = write_sweep(tmp_path / "sweep")
    with pytest.raises(ReportError, match="reference") as caught:
        build_report(root, reference=tmp_path / "ref.yaml", tensorboard=False)
    assert message in str(caught.value)
    assert main([str(root), "--reference", str(tmp_path / "ref.yaml"), "--no-tensorboard"]) == 2
    assert message in capsys.readouterr().err


def test_hparams_events_one_run_per_job(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    result = build_report(write_sweep(tmp_path), tensorboard=True)
    tb_root = tmp_path / "report_tb"
    assert result.paths["tensorboard"] == tb_root
    assert sorted(p.name for p in tb_root.iterdir() if p.is_dir()) == [
        "0",
        "1",
        "10",
        "11",
        "2",
        "3",
        "8",
        "9",
    ]

    def load(job: str) -> tuple[EventAccumulator, dict]:
        events = EventAccumulator(str(tb_root / job))
        events.Reload()
        content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        return events, HParamsPluginData.FromString(content).session_start_info.hparams

    events, hparams = load("0")
    assert (hparams["optim"].string_value, hparams["batch"].number_value) == ("adam", 50)
    assert (hparams["overrides"].string_value, hparams["status"].string_value) == (
        "optim=adam batch=50",
        "completed",
    )
    assert events.Scalars("hparam/test/acc")[0].value == pytest.approx(0.772)
    assert events.Scalars("hparam/best_val")[0].value == pytest.approx(0.781)
    assert math.isnan(events.Scalars("hparam/test/forecast_mse")[0].value)  # same columns in every run

    events, hparams = load("11")
    assert (hparams["status"].string_value, hparams["optim"].string_value) == ("missing", "rmsprop")
    assert math.isnan(hparams["num_layers"].number_value)  # not in config.yaml, and no metrics.json
    assert math.isnan(events.Scalars("hparam/best_val")[0].value)

    build_report(tmp_path, tensorboard=True)  # a rerun replaces the runs rather than adding to them
    assert len(list((tb_root / "0").glob("events.out.tfevents.*"))) == 1


def test_formatting():
    assert [fmt_number(x) for x in (0.77234, 7.2e-06, 0.000123, 12345.6, 200, None)] == [
        "0.7723", "7.2e-06", "0.000123", "1.235e+04", "200", ""
    ]  # fmt: skip
    assert [fmt_seconds(x) for x in (83.26, 40, None)] == ["83.3", "40.0", ""]
    assert fmt_stats(Stats(1, 0.78, None), fmt_number, 1) == "0.78 ± –"
    values = [0.7, 0.71, 0.75]
    stats = Stats(3, statistics.fmean(values), statistics.stdev(values))
    assert fmt_stats(stats, fmt_number, 4) == "0.72 ± 0.02646 (n=3)"
    assert fmt_stats(Stats(0, None, None), fmt_number, 2) == ""
