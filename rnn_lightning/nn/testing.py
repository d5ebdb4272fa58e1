"""``check_cell``: the checks our own cells pass, for a cell of yours.

    from rnn_lightning import check_cell
    check_cell(PeepholeLSTM)          # or check_cell("mypkg.cells.PeepholeLSTM"); raises AssertionError on a fault

1. the interface: ``initial_state(x)`` gives ``state_size`` tensors of shape (B, H), ``forward`` returns as many;
2. gradients: ``torch.autograd.gradcheck`` in float64 through a short sequence, for the input and every parameter;
3. padding: extra padded steps, whatever they hold, change no output and no final state, in both directions,
   and a sequence gives the same outputs alone as inside a padded batch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from rnn_lightning.nn.layer import Recurrent


def check_cell(
    cell: str | type[nn.Module], input_size: int = 3, hidden_size: int = 4, batch: int = 3, steps: int = 5
) -> None:
    """Run the three checks on ``cell`` (a class, its import path or a built-in name); AssertionError says which
    failed and how."""
    generator = torch.Generator().manual_seed(0)
    layer = Recurrent(cell, input_size, hidden_size, bidirectional=True, impl="loop").double()
    x = torch.randn(batch, steps, input_size, dtype=torch.float64, generator=generator)
    _check_interface(layer, x)
    _check_gradients(layer, x[:, :3])
    _check_padding(layer, x, generator)


def check_interface(cell: str | type[nn.Module], hidden_size: int, input_size: int = 3) -> None:
    """The quick part of :func:`check_cell`, cheap enough to run before every training run: the cell is built,
    ``initial_state`` and one ``forward`` step run on a tiny batch, and the state's count and shapes are right.
    Raises AssertionError saying what is wrong, in the cell's own terms. Draws nothing from torch's global random
    generator (a training run seeded before it builds its model the same whether this ran or not)."""
    with torch.random.fork_rng(devices=[]):
        try:
            layer = Recurrent(cell, input_size, hidden_size, impl="loop")
        except TypeError as error:
            raise AssertionError(f"building it as cell(input_size, hidden_size) failed: TypeError: {error}") from None
        try:
            _check_interface(layer, torch.randn(2, 1, input_size))
        except AssertionError:
            raise
        except Exception as error:
            raise AssertionError(f"a step on a batch of 2 raised {type(error).__name__}: {error}") from None


def _check_interface(layer: Recurrent, x: Tensor) -> None:
    cell, name = layer.cells[0], type(layer.cells[0]).__name__
    state = tuple(cell.initial_state(x[:, 0]))
    shapes = [tuple(s.shape) for s in state]
    expected = (x.shape[0], layer.hidden_size)
    assert len(state) == layer.state_size and all(s == expected for s in shapes), (
        f"{name}.initial_state(x) must return state_size={layer.state_size} tensors of shape {expected} "
        f"(batch, hidden_size), got {shapes}"
    )
    returned = cell(x[:, 0], state)
    assert isinstance(returned, tuple | list), (
        f"{name}.forward(x_t, state) must return its new state as a tuple of state_size tensors, got "
        f"{type(returned).__name__}"
    )
    new = tuple(returned)
    assert [tuple(s.shape) for s in new] == shapes, (
        f"{name}.forward(x_t, state) must return a state shaped like its input {shapes}, got "
        f"{[tuple(s.shape) for s in new]}"
    )


def _check_gradients(layer: Recurrent, x: Tensor) -> None:
    names = [name for name, _ in layer.named_parameters()]

    def outputs(x: Tensor, *weights: Tensor) -> tuple[Tensor, ...]:
        out, final = functional_call(layer, dict(zip(names, weights)), (x,))
        return (out, *final)

    inputs = (x.clone().requires_grad_(), *(p.detach().clone().requires_grad_() for p in layer.parameters()))
    try:
        torch.autograd.gradcheck(outputs, inputs, eps=1e-6, atol=1e-5)
    except RuntimeError as error:  # gradcheck reports a mismatch as a RuntimeError with both Jacobians
        raise AssertionError(
            f"{type(layer.cells[0]).__name__}: autograd's gradients differ from finite differences in float64; "
            f"a hand-written backward or a non-differentiable op is wrong.\n{error}"
        ) from None


def _check_padding(layer: Recurrent, x: Tensor, generator: torch.Generator) -> None:
    name = type(layer.cells[0]).__name__
    batch, steps, _ = x.shape
    lengths = torch.arange(batch) % steps + 1  # 1, 2, 3, ...: short and full sequences side by side
    lengths[-1] = steps
    real = (torch.arange(steps) < lengths[:, None]).unsqueeze(-1)  # (B, T, 1)
    with torch.no_grad():
        out, final = layer(x, lengths=lengths)
        junk = torch.randn(batch, steps + 2, x.shape[2], dtype=x.dtype, generator=generator) * 10
        padded = torch.cat([x, x[:, :2]], dim=1).where(torch.cat([real, real[:, :2] & False], dim=1), junk)
        out_padded, final_padded = layer(padded, lengths=lengths)
        torch.testing.assert_close(
            out_padded[:, :steps], out, msg=lambda m: f"{name}: what the padding holds changed the outputs\n{m}"
        )
        assert not out_padded[:, steps:].any(), f"{name}: outputs at padded steps must be zero"
        for got, want in zip(final_padded, final):
            torch.testing.assert_close(got, want, msg=lambda m: f"{name}: padding changed the final state\n{m}")
        for b in range(batch):
            alone, _ = layer(x[b : b + 1, : lengths[b]])
            torch.testing.assert_close(
                alone[0],
                out[b, : lengths[b]],
                msg=lambda m: f"{name}: a sequence alone differs from it in a batch\n{m}",
            )
