"""On a CUDA GPU: every impl is the same model as cuDNN's, autocast agrees across impls, the Triton kernels pass their
first check at the project's own configurations, a training step makes no host synchronisation of ours, and an
interrupted-and-resumed run ends bit for bit where an uninterrupted one does.

Skipped without CUDA; ``make gpu-check`` runs them (benchmarks/gpu_check.py). ``RNN_LIGHTNING_REHEARSE_ON_CPU=1``
runs the ones that can on a CPU instead (Triton through its interpreter), to rehearse the file before a GPU's time is
spent on it; the synchronisation count and the kernels' first check need a real device.
"""

from __future__ import annotations

import os
import traceback
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra_compose import compose_config, with_callbacks
from test_interrupt import RESUMABLE, SignalAt, assert_same_outcome

import rnn_lightning
from rnn_lightning import Recurrent
from rnn_lightning.nn import proving
from rnn_lightning.nn.reference import torch_twin
from rnn_lightning.training.callbacks.graceful_stop import Interrupted
from rnn_lightning.training.run import train

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


@needs_gpu
@pytest.mark.triton
@pytest.mark.parametrize(
    "kind,hidden,dtype,bidirectional,batch,autocast",
    [
        ("lstm", 51, torch.float64, False, 98, None),  # the sine default
        ("lstm", 51, torch.float32, False, 98, None),
        ("gru", 128, torch.float32, True, 64, None),  # the sentiment default, with lengths
        ("gru", 128, torch.float32, True, 64, torch.bfloat16),  # trainer.precision=bf16-mixed
    ],
)
def test_the_kernels_pass_their_first_check_at_the_projects_configurations(
    kind, hidden, dtype, bidirectional, batch, autocast, caplog
):
    """impl=auto keeps Triton on this device for the runs the project trains, and says nothing."""
    proving.forget_verdicts()
    layer = Recurrent(kind, I, hidden, bidirectional=bidirectional).to(DEVICE, dtype)
    x = torch.randn(batch, T, I, dtype=dtype, device=DEVICE)
    lengths = torch.randint(1, T + 1, (batch,), device=DEVICE) if bidirectional else None
    with torch.autocast(DEVICE, autocast or torch.bfloat16, enabled=autocast is not None):
        chosen = proving.runnable_impl("auto", layer.cells[: layer.directions], x, lengths, None)
    assert chosen == "triton", [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.name == "rnn_lightning" and r.levelname == "WARNING"]


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
def test_a_training_step_makes_no_synchronisation_of_ours(impl, polarity_dir, tmp_path):
    recorder = SyncRecorder()
    tiny = ["epochs=1", "trainer.limit_train_batches=8", "trainer.limit_val_batches=1", f"model.impl={impl}"]
    tiny += with_callbacks(sync_recorder=recorder)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = recorder.showwarning
        train(compose_config([f"data.data_dir={polarity_dir}", *tiny], tmp_path, device=TRAINER))
    package = str(Path(rnn_lightning.__file__).parent)
    ours = [stack for stack in recorder.stacks if any(frame.filename.startswith(package) for frame in stack)]
    print(f"synchronisations in 8 training steps: {len(recorder.stacks)} in all, {len(ours)} from our code")
    assert not ours, "".join(traceback.format_list(ours[0]))


def test_an_interrupted_and_resumed_run_matches_an_uninterrupted_one(tmp_path):
    whole = tmp_path / "whole"
    train(compose_config(RESUMABLE, whole, device=TRAINER))
    split = tmp_path / "split"
    with pytest.raises(Interrupted):
        train(
            compose_config(
                [*RESUMABLE, *with_callbacks(signal_at=SignalAt(15, epoch=1, batch=3))], split, device=TRAINER
            )
        )
    last = split / "checkpoints" / "last.ckpt"
    train(compose_config([*RESUMABLE, f"ckpt_path={last}"], split, device=TRAINER))
    assert_same_outcome(whole, split)
