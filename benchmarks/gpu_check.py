"""``make gpu-check``: the GPU's numbers and tests in one run of at most 6 minutes, results under ``--out``.

    python -m benchmarks.gpu_check --out DIR [--budget-s 360] [--only STEP ...] [--rehearse]

Steps, in order, each a subprocess in a process group of its own, with a limit; the limits add up to the budget
(scaled to ``--budget-s``), and what a step leaves unused goes to the steps after it:

| step    | limit s | what                                                                           |
|---------|---------|--------------------------------------------------------------------------------|
| machine | 10      | ``benchmarks.machine``: device, driver, CUDA, cuDNN, fp32 precision, clocks    |
| bench   | 110     | ``benchmarks.gpu_bench``: forward and backward ms per case and impl, vs cuDNN  |
| tests   | 95      | tests/test_cuda.py, test_triton.py less its compile-only ones, test_proving.py |
| sine    | 40      | ``python train.py task=sine trainer=gpu``                                      |
| sweep   | 105     | ``python train.py -m optim=adam,sgdm batch=200,500 trainer=gpu``                |

Each test has a deadline of 40 s (with 4 pytest-xdist workers where it is installed). The sweep adds
``hydra/launcher=parallel`` where conf/hydra/launcher has it, so that its four jobs run at once.

Nothing that finished is lost. ``gpu_check.json`` and ``gpu_check.md`` are rewritten (write, then rename) at the
start, whenever the benchmark has appended rows or a test has ended (looked at every second), after each step, and
when the check is stopped. A step at its limit is stopped, with what it understands: pytest by SIGINT (on which it
still writes its report), a training run by SIGTERM (it saves and records itself as interrupted), the rest by
SIGTERM; SIGKILL for the group after a grace that is part of the limit. SIGTERM or SIGINT to the check stops the
running step the same way and ends the check with the files written.

In ``--out``: gpu_check.json (everything), gpu_check.md (the tables, each target beside its measured value),
gpu_check.log (every step's output, in order), machine.json, bench.jsonl and tests.jsonl (a row or a test per line, as
each ends), tests.xml (pytest's junit report). ``--rehearse`` runs every step on the CPU at tiny sizes, to check the
check itself (docs/gpu.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import gpu_report

ROOT = Path(__file__).resolve().parents[1]
CPU_REFERENCE = ROOT / "benchmarks" / "cpu_reference.json"
PARALLEL_LAUNCHER = ROOT / "conf" / "hydra" / "launcher" / "parallel.yaml"
BUDGET_S = 360
POLL_S = 1.0
TEST_DEADLINE_S = 40
MIN_STEP_S = 2  # a step left less than this is skipped, and says so


@dataclass
class Step:
    name: str
    command: list[str]
    limit_s: float  # its share of the budget
    stop_signal: int = signal.SIGTERM  # what it is asked to stop with at its limit
    grace_s: float = 3.0  # then SIGKILL; part of the limit
    result: dict = field(default_factory=dict)


def planned_steps(python: str, out: Path, work: Path, rehearse: bool) -> list[Step]:
    """The five steps; ``rehearse``: on the CPU, each at a tiny size."""
    trainer = "trainer=cpu" if rehearse else "trainer=gpu"
    bench = ["--rehearse", "--repeats", "1", "--warmup", "0"] if rehearse else []
    # The compile-only tests are CI's (they need no GPU); on a GPU the same kernels compile in the tests that run them.
    tests = ["tests/test_cuda.py", "tests/test_triton.py", "tests/test_proving.py", "-k", "not compile_for_the_gpu"]
    if rehearse:  # one of each file, for the plumbing: CI runs them all on a CPU anyway
        tests = ["tests/test_cuda.py", "tests/test_proving.py", "-k", "cudnns_model_in_float64[gru-False] or runs_the"]
    tiny_sine = ["data.length=60", "data.context=30", "epochs=2", "optim.max_iter=3"] if rehearse else []
    tiny_sweep = ["epochs=1", "model.hidden_size=8", "module.embeddings=null"] if rehearse else []
    tiny_sweep += [f"trainer.limit_{part}_batches=1" for part in ("train", "val", "test")] if rehearse else []
    launcher = ["hydra/launcher=parallel"] if PARALLEL_LAUNCHER.exists() else []
    sweep = [python, "train.py", "-m", "optim=adam,sgdm", "batch=200,500", trainer, *launcher, *tiny_sweep]
    return [
        Step("machine", [python, "-m", "benchmarks.machine", "--out", str(out / "machine.json")], 10),
        Step("bench", [python, "-m", "benchmarks.gpu_bench", "--rows", str(out / "bench.jsonl"), *bench], 110),
        Step("tests", pytest_command(python, out, tests), 95, signal.SIGINT, grace_s=10),
        Step(
            "sine",
            [python, "train.py", "task=sine", trainer, *tiny_sine, f"hydra.run.dir={work / 'sine'}"],
            40,
            grace_s=10,
        ),
        Step("sweep", [*sweep, f"hydra.sweep.dir={work / 'sweep'}"], 105, grace_s=10),
    ]


def pytest_command(
    python: str, out: Path, targets: list[str], deadline_s: float = TEST_DEADLINE_S, workers: int | None = None
) -> list[str]:
    """pytest with a deadline per test and a JSON line per result as it ends (benchmarks/pytest_deadline.py), and its
    junit report, which it writes at the end and on SIGINT. Where pytest-xdist is installed and the machine has the
    cores, 4 workers: the tests' time goes mostly to Triton compiling kernels, on the CPU, one test at a time."""
    plugin = ["-p", "no:cacheprovider", "-p", "benchmarks.pytest_deadline", f"--deadline-s={deadline_s}"]
    reports = [f"--results-log={out / 'tests.jsonl'}", f"--junitxml={out / 'tests.xml'}"]
    if workers is None:
        workers = 4 if importlib.util.find_spec("xdist") and (os.cpu_count() or 1) >= 8 else 0
    parallel = ["-n", str(workers), "--dist", "load"] if workers else []
    return [python, "-m", "pytest", "-q", "-rfE", *plugin, *parallel, *reports, *targets]


