"""Every impl honours autocast the same way (docs/fused.md, "Precision").

Under ``torch.autocast`` the fused path does what the loop does: 16-bit matrix products, float32 everywhere
else, float32 outputs. In a module cast to bf16 (``bf16-true``) its error against float64 stays at or below
the loop's. In float32 without autocast nothing changes.
"""

import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from rnn_lightning.nn.layer import Recurrent

B, T, I, H = 6, 40, 8, 16
LENGTHS = torch.tensor([40, 20, 3, 40, 1, 35])
KINDS = ["rnn", "lstm", "gru"]
BF16_TOLERANCE = 1.6e-2  # torch.testing's relative tolerance for bfloat16: 2^-6, a few roundings of 2^-8


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_pair(kind, bidirectional=True, seed=0):
    """A float32 loop layer and fused layer holding the same weights."""
    torch.manual_seed(seed)
    loop = Recurrent(kind, I, H, num_layers=2, bidirectional=bidirectional, impl="loop")
    fused = Recurrent(kind, I, H, num_layers=2, bidirectional=bidirectional, impl="fused")
    fused.load_state_dict(loop.state_dict())
    return loop, fused


def run(layer, x, state, upstream, autocast):
    """Outputs, final state, the input's and the state's gradients, and the parameters' gradients."""
    layer.zero_grad(set_to_none=True)  # a second run must not add to the tensors the first one returned
    x = x.detach().clone().requires_grad_()
    state = tuple(s.detach().clone().requires_grad_() for s in state) if state is not None else None
    with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
        out, final = layer(x, state, LENGTHS)
    ((out.double() * upstream).sum() + sum(f.double().sum() for f in final)).backward()
    inputs = [x.grad, *(s.grad for s in state or ())]
    return out, final, inputs, [p.grad for p in layer.parameters()]


def relative(got, want):
    return ((got.double() - want.double()).norm() / want.double().norm()).item()


def random_inputs(layer, x_dtype, state_dtype, seed=1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, I, generator=generator).to(x_dtype)
    state = None
    if state_dtype is not None:
        shape = (layer.num_layers * layer.directions, B, H)
        state = tuple(torch.randn(shape, generator=generator).to(state_dtype) for _ in range(layer.state_size))
    upstream = torch.randn(B, T, layer.output_size, generator=generator, dtype=torch.float64)
    return x, state, upstream


@pytest.mark.parametrize("state_dtype", [None, torch.float32, torch.bfloat16], ids=["zeros", "state32", "state16"])
@pytest.mark.parametrize("x_dtype", [torch.float32, torch.bfloat16], ids=["x32", "x16"])
@pytest.mark.parametrize("kind", KINDS)
def test_fused_equals_loop_under_autocast(kind, x_dtype, state_dtype):
    loop, fused = make_pair(kind)
    x, state, upstream = random_inputs(loop, x_dtype, state_dtype)
    want_out, want_final, want_inputs, want_params = run(loop, x, state, upstream, autocast=True)
    out, final, inputs, params = run(fused, x, state, upstream, autocast=True)
    exact_out, *_ = run(loop, x.float(), state and tuple(s.float() for s in state), upstream, autocast=False)

    assert out.dtype == want_out.dtype == torch.float32
    assert [f.dtype for f in final] == [f.dtype for f in want_final] == [torch.float32] * loop.state_size
    assert [g.dtype for g in inputs] == [g.dtype for g in want_inputs] == [x_dtype] + [state_dtype] * len(inputs[1:])
    assert all(g.dtype == torch.float32 for g in params)
    torch.testing.assert_close(out, want_out, rtol=0, atol=BF16_TOLERANCE)
    for got, want in zip(final, want_final):
        torch.testing.assert_close(got, want, rtol=0, atol=BF16_TOLERANCE)
    # The same products, rounded the same way: the two agree far closer than either agrees with float32.
    gap, float32_gap = (out - want_out).abs().mean(), (exact_out - want_out).abs().mean()
    assert gap <= 0.1 * float32_gap, f"fused is {gap:.2e} from the loop, float32 {float32_gap:.2e}"
    for got, want in zip(inputs + params, want_inputs + want_params):
        assert got.shape == want.shape
        assert relative(got, want) < BF16_TOLERANCE


class DtypeLog(TorchDispatchMode):
    """Counts (op, dtypes of its inputs, dtypes of its outputs) of every op that runs below autocast, except the
    float64 ones: ``run``'s loss, which the layers here never reach."""

    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        ins = tuple(sorted({t.dtype for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}, key=str))
        outs = tuple(sorted({t.dtype for t in tree_leaves(result) if isinstance(t, torch.Tensor)}, key=str))
        if torch.float64 not in ins + outs:
            self.ops[(func.overloadpacket.__name__, ins, outs)] += 1
        return result


# Ops that move or shape 16-bit values without computing with them.
MOVES = {"_to_copy", "copy_", "clone", "view", "_unsafe_view", "t", "transpose", "slice", "select", "alias", "detach"}
FACTORIES = {"new_empty", "new_empty_strided", "new_zeros", "empty_like"}


