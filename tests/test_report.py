"""The sweep report: what varied above the table, one row per job (failed and missing ones too), the best job in
bold, seeds as mean ± std, references beside matching rows, and exit codes 0 / 1 / 2."""

import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rnn_lightning.cli.report import ReportError, build_report, load_references, main
from rnn_lightning.cli.sweeps import MISSING

PARAMS = {  # as training/preflight.py (run_params) writes them: the summary keys, then one per override key
    "task": "sentiment",
    "model.cell": "lstm",
    "model.hidden_size": 128,
    "model.num_layers": 1,
    "model.bidirectional": False,
    "model.impl": "fused",
    "optim": "adam",
    "optim.lr": 0.001,
    "scheduler": "none",
    "batch": 64,
    "epochs": 20,
    "seed": 42,
}
# job -> (optim, batch, seed, status, best val/acc, test/acc, test/f1); None for best_val: the job never got one.
SWEEP = {
    "0": ("adam", 200, 42, "completed", 0.7012345678, 0.69, 0.68),
    "1": ("adam", 500, 42, "completed", 0.7512345678, 0.74, 0.70),
    "2": ("sgdm", 200, 42, "failed", None, None, None),
    "3": ("sgdm", 500, 1, "completed", 0.60, 0.61, 0.55),
    "4": ("sgdm", 500, 2, "completed", 0.64, 0.62, 0.57),
}
ERROR = "ValueError: optim.lr must be positive, got -1"


def write_job(root: Path, name: str, overrides: list[str], record: dict | None) -> Path:
    """A job folder as a sweep leaves it; ``record=None`` leaves out metrics.json (crashed before writing it)."""
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if record is not None:
        (job / "metrics.json").write_text(json.dumps(record))
    return job


def record(overrides: list[str], params: dict, status="completed", best=None, test=None, **fields) -> dict:
    return {
        "status": status, "error": ERROR if status == "failed" else None, "task": params["task"],
        "monitor": "val/acc" if params["task"] == "sentiment" else "val/forecast_mse",
        "mode": "max" if params["task"] == "sentiment" else "min", "best_val": best, "test": test or {},
        "epochs": 0 if status == "failed" else 12, "wall_seconds": 83.25, "overrides": overrides,
        "resumed_from": None, "params": params,
    } | fields  # fmt: skip


def write_sweep(root: Path) -> Path:
    """optim x batch, sgdm/500 over seeds 1, 2 and a third seed that left no metrics.json (job 10)."""
    for name, (optim, batch, seed, status, best, acc, f1) in SWEEP.items():
        overrides = [f"optim={optim}", f"batch={batch}"] + ([f"seed={seed}"] if seed != 42 else [])
        params = PARAMS | {"optim": optim, "batch": batch, "seed": seed}
        test = {} if acc is None else {"test/acc": acc, "test/f1": f1}
        write_job(root, name, overrides, record(overrides, params, status, best, test))
    write_job(root, "10", ["optim=sgdm", "batch=500", "seed=3"], None)
    return root


def markdown_rows(markdown: str, section: str) -> list[str]:
    """The table lines (header first, separator dropped) of one ``## section``."""
    lines = markdown.split(f"## {section}\n\n")[1].split("\n\n")
    table = next(block for block in lines if block.startswith("|")).splitlines()
    return [table[0], *table[2:]]


def test_report_leads_with_what_varied_the_constant_settings_and_the_best_job(tmp_path, monkeypatch):
    write_sweep(tmp_path / "sweep")
    monkeypatch.chdir(tmp_path)
    assert main(["sweep"]) == 1
    lead = (tmp_path / "sweep" / "report.md").read_text().split("## Jobs")[0].strip().split("\n\n")
    constant = ", ".join(f"`{k}={v}`" for k, v in PARAMS.items() if k not in ("optim", "batch", "seed"))
    assert lead == [
        "# Sweep report: sweep",
        "6 jobs: 4 completed, 1 failed, 1 missing.",
        "**Varied:** `optim`, `batch`, `seed`.",
        f"**Constant:** {constant.replace('False', 'false')}.",
        "**Best val/acc:** 0.7512 in job 1 (`optim=adam`, `batch=500`, `seed=42`), in bold below.",
    ]