class Stopped(Exception):
    """SIGTERM or SIGINT reached the check."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Check:
    def __init__(self, steps: list[Step], out: Path, work: Path, budget_s: float, rehearse: bool) -> None:
        scale = budget_s / sum(step.limit_s for step in steps)
        for step in steps:
            step.limit_s = round(step.limit_s * scale, 1)
        self.steps, self.out, self.work, self.budget_s = steps, out, work, budget_s
        self.start = time.monotonic()
        self.summary: dict = {
            "check": {
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
                "budget_s": budget_s,
                "rehearsal": rehearse,
                "status": "running",
                "limits_s": {step.name: step.limit_s for step in steps},
            },
            "steps": {step.name: {"status": "pending", "limit_s": step.limit_s} for step in steps},
        }
        self.seen = (-1, -1)  # sizes of bench.jsonl and tests.jsonl when last summarised

    def run(self) -> int:
        self.write()
        with (self.out / "gpu_check.log").open("a") as log:
            try:
                for index, step in enumerate(self.steps):
                    self.run_step(step, self.limit_for(index), log)
                    if step.name == "machine" and not self.has_device():
                        self.not_run("no CUDA device")
                        break
            except Stopped as stop:
                for sig in (signal.SIGTERM, signal.SIGINT):  # a second one must not cut the last write short
                    signal.signal(sig, signal.SIG_IGN)
                self.summary["check"]["status"] = f"stopped by {stop}"
                self.not_run("the check was stopped")
                self.write()
                return 128 + stop.signum
        self.summary["check"]["status"] = "complete"
        self.write()
        return 0 if all(s.result.get("status") == "ok" for s in self.steps) else 1

    def not_run(self, why: str) -> None:
        for record in self.summary["steps"].values():
            if record["status"] == "pending":
                record["status"] = f"not run ({why})"

    def limit_for(self, index: int) -> float:
        """Its own limit and whatever the steps before it left unused: the budget left, less the later steps'."""
        left = self.budget_s - (time.monotonic() - self.start)
        return left - sum(step.limit_s for step in self.steps[index + 1 :])

    def run_step(self, step: Step, limit: float, log) -> None:
        record = self.summary["steps"][step.name]
        if limit < MIN_STEP_S:
            step.result = {"status": "skipped", "why": f"{limit:.0f} s of the budget left"}
            record.update(step.result)
            return
        log.write(f"\n==== {step.name} (limit {limit:.0f} s): {' '.join(step.command)}\n")
        log.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TRITON_CACHE_DIR": str(self.work / "triton-cache")}
        if self.summary["check"]["rehearsal"]:
            env["RNN_LIGHTNING_REHEARSE_ON_CPU"] = "1"
        started = time.monotonic()
        record.update(status="running", limit_s=round(limit, 1))
        self.write()
        process = subprocess.Popen(
            step.command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            status = self.wait(process, step, started + limit - step.grace_s, limit)
        except Stopped as stop:
            stop_group(process, step.stop_signal, min(step.grace_s, 5))
            step.result = {"status": f"stopped by {stop}", "wall_s": round(time.monotonic() - started, 1)}
            record.update(step.result)
            raise
        step.result = {"status": status, "wall_s": round(time.monotonic() - started, 1)}
        record.update(step.result)
        self.write()

    def wait(self, process: subprocess.Popen, step: Step, deadline: float, limit: float) -> str:
        while True:
            try:
                code = process.wait(timeout=POLL_S)
                return "ok" if code == 0 else f"exit {code}"
            except subprocess.TimeoutExpired:
                self.refresh()
            if time.monotonic() >= deadline:
                stop_group(process, step.stop_signal, step.grace_s)
                return f"timeout (limit {limit:.0f} s)"

    def refresh(self) -> None:
        """Rewrite the summary when rows or test results came in since the last time."""
        sizes = tuple(_size(self.out / name) for name in ("bench.jsonl", "tests.jsonl"))
        if sizes != self.seen:
            self.seen = sizes
            self.write()

    def has_device(self) -> bool:
        machine = gpu_report.read_json(self.out / "machine.json")  # missing if that step failed: the others say why
        if self.summary["check"]["rehearsal"] or machine.get("device") != "no CUDA device":
            return True
        self.summary["check"]["why_stopped"] = "no CUDA device here: --rehearse runs the steps on the CPU"
        return False

    def write(self) -> None:
        self.summary["check"]["wall_s"] = round(time.monotonic() - self.start, 1)
        summary = gpu_report.collect(self.summary, self.out, self.work)
        reference = gpu_report.read_json(CPU_REFERENCE)
        write_atomically(self.out / "gpu_check.json", json.dumps(summary, indent=1) + "\n")
        write_atomically(self.out / "gpu_check.md", gpu_report.markdown(summary, reference))


def stop_group(process: subprocess.Popen, first: int, grace_s: float) -> None:
    """``first`` to the step's whole process group (pytest's workers, a sweep's jobs), SIGKILL after ``grace_s``."""
    for sig, wait_s in ((first, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def write_atomically(path: Path, text: str) -> None:
    """A reader (or a kill) sees the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w") as sink:
        sink.write(text)
        sink.flush()
        os.fsync(sink.fileno())
    os.replace(temporary, path)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else -1


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


def main(argv: list[str] | None = None, steps=planned_steps) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json, gpu_check.md and logs")
    parser.add_argument("--budget-s", type=float, help=f"all steps together (default {BUDGET_S}, less with --only)")
    parser.add_argument("--rehearse", action="store_true", help="every step on the CPU at tiny sizes")
    parser.add_argument("--only", nargs="+", help="run only these steps (machine, bench, tests, sine, sweep)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name in ("bench.jsonl", "tests.jsonl", "tests.xml", "machine.json", "gpu_check.log"):
        (out / name).unlink(missing_ok=True)  # a folder used before: its rows are not this run's
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    chosen = [s for s in steps(sys.executable, out, work, args.rehearse) if not args.only or s.name in args.only]
    if not chosen:
        parser.error(f"--only names none of the steps: {[s.name for s in steps(sys.executable, out, work, False)]}")
    budget = args.budget_s or sum(s.limit_s for s in chosen)  # the steps' own limits, which add up to BUDGET_S
    check = Check(chosen, out, work, budget, args.rehearse)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    code = check.run()
    print((out / "gpu_check.md").read_text())
    return code


if __name__ == "__main__":
    sys.exit(main())
