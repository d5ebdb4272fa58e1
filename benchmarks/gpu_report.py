"""What ``benchmarks/gpu_check.py`` writes: everything its steps left on disk, gathered into one summary, and the
same as markdown tables, each target beside its measured value.

Every reader here takes what is there: a missing file is an empty result, and a line cut short by a kill is skipped,
so a summary can be written at any moment of the check.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

# The targets on an H100/H200 (docs/performance.md), in the order of the table.
TARGETS = (
    ("triton fp64 sine LSTM fwd+bwd vs cuDNN", ">= 3x faster"),
    ("triton fp32 sine, same precision class as cuDNN", "<= 1.0x cuDNN's time"),
    ("sentiment as trained (bi-GRU 128, lengths)", "<= 1.5x cuDNN's time"),
    ("`python train.py task=sine trainer=gpu`", "< 20 s"),
    ("the headline sweep's four jobs", "< 2 min"),
)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def read_lines(path: Path) -> list[dict]:
    """The complete JSON lines of ``path`` (a last line cut short by a kill is left out)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def read_tests(out: Path) -> dict:
    lines = read_lines(out / "tests.jsonl")
    results = [r for r in lines if "test" in r]
    counts: dict[str, int] = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    summary = {"collected": next((r["collected"] for r in lines if "collected" in r), None), **counts}
    ended = [r["finished"] for r in lines if "finished" in r]  # pytest's exit status; 2: stopped by SIGINT
    ran = sum(counts.values())
    summary["finished"] = bool(ended) and ended[0] != 2 and ran == summary["collected"]
    summary["problems"] = [
        f"{r['test']} ({r['when']}): {r.get('message', '')}" for r in results if r["outcome"] in ("failed", "error")
    ]
    summary["over_deadline"] = [r["test"] for r in results if "deadline" in r.get("message", "")]
    summary["printed"] = [r["stdout"] for r in results if "synchronisations" in r.get("stdout", "")]
    junit = out / "tests.xml"
    if junit.exists():
        try:
            suite = ElementTree.parse(junit).getroot().find("testsuite")
            summary["junit"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        except (ElementTree.ParseError, AttributeError):
            summary["junit"] = "unreadable"
    return summary


def read_run(folder: Path) -> dict:
    record = read_json(folder / "metrics.json")
    keys = ("status", "error", "best_val", "test", "epochs", "wall_seconds", "overrides")
    return {key: record[key] for key in keys if key in record}


def collect(summary: dict, out: Path, work: Path) -> dict:
    """``summary`` (the check's own record) with every step's results read from disk, and the targets."""
    full = dict(summary)
    full["machine"] = read_json(out / "machine.json")
    full["bench"] = read_lines(out / "bench.jsonl")
    full["tests"] = read_tests(out)
    full["sine"] = read_run(work / "sine")
    jobs = sorted((p for p in (work / "sweep").glob("[0-9]*") if p.is_dir()), key=lambda p: int(p.name))
    full["sweep"] = {job.name: read_run(job) for job in jobs}
    full["targets"] = targets(full)
    return full


def _rows(summary: dict, case: str) -> dict[str, dict]:
    return {r["impl"]: r for r in summary["bench"] if r.get("case") == case and "ms" in r}


def targets(summary: dict) -> list[dict]:
    """Each target with its measured value and whether it is met (None where nothing was measured)."""
    found = []
    sine = _rows(summary, "sine-fp64")
    if {"triton", "torch"} <= sine.keys():
        speedup = sine["torch"]["ms"] / sine["triton"]["ms"]
        found.append(
            (f"{speedup:.2f}x faster ({sine['triton']['ms']:.1f} vs {sine['torch']['ms']:.1f} ms)", speedup >= 3)
        )
    else:
        found.append(("not measured", None))
    sine32 = _rows(summary, "sine-fp32")
    if {"triton", "torch"} <= sine32.keys():
        ours, theirs = sine32["triton"]["precision"], sine32["torch"]["precision"]
        ratio = sine32["triton"]["ratio"]
        same = ours == theirs
        note = f"{ratio:.2f}x ({ours} both)" if same else f"{ratio:.2f}x, but triton in {ours} and cuDNN in {theirs}"
        found.append((note, ratio <= 1.0 if same else None))
    else:
        found.append(("not measured", None))
    sentiment = _rows(summary, "sentiment")
    if "triton" in sentiment and sentiment["triton"].get("ratio") is not None:
        ratio = sentiment["triton"]["ratio"]
        found.append((f"{ratio:.2f}x ({sentiment['triton']['precision']})", ratio <= 1.5))
    else:
        found.append(("not measured", None))
    found.append(_wall_target(summary, "sine", 20))
    found.append(_wall_target(summary, "sweep", 120, jobs=4))
    judged = not summary["check"].get("rehearsal")  # a rehearsal's tiny sizes say nothing about the targets
    return [
        {"what": w, "target": t, "measured": m, "met": ok if judged else None}
        for (w, t), (m, ok) in zip(TARGETS, found)
    ]


def _wall_target(summary: dict, step: str, limit_s: float, jobs: int = 0) -> tuple[str, bool | None]:
    record = summary["steps"].get(step, {})
    if "wall_s" not in record:
        return record.get("status", "not run"), None
    wall = record["wall_s"]
    if record["status"] != "ok":
        return f"{record['status']} after {wall:.0f} s", False
    if jobs:
        done = sum(1 for r in summary["sweep"].values() if r.get("status") == "completed")
        return f"{wall:.0f} s, {done} of {jobs} jobs completed", wall < limit_s and done == jobs
    return f"{wall:.1f} s", wall < limit_s


def markdown(summary: dict, reference: dict) -> str:
    check, machine = summary["check"], summary.get("machine", {})
    title = machine.get("device", "a device not yet read")
    lines = [f"# GPU check: {title}, {check['started'][:10]}", ""]
    if check.get("rehearsal"):
        lines += ["A rehearsal on the CPU at tiny sizes: it checks the check, its numbers measure nothing.", ""]
    lines += [f"Status: {check['status']}, {check.get('wall_s', 0):.0f} s of a {check['budget_s']:.0f} s budget."]
    if check.get("why_stopped"):
        lines += ["", check["why_stopped"]]
    lines += [
        "",
        *_machine_table(machine),
        "",
        "## Targets",
        "",
        "| what | target | measured | met |",
        "|---|---|---|---|",
    ]
    for t in summary["targets"]:
        met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
        lines.append(f"| {t['what']} | {t['target']} | {t['measured']} | {met} |")
    lines += ["", "## Steps", "", "| step | status | wall s | limit s |", "|---|---|---|---|"]
    for name, record in summary["steps"].items():
        lines.append(f"| {name} | {record['status']} | {record.get('wall_s', '-')} | {record.get('limit_s', '-')} |")
    lines += _bench_table(summary["bench"]) + _tests_section(summary["tests"]) + _end_to_end(summary, reference)
    return "\n".join(lines) + "\n"


def _machine_table(machine: dict) -> list[str]:
    if not machine:
        return []
    smi = machine.get("nvidia_smi", {})
    smi = smi if isinstance(smi, dict) else {"nvidia-smi": smi}
    rows = [(k, machine.get(k)) for k in ("device", "capability", "sms", "memory_gib", "cuda_runtime", "cudnn")]
    rows += [(k, machine.get(k)) for k in ("torch", "triton", "python")]
    rows += list(smi.items()) + [(f"torch.backends.{k}", v) for k, v in machine.get("precision", {}).items()]
    return ["| machine | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows if v is not None)]


def _bench_table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    lines = [
        "",
        "## Forward and backward, ms (medians; x cuDNN = ms over torch's in the same case)",
        "",
        "| case | shape | impl | precision | fwd | bwd | fwd+bwd | x cuDNN | first call s | peak MB | cuDNN algo |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "ms" not in r:
            lines.append(f"| {r['case']} | {r.get('shape', '')} | {r['impl']} | | {r.get('error', '')} | | | | | | |")
            continue
        ratio = f"{r['ratio']:.2f}" if r.get("ratio") is not None else "-"
        lines.append(
            f"| {r['case']} | {r['shape']} | {r['impl']} | {r['precision']} | {r['fwd_ms']:.2f} | {r['bwd_ms']:.2f} "
            f"| {r['ms']:.2f} | {ratio} | {r['first_s']} | {r['peak_mb'] if r['peak_mb'] is not None else '-'} "
            f"| {r['cudnn']} |"
        )
    return lines


def _tests_section(tests: dict) -> list[str]:
    if tests.get("collected") is None:
        return []
    counts = ", ".join(f"{tests.get(k, 0)} {k}" for k in ("passed", "failed", "error", "skipped"))
    ran = sum(tests.get(k, 0) for k in ("passed", "failed", "error", "skipped"))
    lines = ["", "## Tests", "", f"{tests['collected']} collected, {ran} ran: {counts}."]
    if not tests["finished"]:
        lines.append("The run was stopped before its end: the tests after the last one listed did not run.")
    lines += [f"- {p}" for p in tests["problems"]] + [f"- printed: {p}" for p in tests["printed"]]
    return lines


def _end_to_end(summary: dict, reference: dict) -> list[str]:
    rows = []
    sine, step = summary["sine"], summary["steps"].get("sine", {})
    if sine or "wall_s" in step:
        test = sine.get("test") or {}
        names = (("train MSE", "test/train_mse"), ("forecast MSE", "test/forecast_mse"))
        mse = [f"{name} {test[key]:.3g}" for name, key in names if isinstance(test.get(key), float)]
        result = ", ".join(mse) or sine.get("status", step.get("status", ""))
        cpu = reference.get("sine_lbfgs_wall_s", "-")
        rows.append(
            f"| `python train.py task=sine` | {step.get('wall_s', '-')} | {sine.get('wall_seconds', '-')} | {cpu} "
            f"| {result} |"
        )
    for job, record in summary["sweep"].items():
        key = " ".join(o for o in record.get("overrides") or [] if o.split("=")[0] in ("optim", "batch"))
        acc = (record.get("test") or {}).get("test/acc")
        result = f"test/acc {acc:.4f}" if isinstance(acc, float) else record.get("status", "")
        cpu = reference.get("sweep_wall_s", {}).get(key, "-")
        rows.append(f"| sweep job {job}: {key} | | {record.get('wall_seconds', '-')} | {cpu} | {result} |")
    sweep = summary["steps"].get("sweep", {})
    if "wall_s" in sweep:
        rows.append(f"| the sweep, all jobs | {sweep['wall_s']} | | | {sweep['status']} |")
    if not rows:
        return []
    head = "| run | command wall s | run's own s | CPU s (2-core x86_64) | result |"
    return ["", "## End to end", "", head, "|---|---|---|---|---|", *rows]