def test_one_row_per_job_varied_values_first_then_metrics_best_in_bold(tmp_path):
    report = build_report(write_sweep(tmp_path))
    assert markdown_rows(report.markdown, "Jobs") == [
        "| optim | batch | seed | best val/acc | test/acc | test/f1 | epochs run | wall [s] | status | error | job |",
        "| adam | 200 | 42 | 0.7012 | 0.69 | 0.68 | 12 | 83.25 | completed |  | 0 |",
        "| **adam** | **500** | **42** | **0.7512** | **0.74** | **0.7** | **12** | **83.25** | **completed** |  "
        "| **1** |",
        f"| sgdm | 200 | 42 |  |  |  | 0 | 83.25 | failed | {ERROR} | 2 |",
        "| sgdm | 500 | 1 | 0.6 | 0.61 | 0.55 | 12 | 83.25 | completed |  | 3 |",
        "| sgdm | 500 | 2 | 0.64 | 0.62 | 0.57 | 12 | 83.25 | completed |  | 4 |",
        f"| sgdm | 500 | 3 |  |  |  |  |  | missing | {MISSING} | 10 |",  # its settings from its overrides
    ]
    assert report.exit_code == 1


def test_csv_is_the_jobs_table_with_every_digit_and_the_best_row(tmp_path):
    build_report(write_sweep(tmp_path))
    with (tmp_path / "report.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        *markdown_rows((tmp_path / "report.md").read_text(), "Jobs")[0].strip("| ").split(" | "),
        "best",
    ]
    assert [row["job"] for row in rows] == ["0", "1", "2", "3", "4", "10"]
    assert rows[1]["best val/acc"] == "0.7512345678" and rows[1]["wall [s]"] == "83.25"
    assert [row["best"] for row in rows] == ["", "yes", "", "", "", ""]
    assert (rows[5]["status"], rows[5]["error"], rows[5]["seed"]) == ("missing", MISSING, "3")


def test_jobs_alike_but_for_the_seed_are_grouped_as_mean_and_sample_std(tmp_path):
    markdown = build_report(write_sweep(tmp_path)).markdown
    header, *groups = markdown_rows(markdown, "Over seeds")
    assert header == "| optim | batch | seeds | jobs | best val/acc | test/acc | test/f1 | epochs run | wall [s] |"
    best = f"{statistics.fmean([0.60, 0.64]):.4g} ± {statistics.stdev([0.60, 0.64]):.2g}"
    assert best == "0.62 ± 0.028"
    acc = f"{statistics.fmean([0.61, 0.62]):.4g} ± {statistics.stdev([0.61, 0.62]):.2g}"
    assert (
        groups[3]
        == f"| sgdm | 500 | 1, 2, 3 | 2 completed, 1 missing | {best} | {acc} | 0.56 ± 0.014 | 12 ± 0 | 83.25 ± 0 |"
    )
    assert groups[0] == "| adam | 200 | 42 | 1 completed | 0.7012 ± – | 0.69 ± – | 0.68 ± – | 12 ± – | 83.25 ± – |"
    assert groups[2] == "| sgdm | 200 | 42 | 0 completed, 1 failed |  |  |  |  |  |"  # counted, not in any mean
    assert len(groups) == 4


def test_no_seed_table_when_the_seed_did_not_vary(tmp_path):
    for name, optim in [("0", "adam"), ("1", "sgdm")]:
        write_job(tmp_path, name, [f"optim={optim}"], record([f"optim={optim}"], PARAMS | {"optim": optim}, best=0.5))
    report = build_report(tmp_path)
    assert "## Over seeds" not in report.markdown and report.exit_code == 0
    assert "**Varied:** `optim`." in report.markdown


def test_the_best_job_follows_each_tasks_mode(tmp_path):
    """A folder of sweeps of both tasks (as reproduce's): val/acc up, val/forecast_mse down, one best each."""
    sine = PARAMS | {"task": "sine", "optim": "lbfgs"}
    for name, params, best in [("a/0", PARAMS, 0.7), ("a/1", PARAMS, 0.8), ("b/0", sine, 0.02), ("b/1", sine, 0.01)]:
        write_job(tmp_path, name, [], record([], params, best=best))
    report = build_report(tmp_path)
    assert "**Best val/acc:** 0.8 in job a/1 (`task=sentiment`, `optim=adam`), in bold below." in report.markdown
    assert "**Best val/forecast_mse:** 0.01 in job b/1 (`task=sine`, `optim=lbfgs`), in bold below." in report.markdown
    rows = markdown_rows(report.markdown, "Jobs")
    assert (
        rows[0]
        == "| task | optim | best val/acc | best val/forecast_mse | epochs run | wall [s] | status | error | job |"
    )
    assert [row.startswith("| **") for row in rows[1:]] == [False, True, False, True]


