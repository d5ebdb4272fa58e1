"""What a sweep varied and what it found: ``python -m rnn_lightning.cli.report DIR [--references FILE]``.

Reads each job's ``metrics.json`` (and an Optuna study's ``optimization_results.yaml``) and writes ``report.md`` and
``report.csv`` into DIR: the settings every job shares, once; one row per job with the settings that differ first and
the best job in bold; jobs that differ only by ``seed`` as mean ± std. Exit code 0 when every job completed, 1 when
any did not, 2 when there is nothing to report.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rnn_lightning.cli.sweeps import SWEEPS, Job, ReportError, find_jobs, job_states, newest_sweep

LAYOUT = "expected a sweep folder as `train.py -m` writes it: a folder per job (DIR/0/, ...) with .hydra/, metrics.json"
EXAMPLE = "- {match: {model.cell: rnn, optim: sgdm, batch: 200}, metric: test/acc, value: 0.713, source: course report}"
Row = dict[str, Any]  # one table row, column title -> value
Reference = dict[str, Any]  # a published figure: {match: {param: value, ...}, metric, value (a float), source}


@dataclass
class Report:
    jobs: list[Job]
    markdown: str
    exit_code: int  # 0 when every job completed, else 1


def split_params(jobs: list[Job]) -> tuple[dict[str, Any], list[str]]:
    """(the settings with one value in every job, the keys of those that differ). A job known only by its overrides
    counts for the keys it overrides."""
    constant, varied = {}, []
    for key in dict.fromkeys(key for job in jobs for key in job.params):
        values = [job.params.get(key) for job in jobs if job.params_known or key in job.params]
        if len({json.dumps(value, sort_keys=True, default=str) for value in values}) == 1:
            constant[key] = values[0]
        else:
            varied.append(key)
    return constant, varied


def best_jobs(jobs: list[Job]) -> dict[str, Job]:
    """The best completed job per monitored metric, by best_val and its mode (a report may cover several tasks)."""
    scored = [job for job in jobs if job.completed and isinstance(job.record.get("best_val"), (int, float))]
    scored = [job for job in scored if math.isfinite(job.record["best_val"])]
    best = {}
    for monitor in dict.fromkeys(job.record.get("monitor") for job in scored):
        group = [job for job in scored if job.record.get("monitor") == monitor]
        pick = max if group[0].record.get("mode") == "max" else min  # on a tie, the first job
        best[monitor] = pick(group, key=lambda job: job.record["best_val"])
    return best


def job_rows(jobs: list[Job], varied: list[str], references: Sequence[Reference]) -> list[Row]:
    """The varied settings first, then the best validation value under its monitor's name, every test metric, ..."""
    monitors = dict.fromkeys(job.record["monitor"] for job in jobs if job.record.get("monitor"))
    tests = dict.fromkeys(name for job in jobs for name in job.record.get("test") or {})
    rows = []
    for job in jobs:
        record, test = job.record, job.record.get("test") or {}
        row = {key: job.params.get(key) for key in varied}
        row |= {f"best {m}": record.get("best_val") if record.get("monitor") == m else None for m in monitors}
        row |= {name: test.get(name) for name in tests}
        row |= {"epochs run": record.get("epochs"), "wall [s]": record.get("wall_seconds")}
        row |= {"status": record.get("status"), "error": record.get("error"), "job": job.name}
        if references:
            row["reference"] = reference_text(references, job.params)
        rows.append(row)
    return rows


def seed_group_rows(rows: list[Row], varied: list[str]) -> list[Row]:
    """One row per set of jobs alike in everything varied but ``seed``: mean ± std over its completed jobs."""
    if "seed" not in varied:
        return []
    shared = [key for key in varied if key != "seed"]
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(json.dumps([row[key] for key in shared], default=str), []).append(row)
    metrics = [key for key in rows[0] if key not in (*varied, "status", "error", "job", "reference")]
    summary = []
    for members in groups.values():
        done = [row for row in members if row["status"] == "completed"]
        summary.append(
            {key: members[0][key] for key in shared}
            | {"seeds": ", ".join(show(row["seed"]) for row in members)}
            | {"jobs": count_statuses([row["status"] for row in members])}
            | {key: mean_std([row[key] for row in done]) for key in metrics}
        )
    return summary if len(summary) < len(rows) else []  # no two jobs alike: nothing to group


