"""impl=auto on a CUDA device runs the Triton kernels only after their first check against the fused path, once per
configuration; a failure falls back to fused with one log line (auto) or raises (triton).

On a CPU every input is made to count as a CUDA one (``registry.on_cuda``, the one seam), and the kernels run
through Triton's interpreter; failures are simulated at the launcher. On a CUDA machine the same tests run the real
device and compiler, with the same simulated failures.
"""

import logging

import pytest
import torch
from extras import require_extra

triton = require_extra("triton")
pytestmark = pytest.mark.triton

from rnn_lightning.nn import proving, registry  # noqa: E402  (after the skip)
from rnn_lightning.nn.layer import Recurrent  # noqa: E402
from rnn_lightning.nn.triton import launch  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
B, T, I, H = 4, 6, 3, 5
STEPS = proving.CHECK_STEPS


@pytest.fixture(autouse=True)
def on_a_gpu(monkeypatch):
    """Every input counts as a CUDA one, and the verdicts start afresh."""
    monkeypatch.setattr(registry, "on_cuda", lambda x: True)
    proving.forget_verdicts()
    yield
    proving.forget_verdicts()


def launches(monkeypatch, change=None, fail=None):
    """The time lengths of every call of the Triton launcher; ``change`` alters its outputs, ``fail`` is raised."""
    seen = []
    real = launch.run_layer

    def run_layer(cells, x, starts, lengths, fp32_precision=None):
        seen.append(x.shape[1])
        if fail is not None:
            raise fail
        out, finals = real(cells, x, starts, lengths, fp32_precision)
        return (out if change is None else change(out)), finals

    monkeypatch.setattr(launch, "run_layer", run_layer)
    return seen


def layers(impl, num_layers=2, bidirectional=True, dtype=torch.float64):
    torch.manual_seed(0)
    checked = Recurrent("gru", I, H, num_layers, bidirectional, impl=impl).to(DEVICE, dtype)
    fused = Recurrent("gru", I, H, num_layers, bidirectional, impl="fused").to(DEVICE, dtype)
    fused.load_state_dict(checked.state_dict())
    return checked, fused


def inputs(batch=B, steps=T, dtype=torch.float64):
    x = torch.randn(batch, steps, I, dtype=dtype, device=DEVICE)
    return x, torch.randint(1, steps + 1, (batch,), device=DEVICE)


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "rnn_lightning" and r.levelno == logging.WARNING]