def test_an_unreadable_metrics_json_is_listed_not_dropped(tmp_path):
    write_sweep(tmp_path)
    (tmp_path / "4" / "metrics.json").write_text('{"status": "comp')
    report = build_report(tmp_path)
    row = next(row for row in markdown_rows(report.markdown, "Jobs") if row.endswith("| 4 |"))
    assert "| unreadable | metrics.json: Unterminated string" in row and row.startswith("| sgdm | 500 | 2 |")


def test_exit_codes_and_what_the_messages_say(tmp_path, capsys):
    good = tmp_path / "good"
    write_job(good, "0", [], record([], PARAMS, best=0.5))
    assert main([str(good)]) == 0
    assert "wrote" in capsys.readouterr().out

    assert main([str(write_sweep(tmp_path / "sweep"))]) == 1
    assert "2 of 6 jobs did not complete" in capsys.readouterr().err

    (tmp_path / "empty" / "logs").mkdir(parents=True)
    assert main([str(tmp_path / "empty")]) == 2
    assert "no job folders under" in capsys.readouterr().err
    assert not (tmp_path / "empty" / "report.md").exists()
    assert main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "nowhere is not a folder; expected a sweep folder" in err and "DIR/0/" in err


def test_no_tensorboard_runs_and_no_path_of_this_machine(tmp_path):
    root = write_sweep(tmp_path / "sweep")
    before = {path for path in root.rglob("*")}
    markdown = build_report(root.resolve()).markdown
    assert {path for path in root.rglob("*")} - before == {root / "report.md", root / "report.csv"}
    assert markdown.startswith("# Sweep report: sweep\n") and str(tmp_path) not in markdown


def test_optuna_study_results_below_the_table(tmp_path):
    write_sweep(tmp_path)
    results = {"name": "optuna", "best_params": {"optim": "adam", "batch": 500}, "best_value": 0.7512345678}
    (tmp_path / "optimization_results.yaml").write_text(yaml.safe_dump(results, sort_keys=False))
    study = build_report(tmp_path).markdown.split("## Optuna study\n\n")[1]
    assert study == "Best value 0.7512 with optim=adam batch=500 (optimization_results.yaml; jobs 1).\n"


REFERENCES = [
    {"match": {"optim": "sgdm", "batch": 500}, "metric": "test/acc", "value": 0.705, "source": "course report"},
    {"match": {"optim": "adam", "optim.lr": "1e-3", "batch": 200}, "metric": "test/acc", "value": 0.725},
]


def test_references_beside_the_matching_rows(tmp_path):
    (tmp_path / "references.yaml").write_text(yaml.safe_dump(REFERENCES))
    root = write_sweep(tmp_path / "sweep")
    assert main([str(root), "--references", str(tmp_path / "references.yaml")]) == 1
    rows = markdown_rows((root / "report.md").read_text(), "Jobs")
    assert rows[0].endswith("| job | reference |")
    # "1e-3", text to YAML, still equals 0.001; a reference without a source says "reference"
    references = [row.rsplit(" | ", 1)[1].rstrip(" |") for row in rows[1:]]
    assert references == ["test/acc 0.725 (reference)", "", "", *["test/acc 0.705 (course report)"] * 3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{match: {optim: adam}}", "must hold a YAML list of mappings, like"),
        ("- [optim, adam]", "must hold a YAML list of mappings, like"),
        ("- {metric: test/acc, value: 0.7}", "entry 1: 'match' must map params to their values"),
        ("- {match: {optim: adam}, metric: test/acc, value: 0.7, sorce: x}", "entry 1: unknown key 'sorce'"),
        ("- {match: {optim: adam}, metric: test/acc, value: high}", "entry 1: 'value' must be a number, got 'high'"),
        ("- {match: {model: rnn}, metric: test/acc, value: 0.7}", "matches on ['model'], which no job has"),
        ("- {match: {optim: adam", "cannot read the references file"),
    ],
)
def test_a_malformed_references_file_is_a_clear_error(tmp_path, capsys, text, message):
    (tmp_path / "references.yaml").write_text(text)
    root = write_sweep(tmp_path / "sweep")
    assert main([str(root), "--references", str(tmp_path / "references.yaml")]) == 2
    assert message in capsys.readouterr().err
    assert not (root / "report.md").exists()


def test_a_missing_references_file_says_so():
    with pytest.raises(ReportError, match="cannot read the references file nowhere.yaml"):
        load_references(Path("nowhere.yaml"))