def show(value: Any) -> str:
    """A markdown cell: 4 significant digits (whole seconds past 10^4), booleans as overrides write them."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return "" if value is None else str(value)


def mean_std(values: list[Any]) -> str:
    numbers = [value for value in values if isinstance(value, (int, float))]
    if len(numbers) < 2:  # one run says nothing about the spread
        return f"{show(numbers[0])} ± –" if numbers else ""
    return f"{show(statistics.fmean(numbers))} ± {statistics.stdev(numbers):.2g}"


def count_statuses(statuses: list[str | None]) -> str:
    """e.g. "6 completed, 1 failed, 1 missing": completed first, then the rest as first seen."""
    counts = Counter(status or "unknown" for status in statuses)
    return ", ".join([f"{counts['completed']} completed", *(f"{n} {s}" for s, n in counts.items() if s != "completed")])


def markdown_table(rows: list[Row], bold: Sequence[bool] = ()) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    texts = [[show(value) for value in row.values()] for row in rows]
    bold = bold or [False] * len(rows)
    body = [[f"**{text}**" if text and strong else text for text in row] for row, strong in zip(texts, bold)]
    return "\n".join([line(list(rows[0])), line(["---"] * len(rows[0])), *map(line, body)])


def lead(jobs: list[Job], constant: dict[str, Any], varied: list[str], best: dict[str, Job]) -> list[str]:
    """What the sweep varied and what it found, above the tables."""
    lines = [
        f"{len(jobs)} jobs: {count_statuses([job.record.get('status') for job in jobs])}.",
        f"**Varied:** {', '.join(f'`{key}`' for key in varied) or 'nothing (one configuration)'}.",
        f"**Constant:** {', '.join(f'`{key}={show(value)}`' for key, value in constant.items()) or 'nothing'}.",
    ]
    for monitor, job in best.items():
        settings = ", ".join(f"`{key}={show(job.params.get(key))}`" for key in varied)
        where = f"job {job.name}" + (f" ({settings})" if settings else "")
        lines.append(f"**Best {monitor}:** {show(job.record['best_val'])} in {where}, in bold below.")
    return lines


def study_lines(root: Path, jobs: list[Job]) -> list[str]:
    """The Optuna sweeper's best params and value, and the jobs that ran them (TPE may draw them twice)."""
    path = root / "optimization_results.yaml"
    results = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    if not isinstance(results, dict) or not isinstance(results.get("best_params"), dict):
        return []  # no study, or one with several objectives and so no single best
    best = results["best_params"]
    ran = [job.name for job in jobs if all(same_value(job.params.get(k), v) for k, v in best.items())]
    chosen = " ".join(f"{key}={value}" for key, value in best.items())
    value = show(results.get("best_value"))
    return ["## Optuna study", f"Best value {value} with {chosen} ({path.name}; jobs {', '.join(ran) or 'not found'})."]


def same_value(have: Any, want: Any) -> bool:
    """Numbers as numbers (PyYAML reads ``1e-3`` as text), anything else as text."""
    try:
        return math.isclose(float(have), float(want))
    except (TypeError, ValueError):
        return str(have) == str(want)


def reference_text(references: Sequence[Reference], params: dict[str, Any]) -> str:
    """The figures whose every match entry is in ``params``, as "test/acc 0.713 (course report)"."""
    matching = [r for r in references if all(k in params and same_value(params[k], v) for k, v in r["match"].items())]
    return "; ".join(f"{r['metric']} {show(r['value'])} ({r['source']})" for r in matching)


def load_references(path: Path) -> list[Reference]:
    """A YAML list of ``{match: {param: value, ...}, metric, value, source}``; anything else is a ReportError."""
    try:
        entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ReportError(f"cannot read the references file {path}: {error}") from None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise ReportError(f"references file {path} must hold a YAML list of mappings, like\n  {EXAMPLE}")
    return [reference_from(f"references file {path}, entry {n}", entry) for n, entry in enumerate(entries, 1)]