class ScaleGradient(torch.autograd.Function):
    """The identity forward, a gradient 1 % too large backward: a kernel whose backward alone is wrong."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * 1.01


def test_auto_checks_each_configuration_once_then_runs_the_kernels(monkeypatch, caplog):
    seen = launches(monkeypatch)
    layer, fused = layers("auto")
    x, lengths = inputs()
    out, _ = layer(x, lengths=lengths)
    assert seen == [STEPS, T, T]  # the check (one layer's shape), then the real kernels of both layers
    torch.testing.assert_close(out, fused(x, lengths=lengths)[0], rtol=0, atol=1e-6)
    layer(*inputs(steps=9)[:1], lengths=inputs(steps=9)[1])  # another length compiles nothing new: no check
    assert seen == [STEPS, T, T, 9, 9]
    layer(inputs(steps=9)[0])  # without lengths: another kernel, so another check
    layer(inputs(batch=7)[0])  # another batch size may change the rows per program: checked too
    assert seen == [STEPS, T, T, 9, 9, STEPS, 9, 9, STEPS, T, T]
    assert warnings_of(caplog) == []


def test_the_check_leaves_the_global_random_state_and_the_gradients_alone(monkeypatch):
    seen = launches(monkeypatch)
    layer, _ = layers("auto")
    x, lengths = inputs()
    before = torch.random.get_rng_state()
    with torch.inference_mode():  # as in validation: the check still runs its backward
        layer(x, lengths=lengths)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert seen == [STEPS, T, T]
    assert all(p.grad is None for p in layer.parameters())


@pytest.mark.parametrize(
    "sabotage,why",
    [
        ({"fail": RuntimeError("PassManager::run failed\nmore")}, "it raised RuntimeError: PassManager::run failed;"),
        ({"change": lambda out: out * 1.001}, "its output differs from the fused path's by 1.0e-03"),
        ({"change": ScaleGradient.apply}, "its gradient of the input differs from the fused path's by"),
        ({"change": lambda out: out + float("nan")}, "its output has NaN or infinite values"),
    ],
    ids=["compile-error", "wrong-output", "wrong-gradient", "nan"],
)
def test_auto_falls_back_to_fused_with_one_line_that_says_why(monkeypatch, caplog, sabotage, why):
    seen = launches(monkeypatch, **sabotage)
    layer, fused = layers("auto")
    x, lengths = inputs()
    out, _ = layer(x, lengths=lengths)
    assert seen == [STEPS]  # the check's one call; the real calls run fused
    assert torch.equal(out, fused(x, lengths=lengths)[0])
    (line,) = warnings_of(caplog)
    assert line.startswith(f"model.impl=auto: the Triton kernels failed their first check on {DEVICE}")
    assert "GRUCell, hidden 5, 2 direction(s), float64 products, with lengths" in line
    assert why in line and line.endswith("this layer runs on the fused path instead (docs/gpu.md)")
    layer(inputs(batch=9, steps=4)[0], lengths=inputs(batch=9, steps=4)[1])  # failed once: fused for any batch
    assert seen == [STEPS] and len(warnings_of(caplog)) == 1


def test_explicit_triton_turns_a_failure_into_an_error_that_says_what_to_do(monkeypatch, caplog):
    compile_error = RuntimeError("PTX .version 9.9 does not support .target sm_90")
    seen = launches(monkeypatch, fail=compile_error)
    layer, _ = layers("triton")
    x, lengths = inputs()
    message = (
        rf"model.impl=triton: the Triton kernels failed their first check on {DEVICE} for GRUCell, hidden 5, "
        r"2 direction\(s\), float64 products, with lengths: it raised RuntimeError: PTX .version 9.9 .*"
        r"Use model.impl=auto \(it falls back to the fused path by itself\) or model.impl=fused"
    )
    with pytest.raises(proving.KernelCheckError, match=message) as raised:
        layer(x, lengths=lengths)
    assert raised.value.__cause__ is compile_error
    with pytest.raises(proving.KernelCheckError, match=message):  # the verdict is kept: no second attempt
        layer(x, lengths=lengths)
    assert seen == [STEPS]
    assert warnings_of(caplog) == []


def test_a_triton_that_cannot_be_imported_is_named_as_such(monkeypatch, caplog):
    """impl=triton raises Triton's own ImportError (what to install), not a kernel failure; auto falls back."""
    missing = ImportError("model.impl=triton needs Triton, which is not installed: pip install triton==3.6.0")
    launches(monkeypatch, fail=missing)
    with pytest.raises(ImportError, match="pip install triton==3.6.0") as raised:
        layers("triton")[0](inputs()[0])
    assert raised.value is missing
    proving.forget_verdicts()
    layers("auto")[0](inputs()[0])
    assert "it raised ImportError: model.impl=triton needs Triton" in warnings_of(caplog)[0]


def test_explicit_triton_refuses_a_kernel_that_disagrees(monkeypatch):
    launches(monkeypatch, change=lambda out: out * 1.001)
    layer, _ = layers("triton", num_layers=1, bidirectional=False)
    with pytest.raises(proving.KernelCheckError, match=r"hidden 5, 1 direction\(s\).*its output differs"):
        layer(inputs()[0])


def test_explicit_triton_runs_the_real_kernels_once_checked(monkeypatch):
    seen = launches(monkeypatch)
    layer, fused = layers("triton", num_layers=1)
    x, lengths = inputs()
    out, _ = layer(x, lengths=lengths)
    assert seen == [STEPS, T]
    torch.testing.assert_close(out, fused(x, lengths=lengths)[0], rtol=0, atol=1e-6)


def test_16_bit_products_under_autocast_are_a_configuration_of_their_own(monkeypatch, caplog):
    """float16 (bfloat16 has no tl.dot in the interpreter), checked against fused under the same autocast."""
    seen = launches(monkeypatch)
    layer, _ = layers("auto", num_layers=1, dtype=torch.float32)
    x, lengths = inputs(dtype=torch.float32)
    layer(x, lengths=lengths)
    with torch.autocast(DEVICE, dtype=torch.float16):
        layer(x, lengths=lengths)
    assert seen == [STEPS, T, STEPS, T]
    assert warnings_of(caplog) == []
    with torch.autocast(DEVICE, dtype=torch.float16):
        configuration = proving.configuration(layer.cells[0], 2, x, lengths, None)
    assert "float32 weights, float16 products" in proving.describe(configuration)


@pytest.mark.skipif(DEVICE == "cuda", reason="a CPU input on a CPU")
def test_nothing_is_checked_off_cuda(monkeypatch):
    monkeypatch.setattr(registry, "on_cuda", lambda x: x.is_cuda)
    seen = launches(monkeypatch)
    auto, _ = layers("auto")
    triton_layer, _ = layers("triton")
    x, lengths = inputs()
    auto(x, lengths=lengths)  # auto on a CPU means fused
    triton_layer(x, lengths=lengths)  # the interpreter: the kernels run, unchecked
    assert seen == [T, T]
