"""rnn-lightning: recurrent cells written from their equations, trained with Lightning and Hydra.

The modelling core is pure PyTorch and importable on its own::

    from rnn_lightning import Recurrent
    rnn = Recurrent("lstm", input_size=50, hidden_size=128, bidirectional=True)
    outputs, (h, c) = rnn(x, lengths=lengths)      # x (B, T, 50) -> outputs (B, T, 256)

Layers, one folder each, imports pointing down: ``nn`` (cells, layer, fast paths) <- ``data`` <- ``models``
(LightningModules) <- ``training`` (a composed config to a finished run) <- ``cli`` (the user's commands).
``python -m rnn_lightning.train`` is the training command (``train.py`` in a checkout is the same).
"""

from __future__ import annotations

import importlib
from typing import Any

# The public names, imported when first used: `python train.py --help` and the config schema need no torch.
_PUBLIC = {
    "GRUCell": "rnn_lightning.nn",
    "LSTMCell": "rnn_lightning.nn",
    "RNNCell": "rnn_lightning.nn",
    "Recurrent": "rnn_lightning.nn",
    "RecurrentCell": "rnn_lightning.nn",
    "make_cell": "rnn_lightning.nn",
    "check_cell": "rnn_lightning.nn.testing",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'rnn_lightning' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
