"""RNN, LSTM and GRU cells written from their equations.

Each cell advances one time step: ``state_t = cell(x_t, state_{t-1})``. A state is always a tuple of
tensors, ``(h,)`` for RNN and GRU and ``(h, c)`` for LSTM, so that the layer in ``layer.py`` can mask and
stack every kind the same way. The hidden output of a step is ``state[0]``.

Parameters are named and laid out like ``torch.nn.RNNCell/LSTMCell/GRUCell`` (``weight_ih`` is W,
``weight_hh`` is U, gate blocks stacked along dim 0 in PyTorch's order), so weights copy across in
either direction and the initialisation is PyTorch's: uniform in ±1/sqrt(hidden_size).
PyTorch keeps two biases (``b = bias_ih + bias_hh``); we keep both too, because the GRU candidate needs
its hidden-side bias inside the reset gate, and because it makes state dicts interchangeable.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

State = tuple[Tensor, ...]


class RecurrentCell(nn.Module):
    """Shared parameters and initialisation; subclasses set ``num_gates`` and ``state_size``."""

    num_gates: int = 1
    state_size: int = 1

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        gates = self.num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size))  # W
        self.weight_hh = nn.Parameter(torch.empty(gates, hidden_size))  # U
        self.bias_ih = nn.Parameter(torch.empty(gates))
        self.bias_hh = nn.Parameter(torch.empty(gates))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def initial_state(self, x: Tensor) -> State:
        """Zeros on the input's device and dtype, one ``(B, H)`` tensor per state component."""
        return tuple(x.new_zeros(x.shape[0], self.hidden_size) for _ in range(self.state_size))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class RNNCell(RecurrentCell):
    """Elman RNN: h_t = tanh(W x_t + U h_{t-1} + b)."""

    def forward(self, x: Tensor, state: State) -> State:
        (h,) = state
        h = torch.tanh(x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh)
        return (h,)


class LSTMCell(RecurrentCell):
    """Long short-term memory (Hochreiter & Schmidhuber, 1997), with a forget gate:

    i_t = σ(W_i x_t + U_i h_{t-1} + b_i)       input gate
    f_t = σ(W_f x_t + U_f h_{t-1} + b_f)       forget gate
    ĉ_t = tanh(W_c x_t + U_c h_{t-1} + b_c)    candidate cell
    o_t = σ(W_o x_t + U_o h_{t-1} + b_o)       output gate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ ĉ_t
    h_t = o_t ⊙ tanh(c_t)
    """

    num_gates = 4
    state_size = 2

    def forward(self, x: Tensor, state: State) -> State:
        h, c = state
        gates = x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh  # (B, 4H)
        i, f, c_hat, o = gates.chunk(4, dim=1)  # PyTorch's block order: i, f, g (= ĉ), o
        i, f, c_hat, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(c_hat), torch.sigmoid(o)
        c = f * c + i * c_hat
        h = o * torch.tanh(c)
        return h, c


class GRUCell(RecurrentCell):
    """Gated recurrent unit (Cho et al., 2014), in PyTorch's formulation:

    r_t = σ(W_r x_t + b_ir + U_r h_{t-1} + b_hr)            reset gate
    z_t = σ(W_z x_t + b_iz + U_z h_{t-1} + b_hz)            update gate
    n_t = tanh(W_n x_t + b_in + r_t ⊙ (U_n h_{t-1} + b_hn))  candidate
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}
    """

    num_gates = 3

    def forward(self, x: Tensor, state: State) -> State:
        (h,) = state
        x_r, x_z, x_n = (x @ self.weight_ih.T + self.bias_ih).chunk(3, dim=1)  # 3 x (B, H)
        h_r, h_z, h_n = (h @ self.weight_hh.T + self.bias_hh).chunk(3, dim=1)  # 3 x (B, H)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h
        return (h,)
