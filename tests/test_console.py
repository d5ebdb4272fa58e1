"""What `python train.py` prints: each message once, no promotional tips, the model's layers, one line per epoch
outside a terminal; in a terminal the rich progress bar, and a terminal left as it was after Ctrl-C."""

from __future__ import annotations

import logging
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra_compose import QUICK_LBFGS, TINY_SINE
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason

from rnn_lightning.training.callbacks.console import SaidEarlyStopping

ROOT = Path(__file__).resolve().parents[1]
TINY = [*TINY_SINE, QUICK_LBFGS, "trainer=cpu"]
PREFIX = re.compile(r"^\[\d\d:\d\d:\d\d\]\[(INFO|WARNING|ERROR)\] ")
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


@dataclass
class Terminal:
    output: str  # what the terminal received, escape sequences included
    returncode: int
    run: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path, Terminal]:
    """Two real `python train.py` runs, started together: one with its output in pipes (a log, a CI job), and one
    in a pseudo-terminal, as a user's shell gives it, stopped with Ctrl-C (SIGINT) once its bar has drawn."""
    logged, in_terminal = tmp_path_factory.mktemp("logged"), tmp_path_factory.mktemp("terminal")
    piped = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *TINY, "epochs=2", f"hydra.run.dir={logged}"],
        cwd=logged,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    terminal = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *TINY, "epochs=1000", f"hydra.run.dir={in_terminal}"],
        cwd=in_terminal,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        start_new_session=True,
    )
    os.close(follower)
    output = read_until(leader, lambda text: "Epoch 1/" in text, timeout=120)
    terminal.send_signal(signal.SIGINT)
    output += read_until(leader, lambda _: terminal.poll() is not None, timeout=60)
    terminal.wait(timeout=30)
    os.close(leader)
    stdout, stderr = piped.communicate(timeout=180)
    assert piped.returncode == 0, stderr[-3000:]
    done = subprocess.CompletedProcess(piped.args, piped.returncode, stdout, stderr)
    return done, logged, Terminal(output, terminal.returncode, in_terminal)


@pytest.fixture(scope="module")
def console(runs) -> tuple[subprocess.CompletedProcess, Path]:
    return runs[0], runs[1]


def test_each_message_is_printed_once_in_the_short_format_and_no_tip_at_all(console):
    done, run = console
    lines = done.stdout.splitlines()
    messages = [PREFIX.sub("", line) for line in lines if PREFIX.match(line)]
    assert messages and all(count == 1 for count in Counter(messages).values()), Counter(messages).most_common(3)
    assert messages[0] == "Seed set to 42" and "`Trainer.fit` stopped: `max_epochs=2` reached." in messages
    assert "INFO:" not in done.stderr  # Lightning's own console handler, which printed every message a second time
    assert "Tip" not in done.stdout + done.stderr and "litlogger" not in done.stdout + done.stderr
    logged = (run / "train.log").read_text()  # the job's log file: the same messages, with the logger names
    assert logged.count("Seed set to 42") == 1 and "[lightning.fabric.utilities.seed][INFO]" in logged
    assert "Tip" not in logged


def test_model_summary_lists_the_layers_and_their_parameters_not_the_metrics(console):
    done, _ = console
    table = done.stdout.split("][INFO] model:\n", 1)[1].split("\n[", 1)[0].splitlines()
    assert table[0].split() == ["layer", "type", "params"] and set(table[1]) == {"-"}
    rows = {line.split()[0]: line.split()[1:] for line in table[2:-1]}
    assert list(rows) == ["rnn", "rnn.cells.0", "rnn.dropout", "head"]  # no torchmetrics objects, no ModuleList
    assert rows["rnn.cells.0"] == ["LSTMCell", "352"] and rows["head"] == ["Linear", "9"]  # 4*8*(1+8) + 2*4*8; 8+1
    assert table[-1] == "361 parameters"
    assert "FLOPs" not in done.stdout and "Metric" not in done.stdout


def test_outside_a_terminal_one_line_per_epoch_and_no_progress_bar(console):
    done, _ = console
    epochs = [line for line in done.stdout.splitlines() if "][INFO] epoch " in line]
    assert [line.split("][INFO] ")[1].split()[:2] for line in epochs] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert "val/forecast_mse=" in epochs[0] and "Epoch " not in done.stdout  # the rich bar says "Epoch 0/1 ━━"


def test_in_a_terminal_the_bar_draws_and_ctrl_c_leaves_the_terminal_as_it_was(runs):
    """The rich bar draws (and hides the cursor while it does); Ctrl-C stops the run, which shows the cursor again
    and leaves a resumable last.ckpt."""
    terminal = runs[2]
    assert "━" in terminal.output and HIDE_CURSOR in terminal.output, terminal.output[-2000:]
    assert "v_num" not in terminal.output  # the end of the run's name, cut to 4 letters, in Lightning's bar
    assert terminal.returncode != 0 and (terminal.run / "checkpoints" / "last.ckpt").exists()
    assert terminal.output.rindex(SHOW_CURSOR) > terminal.output.rindex(HIDE_CURSOR), terminal.output[-2000:]


def read_until(fd: int, done, timeout: float) -> str:
    """What the terminal shows, read until ``done(text)`` or the timeout."""
    text, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline and not done(text):
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                text += os.read(fd, 65536).decode(errors="replace")
            except OSError:  # the other side closed: the process has ended
                break
    while select.select([fd], [], [], 0.2)[0]:  # what is still on its way
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        text += chunk.decode(errors="replace")
    return text


def test_a_run_stopped_early_says_so_once(caplog):
    stopping = SaidEarlyStopping(monitor="val/acc", mode="max", patience=4)
    trainer = SimpleNamespace(is_global_zero=True, max_epochs=15)
    with caplog.at_level(logging.INFO, logger="rnn_lightning"):
        stopping.on_train_end(trainer, None)  # ran to the end: nothing to say
        stopping.stopped_epoch, stopping.wait_count = 12, 4
        stopping.stopping_reason, stopping.best_score = EarlyStoppingReason.PATIENCE_EXHAUSTED, torch.tensor(0.7925)
        stopping.on_train_end(trainer, None)
    assert caplog.messages == ["stopped early after epoch 13/15: val/acc has not improved for 4 epochs (best 0.7925)"]
