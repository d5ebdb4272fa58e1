"""The Triton kernels run on a GPU only once they have proven themselves there.

The first time a layer configuration meets a CUDA device, its kernels run a short random forward + backward beside
the fused path, and they are used only if every output, final state and gradient agrees. Why: Triton compiles the
kernels for the device it meets, so a compiler or driver of another version, a GPU with less shared memory, or a
kernel bug at a shape the tests never ran would otherwise show up as a crash in the middle of training, or worse, as
wrong gradients that train on quietly. The check compiles what the real call would compile anyway (same kernels,
same constants), then costs a few milliseconds, once per configuration and process; each forward after it pays one
set lookup.

* ``model.impl=auto``: a failure or a disagreement logs one line that says why, and that configuration runs on the
  fused path for the rest of the process;
* ``model.impl=triton``: the same check, and a failure raises ``KernelCheckError`` naming the configuration and what
  to do (a Triton that cannot be imported raises its own ImportError, which says what to install). The explicit
  choice is checked too because only a check sees a disagreement: a wrong kernel raises nothing, it returns wrong
  numbers. Once the check has passed, the real kernels run, never the fused path in their place.

On a CPU (the kernels through Triton's interpreter, in tests) nothing is checked: the interpreter is not the device's
compiler, and the tests compare the kernels with the loop themselves. ``registry.on_cuda`` is the one place that
decides what counts as a CUDA input, so a test can fake it and drive this check on the CPU.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from rnn_lightning.nn import registry
from rnn_lightning.nn.triton.plan import compute_dtypes, dot_precision  # torch only, no triton

log = logging.getLogger("rnn_lightning")

CHECK_STEPS = 5  # time steps of the check: enough for lengths that end early and late, a few ms on a GPU
# How far the kernels may be from the fused path, relative (|got - want| / |want| per tensor). Far above rounding
# (fp32 IEEE lands near 1e-7 here, TF32 near 1e-3) and far below what a wrong kernel gives (order 1).
TOLERANCE = {torch.float64: 1e-8, torch.float16: 2e-2, torch.bfloat16: 5e-2}
FP32_TOLERANCE = {"ieee": 1e-4, "tf32x3": 1e-4, "tf32": 2e-2}

# What makes Triton compile another kernel: the cell kind, its hidden size, the directions (with the batch, they set
# the rows per program), the parameters' dtype, the products' dtype (16-bit under autocast) and fp32 precision,
# whether there are lengths, and the device. The time length is a run-time argument and changes nothing.
Configuration = tuple[type[nn.Module], int, int, torch.dtype, torch.dtype, str, bool, torch.device]


class KernelCheckError(RuntimeError):
    """``model.impl=triton`` on a device where the kernels failed their first check (raised, or disagreed)."""


@dataclass(frozen=True)
class Failure:
    why: str  # "it raised ...", or which tensor disagreed and by how much
    error: BaseException | None  # what the kernels raised, if they did


_proven: set[tuple[Configuration, int]] = set()  # with the batch size, which can change the rows per program
_failed: dict[Configuration, Failure] = {}  # a configuration that failed once stays off Triton, whatever the batch


def runnable_impl(
    requested: str, cells: Sequence[nn.Module], x: Tensor, lengths: Tensor | None, fp32_precision: str | None
) -> str:
    """What runs this call of one layer's ``cells`` (one per direction): ``registry.choose_impl``'s answer, except that
    triton on a CUDA device must have passed its first check there (else auto runs fused, and triton raises)."""
    impl = registry.choose_impl(requested, cells[0], x)
    if impl != "triton" or not registry.on_cuda(x):
        return impl
    config = configuration(cells[0], len(cells), x, lengths, fp32_precision)
    if (config, x.shape[0]) in _proven:
        return "triton"
    failure = _failed.get(config)
    if failure is None:
        failure = first_check(cells[0], len(cells), x, lengths is not None, fp32_precision, config)
        if failure is None:
            _proven.add((config, x.shape[0]))
            return "triton"
        _failed[config] = failure
        if requested == "auto":
            log.warning(
                "model.impl=auto: the Triton kernels failed their first check on %s for %s: %s; this layer runs on "
                "the fused path instead (docs/gpu.md)",
                config[-1],
                describe(config),
                failure.why,
            )
    if requested == "triton" and isinstance(failure.error, ImportError):
        raise failure.error  # Triton itself missing or broken: its own message says what to install
    if requested == "triton":
        raise KernelCheckError(
            f"model.impl=triton: the Triton kernels failed their first check on {config[-1]} for {describe(config)}: "
            f"{failure.why}. Use model.impl=auto (it falls back to the fused path by itself) or model.impl=fused"
        ) from failure.error
    return "fused"


def configuration(
    cell: nn.Module, directions: int, x: Tensor, lengths: Tensor | None, fp32_precision: str | None
) -> Configuration:
    param_dtype = cell.weight_hh.dtype
    operand = compute_dtypes(param_dtype, x.device.type)[0]
    precision = dot_precision(operand, fp32_precision)
    return (type(cell), cell.hidden_size, directions, param_dtype, operand, precision, lengths is not None, x.device)


def describe(config: Configuration) -> str:
    kind, hidden, directions, param_dtype, operand, precision, has_lengths, _ = config
    dtypes = _dtype_name(param_dtype) + ("" if operand == param_dtype else f" weights, {_dtype_name(operand)}")
    products = f" products in {precision}" if operand == torch.float32 else " products"
    lengths = "with lengths" if has_lengths else "without lengths"
    return f"{kind.__name__}, hidden {hidden}, {directions} direction(s), {dtypes}{products}, {lengths}"


def first_check(
    cell: nn.Module,
    directions: int,
    x: Tensor,
    has_lengths: bool,
    fp32_precision: str | None,
    config: Configuration,
) -> Failure | None:
    """None if the Triton kernels agree with the fused path on a short random problem of this configuration."""
    # The check trains nothing, but it needs gradients even where the caller runs without them (validation).
    with torch.inference_mode(False), torch.enable_grad():
        problem = CheckProblem(cell, directions, x, has_lengths)
        want = problem.run(registry.layer_runner("fused"))
        try:
            got = problem.run(partial(registry.layer_runner("triton"), fp32_precision=fp32_precision))
        except Exception as error:  # a compile or launch error, too little shared memory: whatever the kernels raise
            return Failure(f"it raised {_first_line(error)}", error)
    operand, precision = config[4], config[5]
    tolerance = FP32_TOLERANCE[precision] if operand == torch.float32 else TOLERANCE[operand]
    for name, g, w in zip(problem.names(), got, want):
        if not bool(torch.isfinite(g).all()):
            return Failure(f"its {name} has NaN or infinite values", None)
        error = float((g.double() - w.double()).norm() / w.double().norm().clamp_min(1e-30))
        if not error <= tolerance:
            why = f"its {name} differs from the fused path's by {error:.1e} (relative; at most {tolerance:.0e})"
            return Failure(why, None)
    return None


class CheckProblem:
    """``directions`` fresh cells like ``cell`` and a random batch of ``CHECK_STEPS`` steps with the real call's batch
    size, dtype and device, with or without lengths; all drawn from a generator of its own, so that a check neither
    reads nor moves the global random state (a run's results do not depend on whether a check ran)."""

    def __init__(self, cell: nn.Module, directions: int, x: Tensor, has_lengths: bool) -> None:
        generator = torch.Generator().manual_seed(0)
        weight = cell.weight_hh
        draw = partial(_uniform, generator=generator, device=weight.device, dtype=weight.dtype)
        with torch.device("meta"):  # built without their initialisation, which would draw from the global generator
            self.cells = [type(cell)(cell.input_size, cell.hidden_size) for _ in range(directions)]
        bound = 1.0 / math.sqrt(cell.hidden_size)
        for index, fresh in enumerate(self.cells):
            self.cells[index] = fresh = fresh.to_empty(device=weight.device).to(weight.dtype)
            with torch.no_grad():
                for parameter in fresh.parameters():
                    parameter.copy_(draw(parameter.shape, bound))
        batch, state_size = x.shape[0], int(cell.state_size)
        self.x = draw((batch, CHECK_STEPS, cell.input_size), 1.0)  # (B, T, I)
        self.starts = [tuple(draw((batch, cell.hidden_size), 1.0) for _ in range(state_size)) for _ in self.cells]
        self.lengths = None
        if has_lengths:
            lengths = torch.randint(1, CHECK_STEPS + 1, (batch,), generator=generator)
            lengths[0] = CHECK_STEPS  # the longest fills the batch, as in a real padded one
            self.lengths = lengths.to(weight.device)
        self.output_weights = draw((batch, CHECK_STEPS, directions * cell.hidden_size), 1.0)  # (B, T, D H)
        self.final_weights = draw((state_size, directions, batch, cell.hidden_size), 1.0)  # (S, D, B, H)

    def run(self, run_layer: registry.LayerRunner) -> list[Tensor]:
        """Outputs, final states, and the gradients of a loss that weighs each of their elements apart: of the
        input, of the initial states and of every parameter."""
        x = self.x.clone().requires_grad_()
        starts = [tuple(s.clone().requires_grad_() for s in start) for start in self.starts]
        outputs, finals = run_layer(self.cells, x, starts, self.lengths)  # (B, T, D H), per direction a state
        finals_by_component = [torch.stack(parts) for parts in zip(*finals)]  # (D, B, H) per component
        loss = (outputs * self.output_weights.to(outputs.dtype)).sum()
        for component, weights in zip(finals_by_component, self.final_weights):
            loss = loss + (component * weights.to(component.dtype)).sum()
        inputs = [x, *(s for start in starts for s in start), *(p for c in self.cells for p in c.parameters())]
        return [outputs.detach(), *(f.detach() for f in finals_by_component), *torch.autograd.grad(loss, inputs)]

    def names(self) -> list[str]:
        components = ["h", "c"][: len(self.starts[0])]
        sides = ["forward", "backward"][: len(self.cells)]
        return [
            "output",
            *(f"final {c}" for c in components),
            "gradient of the input",
            *(f"gradient of the initial {c} ({side})" for side in sides for c in components),
            *(f"gradient of {name} ({side})" for side in sides for name, _ in self.cells[0].named_parameters()),
        ]


def forget_verdicts() -> None:
    """Check every configuration again at its next call (tests; a process otherwise keeps its verdicts)."""
    _proven.clear()
    _failed.clear()


def _uniform(shape: Sequence[int], bound: float, *, generator, device, dtype) -> Tensor:
    values = torch.rand(tuple(shape), generator=generator, dtype=torch.float64) * (2 * bound) - bound
    return values.to(device=device, dtype=dtype)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
