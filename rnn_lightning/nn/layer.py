"""A recurrent layer built from the cells: stacked, optionally bidirectional, aware of padding.

``Recurrent`` runs a batch-first sequence ``(B, T, I) -> (B, T, H * directions)`` and returns the final
state in ``torch.nn.RNN``'s layout, one ``(num_layers * directions, B, H)`` tensor per state component.
With ``lengths``, padded steps never change a sequence's state, their outputs are zero, and the backward
direction starts at each sequence's last real step, exactly like a packed sequence in ``torch.nn``.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from rnn_lightning.nn.cells import State
from rnn_lightning.nn.proving import runnable_impl
from rnn_lightning.nn.registry import check_impl, layer_runner, make_cell
from rnn_lightning.nn.triton.plan import check_fp32_precision  # torch only, no triton


class Recurrent(nn.Module):
    """``num_layers`` x ``directions`` cells; cell ``layer * directions + direction`` in ``self.cells``.

    ``cell`` is a built-in name (``rnn``, ``lstm``, ``gru``), the import path of your own cell class, or the class;
    ``impl`` says how the cells run (``nn/registry.py``): the same parameters and results whichever it is.
    ``fp32_precision`` is the triton impl's for fp32 products (``ieee``, ``tf32``, ``tf32x3``; None follows torch's
    setting for cuDNN's RNNs, ``nn/triton/plan.py``); loop and fused run IEEE fp32 whatever it says.
    """

    def __init__(
        self,
        cell: str | type[nn.Module],
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        impl: str = "auto",
        fp32_precision: str | None = None,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.directions = num_layers, 2 if bidirectional else 1
        self.cells = nn.ModuleList(
            make_cell(cell, input_size if layer == 0 else hidden_size * self.directions, hidden_size)
            for layer in range(num_layers)
            for _ in range(self.directions)
        )
        check_impl(impl, self.cells[0])
        self.impl = impl
        self.fp32_precision = check_fp32_precision(fp32_precision)
        self.state_size = int(self.cells[0].state_size)
        self.dropout = nn.Dropout(dropout)

    @property
    def output_size(self) -> int:
        return self.hidden_size * self.directions

    def forward(self, x: Tensor, state: State | None = None, lengths: Tensor | None = None) -> tuple[Tensor, State]:
        """x: (B, T, I); state: per component (L * D, B, H); lengths: (B,) real steps per sequence."""
        self._check_inputs(x, lengths)
        self._check_dtypes(x, state)
        if lengths is not None:
            lengths = lengths.to(device=x.device, dtype=torch.long)
        impl = runnable_impl(self.impl, self.cells[: self.directions], x, lengths, self.fp32_precision)
        run_layer = layer_runner(impl)
        if impl == "triton":  # the one impl with a choice of fp32 precision (loop and fused are IEEE)
            run_layer = partial(run_layer, fp32_precision=self.fp32_precision)
        D = self.directions
        finals: list[State] = []
        for layer in range(self.num_layers):
            cells = self.cells[layer * D : (layer + 1) * D]
            if state is None:
                starts = [cell.initial_state(x) for cell in cells]
            else:
                starts = [tuple(s[layer * D + d] for s in state) for d in range(D)]
            x, layer_finals = run_layer(cells, x, starts, lengths)  # (B, T, D * H)
            finals.extend(layer_finals)
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
        # Values are checked where that is free: reading a GPU tensor's min and max would wait for the GPU.
        if lengths.device.type == "cpu" and lengths.numel() and (lengths.min() < 1 or lengths.max() > x.shape[1]):
            raise ValueError(f"lengths must lie in [1, {x.shape[1]}], got {lengths.tolist()}")

    def _check_dtypes(self, x: Tensor, state: State | None) -> None:
        """One message for every impl: outside autocast, input and state must have the weights' dtype."""
        device = x.device.type
        if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
            return
        weights = next(self.parameters()).dtype
        wrong = sorted({str(t.dtype) for t in (x, *(state or ())) if t.dtype != weights})
        if wrong:
            raise TypeError(
                f"Recurrent got an input or state of {', '.join(wrong)} for weights of {weights}: cast the input, "
                "run under torch.autocast (trainer.precision=bf16-mixed), or cast the module (module.to(dtype))"
            )

    def extra_repr(self) -> str:
        return f"impl={self.impl!r}, num_layers={self.num_layers}, directions={self.directions}"
