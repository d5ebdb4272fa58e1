"""What a name means: which cell ``model.cell`` builds, and which implementation ``model.impl`` runs it with.

Cells: ``rnn``, ``lstm``, ``gru``, or the import path of a user's own class with the cells' interface.
Implementations (all the same parameters, all proven equal to each other and to ``torch.nn``):

* ``loop``: the readable cell called once per time step (``loop.py``); runs any cell;
* ``fused``: blocks of time steps with a hand-written backward, for CPU (``fused/``); the built-in cells only;
* ``triton``: one GPU kernel launch per layer and direction (``triton/``); the built-in cells only;
* ``auto``: ``triton`` for CUDA inputs when Triton is installed and the hidden size fits its kernels (256), else
  ``fused``; ``loop`` for a user's own cell.

On a CUDA device the Triton kernels of each layer configuration first pass a short check against the fused path
(``proving.py``): ``auto`` falls back to ``fused`` where they fail, ``triton`` raises.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from rnn_lightning.nn.cells import GRUCell, LSTMCell, RNNCell, State
from rnn_lightning.nn.loop import run_loop
from rnn_lightning.nn.triton import MAX_HIDDEN_SIZE as TRITON_MAX_HIDDEN_SIZE  # torch only: triton is not imported

log = logging.getLogger("rnn_lightning")

CELLS: dict[str, type[nn.Module]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}
# What the layer calls on any cell, built-in or a user's own.
CELL_INTERFACE = ("state_size", "initial_state", "forward")
IMPLS = ("auto", "loop", "fused", "triton")

# (cells of one layer, one per direction; x (B, T, I); their initial states; lengths (B,) or None)
#   -> (outputs (B, T, D * H), their final states)
LayerRunner = Callable[[Sequence[nn.Module], Tensor, Sequence[State], Tensor | None], tuple[Tensor, list[State]]]
# (cell, x (B, T, I), initial state, lengths (B,) or None, reverse) -> (outputs (B, T, H), final state)
DirectionRunner = Callable[[nn.Module, Tensor, State, Tensor | None, bool], tuple[Tensor, State]]

_told_loop: set[str] = set()  # the user cells whose fallback to the loop path has been logged


def cell_class(cell: str | type[nn.Module]) -> type[nn.Module]:
    """A built-in name (``"lstm"``), the import path of a class (``"mypkg.cells.PeepholeLSTM"``), or a class."""
    if isinstance(cell, type):
        found: object = cell
    elif cell in CELLS:
        found = CELLS[cell]
    elif isinstance(cell, str) and "." in cell:
        found = _import_class(cell)
    else:
        raise ValueError(
            f"unknown cell {cell!r}; choose one of {sorted(CELLS)}, or give the import path of your own cell class "
            "(model.cell=mypkg.cells.PeepholeLSTM)"
        )
    missing = [name for name in CELL_INTERFACE if not hasattr(found, name)]
    if not (isinstance(found, type) and issubclass(found, nn.Module)) or missing:
        raise ValueError(
            f"cell {cell!r} is not a recurrent cell: it must be an nn.Module subclass with an (input_size, "
            "hidden_size) constructor, state_size, initial_state(x) and forward(x_t, state)"
            + (f"; it lacks {', '.join(missing)}" if missing else "")
        )
    return found


def _import_class(path: str) -> object:
    module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"cell {path!r}: cannot import module {module_name!r} ({error}); it must be importable where you run "
            "(an installed package, or a folder on PYTHONPATH)"
        ) from None
    if not hasattr(module, name):
        raise ValueError(f"cell {path!r}: module {module_name!r} has no {name!r}")
    return getattr(module, name)


def make_cell(cell: str | type[nn.Module], input_size: int, hidden_size: int) -> nn.Module:
    """Build a cell by name, import path or class."""
    return cell_class(cell)(input_size, hidden_size)


def is_built_in(cell: nn.Module) -> bool:
    """Exactly one of our three cells (a subclass may change the equations): what the fast paths run."""
    return type(cell) in CELLS.values()


def check_impl(impl: str, cell: nn.Module) -> None:
    if impl not in IMPLS:
        raise ValueError(f"unknown recurrent impl {impl!r}; choose one of {list(IMPLS)}")
    name = type(cell).__name__
    if impl in ("fused", "triton") and not is_built_in(cell):
        raise ValueError(
            f"model.impl={impl} runs the built-in cells only ({', '.join(CELLS)}), not {name}; use model.impl=auto "
            "or loop for your own cell"
        )
    if impl == "auto" and not is_built_in(cell) and name not in _told_loop:
        _told_loop.add(name)
        log.info("%s is not a built-in cell: it runs on the readable loop path (model.impl=loop)", name)


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def on_cuda(x: Tensor) -> bool:
    """Whether ``x`` lives on a CUDA device: the one place that says so, for ``auto`` and for the kernels' first check
    (a test fakes it to drive both on a CPU, the kernels through Triton's interpreter)."""
    return x.is_cuda


def choose_impl(impl: str, cell: nn.Module, x: Tensor) -> str:
    """What ``auto`` means for this cell and input; any other impl means itself."""
    if impl != "auto":
        return impl
    if not is_built_in(cell):
        return "loop"
    if on_cuda(x) and triton_available() and getattr(cell, "hidden_size", 0) <= TRITON_MAX_HIDDEN_SIZE:
        return "triton"
    return "fused"


def layer_runner(impl: str) -> LayerRunner:
    """The function that runs one layer's directions with ``impl`` (not ``auto``: see ``choose_impl``)."""
    if impl == "loop":
        return each_direction(run_loop)
    if impl == "fused":
        from rnn_lightning.nn.fused import run_fused  # imported when used: the loop path needs none of it

        return each_direction(run_fused)
    if impl == "triton":
        from rnn_lightning.nn.triton import run_triton_layer

        return run_triton_layer
    raise ValueError(f"unknown recurrent impl {impl!r}; choose one of {list(IMPLS)}")


def each_direction(run: DirectionRunner) -> LayerRunner:
    """A layer runner that runs its directions one after another, the second one reversed."""

    def run_layer(
        cells: Sequence[nn.Module], x: Tensor, starts: Sequence[State], lengths: Tensor | None
    ) -> tuple[Tensor, list[State]]:
        results = [run(cell, x, start, lengths, d == 1) for d, (cell, start) in enumerate(zip(cells, starts))]
        outputs = [out for out, _ in results]  # (B, T, H) each
        return (torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]), [final for _, final in results]

    return run_layer
