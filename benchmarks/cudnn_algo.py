"""Which cuDNN RNN algorithm PyTorch asks for, so that a benchmark row can say what it was compared with.

PyTorch picks it itself, per call, in ``get_algo`` of ``aten/src/ATen/native/cudnn/RNN.cpp`` (the same rule from
torch 1.12, when the small-hidden-size kernels came in, through 2.11); this mirrors that rule:

* packed input (torch.nn's way of taking lengths), a projection, or float64: ``standard``;
* otherwise ``persist_static_small_h`` when the hidden size is small, decided apart for the forward and the
  backward (RNN: H <= 384 forward, <= 256 backward; LSTM and GRU: H <= 192 forward, <= 128 backward), on compute
  capability 6.0 and newer. Neither layers nor directions matter;
* otherwise, for float16 only, ``persist_static`` when one unidirectional layer with H and the input size multiples
  of 128 (H <= 1024) meets the device rule (on sm_80+ with >= 98 SMs, not sm_86: LSTMs with a batch that is a
  multiple of 8 up to 128; plain RNNs likewise unless batch >= 96 with H >= 896; never GRUs);
* otherwise ``standard``.

The persistent kernels keep the recurrent weights on chip for the whole sequence; ``standard`` runs a GEMM per step.
Whether fp32 products use TF32 is apart from this: ``torch.backends.cudnn.rnn.fp32_precision`` (``machine.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

STANDARD, SMALL_H, PERSISTENT = "standard", "persist_static_small_h", "persist_static"
SMALL_H_LIMITS = {"rnn": (384, 256), "lstm": (192, 128), "gru": (192, 128)}  # (forward, backward)


@dataclass(frozen=True)
class Device:
    major: int
    minor: int
    sms: int


H100 = Device(9, 0, 132)  # what a row assumes where no GPU is there to ask (a rehearsal on the CPU)


def cudnn_algorithm(
    cell: str,
    hidden: int,
    input_size: int,
    batch: int,
    steps: int,
    num_layers: int,
    bidirectional: bool,
    dtype: str,
    packed: bool,
    forward: bool,
    device: Device = H100,
    proj_size: int = 0,
) -> str:
    """The algorithm of one call: ``cell`` rnn/lstm/gru, ``dtype`` float16/bfloat16/float32/float64."""
    if proj_size != 0 or packed:
        return STANDARD
    if dtype != "float64" and device.major >= 6 and hidden <= SMALL_H_LIMITS[cell][0 if forward else 1]:
        return SMALL_H
    persistent = dtype == "float16" and _one_wide_layer(hidden, input_size, num_layers, bidirectional)
    return PERSISTENT if persistent and _device_allows(cell, hidden, batch, steps, device) else STANDARD


def _one_wide_layer(hidden: int, input_size: int, num_layers: int, bidirectional: bool) -> bool:
    return num_layers == 1 and not bidirectional and hidden <= 1024 and hidden % 128 == 0 and input_size % 128 == 0


def _device_allows(cell: str, hidden: int, batch: int, steps: int, device: Device) -> bool:
    if device.major == 7:  # Volta; Turing (7.5) never
        fits = (steps >= 40 and batch <= 128) or (steps >= 20 and batch <= 96) or (steps >= 10 and batch <= 32)
        return device.minor != 5 and ((batch % 16 == 0 and batch not in (80, 112)) or batch == 8) and fits
    if device.major < 8 or device.sms < 98 or device.minor == 6 or cell == "gru":  # A30, A40-class, any GRU: never
        return False
    if cell == "lstm":
        return batch % 8 == 0 and batch <= 128
    return batch % 8 == 0 and batch <= 128 and (batch < 96 or hidden < 896)
