"""Two cells of your own, each a few lines from its equations: train them with ``model.cell=examples.cells.<Name>``.

Any ``nn.Module`` with an ``(input_size, hidden_size)`` constructor, ``state_size``, ``initial_state(x)`` and
``forward(x_t, state) -> state`` is a cell (docs/custom-cells.md); ``rnn_lightning.check_cell`` checks one.
"""

import torch
from torch import nn


class PeepholeLSTM(nn.Module):
    """LSTM whose gates also see the cell state (Gers & Schmidhuber, 2000): i, f read c_{t-1}; o reads c_t."""

    state_size = 2

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.gates = nn.Linear(input_size + hidden_size, 4 * hidden_size)
        self.peep = nn.Parameter(torch.zeros(3, hidden_size))  # diagonal peepholes for i, f, o

    def initial_state(self, x):
        return tuple(x.new_zeros(x.shape[0], self.hidden_size) for _ in range(2))

    def forward(self, x, state):
        h, c = state
        i, f, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)  # (B, H) each
        i = torch.sigmoid(i + self.peep[0] * c)
        f = torch.sigmoid(f + self.peep[1] * c)
        c = f * c + i * torch.tanh(g)
        o = torch.sigmoid(o + self.peep[2] * c)
        return o * torch.tanh(c), c


class MinimalGatedUnit(nn.Module):
    """Minimal gated unit (Zhou et al., 2016): one forget gate f; h_t = (1 - f) h_{t-1} + f tanh(W x + U (f h))."""

    state_size = 1

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.forget = nn.Linear(input_size + hidden_size, hidden_size)
        self.candidate_x = nn.Linear(input_size, hidden_size)
        self.candidate_h = nn.Linear(hidden_size, hidden_size, bias=False)

    def initial_state(self, x):
        return (x.new_zeros(x.shape[0], self.hidden_size),)

    def forward(self, x, state):
        (h,) = state
        f = torch.sigmoid(self.forget(torch.cat([x, h], dim=1)))  # (B, H)
        h_hat = torch.tanh(self.candidate_x(x) + self.candidate_h(f * h))
        return ((1 - f) * h + f * h_hat,)