@pytest.mark.parametrize("kind", KINDS)
def test_under_autocast_products_are_16_bit_and_the_rest_float32(kind):
    # One direction: with two, autograd itself adds the bf16 input's two gradients in bf16.
    loop, fused = make_pair(kind, bidirectional=False)
    x, _, upstream = random_inputs(loop, torch.bfloat16, None)
    logs = {}
    for name, layer in (("loop", loop), ("fused", fused)):
        logs[name] = DtypeLog()
        with logs[name]:
            run(layer, x, None, upstream, autocast=True)
    for name, log in logs.items():
        products = {(ins, outs) for (op, ins, outs) in log.ops if op in ("mm", "addmm", "bmm")}
        assert products == {((torch.bfloat16,), (torch.bfloat16,))}, f"{name}: products {products}"
        activations = {outs for (op, _, outs) in log.ops if op in ("sigmoid", "sigmoid_", "tanh", "lerp")}
        assert activations == {(torch.float32,)}, f"{name}: activations {activations}"
    computing_in_16_bit = [
        key for key in logs["fused"].ops if torch.bfloat16 in key[2] and key[0] not in MOVES | FACTORIES | {"mm"}
    ]
    assert not computing_in_16_bit, f"fused computes in bf16 outside the products: {computing_in_16_bit}"


@pytest.mark.parametrize("kind", KINDS)
def test_float32_without_autocast_is_unchanged(kind):
    loop, fused = make_pair(kind)
    x, state, upstream = random_inputs(loop, torch.float32, torch.float32)
    log = DtypeLog()
    with log:
        out, final, inputs, params = run(fused, x, state, upstream, autocast=False)
    assert {dtype for key in log.ops for dtype in key[1] + key[2] if dtype.is_floating_point} == {torch.float32}
    casts = [key for key in log.ops if key[0] == "_to_copy" and any(d.is_floating_point for d in key[1])]
    assert not casts, f"float32 weights and inputs need no cast, got {casts}"
    want_out, want_final, want_inputs, want_params = run(loop, x, state, upstream, autocast=False)
    torch.testing.assert_close(out, want_out, rtol=0, atol=1e-5)
    for got, want in zip([*final, *inputs, *params], [*want_final, *want_inputs, *want_params]):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_float64_is_left_alone_by_autocast():
    # Autocast casts no float64 op, in the loop or in the fused path: both stay exact.
    loop, fused = make_pair("lstm")
    loop.double(), fused.double()
    x, state, upstream = random_inputs(loop, torch.float64, torch.float64)
    want = run(loop, x, state, upstream, autocast=True)
    got = run(fused, x, state, upstream, autocast=True)
    for a, b in zip(tree_leaves(got), tree_leaves(want)):
        assert a.dtype == torch.float64
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def bf16_errors(kind, impl, seed):
    """Largest and mean error of a bf16 module's outputs and final state, and the largest relative error of its
    gradients, against the float64 loop with the same weights."""
    torch.manual_seed(seed)
    exact = Recurrent(kind, I, H, num_layers=2, bidirectional=True, impl="loop").double()
    layer = Recurrent(kind, I, H, num_layers=2, bidirectional=True, impl=impl)
    layer.load_state_dict(exact.state_dict())
    layer.bfloat16()
    x, _, upstream = random_inputs(layer, torch.float64, None, seed=seed)
    want_out, want_final, want_inputs, want_params = run(exact, x, None, upstream, autocast=False)
    out, final, inputs, params = run(layer, x.bfloat16(), None, upstream, autocast=False)
    assert out.dtype == torch.bfloat16 and all(f.dtype == torch.bfloat16 for f in final)
    assert all(g.dtype == torch.bfloat16 for g in inputs + params)
    errors = [(got.double() - want).abs() for got, want in zip([out, *final], [want_out, *want_final])]
    grad_error = max(relative(got, want) for got, want in zip(inputs + params, want_inputs + want_params))
    return max(e.max().item() for e in errors), torch.cat([e.flatten() for e in errors]).mean().item(), grad_error


@pytest.mark.parametrize("kind", KINDS)
def test_bf16_module_error_is_at_most_the_loops(kind):
    # Measured (docs/fused.md): fused / loop error 0.4-0.8; with a bf16 tanh-through-sigmoid it was 1.1-2.3.
    loop = [bf16_errors(kind, "loop", seed) for seed in (0, 1)]
    fused = [bf16_errors(kind, "fused", seed) for seed in (0, 1)]
    for name, index in (("largest", 0), ("mean", 1), ("gradient", 2)):
        want, got = max(e[index] for e in loop), max(e[index] for e in fused)
        assert got <= want, f"{name} error: fused {got:.2e}, loop {want:.2e}"
    assert max(e[0] for e in loop) < 0.05  # and both are bf16-sized, not broken


def test_mixed_dtypes_outside_autocast_are_refused_with_the_fix():
    _, fused = make_pair("gru")
    with pytest.raises(TypeError, match=r"torch.bfloat16 for weights of torch.float32.*torch.autocast"):
        fused(torch.randn(B, T, I, dtype=torch.bfloat16))
