"""The layer's autograd function: the input projection as one matmul, one kernel launch per layer for the
recurrence (both directions on the grid), and a reverse-time kernel for its backward.

Buffers, in the kernels' coordinates (``docs/triton.md``):

* ``gates`` (B, T, D, G H), fp32 or fp64: the x-side pre-activations a_x = x W_ih^T + b before the forward
  kernel, the gate activations after it, and the pre-activation gradients da after the backward kernel, from
  which dx, dW_ih, db_ih and (with the states each step read) dW_hh, db_hh are one matmul or one sum each;
* ``saved`` (B, T, D, H): what a cell needs besides its gates (LSTM: c; GRU: m = h_prev U_n^T + b_hn, and dm
  after the backward, the hidden side of the GRU's n gate);
* the outputs (B, T, D H), from which ``previous_states`` builds the h_prev of every step for dW_hh.

The weight gradients are matmuls and sums over all rows and steps after the launch: no atomics, the same bits
on every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from rnn_lightning.nn.cells import GRUCell, LSTMCell, RNNCell, State
from rnn_lightning.nn.triton.gru import gru_backward, gru_forward
from rnn_lightning.nn.triton.lstm import lstm_backward, lstm_forward
from rnn_lightning.nn.triton.plan import DEFAULT_SMS, SM90_SHARED_BYTES, Plan, choose_plan, compute_dtypes
from rnn_lightning.nn.triton.rnn import rnn_backward, rnn_forward


@dataclass(frozen=True)
class CellKernels:
    gates: int  # G: gate blocks in weight_hh
    saves: bool  # whether the cell saves a (B, T, D, H) buffer besides its gates
    cell_state: bool  # whether the state is (h, c)
    forward: Any  # a triton.jit kernel
    backward: Any


PARAMETERS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")  # the cells' own, in TritonRecurrence's order
KERNELS: dict[type[nn.Module], CellKernels] = {
    RNNCell: CellKernels(1, False, False, rnn_forward, rnn_backward),
    LSTMCell: CellKernels(4, True, True, lstm_forward, lstm_backward),
    GRUCell: CellKernels(3, True, False, gru_forward, gru_backward),
}


def interpreted() -> bool:
    """Whether the kernels run through Triton's interpreter (TRITON_INTERPRET=1 when triton was imported)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(rnn_forward, InterpretedFunction)


def _fix_scalar_index() -> None:
    """Triton 3.6's interpreter turns a scalar into an int with ``int(array of shape (1,))``, which NumPy 2.4
    refuses, so ``range(T)`` over a run-time T fails there. The fix Triton merged after 3.6
    (https://github.com/triton-lang/triton/pull/9172), applied to the interpreter's patch of ``tl.tensor``."""
    from triton.runtime import interpreter

    patch_tensor = interpreter._patch_lang_tensor
    if getattr(patch_tensor, "scalar_index_fixed", False):
        return

    def patched(tensor: Any, scope: Any) -> None:
        patch_tensor(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.item()))

    patched.scalar_index_fixed = True
    interpreter._patch_lang_tensor = patched


if interpreted():
    _fix_scalar_index()


def run_layer(
    cells: Sequence[nn.Module],
    x: Tensor,
    starts: Sequence[State],
    lengths: Tensor | None,
    fp32_precision: str | None = None,
) -> tuple[Tensor, list[State]]:
    """A ``LayerRunner`` (``registry.py``): x (B, T, I) -> outputs (B, T, D H) and each direction's final state."""
    kernels = KERNELS.get(type(cells[0]))
    if kernels is None:
        raise TypeError(f"no triton kernel for {type(cells[0]).__name__}")
    w_hh = cells[0].weight_hh
    operand, acc = compute_dtypes(w_hh.dtype, x.device.type)
    if operand == torch.bfloat16 and interpreted():
        raise RuntimeError(
            "Triton's interpreter cannot run tl.dot on bfloat16 (it multiplies raw bits, triton-lang/triton#11584): "
            "use float16 there (torch.autocast(..., dtype=torch.float16)), or run on a GPU"
        )
    size = (x.shape[0], cells[0].hidden_size, kernels.gates, len(cells))
    plan = choose_plan(*size, operand, acc, *device_limits(x.device), fp32_precision=fp32_precision)
    params = [torch.stack([getattr(c, name) for c in cells]) for name in PARAMETERS]  # (D, ...) each
    h0 = torch.stack([s[0] for s in starts])  # (D, B, H)
    c0 = torch.stack([s[1] for s in starts]) if kernels.cell_state else None
    out, *finals = TritonRecurrence.apply(kernels, plan, lengths, x, *params, h0, c0)
    return out, [tuple(f[d] for f in finals) for d in range(len(cells))]


