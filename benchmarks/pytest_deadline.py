"""A pytest plugin for a test run that must end in time and keep its results: a deadline per test, and a JSON line
per result written the moment it is known.

    python -m pytest -p benchmarks.pytest_deadline --deadline-s 40 --results-log FILE ...

* ``--deadline-s``: a test still running this many seconds after it started (setup, call and teardown together)
  fails "over its deadline", and the run goes on with the next test. The alarm is SIGALRM in the main thread, so a
  test stuck inside one long C call hears it when that call returns; whoever runs pytest keeps a limit of its own
  for that case (``benchmarks/gpu_check.py`` sends SIGINT, on which pytest still writes its reports).
* ``--results-log``: one JSON object per line, flushed as each result comes: the number collected, then every
  test's outcome (and a failure's message, and what it printed), then the totals. A run killed outright still
  leaves every result before the kill; pytest's ``--junitxml`` is written at the end only.

No dependency beyond pytest: it works where pytest-timeout or pytest-reportlog are not installed, and with
pytest-xdist's workers (each arms its own alarms; the controller writes the log).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import IO

import pytest

STARTED = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("deadline", "per-test deadline and a results log written as it goes")
    group.addoption("--deadline-s", type=float, default=None, help="fail a test still running after this many s")
    group.addoption("--results-log", default=None, help="append a JSON line per result to this file, as they come")


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("results_log", None)
    if path and not hasattr(config, "workerinput"):  # under pytest-xdist the controller writes for its workers
        xdist = bool(getattr(config.option, "numprocesses", None))
        config.pluginmanager.register(ResultsLog(Path(path), xdist), "deadline-results-log")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    item.stash[STARTED] = time.monotonic()
    yield


# The alarm is armed inside each phase, where pytest turns an exception into that phase's failure.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    yield from _within_deadline(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    yield from _within_deadline(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item):
    yield from _within_deadline(item)


def _within_deadline(item: pytest.Item):
    deadline = item.config.getoption("deadline_s")
    if not deadline or not hasattr(signal, "setitimer"):
        yield
        return
    left = deadline - (time.monotonic() - item.stash.get(STARTED, time.monotonic()))

    def over(signum: int, frame: object) -> None:
        pytest.fail(f"over its deadline of {deadline:g} s (--deadline-s)", pytrace=False)

    previous = signal.signal(signal.SIGALRM, over)
    signal.setitimer(signal.ITIMER_REAL, max(left, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class ResultsLog:
    def __init__(self, path: Path, xdist: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.sink: IO[str] = path.open("a")
        self.counts: dict[str, int] = {}
        self.xdist, self.collected = xdist, False

    def write(self, record: dict) -> None:
        self.sink.write(json.dumps(record) + "\n")
        self.sink.flush()
        os.fsync(self.sink.fileno())

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not self.xdist:
            self.write({"collected": len(session.items)})

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: list[str]) -> None:
        if not self.collected:  # every worker collects the same tests
            self.collected = True
            self.write({"collected": len(ids)})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and report.passed:
            return  # a passed setup or teardown says nothing; the call's result does
        outcome = "error" if report.failed and report.when != "call" else report.outcome
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        record = {"test": report.nodeid, "when": report.when, "outcome": outcome, "s": round(report.duration, 2)}
        if report.failed or report.skipped:
            record["message"] = _message(report)
        if report.capstdout.strip():
            record["stdout"] = report.capstdout.strip()[-500:]
        self.write(record)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.sink.closed:  # pytest-xdist can end an interrupted session twice
            return
        self.write({"finished": int(exitstatus), **self.counts})
        self.sink.close()


def _message(report: pytest.TestReport) -> str:
    """A failure's one line (``assert 1 == 2``), or a skip's reason."""
    if isinstance(report.longrepr, tuple):  # a skip: (path, line, "Skipped: why")
        return str(report.longrepr[2])[:500]
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        return crash.message.strip().splitlines()[0][:500]
    lines = [line for line in report.longreprtext.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "")[:500]