def reference_from(where: str, entry: dict[str, Any]) -> Reference:
    problems = [f"unknown key {key!r}" for key in entry if key not in ("match", "metric", "value", "source")]
    if not isinstance(entry.get("match"), dict) or not entry["match"]:
        problems.append("'match' must map params to their values")
    if not isinstance(entry.get("metric"), str):
        problems.append("'metric' must name a metric, such as test/acc")
    try:
        value = float(entry.get("value"))
    except (TypeError, ValueError):
        problems.append(f"'value' must be a number, got {entry.get('value')!r}")
    if problems:
        raise ReportError(f"{where}: {'; '.join(problems)}; write each entry like\n  {EXAMPLE}")
    return {**entry, "value": value, "source": str(entry.get("source", "reference"))}


def check_reference_keys(references: Sequence[Reference], jobs: list[Job]) -> None:
    """A match key no job has would match nothing, silently: almost always a typo (``model`` for ``model.cell``)."""
    known = {key for job in jobs if job.params_known for key in job.params}
    for unknown in (sorted(set(reference["match"]) - known) for reference in references):
        if known and unknown:
            raise ReportError(f"a reference matches on {unknown}, which no job has; the params are {sorted(known)}.")


def build_report(
    root: Path, title: str | None = None, references: Sequence[Reference] = (), notes: Sequence[str] = ()
) -> Report:
    """Write ``root``/report.md and report.csv; ``notes`` are paragraphs right below the title."""
    root = Path(root)
    if not root.is_dir():
        raise ReportError(f"{root} is not a folder; {LAYOUT}.")
    jobs = job_states(root, find_jobs(root))  # killed, running and queued ones told apart
    if not jobs:
        raise ReportError(f"no job folders under {root}; {LAYOUT}.")
    check_reference_keys(references, jobs)
    constant, varied = split_params(jobs)
    best = best_jobs(jobs)
    marked = [job.name in {best_job.name for best_job in best.values()} for job in jobs]
    rows = job_rows(jobs, varied, references)
    # An absolute path by its last part: a report shared elsewhere must not carry a path of this machine.
    title = title or f"Sweep report: {root.name if root.is_absolute() else root.as_posix()}"
    parts = [f"# {title}", *notes, *lead(jobs, constant, varied, best)]
    parts += ["## Jobs", markdown_table(rows, bold=marked)]
    groups = seed_group_rows(rows, varied)
    if groups:
        explained = "Mean ± sample std over each group's completed jobs; the others are counted in jobs."
        parts += ["## Over seeds", explained, markdown_table(groups)]
    parts += study_lines(root, jobs)
    markdown = "\n\n".join(parts) + "\n"
    (root / "report.md").write_text(markdown, encoding="utf-8")
    with (root / "report.csv").open("w", newline="", encoding="utf-8") as handle:  # every digit, and the bold row
        writer = csv.DictWriter(handle, [*rows[0], "best"])
        writer.writeheader()
        writer.writerows(row | {"best": "yes" if strong else ""} for row, strong in zip(rows, marked))
    return Report(jobs, markdown, 0 if all(job.completed for job in jobs) else 1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rnn_lightning.cli.report",
        description="Compare the jobs of a sweep: DIR/report.md and DIR/report.csv.",
        epilog="Exit code: 0 every job completed, 1 some did not (the report lists them), 2 nothing to report.",
    )
    parser.add_argument(
        "dir",
        type=Path,
        nargs="?",
        help="the sweep folder (hydra.sweep.dir), e.g. multirun/DATE/TIME_ID; default: the newest under multirun/",
    )
    parser.add_argument("--references", type=Path, metavar="FILE", help=f"published figures, a YAML list: {EXAMPLE}")
    args = parser.parse_args(argv)
    try:
        if args.dir is None:
            args.dir = newest_sweep()
            print(f"reporting on {args.dir}, the newest sweep under {SWEEPS}/", file=sys.stderr)
        report = build_report(args.dir, references=load_references(args.references) if args.references else ())
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.markdown)
    print(f"wrote {args.dir / 'report.md'} and {args.dir / 'report.csv'}")
    if report.exit_code:
        unfinished = sum(not job.completed for job in report.jobs)
        print(f"{unfinished} of {len(report.jobs)} jobs did not complete; see their status and error.", file=sys.stderr)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
