"""Turn a Hydra sweep folder into a comparison table: ``python -m rnn_lightning.cli.report DIR``.

Writes ``report.md`` (jobs table, plus a table grouped over seeds when some jobs differ only by seed),
``report.csv`` (the jobs table, full-precision numbers) and one TensorBoard hparams run per job under
``report_tb/``. Exit code: 0 when every job completed, 1 when any did not, 2 when there is nothing to
report. Reading and grouping the jobs lives in ``rnn_lightning.cli.report_table``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnn_lightning.cli.report_table import (
    Group,
    JobRow,
    Reference,
    ReportError,
    Stats,
    check_reference_keys,
    collect_rows,
    count_label,
    group_rows,
    load_references,
    load_yaml,
    reported_test_metrics,
)

EXPECTED_LAYOUT = (
    "expected a Hydra multirun folder (numbered job folders 0/, 1/, ... each with .hydra/ and metrics.json) "
    "or any folder with run folders below it that hold .hydra/ or metrics.json"
)

# ---------------------------------------------------------------- cell formatting


def fmt_text(value: Any) -> str:
    """A plain cell: empty for unknown values."""
    return "" if value is None else str(value)


def fmt_number(value: Any) -> str:
    """Metrics to 4 significant digits; tiny or huge ones in scientific notation (7.2e-06)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return fmt_text(value)


def fmt_seconds(value: Any) -> str:
    """Wall time in seconds with one decimal."""
    return f"{value:.1f}" if isinstance(value, (int, float)) else fmt_text(value)


def fmt_stats(stats: Stats, fmt: Callable[[Any], str], n_ok: int) -> str:
    """``mean ± std``; std is "–" for a single run, and a smaller n than the group's is spelled out."""
    if stats.n == 0:
        return ""
    std = "–" if stats.std is None else fmt(stats.std)
    text = f"{fmt(stats.mean)} ± {std}"
    return text if stats.n == n_ok else f"{text} (n={stats.n})"


def fmt_references(references: list[Reference]) -> str:
    """Matched reference figures, e.g. ``test/acc 0.713 (course report)``."""
    return "; ".join(f"{ref.metric} {fmt_number(ref.value)} ({ref.source})" for ref in references)


# ---------------------------------------------------------------- table layout


@dataclass(frozen=True)
class Column:
    """One table column: the raw value (CSV) and how it reads in markdown."""

    key: str  # CSV header, and the markdown header unless ``title`` is set
    value: Callable[[Any], Any]
    show: Callable[[Any], str] = fmt_text
    title: str = ""


def job_columns(test_names: list[str], references: list[Reference] | None) -> list[Column]:
    """The per-job table, one column per test metric; a reference column when references were given."""
    param = _param_getter
    columns = [
        Column("job", lambda r: r.job),
        Column("overrides", lambda r: " ".join(r.overrides)),
        Column("task", lambda r: r.task),
        Column("model", param("model")),
        Column("optim", param("optim")),
        Column("batch", param("batch")),
        Column("lr", param("lr"), fmt_number),
        Column("epochs", param("epochs"), title="max epochs"),
        Column("epochs_run", lambda r: r.epochs_run, title="epochs run"),
        Column("seed", param("seed")),
        Column("monitor", lambda r: r.monitor),
        Column("best_val", lambda r: r.best_val, fmt_number, "best val"),
        *(Column(name, lambda r, name=name: r.test.get(name), fmt_number) for name in test_names),
        Column("wall_seconds", lambda r: r.wall_seconds, fmt_seconds, "wall [s]"),
        Column("status", lambda r: r.status),
        Column("error", lambda r: r.error),
    ]
    if references is not None:
        columns.append(Column("reference", lambda r: _references_for(references, r.fields())))
    return columns


