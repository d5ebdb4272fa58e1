"""Which dtype each part of a fused call runs in: the loop's rule, made explicit (docs/fused.md, "Precision").

The loop's cells compute ``x @ W.T + b``. Under ``torch.autocast`` the product runs on 16-bit copies of its
operands and comes out in 16 bits; adding the float32 bias promotes the sum, so every activation, state and
output is float32. The fused path does the same with explicit casts: its matrix products take 16-bit operands
and give 16-bit results, and everything else runs in float32. It does not rely on autocast itself, which
leaves the ``out=`` and in-place products of the kernels in float32.

A module cast to 16 bits (``bf16-true``) runs the same way: 16-bit products, float32 everywhere else. The
loop runs that case in 16 bits throughout; the fused path's float32 pointwise part keeps its error below the
loop's, where a 16-bit ``2 σ(2a) - 1`` would double the rounding of a 16-bit ``tanh`` near zero.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

SIXTEEN_BIT = (torch.float16, torch.bfloat16)


class Precision:
    """The dtypes of one fused call, and the three kinds of matrix product it runs in them."""

    def __init__(self, compute: torch.dtype, product: torch.dtype, result: torch.dtype) -> None:
        self.compute = compute  # block buffers, activations, states, coefficients, gradient recurrences
        self.product = product  # operands and results of the matrix products
        self.result = result  # the returned outputs and final state: the dtype the loop returns
        self.mixed = product != compute
        if not self.mixed:  # torch's own products, called with no Python frame in between in the per-step loops
            self.add_mm_, self.add_mm, self.mm = Tensor.addmm_, torch.addmm, torch.mm  # type: ignore[method-assign]

    def __repr__(self) -> str:
        return f"Precision(compute={self.compute}, product={self.product}, result={self.result})"

    def operand(self, t: Tensor) -> Tensor:
        """``t`` as a product operand (a weight, cast once per call and then reused)."""
        return cast(t, self.product)

    def add_mm_(self, out: Tensor, a: Tensor, b: Tensor) -> Tensor:
        """``out += a @ b`` on 16-bit operands (in a native ``Precision``, torch's ``addmm_`` itself)."""
        return out.add_(torch.mm(cast(a, self.product), cast(b, self.product)))

    def add_mm(self, base: Tensor, a: Tensor, b: Tensor, out: Tensor) -> Tensor:
        """``out = base + a @ b`` on 16-bit operands; ``base`` may be ``out`` itself."""
        return torch.add(base, torch.mm(cast(a, self.product), cast(b, self.product)), out=out)

    def mm(self, a: Tensor, b: Tensor, out: Tensor) -> Tensor:
        """``out = a @ b`` on 16-bit operands."""
        return out.copy_(torch.mm(cast(a, self.product), cast(b, self.product)))


def precision_for(x: Tensor, state: tuple[Tensor, ...], weight: Tensor) -> Precision:
    """The loop's rule for input ``x``, initial ``state`` and parameters of ``weight``'s dtype, here and now."""
    device, param = x.device.type, weight.dtype
    autocast = torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)
    if autocast and param != torch.float64:  # autocast leaves float64 alone
        product = torch.get_autocast_dtype(device)
    else:
        product = param
        if any(t.dtype != param for t in (x, *state)):
            wrong = sorted({str(t.dtype) for t in (x, *state) if t.dtype != param})
            raise TypeError(
                f"the fused path got inputs or states of {', '.join(wrong)} for weights of {param}, outside autocast "
                "(the loop's matmul refuses them too): cast the input, run under torch.autocast "
                "(trainer.precision=bf16-mixed), or cast the module (bf16-true)"
            )
    if product in SIXTEEN_BIT:
        return Precision(compute=torch.float32, product=product, result=param)
    return Precision(compute=param, product=param, result=param)


def cast(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t.to(dtype)``, skipping the call where it changes nothing: it runs a dozen times per layer call."""
    return t if t.dtype == dtype else t.to(dtype)


def explicit_casts(precision: Precision, device: str) -> contextlib.AbstractContextManager:
    """Autocast switched off where the fused call casts for itself. A native call runs only ``out=`` and in-place
    products, which autocast leaves alone, and skips the context's cost (about 8 us)."""
    if precision.mixed and torch.amp.is_autocast_available(device):
        return torch.autocast(device, enabled=False)
    return contextlib.nullcontext()
