"""Many-to-one readouts: turn a padded sequence of hidden outputs into one vector per review."""

from __future__ import annotations

import torch
from torch import Tensor

READOUTS = ("last", "mean", "max", "max_mean")


def last_state(final_h: Tensor, directions: int) -> Tensor:
    """The top layer's final hidden state, both directions side by side: (L * D, B, H) -> (B, D * H).

    With lengths, the forward direction's final state is the one at each review's last real token and
    the backward direction's is the one after reading back to the first token.
    """
    return torch.cat(list(final_h[-directions:]), dim=1)


def readout_width(how: str, features: int) -> int:
    """Width of the readout of ``features``-wide outputs: max_mean puts the two pools side by side."""
    return 2 * features if how == "max_mean" else features


def pool(outputs: Tensor, lengths: Tensor, how: str) -> Tensor:
    """Mean, max, or both side by side (max first), over the real steps only: (B, T, F) -> (B, F) or (B, 2F)."""
    valid = torch.arange(outputs.shape[1], device=outputs.device) < lengths.to(outputs.device)[:, None]  # (B, T)
    valid = valid.unsqueeze(-1)  # (B, T, 1)
    if how == "mean":
        return (outputs * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)
    if how == "max":
        return outputs.masked_fill(~valid, float("-inf")).amax(dim=1)
    if how == "max_mean":
        return torch.cat([pool(outputs, lengths, "max"), pool(outputs, lengths, "mean")], dim=1)
    raise ValueError(f"unknown readout {how!r}; choose one of {list(READOUTS)}")
