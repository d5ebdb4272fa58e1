"""``torch.nn`` twins of our layers, for the parity tests and the benchmark only.

Nothing in training calls this file: it exists so that a test or ``benchmarks/cells.py`` can build a
``torch.nn.RNN/LSTM/GRU`` holding exactly the same numbers as a ``Recurrent`` layer of built-in cells.
"""

from __future__ import annotations

import torch
from torch import nn

from rnn_lightning.nn.cells import GRUCell, LSTMCell, RNNCell
from rnn_lightning.nn.layer import Recurrent

TORCH_LAYERS: dict[type[nn.Module], type[nn.RNNBase]] = {RNNCell: nn.RNN, LSTMCell: nn.LSTM, GRUCell: nn.GRU}
PARAMETER_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def torch_twin(layer: Recurrent) -> nn.RNNBase:
    """A ``torch.nn`` layer with the same shape, dtype, device and weights as ``layer``."""
    reference = TORCH_LAYERS[type(layer.cells[0])](
        layer.input_size,
        layer.hidden_size,
        num_layers=layer.num_layers,
        bidirectional=layer.directions == 2,
        batch_first=True,
    )
    first = next(layer.parameters())
    reference = reference.to(device=first.device, dtype=first.dtype)
    with torch.no_grad():
        for index, cell in enumerate(layer.cells):
            suffix = f"_l{index // layer.directions}" + ("_reverse" if index % layer.directions else "")
            for name in PARAMETER_NAMES:
                getattr(reference, name + suffix).copy_(getattr(cell, name))
    return reference
