"""The readable reference implementation: call the cell once per time step."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnn_lightning.nn.cells import State


def run_loop(
    cell: nn.Module, x: Tensor, state: State, lengths: Tensor | None = None, reverse: bool = False
) -> tuple[Tensor, State]:
    """One direction of one layer: x (B, T, I) -> outputs (B, T, H) and the final state.

    With ``lengths``, a sequence's state stops changing after its last real step and its padded outputs are zero.
    """
    steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
    outputs: list[Tensor] = [x] * x.shape[1]  # placeholders, every slot is overwritten
    for t in steps:
        new_state = tuple(cell(x[:, t], state))
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
