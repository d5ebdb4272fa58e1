"""What a fused kernel sees: the ``Kernel`` interface, and the running values of its forward and backward blocks.

Symbols are those of docs/fused.md: ``P`` the gate pre-activations of one step in the kernel's internal
coordinates, ``dP`` (``gate_grad``) their gradients, ``K`` the per-step coefficients that turn ``dh`` (or, for
the LSTM, ``dc2``) into ``dP``, and ``pass`` the factor by which ``h_{t-1}`` reaches ``h_t`` directly, outside
the matrix product (the GRU's ``z``, 1 on a padded step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rnn_lightning.nn.cells import State
from rnn_lightning.nn.fused.common import Slots
from rnn_lightning.nn.fused.precision import Precision


@dataclass
class Forward:
    """What a kernel's forward block needs besides its buffers."""

    u_t: Tensor  # U'^T (H, h columns), as a product operand: ``precision.add_mm_(P_j, h_prev, u_t)`` adds h U'^T
    precision: Precision
    carry: list[Tensor]  # per state component, the (B, H) state the block's first step reads


@dataclass
class Backward:
    """The reverse recurrence, handed from step to step and from block to block:

    ``dh_t = d_out_t + dP_{t+1}[h columns] U' + pass_{t+1} ⊙ dh_{t+1}``

    The final state's gradient enters as the ``dh`` of a step after the last, passed straight through.
    """

    u: Tensor  # U' (h columns, H), as a product operand
    precision: Precision
    dh: Tensor  # (B, H): where each step's dh is written, read by the step before it
    gate_grad_home: Tensor  # (B, h columns): gate_grad_next between blocks, out of the reused scratch
    dc_home: Tensor | None  # (B, H), LSTM: dc_next between blocks
    d_out: Sequence[Tensor] | None = None  # the current block's (B, H) output gradients, by row
    gate_grad_next: Tensor | None = None  # dP_{t+1}[h columns]; None before the last step in time
    dh_next: Tensor | None = None  # dh_{t+1}
    pass_next: Tensor | None = None  # pass_{t+1} (B, H) or a scalar 1; None: zero
    dc_next: Tensor | None = None  # LSTM: dc2_{t+1} ⊙ f_{t+1}, what c2_t receives from the step after it

    @classmethod
    def start(
        cls, u: Tensor, precision: Precision, like: Tensor, h_cols: int, d_finals: Sequence[Tensor | None]
    ) -> Backward:
        """Before the last step in time. ``like`` (B, H) gives the buffers' dtype and device; ``d_finals`` the final
        state's gradients in internal coordinates (None: zero)."""
        d_h, *d_cell = d_finals
        batch, H = like.shape
        bw = cls(
            u=u,
            precision=precision,
            dh=like.new_empty(batch, H),
            gate_grad_home=like.new_empty(batch, h_cols),
            dc_home=like.new_empty(batch, H) if d_cell else None,
        )
        if d_h is not None:
            bw.dh_next, bw.pass_next = d_h, like.new_ones(())
        if d_cell:
            bw.dc_next = d_cell[0] if d_cell[0] is not None else like.new_zeros(batch, H)
        return bw

    def at(self, j: int) -> Tensor:
        """dh of the block's row j, written into ``self.dh`` (or an output gradient, read-only)."""
        return self._dh(self.d_out[j] if self.d_out is not None else None)

    def hand_back(self, gate_grad_h: Tensor, dh: Tensor, pass_: Tensor | None) -> None:
        """What a step gives the step before it in time: its dP's h columns, its dh and its pass."""
        self.gate_grad_next, self.dh_next, self.pass_next = gate_grad_h, dh, pass_

    def leave_scratch(self) -> None:
        """Copy the running values that point into the block's scratch to their homes: the next block reuses it."""
        self.gate_grad_next = self.gate_grad_home.copy_(self.gate_grad_next)
        if self.dc_home is not None:
            self.dc_next = self.dc_home.copy_(self.dc_next)

    def initial(self) -> Tensor:
        """dh_0, the initial state's gradient, once every step is done."""
        return self._dh(None)

    def _dh(self, d_out: Tensor | None) -> Tensor:
        """``d_out + pass_next ⊙ dh_next + gate_grad_next U'``, skipping the terms that are zero."""
        direct = d_out
        if self.dh_next is not None and self.pass_next is not None:
            if d_out is None:
                direct = torch.mul(self.dh_next, self.pass_next, out=self.dh)
            else:
                direct = torch.addcmul(d_out, self.dh_next, self.pass_next, out=self.dh)
        if self.gate_grad_next is None:  # the last step in time: only the final state follows it
            return direct if direct is not None else self.dh.zero_()
        if direct is None:
            return self.precision.mm(self.gate_grad_next, self.u, out=self.dh)
        return self.precision.add_mm(direct, self.gate_grad_next, self.u, out=self.dh)