def group_columns(test_names: list[str], references: list[Reference] | None) -> list[Column]:
    """The grouped-over-seeds table (markdown only): settings, counts, then mean ± std per metric."""

    def stats_column(metric: str, title: str, fmt: Callable[[Any], str]) -> Column:
        return Column(metric, lambda g: g, lambda g: fmt_stats(g.stats(metric), fmt, len(g.ok_rows)), title)

    param = _param_getter
    columns = [
        Column("overrides", lambda g: " ".join(g.overrides), title="overrides (without seed)"),
        Column("task", lambda g: g.representative.task),
        Column("model", lambda g: param("model")(g.representative)),
        Column("optim", lambda g: param("optim")(g.representative)),
        Column("batch", lambda g: param("batch")(g.representative)),
        Column("lr", lambda g: param("lr")(g.representative), fmt_number),
        Column("seeds", lambda g: ", ".join(fmt_text(seed) for seed in g.seeds)),
        Column("jobs", lambda g: g.count_label),
        Column("n", lambda g: len(g.ok_rows)),
        Column("monitor", lambda g: g.representative.monitor),
        stats_column("best_val", "best val", fmt_number),
        *(stats_column(name, name, fmt_number) for name in test_names),
        stats_column("wall_seconds", "wall [s]", fmt_seconds),
    ]
    if references is not None:
        columns.append(Column("reference", lambda g: _references_for(references, _group_fields(g))))
    return columns


def _param_getter(key: str) -> Callable[[JobRow], Any]:
    return lambda row: row.params.get(key)


def _group_fields(group: Group) -> dict[str, Any]:
    # A group stands for several seeds and jobs, so a reference pinned to one of them does not apply.
    return {k: v for k, v in group.representative.fields().items() if k not in ("seed", "job")}


def _references_for(references: list[Reference], fields: dict[str, Any]) -> str:
    return fmt_references([ref for ref in references if ref.matches(fields)])


# ---------------------------------------------------------------- writing


def markdown_table(columns: list[Column], items: Sequence[Any]) -> str:
    """A GitHub markdown table; ``|`` inside a cell is escaped so it cannot split the cell."""
    lines = [
        _markdown_line([column.title or column.key for column in columns]),
        _markdown_line(["---"] * len(columns)),
    ]
    lines += [_markdown_line([column.show(column.value(item)) for column in columns]) for item in items]
    return "\n".join(lines)


def _markdown_line(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def render_markdown(root: Path, rows: list[JobRow], groups: list[Group], references: list[Reference] | None) -> str:
    """The whole report.md: a status summary, the jobs table, and the seed groups when there are any."""
    test_names = reported_test_metrics(rows)
    parts = [
        f"# Sweep report: {root}",
        f"{len(rows)} jobs: {count_label([row.status for row in rows])}.",
        "## Jobs",
        markdown_table(job_columns(test_names, references), rows),
    ]
    study = study_summary(root, rows)
    if study:
        parts += ["## Optuna study", study]
    if any(len(group.rows) > 1 for group in groups):
        parts += [
            "## Grouped over seeds",
            "Mean ± sample std over the completed runs of each group; failed and missing runs are counted "
            "under *jobs* but left out of the means.",
            markdown_table(group_columns(test_names, references), groups),
        ]
    return "\n\n".join(parts) + "\n"


def study_summary(root: Path, rows: list[JobRow]) -> str | None:
    """The Optuna sweeper's result (``optimization_results.yaml`` beside the jobs), and the jobs that ran its best
    parameters: the same draw can come up in several trials."""
    results = load_yaml(root / "optimization_results.yaml")
    if not isinstance(results, dict) or not isinstance(results.get("best_params"), dict):
        return None  # not a study, or one with several objectives (no single best)
    best = [f"{key}={value}" for key, value in results["best_params"].items()]
    jobs = [row.job for row in rows if set(best) <= set(row.overrides)]
    return (
        f"Best value {fmt_number(results.get('best_value'))} with {' '.join(best)} "
        f"(optimization_results.yaml; jobs {', '.join(jobs) or 'not found'})."
    )


def write_csv(path: Path, rows: list[JobRow], references: list[Reference] | None) -> None:
    """The jobs table with raw values (full precision, empty when unknown), one header per column key."""
    columns = job_columns(reported_test_metrics(rows), references)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([column.key for column in columns])
        writer.writerows([column.value(row) for column in columns] for row in rows)


def write_hparams(rows: list[JobRow], tb_root: Path) -> Path:
    """One TensorBoard hparams run per job under ``tb_root/<job>/`` (replacing an earlier report's)."""
    # Imported here: torch takes seconds to import, and --no-tensorboard should not pay for it.
    from torch.utils.tensorboard import SummaryWriter

    if tb_root.exists():
        shutil.rmtree(tb_root)  # stale runs would show up twice in TensorBoard
    with SummaryWriter(log_dir=str(tb_root)) as writer:
        for row, hparams, metrics in zip(rows, uniform_hparams(rows), hparam_metrics(rows)):
            writer.add_hparams(hparams, metrics, run_name=row.job if row.job != "." else "root")
    return tb_root


def uniform_hparams(rows: list[JobRow]) -> list[dict[str, Any]]:
    """Each job's hparams with the same keys and types in every job.

    TensorBoard's hparams view takes its column list from one arbitrary run, so every run must carry
    every column: a number missing in one job becomes NaN, text missing becomes "".
    """
    flat = [_flat_hparams(row) for row in rows]
    keys = list(dict.fromkeys(key for hparams in flat for key in hparams))
    numeric = {key: all(_is_number(h[key]) for h in flat if h.get(key) is not None) for key in keys}
    return [{key: _hparam_value(h.get(key), numeric[key]) for key in keys} for h in flat]


def _flat_hparams(row: JobRow) -> dict[str, Any]:
    params = {key: value if _is_scalar(value) else json.dumps(value) for key, value in row.params.items()}
    return {**params, "overrides": " ".join(row.overrides), "status": row.status, "job": row.job}


def _hparam_value(value: Any, numeric: bool) -> Any:
    if numeric:
        return math.nan if value is None else value
    return "" if value is None else str(value)


def hparam_metrics(rows: list[JobRow]) -> list[dict[str, float]]:
    """best_val, test metrics and wall time per job, prefixed ``hparam/`` and NaN where unknown.

    The prefix keeps them apart from the scalars the jobs logged themselves under the same folder.
    """
    names = ["best_val", *reported_test_metrics(rows), "wall_seconds"]
    result = []
    for row in rows:
        values = {"best_val": row.best_val, "wall_seconds": row.wall_seconds, **row.test}
        result.append({f"hparam/{name}": _nan_if_none(values.get(name)) for name in names})
    return result


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float))  # bools included: TensorBoard stores them as numbers too


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float))


