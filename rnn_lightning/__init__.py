"""rnn-lightning: recurrent cells written from their equations, trained with Lightning and Hydra.

The modelling core is pure PyTorch and importable on its own::

    from rnn_lightning import Recurrent
    rnn = Recurrent("lstm", input_size=50, hidden_size=128, bidirectional=True)
    outputs, (h, c) = rnn(x, lengths=lengths)      # x (B, T, 50) -> outputs (B, T, 256)

Layers, one folder each, imports pointing down: ``nn`` (cells, layer, fast paths) <- ``data`` <- ``models``
(LightningModules) <- ``training`` (a composed config to a finished run) <- ``cli`` (the user's commands).
"""

from rnn_lightning.nn import GRUCell, LSTMCell, Recurrent, RecurrentCell, RNNCell, make_cell
from rnn_lightning.nn.testing import check_cell

__all__ = ["GRUCell", "LSTMCell", "RNNCell", "Recurrent", "RecurrentCell", "check_cell", "make_cell"]