def device_limits(device: torch.device) -> tuple[int, int]:
    """(SMs, shared memory bytes per block) of a CUDA device; an H100/H200's for the interpreter."""
    if device.type != "cuda":
        return DEFAULT_SMS, SM90_SHARED_BYTES
    properties = torch.cuda.get_device_properties(device)
    return properties.multi_processor_count, getattr(properties, "shared_memory_per_block_optin", SM90_SHARED_BYTES)


def x_side_bias(kernels: CellKernels, b_ih: Tensor, b_hh: Tensor) -> Tensor:
    """(D, G H): the biases that join the input projection; the GRU keeps b_hn inside its reset gate."""
    if kernels is not KERNELS[GRUCell]:
        return b_ih + b_hh
    H = b_ih.shape[1] // 3
    return torch.cat([b_ih[:, : 2 * H] + b_hh[:, : 2 * H], b_ih[:, 2 * H :]], dim=1)


def input_projection(x: Tensor, w_ih: Tensor, bias: Tensor, plan: Plan) -> Tensor:
    """a_x = x W_ih^T + bias for every step and direction in one matmul: (B T, D G H) in the accumulation dtype."""
    x2 = x.reshape(-1, x.shape[2]).to(plan.operand_dtype)  # (B T, I)
    w2 = w_ih.reshape(-1, w_ih.shape[2]).to(plan.operand_dtype)  # (D G H, I)
    if plan.operand_dtype == plan.acc_dtype:
        return torch.addmm(bias.reshape(-1), x2, w2.T)
    return (x2 @ w2.T).to(plan.acc_dtype).add_(bias.reshape(-1))  # 16-bit product, states and gates in fp32


def scratch(plan: Plan, x: Tensor, directions: int, width: int, needed: bool) -> Tensor:
    """(D, P, BLOCK_B, width): a tile per program for the chunked products; a placeholder when not needed."""
    if not needed:
        return x.new_empty(0, dtype=plan.acc_dtype)
    return x.new_empty(directions, plan.blocks(x.shape[0]), plan.block_b, width, dtype=plan.acc_dtype)


def previous_states(out: Tensor, h0: Tensor, lengths: Tensor | None, dtype: torch.dtype) -> Tensor:
    """(B, T, D, H): the state each step read, h_prev. Forward: h_{t-1}, and h0 at t = 0. Reversed: h_{t+1}, and
    h0 at a row's last real step, where it starts. On padded steps (every da 0 there) any finite value does."""
    B, T, _ = out.shape
    D, _, H = h0.shape
    steps = out.view(B, T, D, H)
    h_prev = torch.empty(B, T, D, H, dtype=dtype, device=out.device)
    h_prev[:, 1:, 0] = steps[:, :-1, 0]
    h_prev[:, 0, 0] = h0[0]
    if D == 2:
        h_prev[:, :-1, 1] = steps[:, 1:, 1]
        h_prev[:, -1, 1] = h0[1]
        if lengths is not None:
            h_prev[torch.arange(B, device=out.device), lengths - 1, 1] = h0[1].to(dtype)
    return h_prev


