"""``make gpu-check``: the GPU story in one prepared run, under 8 minutes of a lent H200, results under ``--out``.

    python -m benchmarks.gpu_check --out DIR [--budget-s 450] [--rehearse]

Steps, in order of importance, each a subprocess with its own time limit inside one overall budget (a step that does
not fit is skipped and says so):

1. ``tests``: the CUDA-only tests (tests/test_cuda.py: every impl equal to cuDNN in float64, autocast across impls,
   no synchronisation of ours in a training step, exact resume) and tests/test_triton.py on compiled kernels;
2. ``bench``: ``benchmarks.cells --device cuda``: rows fused, triton and torch (cuDNN), float32 and float64, at the
   sine and sentiment shapes, each a ratio to cuDNN measured in the same run with CUDA events after warm-up;
3. ``sine``: the sine LBFGS default run (``python train.py task=sine trainer=gpu``), wall time and its numbers;
4. ``sweep``: the headline sweep ``python train.py -m optim=adam,sgdm batch=200,500 trainer=gpu``, wall per job.

Writes ``gpu_check.json`` (everything) and ``gpu_check.md`` (tables, with the CPU's figures from
benchmarks/cpu_reference.json beside the GPU's) and one log per step. ``--rehearse`` runs the same plumbing on the
CPU with tiny settings, to check the script itself before spending device time. docs/gpu.md says how to run it on
the lent machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CPU_REFERENCE = ROOT / "benchmarks" / "cpu_reference.json"


@dataclass
class Step:
    name: str
    command: list[str]
    limit_s: int
    result: dict = field(default_factory=dict)


def steps(python: str, out: Path, work: Path, rehearse: bool) -> list[Step]:
    trainer = "trainer=cpu" if rehearse else "trainer=gpu"
    tiny_sine = ["data.length=60", "data.context=30", "epochs=2", "optim.max_iter=3"] if rehearse else []
    tiny_sweep = ["epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1"] if rehearse else []
    bench = ["--quick", "--cells", "gru", "--no-memory"] if rehearse else ["--repeats", "15", "--warmup", "3"]
    device = "cpu" if rehearse else "cuda"
    return [
        Step(
            "tests",
            [
                python,
                "-m",
                "pytest",
                "-q",
                "-rs",
                "-p",
                "no:cacheprovider",
                "-m",
                "slow or not slow",
                "-s",
                "tests/test_cuda.py",
                "tests/test_triton.py",
                f"--junitxml={out / 'tests.xml'}",
            ],
            200,
        ),
        Step(
            "bench",
            [python, "-m", "benchmarks.cells", "--device", device, "--dtypes", "float32", "float64", "--json", *bench],
            150,
        ),
        Step("sine", [python, "train.py", "task=sine", trainer, *tiny_sine, f"hydra.run.dir={work / 'sine'}"], 120),
        Step(
            "sweep",
            [
                python,
                "train.py",
                "-m",
                "optim=adam,sgdm",
                "batch=200,500",
                trainer,
                *tiny_sweep,
                f"hydra.sweep.dir={work / 'sweep'}",
            ],
            240,
        ),
    ]


def run_step(step: Step, out: Path, remaining_s: float, rehearse: bool) -> None:
    limit = min(step.limit_s, int(remaining_s))
    if limit < 30:
        step.result = {"status": "skipped", "why": f"{remaining_s:.0f} s of the budget left"}
        return
    log = out / f"{step.name}.log"
    start = time.monotonic()
    with log.open("w") as sink:
        try:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"} | ({"RNN_LIGHTNING_REHEARSE_ON_CPU": "1"} if rehearse else {})
            done = subprocess.run(
                step.command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=sink, text=True, timeout=limit
            )
            code, stdout = done.returncode, done.stdout
        except subprocess.TimeoutExpired as expired:
            code, stdout = "timeout", expired.stdout or ""
            stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
        sink.write("\n==== stdout ====\n" + stdout)
    step.result = {"status": "ok" if code == 0 else f"exit {code}", "wall_s": round(time.monotonic() - start, 1)}
    step.result["stdout"] = stdout


def read_tests(out: Path, stdout: str) -> dict:
    report = out / "tests.xml"
    if not report.exists():
        return {}
    suite = ElementTree.parse(report).getroot().find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    failed = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    syncs = [line for line in stdout.splitlines() if line.startswith("synchronisations in")]
    return {**counts, "failed": failed, "synchronisations": syncs}


def read_bench(stdout: str) -> list[dict]:
    start = stdout.find("[")
    return json.loads(stdout[start:]) if start >= 0 else []


def read_run(folder: Path) -> dict:
    path = folder / "metrics.json"
    if not path.exists():
        return {}
    record = json.loads(path.read_text())
    keys = ("status", "error", "best_val", "test", "epochs", "wall_seconds", "overrides")
    return {key: record.get(key) for key in keys}


def summarise(all_steps: list[Step], out: Path, work: Path) -> dict:
    summary: dict = {"steps": {}}
    for step in all_steps:
        result = {k: v for k, v in step.result.items() if k != "stdout"}
        stdout = step.result.get("stdout", "")
        if step.name == "tests":
            result |= read_tests(out, stdout)
        elif step.name == "bench":
            result["rows"] = read_bench(stdout)
        elif step.name == "sine":
            result["run"] = read_run(work / "sine")
        elif step.name == "sweep":
            jobs = sorted(p for p in (work / "sweep").glob("[0-9]*") if p.is_dir())
            result["jobs"] = {job.name: read_run(job) for job in jobs}
        summary["steps"][step.name] = result
    return summary


def markdown(summary: dict, reference: dict) -> str:
    lines = [f"# GPU check: {summary['device']}", "", summary["versions"], ""]
    for name, result in summary["steps"].items():
        lines.append(f"- **{name}**: {result.get('status')} in {result.get('wall_s', '-')} s {result.get('why', '')}")
    tests = summary["steps"].get("tests", {})
    if "tests" in tests:
        lines += [
            "",
            "## Tests",
            "",
            f"{tests['tests']} tests, {tests['failures']} failures, {tests['errors']} errors, "
            f"{tests['skipped']} skipped",
            *(f"- failed: `{name}`" for name in tests["failed"]),
            *(f"- {line}" for line in tests["synchronisations"]),
        ]
    rows = summary["steps"].get("bench", {}).get("rows", [])
    if rows:
        lines += [
            "",
            "## Forward + backward, ms (x cuDNN)",
            "",
            "| shape | dtype | cell | fused | triton | torch (cuDNN) |",
            "|---|---|---|---|---|---|",
        ]
        groups: dict[tuple, dict] = {}
        for row in rows:
            groups.setdefault((row["shape"], row["dtype"], row["cell"]), {})[row["impl"]] = row
        for (shape, dtype, cell), impls in groups.items():
            cells = [
                f"{impls[i]['ms']:.2f} ({impls[i]['ratio']:.2f})" if i in impls and impls[i]["ratio"] else "-"
                for i in ("fused", "triton", "torch")
            ]
            lines.append(f"| {shape} | {dtype} | {cell} | " + " | ".join(cells) + " |")
    rows = []
    sine = summary["steps"].get("sine", {}).get("run", {})
    if sine:
        test = sine.get("test") or {}
        result = f"train MSE {test.get('test/train_mse', float('nan')):.3g}, forecast MSE "
        result += f"{test.get('test/forecast_mse', float('nan')):.3g}"
        rows.append(
            f"| sine LBFGS default | {sine.get('wall_seconds')} | {reference.get('sine_lbfgs_wall_s', '-')} | "
            f"{result} |"
        )
    for job, record in summary["steps"].get("sweep", {}).get("jobs", {}).items():
        key = " ".join(o for o in record.get("overrides") or [] if not o.startswith("trainer"))
        cpu = reference.get("sweep_wall_s", {}).get(key, "-")
        acc = (record.get("test") or {}).get("test/acc")
        acc = f"{acc:.4f}" if isinstance(acc, float) else acc
        rows.append(f"| sweep job {job}: {key} | {record.get('wall_seconds')} | {cpu} | test/acc {acc} |")
    if rows:
        lines += ["", "## End to end", "", "| run | GPU wall s | CPU wall s | result |", "|---|---|---|---|", *rows]
    return "\n".join(lines) + "\n"


def device_and_versions(python: str) -> tuple[str, str]:
    code = (
        "import torch, importlib.util as u; t = u.find_spec('triton'); import sys\n"
        "name = torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device (rehearsal on CPU)'\n"
        "tv = __import__('triton').__version__ if t else 'none'\n"
        "print(name); print(f'python {sys.version.split()[0]}, torch {torch.__version__}, triton {tv}')"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=ROOT)
    lines = (done.stdout.strip().splitlines() or ["unknown", done.stderr.strip()[-300:]]) + [""]
    return lines[0], lines[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json, gpu_check.md and logs")
    parser.add_argument("--budget-s", type=float, default=450, help="all steps together (default 450 s)")
    parser.add_argument("--rehearse", action="store_true", help="the same steps on the CPU with tiny settings")
    parser.add_argument("--only", nargs="+", help="run only these steps (tests, bench, sine, sweep)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"gpu_check_{os.getpid()}"
    python = sys.executable
    start = time.monotonic()
    device, versions = device_and_versions(python)
    print(f"{device}; {versions}", flush=True)
    planned = [s for s in steps(python, out, work, args.rehearse) if not args.only or s.name in args.only]
    for step in planned:
        run_step(step, out, args.budget_s - (time.monotonic() - start), args.rehearse)
        print(f"{step.name}: {step.result['status']} {step.result.get('wall_s', '')}", flush=True)
    summary = {"device": device, "versions": versions, "rehearsal": args.rehearse, **summarise(planned, out, work)}
    summary["wall_s"] = round(time.monotonic() - start, 1)
    reference = json.loads(CPU_REFERENCE.read_text()) if CPU_REFERENCE.exists() else {}
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=1) + "\n")
    text = markdown(summary, reference)
    (out / "gpu_check.md").write_text(text)
    print(text)
    return 0 if all(s.result.get("status") == "ok" for s in planned) else 1


if __name__ == "__main__":
    sys.exit(main())
