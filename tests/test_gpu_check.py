"""``make gpu-check`` fits its budget and loses nothing: a step over its limit, pytest stopped mid-run and a SIGTERM to
the check all leave the JSON and markdown of what finished. The steps here are small stand-ins (``main``'s
``steps``), each a real subprocess stopped the way the real ones are; the whole rehearsal is the slow test at the end.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchmarks import gpu_check, gpu_report
from benchmarks.gpu_bench import CASES

REPO = Path(__file__).resolve().parents[1]
ROW = {"case": "sine-fp64", "shape": "B=98 T=999 I=1 H=51 uni", "impl": "triton", "precision": "fp64"}
ROW |= {"fwd_ms": 4.0, "bwd_ms": 6.0, "ms": 10.0, "ratio": 0.5, "first_s": 3.2, "peak_mb": 12.0}
ROW |= {"cudnn": "standard / standard"}


def write_a_row_then(seconds: float, out: Path) -> str:
    """Code for a bench stand-in: append one row as a JSON line (as gpu_bench.append_rows does), leave its pid, then
    take ``seconds``."""
    return textwrap.dedent(
        f"""
        import json, os, time
        from pathlib import Path
        Path({str(out / "bench.pid")!r}).write_text(str(os.getpid()))
        with open({str(out / "bench.jsonl")!r}, "a") as rows:
            rows.write(json.dumps({ROW!r}) + "\\n")
        time.sleep({seconds})
        """
    )


def run_check(out: Path, steps_code: str, budget_s: float) -> subprocess.Popen:
    """``python -m benchmarks.gpu_check`` with the steps ``steps_code`` builds (``python``, ``out``, ``work`` known)."""
    script = textwrap.dedent(
        """
        import signal, sys
        from pathlib import Path
        from benchmarks import gpu_check
        from benchmarks.gpu_check import Step

        def steps(python, out, work, rehearse):
        {body}

        sys.exit(gpu_check.main(sys.argv[1:], steps=steps))
        """
    ).format(body=textwrap.indent(textwrap.dedent(steps_code), "    "))
    command = [sys.executable, "-c", script, "--out", str(out), "--budget-s", str(budget_s)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def summary_of(out: Path) -> tuple[dict, str]:
    return json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text()


def test_the_step_limits_add_up_to_the_budget_and_a_step_gets_what_earlier_ones_left(tmp_path):
    for rehearse in (False, True):
        steps = gpu_check.planned_steps(sys.executable, tmp_path, tmp_path, rehearse)
        assert [s.name for s in steps] == ["machine", "bench", "tests", "sine", "sweep"]
        assert sum(s.limit_s for s in steps) == gpu_check.BUDGET_S == 360
        assert all(s.grace_s < s.limit_s for s in steps)
    check = gpu_check.Check(steps, tmp_path, tmp_path, budget_s=180, rehearse=False)
    assert [s.limit_s for s in steps] == [5, 55, 47.5, 20, 52.5]  # scaled to the budget asked for
    check.start = time.monotonic() - 2  # the first step took 2 of its 5 s
    assert check.limit_for(1) == pytest.approx(55 + 3, abs=0.1)
    assert check.limit_for(4) == pytest.approx(180 - 2, abs=0.1)  # the last one: all that is left


def test_a_step_over_its_limit_leaves_its_rows_and_the_check_goes_on(tmp_path):
    steps = f"""
    return [Step("bench", [python, "-c", {write_a_row_then(60, tmp_path)!r}], 5),
            Step("sine", [python, "-c", "print('sine ran')"], 5)]
    """
    done = run_check(tmp_path, steps, budget_s=10)
    output, _ = done.communicate(timeout=60)
    assert done.returncode == 1, output
    summary, markdown = summary_of(tmp_path)
    assert summary["check"]["status"] == "complete"
    assert summary["steps"]["bench"]["status"] == "timeout (limit 5 s)"
    assert summary["steps"]["sine"]["status"] == "ok"
    assert summary["bench"] == [ROW]
    assert "| sine-fp64 | B=98 T=999 I=1 H=51 uni | triton | fp64 | 4.00 | 6.00 | 10.00 | 0.50 | 3.2 |" in markdown
    assert "sine ran" in (tmp_path / "gpu_check.log").read_text()
    assert not _alive(int((tmp_path / "bench.pid").read_text()))


def test_sigterm_to_the_check_leaves_the_rows_that_came_in_and_stops_the_step(tmp_path):
    steps = f"""
    return [Step("bench", [python, "-c", {write_a_row_then(60, tmp_path)!r}], 60),
            Step("tests", [python, "-c", "pass"], 30)]
    """
    check = run_check(tmp_path, steps, budget_s=90)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the row reaches the summary while the step still runs
        if (tmp_path / "gpu_check.json").exists() and summary_of(tmp_path)[0]["bench"]:
            break
        time.sleep(0.2)
    assert summary_of(tmp_path)[0]["steps"]["bench"]["status"] == "running"
    check.send_signal(signal.SIGTERM)
    output, _ = check.communicate(timeout=30)
    assert check.returncode == 128 + signal.SIGTERM, output
    summary, markdown = summary_of(tmp_path)
    assert summary["check"]["status"] == "stopped by SIGTERM"
    assert summary["steps"]["bench"]["status"] == "stopped by SIGTERM"
    assert summary["steps"]["tests"]["status"] == "not run (the check was stopped)"
    assert summary["bench"] == [ROW] and "| sine-fp64 |" in markdown
    assert not _alive(int((tmp_path / "bench.pid").read_text()))


def test_without_a_cuda_device_the_check_stops_after_the_machine_step_and_says_so(tmp_path):
    record = json.dumps({"device": "no CUDA device"})  # what benchmarks.machine writes without one
    machine = f"open({str(tmp_path / 'machine.json')!r}, 'w').write({record!r})"
    steps = f"""
    return [Step("machine", [python, "-c", {machine!r}], 5), Step("bench", [python, "-c", "pass"], 5)]
    """
    done = run_check(tmp_path, steps, budget_s=10)
    output, _ = done.communicate(timeout=60)
    assert done.returncode == 1, output
    summary, markdown = summary_of(tmp_path)
    assert summary["steps"]["bench"]["status"] == "not run (no CUDA device)"
    assert "no CUDA device here: --rehearse runs the steps on the CPU" in markdown


TESTS = """
import signal, time

