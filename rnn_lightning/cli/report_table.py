"""Collect a sweep's job folders into rows, group runs that differ only by seed, match reference figures.

A job folder is any folder with a ``.hydra/`` subfolder or a ``metrics.json`` (written by the training
entry point). This module only reads; ``rnn_lightning.cli.report`` formats and writes the tables.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Hydra's own metadata and this report's TensorBoard output hold no jobs; never search them.
SKIP_DIRS = frozenset({".hydra", "report_tb"})
# The keys of metrics.json's "params"; also what we try to recover from .hydra/ when it is missing.
PARAM_KEYS = (
    "task",
    "model",
    "optim",
    "lr",
    "scheduler",
    "batch",
    "epochs",
    "seed",
    "hidden_size",
    "num_layers",
    "bidirectional",
)
MISSING_ERROR = "no metrics.json: the job crashed before writing it, or is still running"
COMPLETED = "completed"


class ReportError(ValueError):
    """A problem the user can fix: a wrong folder, a malformed reference file."""


@dataclass
class JobRow:
    """One job folder: what it was asked to do and what it reported."""

    job: str  # folder relative to the report root, "/"-separated; "." when the root is the job
    overrides: list[str]
    status: str  # metrics.json's status, or "missing" / "unreadable" when there is no usable file
    error: str  # first line only
    task: str | None
    params: dict[str, Any]
    params_known: bool  # False: params were pieced together from .hydra/ files, maybe incompletely
    monitor: str | None
    best_val: float | None
    test: dict[str, float]
    epochs_run: int | None
    wall_seconds: float | None

    @property
    def ok(self) -> bool:
        """Whether the job ran to completion (only those enter means)."""
        return self.status == COMPLETED

    def fields(self) -> dict[str, Any]:
        """The values a reference entry may match on: params plus task and job."""
        return {**self.params, "task": self.task, "job": self.job}


# ---------------------------------------------------------------- finding and reading jobs


def natural_key(text: str) -> list[str | int]:
    """Sort key that compares digit runs as numbers, so job ``9`` comes before job ``10``."""
    # re.split with a capture group alternates text (even index) and digits (odd index), so two keys
    # always hold the same type at the same index and compare without a TypeError.
    parts = re.split(r"([0-9]+)", text)
    return [int(part) if i % 2 else part for i, part in enumerate(parts)]


def find_job_dirs(root: Path) -> list[Path]:
    """Every folder at or below ``root`` holding ``.hydra/`` or ``metrics.json``, in natural order."""
    found = []
    for current, dirs, files in os.walk(root):
        if ".hydra" in dirs or "metrics.json" in files:
            found.append(Path(current))
            dirs.clear()  # a job's own subfolders (checkpoints, logs) are not further jobs
            continue
        dirs[:] = [name for name in dirs if name not in SKIP_DIRS]
    return sorted(found, key=lambda path: [natural_key(part) for part in path.relative_to(root).parts])


def collect_rows(root: Path) -> list[JobRow]:
    """Read every job below ``root`` into a row, unfinished and crashed jobs included."""
    return [load_job(root, job_dir) for job_dir in find_job_dirs(root)]


def load_job(root: Path, job_dir: Path) -> JobRow:
    """Read one job folder; a missing or broken metrics.json still gives a row, marked as such."""
    label = job_dir.relative_to(root).as_posix()
    overrides = _hydra_overrides(job_dir)
    path = job_dir / "metrics.json"
    if not path.exists():
        return _row_without_metrics(label, job_dir, overrides or [], "missing", MISSING_ERROR)
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return _row_without_metrics(label, job_dir, overrides or [], "unreadable", f"metrics.json: {err}")
    if not isinstance(metrics, dict):
        error = f"metrics.json holds a JSON {type(metrics).__name__}, expected an object"
        return _row_without_metrics(label, job_dir, overrides or [], "unreadable", error)
    if overrides is None:
        overrides = [str(item) for item in metrics.get("overrides") or []]
    return _row_from_metrics(label, job_dir, overrides, metrics)


def _row_from_metrics(label: str, job_dir: Path, overrides: list[str], metrics: dict) -> JobRow:
    """A row from a parsed metrics.json; any field may be absent in an unfinished job."""
    params = metrics.get("params")
    params_known = isinstance(params, dict)
    if not params_known:
        params = _params_from_hydra(job_dir, overrides)
    test = metrics.get("test") if isinstance(metrics.get("test"), dict) else {}
    epochs_run = _number(metrics.get("epochs"))
    return JobRow(
        job=label,
        overrides=overrides,
        status=_text(metrics.get("status")) or "unknown",
        error=first_line(metrics.get("error")),
        task=_text(metrics.get("task")) or _text(params.get("task")),
        params=params,
        params_known=params_known,
        monitor=_text(metrics.get("monitor")),
        best_val=_number(metrics.get("best_val")),
        test={name: value for name, value in test.items() if _number(value) is not None},
        epochs_run=None if epochs_run is None else int(epochs_run),
        wall_seconds=_number(metrics.get("wall_seconds")),
    )


def _row_without_metrics(label: str, job_dir: Path, overrides: list[str], status: str, error: str) -> JobRow:
    """A row for a job whose results are unknown; its settings come from the .hydra/ files."""
    params = _params_from_hydra(job_dir, overrides)
    return JobRow(
        job=label,
        overrides=overrides,
        status=status,
        error=first_line(error),
        task=_text(params.get("task")),
        params=params,
        params_known=False,
        monitor=None,
        best_val=None,
        test={},
        epochs_run=None,
        wall_seconds=None,
    )


def first_line(error: Any) -> str:
    """The first non-empty line of an error message ('' when there is none)."""
    lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
    return lines[0] if lines else ""


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float | int | None:
    """The value when it is a real number (bools and strings are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


# ---------------------------------------------------------------- settings of jobs without params


def load_yaml(path: Path) -> Any:
    """A YAML file's content, or None when it is absent or unreadable (we only fill gaps with it)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def _hydra_overrides(job_dir: Path) -> list[str] | None:
    """Hydra's record of the command-line overrides of this job, or None when it has none."""
    data = load_yaml(job_dir / ".hydra" / "overrides.yaml")
    return [str(item) for item in data] if isinstance(data, list) else None


def _params_from_hydra(job_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """Best guess at a job's params from config.yaml, hydra.yaml's group choices and the overrides.

    The config layout belongs to the training code, so we look leaves up by name; a name that appears
    with two different values (say two ``lr``) is ambiguous and skipped.
    """
    found = _unique_leaves(load_yaml(job_dir / ".hydra" / "config.yaml"))
    hydra = load_yaml(job_dir / ".hydra" / "hydra.yaml")
    choices = (((hydra or {}).get("hydra") or {}).get("runtime") or {}).get("choices") or {}
    found.update({key: value for key, value in choices.items() if isinstance(value, str)})
    found.update(_override_values(overrides))
    return {key: found[key] for key in PARAM_KEYS if key in found}


def _unique_leaves(config: Any) -> dict[str, Any]:
    """Leaf values of a nested mapping by their own key, dropping keys seen with different values."""
    seen: dict[str, set[str]] = {}
    values: dict[str, Any] = {}
    stack = [config] if isinstance(config, dict) else []
    while stack:
        for key, value in stack.pop().items():
            if isinstance(value, dict):
                stack.append(value)
            elif not isinstance(value, list):
                seen.setdefault(str(key), set()).add(repr(value))
                values[str(key)] = value
    return {key: value for key, value in values.items() if len(seen[key]) == 1}


def _override_values(overrides: list[str]) -> dict[str, Any]:
    """``optim.lr=0.01`` -> ``{"lr": 0.01}``: the last name of each override's key, value parsed."""
    values = {}
    for override in overrides:
        key, sep, value = override.lstrip("+~").partition("=")
        if sep:
            values[key.rsplit(".", 1)[-1]] = _parse_scalar(value)
    return values


def _parse_scalar(text: str) -> Any:
    """An override's value as int or float when it reads as one, else the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# ---------------------------------------------------------------- grouping over seeds


@dataclass
class Stats:
    """Mean and sample standard deviation of one metric over a group's completed runs."""

    n: int
    mean: float | None
    std: float | None  # None when n < 2: one run says nothing about the spread


def summarise(values: list[float]) -> Stats:
    """Mean and sample std (n - 1 in the denominator) of the given values."""
    if not values:
        return Stats(0, None, None)
    std = statistics.stdev(values) if len(values) > 1 else None
    return Stats(len(values), statistics.fmean(values), std)


def is_seed_override(override: str) -> bool:
    """Whether an override sets the top-level ``seed`` (``seed=1``, ``+seed=1``, ``++seed=1``)."""
    return override.lstrip("+~").partition("=")[0] == "seed"


@dataclass
class Group:
    """Jobs whose overrides and params are equal once the seed is left out."""

    rows: list[JobRow]

    @property
    def representative(self) -> JobRow:
        """The row whose settings speak for the group: a completed one, else one with known params."""
        return next((r for r in self.rows if r.ok), next((r for r in self.rows if r.params_known), self.rows[0]))

    @property
    def overrides(self) -> list[str]:
        return [item for item in self.representative.overrides if not is_seed_override(item)]

    @property
    def seeds(self) -> list[Any]:
        return [row.params.get("seed") for row in self.rows]

    @property
    def ok_rows(self) -> list[JobRow]:
        return [row for row in self.rows if row.ok]

    @property
    def count_label(self) -> str:
        """e.g. ``"2 ok, 1 failed, 1 missing"``: the jobs that are not in the means are still counted."""
        return count_label([row.status for row in self.rows])

    def stats(self, metric: str) -> Stats:
        """Stats of ``best_val``, ``wall_seconds`` or a test metric name over the completed runs."""
        if metric in ("best_val", "wall_seconds"):
            values = [getattr(row, metric) for row in self.ok_rows]
        else:
            values = [row.test.get(metric) for row in self.ok_rows]
        return summarise([value for value in values if value is not None])


def count_label(statuses: list[str]) -> str:
    """Count statuses as ``"3 ok, 1 failed"``; ``ok`` always comes first, the rest as first seen."""
    counts = Counter(status for status in statuses if status != COMPLETED)
    ok = sum(status == COMPLETED for status in statuses)
    return ", ".join([f"{ok} ok", *(f"{n} {status}" for status, n in counts.items())])


def group_rows(rows: list[JobRow]) -> list[Group]:
    """Group rows that differ only by seed, in the order of each group's first job.

    A job without params (crashed before writing metrics.json) is judged by its overrides alone: it joins
    the one group with the same seedless overrides, or starts its own when that is ambiguous.
    """
    groups: dict[tuple, list[JobRow]] = {}
    for row in (r for r in rows if r.params_known):
        groups.setdefault(_group_key(row), []).append(row)
    for row in (r for r in rows if not r.params_known):
        same = [key for key in groups if key[0] == _seedless_overrides(row)]
        key = same[0] if len(same) == 1 else (_seedless_overrides(row), row.job)
        groups.setdefault(key, []).append(row)
    order = {id(row): i for i, row in enumerate(rows)}
    ordered = [sorted(members, key=lambda r: order[id(r)]) for members in groups.values()]
    return [Group(members) for members in sorted(ordered, key=lambda m: order[id(m[0])])]


def _seedless_overrides(row: JobRow) -> tuple[str, ...]:
    # Sorted: Hydra keeps the order of the command line, which may differ between two sweeps.
    return tuple(sorted(item for item in row.overrides if not is_seed_override(item)))


def _group_key(row: JobRow) -> tuple[tuple[str, ...], str]:
    params = {key: value for key, value in row.params.items() if key != "seed"}
    return _seedless_overrides(row), json.dumps(params, sort_keys=True, default=str)


def reported_test_metrics(rows: list[JobRow]) -> list[str]:
    """Every test metric any job reported, sorted, so each gets its own column."""
    return sorted({name for row in rows for name in row.test})


# ---------------------------------------------------------------- reference figures

REFERENCE_KEYS = {"match", "metric", "value", "source"}
REFERENCE_EXAMPLE = "- {match: {model: rnn, optim: sgdm, batch: 200}, metric: test/acc, value: 0.713, source: paper}"


@dataclass(frozen=True)
class Reference:
    """A published figure for the jobs whose fields equal every entry of ``match``."""

    match: dict[str, Any]
    metric: str
    value: float
    source: str = "reference"

    def matches(self, fields: dict[str, Any]) -> bool:
        return all(key in fields and same_value(fields[key], want) for key, want in self.match.items())


def same_value(have: Any, want: Any) -> bool:
    """Numbers compare as numbers (``1e-3`` equals ``0.001``), everything else as case-blind text."""
    have_number, want_number = _as_float(have), _as_float(want)
    if have_number is not None and want_number is not None:
        return math.isclose(have_number, want_number, rel_tol=1e-9)
    return str(have).lower() == str(want).lower()


def _as_float(value: Any) -> float | None:
    # PyYAML reads "1e-3" (no dot) as a string, so text that parses as a number counts as one.
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def load_references(path: Path) -> list[Reference]:
    """Read a reference file: a YAML or JSON list of ``{match, metric, value, source}`` entries."""
    if not path.is_file():
        raise ReportError(f"reference file {path} does not exist; pass an existing YAML or JSON file.")
    text = path.read_text(encoding="utf-8")
    try:
        # json for .json: PyYAML would read JSON's 1e-3 as a string.
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ReportError(f"reference file {path} cannot be parsed: {err}") from err
    if not isinstance(data, list):
        raise ReportError(f"reference file {path} must hold a list of entries, like\n  {REFERENCE_EXAMPLE}")
    return [_reference_entry(path, i, entry) for i, entry in enumerate(data)]


def _reference_entry(path: Path, index: int, entry: Any) -> Reference:
    """Validate one entry, naming the entry and the fix when it is wrong."""
    where = f"reference file {path}, entry {index}"
    if not isinstance(entry, dict):
        raise ReportError(f"{where} is not a mapping; write it like\n  {REFERENCE_EXAMPLE}")
    unknown = sorted(set(entry) - REFERENCE_KEYS)
    if unknown:
        raise ReportError(f"{where} has unknown key(s) {unknown}; allowed: {sorted(REFERENCE_KEYS)}.")
    match, metric, value = entry.get("match"), entry.get("metric"), entry.get("value")
    if not isinstance(match, dict) or not match:
        raise ReportError(f"{where}: 'match' must be a non-empty mapping such as {{model: rnn, batch: 200}}.")
    if not isinstance(metric, str) or not metric:
        raise ReportError(f"{where}: 'metric' must name a metric, such as test/acc.")
    if _as_float(value) is None:
        raise ReportError(f"{where}: 'value' must be a number, got {value!r}.")
    return Reference(
        {str(k): v for k, v in match.items()}, metric, float(value), str(entry.get("source") or "reference")
    )


def check_reference_keys(references: list[Reference], rows: list[JobRow]) -> None:
    """Refuse match keys that no job has: almost always a typo that would silently match nothing."""
    known = {key for row in rows for key in row.fields()}
    for ref in references:
        unknown = sorted(set(ref.match) - known)
        if unknown:
            raise ReportError(
                f"reference entry for {ref.metric} ({ref.source}) matches on {unknown}, which no job has; "
                f"use one of {sorted(known)}."
            )
