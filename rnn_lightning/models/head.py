"""The readout head: one linear layer, or two with an activation between them."""

from __future__ import annotations

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}


def make_head(in_features: int, out_features: int, hidden: int = 0, activation: str = "relu", dropout=0.0):
    """``hidden=0`` gives one linear layer; ``hidden>0`` gives linear -> activation -> dropout -> linear."""
    if hidden < 0:
        raise ValueError(f"head hidden size must be 0 (one linear layer) or positive, got {hidden}")
    if hidden == 0:
        return nn.Linear(in_features, out_features)
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown head activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        ACTIVATIONS[activation](),
        nn.Dropout(dropout),
        nn.Linear(hidden, out_features),
    )