def test_passes():
    print("synchronisations in 8 training steps: 0 in all, 0 from our code")

def test_over_its_deadline():
    time.sleep(30)

def test_after_one_over_its_deadline():
    pass

def test_stuck_where_no_alarm_reaches():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # as a test inside one long C call
    time.sleep(60)
"""


@pytest.mark.parametrize("workers", [0, 2], ids=["serial", "xdist"])
def test_pytest_stopped_at_its_limit_still_reports_every_test_that_ended(tmp_path, workers):
    if workers and importlib.util.find_spec("xdist") is None:
        pytest.skip("pytest-xdist is not installed (the check uses it where it is)")
    (tmp_path / "test_stand_in.py").write_text(TESTS)
    stand_in = [str(tmp_path / "test_stand_in.py")]
    command = gpu_check.pytest_command(sys.executable, tmp_path, stand_in, deadline_s=1, workers=workers)
    limit = 12 if workers else 5  # xdist's workers take seconds to start
    steps = f"""
    return [Step("tests", {command!r}, {limit}, signal.SIGINT, grace_s=2)]
    """
    done = run_check(tmp_path, steps, budget_s=limit)
    output, _ = done.communicate(timeout=60)
    summary, markdown = summary_of(tmp_path)
    assert summary["steps"]["tests"]["status"] == f"timeout (limit {limit} s)", output
    tests = summary["tests"]
    assert (tests["collected"], tests["passed"], tests["failed"]) == (4, 2, 1)
    # Node ids are relative to pytest's rootdir, which depends on where the temporary folder lies: the file's name.
    assert [test.rpartition("/")[2] for test in tests["over_deadline"]] == ["test_stand_in.py::test_over_its_deadline"]
    assert tests["printed"] == ["synchronisations in 8 training steps: 0 in all, 0 from our code"]
    assert tests["junit"]["tests"] >= 1  # pytest wrote its own report on SIGINT too
    assert "4 collected, 3 ran: 2 passed, 1 failed" in markdown
    assert "The run was stopped before its end" in markdown and not tests["finished"]


def test_the_report_puts_each_target_beside_its_measured_value(tmp_path):
    rows = [
        {**ROW, "impl": "triton", "ms": 10.0},
        {**ROW, "impl": "torch", "ms": 25.0, "ratio": 1.0},
        {**ROW, "case": "sine-fp32", "impl": "triton", "precision": "tf32", "ratio": 0.8},
        {**ROW, "case": "sine-fp32", "impl": "torch", "precision": "ieee", "ratio": 1.0},
        {**ROW, "case": "sentiment", "impl": "triton", "precision": "tf32", "ratio": 1.2},
    ]
    (tmp_path / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"case": "cut sh')
    for job in range(4):
        (tmp_path / "sweep" / str(job)).mkdir(parents=True)
        (tmp_path / "sweep" / str(job) / "metrics.json").write_text(json.dumps({"status": "completed"}))
    check = {"started": "2026-12-08T00:00:00+00:00", "budget_s": 360, "status": "complete", "rehearsal": False}
    steps = {"sine": {"status": "ok", "wall_s": 24.5}, "sweep": {"status": "ok", "wall_s": 95.0}}
    summary = gpu_report.collect({"check": check, "steps": steps}, tmp_path, tmp_path)
    lines = gpu_report.markdown(summary, {}).splitlines()
    assert (
        "| triton fp64 sine LSTM fwd+bwd vs cuDNN | >= 3x faster | 2.50x faster (10.0 vs 25.0 ms) | **no** |" in lines
    )
    fp32 = "| triton fp32 sine, same precision class as cuDNN | <= 1.0x cuDNN's time | 0.80x, but triton in tf32 "
    assert fp32 + "and cuDNN in ieee | - |" in lines  # not the same class: not judged
    assert "| sentiment as trained (bi-GRU 128, lengths) | <= 1.5x cuDNN's time | 1.20x (tf32) | yes |" in lines
    assert "| `python train.py task=sine trainer=gpu` | < 20 s | 24.5 s | **no** |" in lines
    assert "| the headline sweep's four jobs | < 2 min | 95 s, 4 of 4 jobs completed | yes |" in lines
    assert len(summary["bench"]) == 5  # the line a kill cut short is left out


def test_the_sentiment_case_is_the_network_train_py_trains(tmp_path):
    from hydra_compose import compose_config

    cfg = compose_config([], tmp_path)
    case = next(c for c in CASES if c.name == "sentiment")
    trained = (cfg.model.cell, cfg.model.hidden_size, cfg.model.num_layers, cfg.model.bidirectional, cfg.batch)
    assert (case.cell, case.hidden, case.layers, case.bidirectional, case.batch) == trained
    assert (case.inputs, case.steps, case.lengths) == (cfg.module.embedding_dim, cfg.data.max_len, True)
    sine = next(c for c in CASES if c.name == "sine-fp64")
    cfg = compose_config(["task=sine"], tmp_path)
    assert (sine.cell, sine.hidden, sine.batch, sine.steps + 1) == (cfg.model.cell, 51, cfg.batch, cfg.data.length)


@pytest.mark.slow
def test_the_rehearsal_runs_every_step_on_the_cpu(tmp_path, polarity_dir):
    env = {**os.environ, "RNN_LIGHTNING_DATA_DIR": str(polarity_dir)}
    command = [sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path), "--rehearse"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    summary, markdown = summary_of(tmp_path)
    assert done.returncode == 0, (tmp_path / "gpu_check.log").read_text()[-3000:]
    assert {name: s["status"] for name, s in summary["steps"].items()} == dict.fromkeys(summary["steps"], "ok")
    assert {r["case"] for r in summary["bench"]} == {c.name for c in CASES}
    assert summary["tests"]["passed"] >= 2 and summary["tests"]["finished"]
    assert summary["sine"]["status"] == "completed" and len(summary["sweep"]) == 4
    assert "A rehearsal on the CPU" in markdown


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