def test_python_m_entry_point(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "rnn_lightning.cli.report", "sweep"],
        cwd=write_sweep(tmp_path / "sweep").parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("# Sweep report: sweep\n") and "## Over seeds" in done.stdout


def test_without_a_folder_the_newest_sweep_is_reported_not_the_last_entry(tmp_path, monkeypatch, capsys):
    sweeps = tmp_path / "multirun"
    write_job(sweeps / "2026-01-02" / "09-00-00_000001", "0", [], record([], PARAMS, best=0.5))
    write_job(sweeps / "2026-01-01" / "23-00-00_000001", "0", [], record([], PARAMS, best=0.4))
    (sweeps / "2026-01-02" / "10-00-00_000001").mkdir()  # started, nothing in it yet
    (sweeps / "2026-01-02" / "notes.txt").write_text("the last entry of multirun/*/*, and a file")
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    assert "reporting on multirun/2026-01-02/09-00-00_000001, the newest sweep" in capsys.readouterr().err
    assert (sweeps / "2026-01-02" / "09-00-00_000001" / "report.md").is_file()


def test_without_a_folder_and_no_sweep_it_says_what_to_give(tmp_path, monkeypatch, capsys):
    (tmp_path / "multirun" / "2026-01-02").mkdir(parents=True)
    (tmp_path / "multirun" / "2026-01-02" / "notes.txt").write_text("not a sweep")
    monkeypatch.chdir(tmp_path)
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "no sweep folder under multirun/" in err and "(with make: DIR=multirun/DATE/TIME)" in err


@pytest.mark.parametrize("target", ["report", "ensemble"])
def test_make_passes_no_folder_unless_dir_is_given(tmp_path, target):
    # The Makefile once took the last entry of multirun/*/* itself, a file as readily as a sweep folder.
    (tmp_path / "multirun" / "2026-01-02").mkdir(parents=True)
    (tmp_path / "multirun" / "2026-01-02" / "notes.txt").write_text("")
    makefile = Path(__file__).resolve().parents[1] / "Makefile"
    command = ["make", "-n", "-s", "-f", str(makefile), target, "PYTHON=python"]
    environment = {key: value for key, value in os.environ.items() if key not in ("DIR", "ARGS")}
    dry_run = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60)
    assert dry_run.stdout.split() == ["python", "-m", f"rnn_lightning.cli.{target}"]


def test_a_sweep_under_way_shows_each_jobs_state_and_which_are_still_running(tmp_path):
    """completed, running (its folder's lock held), killed (a running record, the lock free), interrupted,
    failed, and queued: the command's jobs without a folder yet (Hydra's multirun.yaml lists the command)."""
    from rnn_lightning.training.run_folder import RunFolderLock

    multirun = {
        "hydra": {
            "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "params": None},
            "sweep": {"dir": str(tmp_path), "subdir": "${hydra.job.num}"},
            "overrides": {"task": ["optim=adam,sgdm", "batch=200,500,800"]},
        }
    }
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    states = ["completed", "running", "running", "interrupted", "failed"]
    for number, status in enumerate(states):
        optim, batch = ("adam", "sgdm")[number // 3], (200, 500, 800)[number % 3]
        overrides = [f"optim={optim}", f"batch={batch}"]
        write_job(
            tmp_path, str(number), overrides, record(overrides, PARAMS | {"optim": optim, "batch": batch}, status)
        )
    write_job(tmp_path, "5", ["optim=sgdm", "batch=800"], None)  # a folder, no record yet: preparing
    with RunFolderLock(tmp_path / "1"), RunFolderLock(tmp_path / "5"):
        report = build_report(tmp_path)
        shown = {job.name: job.record["status"] for job in report.jobs}
        assert shown == dict(zip("012345", ["completed", "running", "killed", "interrupted", "failed", "running"]))
        assert report.markdown.splitlines()[2] == "6 jobs: 1 completed, 2 running, 1 killed, 1 interrupted, 1 failed."
    assert {job.name: job.record["status"] for job in build_report(tmp_path).jobs}["1"] == "killed"  # lock let go
    (tmp_path / "5").rename(tmp_path / "later")
    jobs = {job.name: job for job in build_report(tmp_path).jobs}
    assert jobs["5"].record["status"] == "queued" and jobs["5"].params == {"optim": "sgdm", "batch": 800}
    assert "no process holds its folder: it was killed" in jobs["2"].record["error"]
