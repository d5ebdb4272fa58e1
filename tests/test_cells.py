"""Each hand-written cell computes what torch.nn's cell computes, and its gradients are right."""

import pytest
import torch
from torch import nn

from rnn_lightning.nn.registry import CELLS, make_cell

TORCH_CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}
B, I, H = 5, 3, 7


def twin_cells(kind: str) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    ours = make_cell(kind, I, H).double()
    theirs = TORCH_CELLS[kind](I, H).double()
    theirs.load_state_dict(ours.state_dict())  # same parameter names and layout
    return ours, theirs


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_cell_matches_torch(kind):
    ours, theirs = twin_cells(kind)
    x = torch.randn(B, I, dtype=torch.float64)
    state = tuple(torch.randn(B, H, dtype=torch.float64) for _ in range(ours.state_size))
    got = ours(x, state)
    expected = theirs(x, state if kind == "lstm" else state[0])
    expected = expected if kind == "lstm" else (expected,)
    assert len(got) == ours.state_size
    for g, e in zip(got, expected):
        assert g.shape == (B, H)
        torch.testing.assert_close(g, e, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_cell_gradcheck(kind):
    ours, _ = twin_cells(kind)
    x = torch.randn(2, I, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(2, H, dtype=torch.float64, requires_grad=True) for _ in range(ours.state_size))
    assert torch.autograd.gradcheck(lambda x, *s: ours(x, s), (x, *state))


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_initialisation_is_uniform_within_pytorch_bound(kind):
    cell = make_cell(kind, 4, 100)
    bound = 100**-0.5
    for name, p in cell.named_parameters():
        assert p.abs().max() <= bound, name
        assert p.abs().max() > 0.9 * bound, name  # really spread over the interval, not near zero
    state = cell.initial_state(torch.zeros(3, 4, dtype=torch.float64))
    assert all(s.dtype == torch.float64 and s.shape == (3, 100) and not s.any() for s in state)


def test_unknown_cell_kind_lists_choices():
    with pytest.raises(
        ValueError, match=r"unknown cell 'transformer'; choose one of \['gru', 'lstm', 'rnn'\], or give the import path"
    ):
        make_cell("transformer", 1, 1)