def hidden_side_grads(kernels: CellKernels, da: Tensor, saved: Tensor, h_prev: Tensor) -> tuple[Tensor, Tensor]:
    """dW_hh (D, G H, H) = Σ_{b,t} dg^T h_prev and db_hh (D, G H) = Σ_{b,t} dg, with dg the gradient of the hidden
    side's pre-activations: da for RNN and LSTM; for the GRU da_r, da_z and dm (its n gate's b_hn and U_n sit inside
    the reset gate). One batched matmul over the directions, of strided views (no copies)."""
    BT, DGH = da.shape
    D, H = h_prev.shape[2], h_prev.shape[3]
    grads = da.view(BT, D, DGH // D).transpose(0, 1)  # (D, B T, G H)
    states = h_prev.view(BT, D, H).transpose(0, 1)  # (D, B T, H)
    if kernels is not KERNELS[GRUCell]:
        return grads.mT @ states, grads.sum(1)
    dm = saved.view(BT, D, H).transpose(0, 1)  # (D, B T, H)
    rz = grads[:, :, : 2 * H]
    return torch.cat([rz.mT @ states, dm.mT @ states], dim=1), torch.cat([rz.sum(1), dm.sum(1)], dim=1)


def launch(kernel: Any, plan: Plan, x: Tensor, directions: int, *args: Any, **constexprs: Any) -> None:
    grid = (plan.blocks(x.shape[0]), directions)
    if x.is_cuda:
        with torch.cuda.device(x.device):  # Triton launches on the current device
            kernel[grid](*args, **constexprs, num_warps=plan.num_warps)
    else:
        kernel[grid](*args, **constexprs, num_warps=plan.num_warps)


class TritonRecurrence(torch.autograd.Function):
    """(x, stacked parameters, initial states) -> (outputs, final h, [final c]) of one layer, all directions."""

    @staticmethod
    def forward(ctx, kernels, plan, lengths, x, w_ih, w_hh, b_ih, b_hh, h0, c0):
        B, T, _ = x.shape
        D, _, H = w_hh.shape
        with torch.autocast(x.device.type, enabled=False):  # the dtypes are chosen in the plan
            gates = input_projection(x, w_ih, x_side_bias(kernels, b_ih, b_hh), plan)  # (B T, D G H)
        saved = gates.new_empty(B, T, D, H) if kernels.saves else gates
        out = x.new_empty(B, T, D * H, dtype=w_hh.dtype)  # (B, T, D H)
        hT = torch.empty_like(h0)  # (D, B, H)
        cT = torch.empty_like(c0) if c0 is not None else hT
        u = w_hh.detach().to(plan.operand_dtype).contiguous()  # (D, G H, H)
        has_lengths = lengths is not None
        launch(
            kernels.forward, plan, x, D,
            gates, saved, out, h0, c0 if c0 is not None else h0, hT, cT, u, b_hh.detach().contiguous(),
            lengths if has_lengths else out, scratch(plan, x, D, plan.hidden_pad, not plan.weight_on_chip),
            B, T, H, D, **plan.constexprs(has_lengths),
        )  # fmt: skip
        ctx.save_for_backward(x, w_ih, h0, c0, out)
        ctx.kernels, ctx.plan, ctx.lengths = kernels, plan, lengths
        ctx.buffers = (gates, saved, u)  # intermediates; the backward overwrites gates, so it runs once
        return (out, hT, cT) if c0 is not None else (out, hT)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_hT, d_cT=None):
        if ctx.buffers is None:
            raise RuntimeError(
                "model.impl=triton's backward overwrites its saved buffers, so it runs once per forward "
                "(no retain_graph=True); use model.impl=fused or loop to backpropagate twice"
            )
        (gates, saved, u), ctx.buffers = ctx.buffers, None
        x, w_ih, h0, c0, out = ctx.saved_tensors
        kernels, plan, lengths = ctx.kernels, ctx.plan, ctx.lengths
        B, T, I = x.shape
        D, GH, H = u.shape
        d_out = torch.zeros_like(out) if d_out is None else d_out.contiguous()
        d_hT = torch.zeros_like(h0) if d_hT is None else d_hT.contiguous()
        dh0 = torch.empty_like(h0)
        if c0 is not None:
            d_cT = torch.zeros_like(c0) if d_cT is None else d_cT.contiguous()
            dc0 = torch.empty_like(c0)
        else:
            d_cT = dc0 = dh0  # unused by the kernel
        has_lengths = lengths is not None
        launch(
            kernels.backward, plan, x, D,
            gates, saved, out, d_out, h0, c0 if c0 is not None else h0, d_hT, d_cT, dh0, dc0, u,
            lengths if has_lengths else out,
            scratch(plan, x, D, kernels.gates * plan.hidden_pad, not plan.weight_on_chip),
            B, T, H, D, **plan.constexprs(has_lengths),
        )  # fmt: skip
        with torch.autocast(x.device.type, enabled=False):
            da = gates  # (B T, D G H): now the pre-activation gradients
            dx = None
            if ctx.needs_input_grad[3]:
                dx = (da @ w_ih.reshape(D * GH, I).to(plan.acc_dtype)).view(B, T, I).to(x.dtype)
            dw_ih = (da.T @ x.reshape(B * T, I).to(plan.acc_dtype)).view(D, GH, I).to(w_ih.dtype)
            db_ih = da.sum(0).view(D, GH).to(w_ih.dtype)
            h_prev = previous_states(out, h0, lengths, plan.acc_dtype)  # (B, T, D, H)
            dw_hh, db_hh = hidden_side_grads(kernels, da, saved, h_prev)
        dw_hh, db_hh = dw_hh.to(w_ih.dtype), db_hh.to(w_ih.dtype)
        return None, None, None, dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0 if c0 is not None else None
