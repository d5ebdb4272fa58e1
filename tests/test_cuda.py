"""On a CUDA GPU: every impl is the same model as cuDNN's, autocast agrees across impls, a training step makes no host
synchronisation of ours, and an interrupted-and-resumed run ends bit for bit where an uninterrupted one does.

Skipped without CUDA; ``make gpu-check`` runs them (benchmarks/gpu_check.py). ``RNN_LIGHTNING_REHEARSE_ON_CPU=1``
runs the ones that can on this CPU instead (Triton through its interpreter), to rehearse the file before a GPU
session; the synchronisation count needs a real device.
"""

from __future__ import annotations

import os
import traceback
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra_compose import compose_config
from test_interrupt import RESUMABLE, SignalAt, assert_same_outcome

import rnn_lightning.training.build as build_module
from rnn_lightning import Recurrent
from rnn_lightning.nn.reference import torch_twin
from rnn_lightning.training.run import train
from rnn_lightning.training.signals import Interrupted

REHEARSAL = not torch.cuda.is_available() and os.environ.get("RNN_LIGHTNING_REHEARSE_ON_CPU") == "1"
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TRAINER = "gpu" if torch.cuda.is_available() else "cpu"
pytestmark = pytest.mark.skipif(not (torch.cuda.is_available() or REHEARSAL), reason="needs CUDA (make gpu-check)")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a real CUDA device")
IMPLS = ["loop", "fused", "triton"]
B, T, I, H = 5, 9, 4, 16
LENGTHS = [9, 3, 6, 1, 9]


def layers(kind: str, dtype: torch.dtype) -> tuple[dict[str, Recurrent], torch.nn.RNNBase]:
    torch.manual_seed(0)
    ours = {impl: Recurrent(kind, I, H, num_layers=2, bidirectional=True, impl=impl) for impl in IMPLS}
    for layer in ours.values():
        layer.load_state_dict(ours["loop"].state_dict())
        layer.to(device=DEVICE, dtype=dtype)
    return ours, torch_twin(ours["loop"])


def forward_backward(layer: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor | None, twin: bool) -> list:
    x = x.detach().clone().requires_grad_()
    if twin and lengths is not None:
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = layer(packed)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    else:
        out, final = layer(x, lengths=lengths) if not twin else layer(x)
    finals = list(final) if isinstance(final, tuple) else [final]
    (out.square().sum() + sum(f.sum() for f in finals)).backward()
    return [out, *finals, x.grad, *(p.grad for p in layer.parameters())]


@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_every_impl_is_cudnns_model_in_float64(kind, with_lengths):
    ours, cudnn = layers(kind, torch.float64)
    x = torch.randn(B, T, I, dtype=torch.float64, device=DEVICE)
    lengths = torch.tensor(LENGTHS, device=DEVICE) if with_lengths else None
    want = forward_backward(cudnn, x, lengths, twin=True)
    for impl, layer in ours.items():
        got = forward_backward(layer, x, lengths, twin=False)
        for index, (g, w) in enumerate(zip(got, want)):
            torch.testing.assert_close(g, w, rtol=0, atol=1e-6, msg=lambda m, i=impl, n=index: f"{i} #{n}: {m}")


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_under_autocast_fused_and_triton_agree_with_the_loop(kind):
    if REHEARSAL:
        pytest.skip("Triton's interpreter computes bfloat16 dots wrongly (triton#11584): a GPU-only check")
    ours, _ = layers(kind, torch.float32)
    x = torch.randn(B, T, I, device=DEVICE)
    lengths = torch.tensor(LENGTHS, device=DEVICE)
    with torch.autocast(DEVICE, torch.bfloat16):
        want = forward_backward(ours["loop"], x, lengths, twin=False)
        for impl in ("fused", "triton"):
            got = forward_backward(ours[impl], x, lengths, twin=False)
            for g, w in zip(got, want):
                assert g.dtype == w.dtype
                scale = w.abs().max().clamp(min=1.0)
                assert float((g - w).abs().max() / scale) < 3e-2, impl  # a few bf16 roundings apart


class SyncRecorder(L.Callback):
    """Turns on CUDA's synchronisation warnings inside training batches, and keeps the Python stack of each."""

    def __init__(self) -> None:
        self.stacks: list[list[traceback.FrameSummary]] = []

    def on_train_batch_start(self, *args) -> None:
        torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_end(self, *args) -> None:
        torch.cuda.set_sync_debug_mode("default")

    def showwarning(self, message, category, *args, **kwargs) -> None:
        if "synchroniz" in str(message):
            self.stacks.append(traceback.extract_stack()[:-2])


@needs_gpu
@pytest.mark.parametrize("impl", ["fused", "triton"])
def test_a_training_step_makes_no_synchronisation_of_ours(impl, polarity_dir, tmp_path, monkeypatch):
    recorder = SyncRecorder()
    callbacks = build_module.callbacks
    monkeypatch.setattr(build_module, "callbacks", lambda *a: [recorder, *callbacks(*a)])
    tiny = ["epochs=1", "trainer.limit_train_batches=8", "trainer.limit_val_batches=1", f"model.impl={impl}"]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = recorder.showwarning
        train(compose_config([f"data.data_dir={polarity_dir}", *tiny], tmp_path, device=TRAINER))
    package = str(Path(build_module.__file__).parents[1])
    ours = [stack for stack in recorder.stacks if any(frame.filename.startswith(package) for frame in stack)]
    print(f"synchronisations in 8 training steps: {len(recorder.stacks)} in all, {len(ours)} from our code")
    assert not ours, "".join(traceback.format_list(ours[0]))


def test_an_interrupted_and_resumed_run_matches_an_uninterrupted_one(tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    train(compose_config(RESUMABLE, whole, device=TRAINER))
    callbacks = build_module.callbacks
    monkeypatch.setattr(build_module, "callbacks", lambda *a: [*callbacks(*a), SignalAt(15, epoch=1, batch=3)])
    split = tmp_path / "split"
    with pytest.raises(Interrupted):
        train(compose_config(RESUMABLE, split, device=TRAINER))
    monkeypatch.setattr(build_module, "callbacks", callbacks)
    last = split / "checkpoints" / "last.ckpt"
    train(compose_config([*RESUMABLE, f"ckpt_path={last}"], split, device=TRAINER))
    assert_same_outcome(whole, split)
