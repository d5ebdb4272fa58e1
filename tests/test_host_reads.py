"""A training step reads nothing back to the host: on a GPU each read would make the host wait for the device.

On this CPU the reads are free, so they are counted instead: every ``Tensor.__bool__``, ``item``, ``tolist``,
``__float__``, ``__int__``, ``cpu`` and ``numpy`` called from the project's own code between the start and the end of a
training batch (``torch.cuda.set_sync_debug_mode`` does the same job on a GPU; the GPU check runs that).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra_compose import TINY_SINE, compose_config, with_callbacks

import rnn_lightning
from rnn_lightning.training.callbacks.guard import FiniteGuard
from rnn_lightning.training.run import train

PACKAGE = str(Path(rnn_lightning.__file__).parent)
READS = ("__bool__", "item", "tolist", "__float__", "__int__", "cpu", "numpy")
# Reads of CPU-only tensors that a GPU run never makes: the layer checks lengths' values only when they are on the
# CPU (on a GPU the batch, lengths included, is on the device and the check is skipped).
CPU_ONLY = {("layer.py", "_check_inputs")}


class CountReads(L.Callback):
    def __init__(self) -> None:
        self.inside = False
        self.reads: Counter[tuple[str, str]] = Counter()

    def on_train_batch_start(self, *args) -> None:
        self.inside = True

    def on_train_batch_end(self, *args) -> None:
        self.inside = False


@pytest.fixture
def counter(monkeypatch):
    count = CountReads()
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            caller = sys._getframe(1)
            if count.inside and caller.f_code.co_filename.startswith(PACKAGE):
                count.reads[(Path(caller.f_code.co_filename).name, caller.f_code.co_name)] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    real_init = FiniteGuard.__init__
    monkeypatch.setattr(
        FiniteGuard, "__init__", lambda self, monitor=None, deferred=None: real_init(self, monitor, True)
    )
    return count


def test_a_sine_training_step_reads_nothing_back(counter, tmp_path):
    train(compose_config([*TINY_SINE, "optim=adam", "batch=49", "epochs=2", *with_callbacks(count=counter)], tmp_path))
    assert counter.reads == Counter()


def test_a_sentiment_training_step_reads_nothing_back(counter, polarity_dir, tmp_path):
    tiny = ["model.hidden_size=8", "epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1"]
    counted = with_callbacks(count=counter)
    train(compose_config([f"data.data_dir={polarity_dir}", *tiny, "module.word_dropout=0.2", *counted], tmp_path))
    assert set(counter.reads) <= CPU_ONLY, counter.reads
