"""The headline sweep's wall time, its jobs one after another and several at once on this machine.

    python -m benchmarks.sweep_wall [--epochs 1] [--train-batches 0.25] [--n-jobs 2] [--repeats 1] [--data-dir DIR]

Runs ``python train.py -m optim=adam,sgdm batch=200,500`` (the sentiment default, shortened to ``--epochs`` epochs
of ``--train-batches`` of the training batches) through Hydra's basic launcher (serial: each job takes all cores)
and through ``hydra/launcher=parallel`` with each ``--n-jobs`` (cores / n_jobs threads per job), each sweep into a
fresh temporary folder, ``--repeats`` times in turn (load from other processes then meets every variant alike; the
medians count). Prints each wall (the whole command, interpreter start included), the longest job's own wall, and
the ratios serial / parallel (on a CPU: aim >= 1.3x) and parallel / longest job (on a GPU, where the jobs share the
device: aim <= 1.2). Needs the parallel extra (make install-parallel) and the rt-polarity files (``--data-dir``, or
RNN_LIGHTNING_DATA_DIR, or data/rt-polarity).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADLINE = ["optim=adam,sgdm", "batch=200,500"]


def run_sweep(folder: Path, args: argparse.Namespace, extra: list[str]) -> tuple[float, list[dict]]:
    """The sweep's wall in seconds and its jobs' records; raises with the sweep's output if it fails."""
    command = [sys.executable, str(ROOT / "train.py"), "-m", *HEADLINE, f"epochs={args.epochs}", "trainer=cpu"]
    command += [f"trainer.limit_train_batches={args.train_batches}"]
    command += [f"hydra.sweep.dir={folder}", *extra]
    env = dict(os.environ, **({"RNN_LIGHTNING_DATA_DIR": args.data_dir} if args.data_dir else {}))
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder.parent, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    records = [json.loads(path.read_text()) for path in sorted(folder.glob("*/metrics.json"))]
    return wall, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1, help="epochs per job (default 1)")
    parser.add_argument("--train-batches", type=float, default=0.25, help="share of the training batches (0.25)")
    parser.add_argument("--repeats", type=int, default=1, help="each variant this many times, in turn (default 1)")
    parser.add_argument("--n-jobs", type=int, nargs="+", default=[2], help="jobs at once, one sweep each (default 2)")
    parser.add_argument("--data-dir", help="the rt-polarity folder (default: RNN_LIGHTNING_DATA_DIR or data/)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{platform.machine()}, {cores} usable cores, python {platform.python_version()}; {args.epochs} epoch(s)")
    print(f"sweep: {' '.join(HEADLINE)} (4 jobs)")
    variants = [("serial", []), *((f"parallel n_jobs={n}", parallel(n)) for n in args.n_jobs)]
    walls: dict[str, list[float]] = {name: [] for name, _ in variants}
    longest: dict[str, list[float]] = {name: [] for name, _ in variants}
    with tempfile.TemporaryDirectory(prefix="sweep_wall_") as scratch:
        for repeat in range(args.repeats):
            for name, extra in variants:
                folder = Path(scratch) / f"{repeat}_{name.replace(' ', '_').replace('=', '')}" / "sweep"
                folder.parent.mkdir()
                wall, records = run_sweep(folder, args, extra)
                walls[name].append(wall)
                longest[name].append(max(record["wall_seconds"] for record in records))
                threads = sorted({record["threads"] for record in records})
                print(f"  {name:<20} wall {wall:7.1f} s   longest job {longest[name][-1]:6.1f} s   threads {threads}")
    serial = statistics.median(walls["serial"])
    for name, _ in variants[1:]:
        wall = statistics.median(walls[name])
        print(
            f"{name}: median wall {wall:.1f} s vs serial {serial:.1f} s: serial / parallel = {serial / wall:.2f}x; "
            f"parallel / longest job = {wall / statistics.median(longest[name]):.2f}"
        )


def parallel(n_jobs: int) -> list[str]:
    return ["hydra/launcher=parallel", f"hydra.launcher.n_jobs={n_jobs}"]


if __name__ == "__main__":
    main()