@dataclass
class Block:
    """One time block as a kernel sees it: steps ``start..stop-1`` of one direction."""

    acts: Tensor  # (n, B, saved H): gate pre-activations, activated in place and saved (RNN: the output slice)
    h: Tensor  # (n, B, H): the block's slice of the output, h of each step (padded steps: the carried h)
    keep: Tensor | None  # (n, B, 1): 1 on real steps, 0 on padded ones; None without lengths
    slots: Slots  # the block's own step order and state slots
    before: list[Tensor] | None = None  # backward: per state component, the (B, H) state read by its first step


class Kernel:
    """One cell kind in internal coordinates. Widths count blocks of H columns (docs/fused.md, per kernel)."""

    gates: int  # gate columns per step: the first columns of the block buffer and of the backward scratch
    saved: int  # block buffer columns per step; 0: no block buffer, the gates live in the output (RNN)
    coefs: int  # backward scratch columns per step: coefficients K, each made dP (or dc2 f) by its step
    temps: int = 0  # columns of a temporary for the backward's coefficient pass (LSTM: tanh c)
    x_cols: tuple[int, int]  # gate columns fed by x W'^T
    h_cols: tuple[int, int]  # gate columns fed by h U'^T
    state_cols: tuple[int, ...] = ()  # block buffer columns of the state components after h (LSTM: c2)

    def internal(self, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The cell's parameters -> (W' (x columns, I), b' (gates,), U' (h columns, H)), in differentiable ops."""
        raise NotImplementedError

    def internal_state(self, state: State) -> State:
        """The initial state -> internal coordinates, in differentiable ops."""
        return state

    def external_final(self, finals: State) -> State:
        """The final state -> torch.nn's coordinates, in differentiable ops."""
        return finals

    def fill_padding(self, acts: Tensor, barrier: Tensor) -> None:
        """Make the padded steps of a projected block keep the state, where the gates can; otherwise the kernel
        masks in its forward block. ``barrier`` (n, B, 1) is -inf on padded steps and 0 elsewhere: adding it to a
        gate column (or subtracting it) drives that gate to 0 (or 1) on padded steps and leaves the others exactly
        as they were. A broadcast add is ~10x faster here than a masked fill of the same strided columns."""

    def forward_block(self, fw: Forward, block: Block) -> None:
        """Run the block's steps over its projected ``acts``, writing h into ``block.h``; update ``fw.carry``."""
        raise NotImplementedError

    def backward_block(self, bw: Backward, block: Block, coef: Tensor, temp: Tensor | None) -> None:
        """Fill ``coef[..., :gates]`` (n, B, coefs H) with dP for the block's steps, updating ``bw``; ``temp``
        (n, B, temps H) is free for the coefficient pass. Values left in ``bw`` must not point into ``temp``."""
        raise NotImplementedError

    def initial_grads(self, bw: Backward) -> list[Tensor]:
        """Gradients of the initial state (internal coordinates), once every block is done."""
        return [bw.initial()]
