"""Pure PyTorch: the cells from their equations, the recurrent layer over them, and its fast implementations.

Nothing here imports Lightning or Hydra (a test checks it), so the layer drops into any PyTorch model.
"""

from rnn_lightning.nn.cells import GRUCell, LSTMCell, RecurrentCell, RNNCell, State
from rnn_lightning.nn.layer import Recurrent
from rnn_lightning.nn.registry import CELLS, IMPLS, make_cell

__all__ = ["CELLS", "IMPLS", "GRUCell", "LSTMCell", "RNNCell", "Recurrent", "RecurrentCell", "State", "make_cell"]