# ---------------------------------------------------------------- entry points


@dataclass
class ReportResult:
    """What ``build_report`` produced; ``exit_code`` is 0 when every job completed, else 1."""

    rows: list[JobRow]
    groups: list[Group]
    markdown: str
    paths: dict[str, Path]  # "markdown", "csv" and (unless skipped) "tensorboard"
    exit_code: int


def build_report(
    root: Path, out: Path | None = None, reference: Path | None = None, tensorboard: bool = True
) -> ReportResult:
    """Read every job below ``root`` and write report.md, report.csv and report_tb/ into ``out or root``.

    Raises ReportError when ``root`` holds no jobs or the reference file is malformed.
    """
    root, out = Path(root), Path(out or root)
    if not root.is_dir():
        raise ReportError(f"{root} is not a folder; {EXPECTED_LAYOUT}.")
    rows = collect_rows(root)
    if not rows:
        raise ReportError(f"no training jobs found under {root}; {EXPECTED_LAYOUT}.")
    references = load_references(Path(reference)) if reference else None
    if references:
        check_reference_keys(references, rows)
    groups = group_rows(rows)
    markdown = render_markdown(root, rows, groups, references)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "report.md", "csv": out / "report.csv"}
    paths["markdown"].write_text(markdown, encoding="utf-8")
    write_csv(paths["csv"], rows, references)
    if tensorboard:
        paths["tensorboard"] = write_hparams(rows, out / "report_tb")
    return ReportResult(rows, groups, markdown, paths, 0 if all(row.ok for row in rows) else 1)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rnn_lightning.cli.report",
        description="Compare the jobs of a Hydra sweep: report.md, report.csv and TensorBoard hparams.",
        epilog="Exit code: 0 all jobs completed, 1 some failed/missing/unfinished (report still written), "
        "2 nothing to report.",
    )
    parser.add_argument("dir", type=Path, help="multirun folder, or any folder with run folders below it")
    parser.add_argument("--out", type=Path, help="where to write the report (default: DIR)")
    parser.add_argument("--reference", type=Path, help="YAML/JSON list of {match, metric, value, source}")
    parser.add_argument("--no-tensorboard", action="store_true", help="skip writing OUT/report_tb/")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    args = parse_args(argv)
    try:
        result = build_report(args.dir, args.out, args.reference, tensorboard=not args.no_tensorboard)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(result.markdown)
    for path in result.paths.values():
        print(f"wrote {path}")
    if result.exit_code:
        unfinished = [row for row in result.rows if not row.ok]
        print(f"{len(unfinished)} of {len(result.rows)} jobs did not complete.", file=sys.stderr)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
