"""A recurrent layer built from the cells: stacked, optionally bidirectional, aware of padding.

``Recurrent`` runs a batch-first sequence ``(B, T, I) -> (B, T, H * directions)`` and returns the final
state in ``torch.nn.RNN``'s layout, one ``(num_layers * directions, B, H)`` tensor per state component.
With ``lengths``, padded steps never change a sequence's state, their outputs are zero, and the backward
direction starts at each sequence's last real step, exactly like a packed sequence in ``torch.nn``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rnn_lightning.nn.cells import RecurrentCell, State, make_cell

IMPLS = ("loop", "fused")

# (cell, x (B, T, I), state, lengths (B,) or None, reverse) -> (outputs (B, T, H), final state)
DirectionRunner = Callable[[RecurrentCell, Tensor, State, Tensor | None, bool], tuple[Tensor, State]]


def run_loop(
    cell: RecurrentCell, x: Tensor, state: State, lengths: Tensor | None = None, reverse: bool = False
) -> tuple[Tensor, State]:
    """The readable reference: call the cell once per time step."""
    steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
    outputs: list[Tensor] = [x] * x.shape[1]  # placeholders, every slot is overwritten
    for t in steps:
        new_state = cell(x[:, t], state)
        if lengths is not None:
            # Past a sequence's end the old state is kept; reversed, the state stays at its initial
            # value until t reaches the last real step, which is where the backward pass must start.
            valid = (t < lengths).unsqueeze(1)  # (B, 1)
            new_state = tuple(torch.where(valid, new, old) for new, old in zip(new_state, state))
            outputs[t] = new_state[0].masked_fill(~valid, 0.0)
        else:
            outputs[t] = new_state[0]
        state = new_state
    return torch.stack(outputs, dim=1), state  # (B, T, H)


def direction_runner(impl: str) -> DirectionRunner:
    if impl == "loop":
        return run_loop
    if impl == "fused":
        from rnn_lightning.nn.fused import run_fused  # imported lazily: the loop path needs none of it

        return run_fused
    raise ValueError(f"unknown recurrent impl {impl!r}; choose one of {list(IMPLS)}")


class Recurrent(nn.Module):
    """``num_layers`` x ``directions`` cells; cell ``layer * directions + direction`` in ``self.cells``."""

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        impl: str = "loop",
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.run_direction = direction_runner(impl)
        self.kind, self.impl = cell, impl
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.directions = num_layers, 2 if bidirectional else 1
        self.cells = nn.ModuleList(
            make_cell(cell, input_size if layer == 0 else hidden_size * self.directions, hidden_size)
            for layer in range(num_layers)
            for _ in range(self.directions)
        )
        self.state_size = self.cells[0].state_size
        self.dropout = nn.Dropout(dropout)

    @property
    def output_size(self) -> int:
        return self.hidden_size * self.directions

    def forward(self, x: Tensor, state: State | None = None, lengths: Tensor | None = None) -> tuple[Tensor, State]:
        """x: (B, T, I); state: per component (L * D, B, H); lengths: (B,) real steps per sequence."""
        self._check_inputs(x, lengths)
        if lengths is not None:
            lengths = lengths.to(device=x.device, dtype=torch.long)
        finals: list[State] = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.directions):
                index = layer * self.directions + direction
                cell = self.cells[index]
                start = cell.initial_state(x) if state is None else tuple(s[index] for s in state)
                out, final = self.run_direction(cell, x, start, lengths, direction == 1)
                outputs.append(out)  # (B, T, H)
                finals.append(final)
            x = torch.cat(outputs, dim=2) if self.directions == 2 else outputs[0]  # (B, T, D * H)
            if layer < self.num_layers - 1:
                x = self.dropout(x)
        final_state = tuple(torch.stack(parts, dim=0) for parts in zip(*finals))  # (L * D, B, H) each
        return x, final_state

    def _check_inputs(self, x: Tensor, lengths: Tensor | None) -> None:
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"expected input of shape (batch, time, {self.input_size}), got {tuple(x.shape)}")
        if lengths is None:
            return
        if lengths.shape != (x.shape[0],):
            raise ValueError(f"lengths must have shape ({x.shape[0]},), got {tuple(lengths.shape)}")
        if lengths.numel() and (lengths.min() < 1 or lengths.max() > x.shape[1]):
            raise ValueError(f"lengths must lie in [1, {x.shape[1]}], got {lengths.tolist()}")

    def extra_repr(self) -> str:
        return f"impl={self.impl!r}, num_layers={self.num_layers}, directions={self.directions}"
