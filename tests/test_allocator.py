"""keep_freed_memory: training steps reuse freed memory instead of faulting in fresh pages every step."""

import subprocess
import sys

import pytest

# Minor page faults (in MB) of three fused-LSTM training steps at a sentiment shape, after three warm-up steps.
STEPS = """
import resource, sys, torch
from rnn_lightning.allocator import keep_freed_memory
from rnn_lightning.nn.layer import Recurrent
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.set_num_threads(1)
layer = Recurrent("lstm", 50, 128, impl="fused")
x = torch.randn(64, 51, 50, requires_grad=True)
def step():
    out, _ = layer(x)
    out.sum().backward()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) * 4096 / 2**20)
"""


def faults_mb(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return float(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_training_steps_stop_faulting_in_fresh_pages():
    default, kept = faults_mb("default"), faults_mb("keep")
    assert default > 1.0  # glibc's defaults: the steps' large buffers come back from the kernel every time
    assert kept < default / 3
