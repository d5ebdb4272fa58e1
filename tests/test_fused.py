"""The fused path is the same model: outputs, final states and every gradient equal the loop's and torch.nn's."""

import json

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnn_lightning.nn.fused import common
from rnn_lightning.nn.layer import Recurrent
from rnn_lightning.nn.reference import PARAMETER_NAMES, torch_twin

B, T, I, H = 4, 6, 3, 5
LENGTHS = torch.tensor([6, 2, 4, 1])
KINDS = ["rnn", "lstm", "gru"]
CONFIGS = [(1, False), (2, False), (1, True), (2, True)]  # (num_layers, bidirectional)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread for these many tiny runs: on a small machine shared with other jobs, two
    OpenMP threads wait milliseconds for each other on every op."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_pair(kind, num_layers=1, bidirectional=False, dtype=torch.float64, sizes=(I, H), seed=0):
    """A loop layer and a fused layer holding the same weights."""
    torch.manual_seed(seed)
    loop = Recurrent(kind, *sizes, num_layers, bidirectional).to(dtype)
    fused = Recurrent(kind, *sizes, num_layers, bidirectional, impl="fused").to(dtype)
    fused.load_state_dict(loop.state_dict())
    return loop, fused


def random_state(layer, batch=B, dtype=torch.float64, requires_grad=True):
    shape = (layer.num_layers * layer.directions, batch, layer.hidden_size)
    return tuple(torch.randn(shape, dtype=dtype, requires_grad=requires_grad) for _ in range(layer.state_size))


def as_tuple(kind, state):
    return tuple(state) if kind == "lstm" else (state,)


def run_torch(kind, twin, x, state, lengths):
    """torch.nn on the same inputs; with lengths through a packed sequence, like the loop's masking."""
    hx = state if kind == "lstm" else state[0]
    if lengths is None:
        out, final = twin(x, hx)
        return out, as_tuple(kind, final)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    packed_out, final = twin(packed, hx)
    out, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=x.shape[1])
    return out, as_tuple(kind, final)


def loss_of(out, final, weights):
    """A loss that gives every output and final-state element its own gradient."""
    return (out * weights[0]).sum() + sum((f * w).sum() for f, w in zip(final, weights[1:]))


def twin_gradients(layer, twin):
    """torch.nn's weight gradients in our parameter order (cell by cell, PARAMETER_NAMES)."""
    grads = []
    for index in range(len(layer.cells)):
        suffix = f"_l{index // layer.directions}" + ("_reverse" if index % layer.directions else "")
        grads += [getattr(twin, name + suffix).grad for name in PARAMETER_NAMES]
    return grads


def check_three_way(kind, num_layers, bidirectional, lengths, atol):
    loop, fused = make_pair(kind, num_layers, bidirectional)
    twin = torch_twin(loop)
    x = torch.randn(B, T, I, dtype=torch.float64)
    state = random_state(loop)
    results = []
    for layer in (loop, fused, twin):
        xi = x.clone().requires_grad_()
        si = tuple(s.detach().clone().requires_grad_() for s in state)
        if layer is twin:
            out, final = run_torch(kind, twin, xi, si, lengths)
        else:
            out, final = layer(xi, si, lengths)
        if not results:
            torch.manual_seed(5)
            weights = [torch.randn_like(out), *(torch.randn_like(f) for f in final)]
        loss_of(out, final, weights).backward()
        params = twin_gradients(loop, twin) if layer is twin else [p.grad for p in layer.parameters()]
        results.append((out, final, [xi.grad, *(s.grad for s in si), *params]))
    (loop_out, loop_final, loop_grads) = results[0]
    for out, final, grads in results[1:]:
        torch.testing.assert_close(out, loop_out, rtol=0, atol=atol)
        for got, want in zip(final, loop_final):
            torch.testing.assert_close(got, want, rtol=0, atol=atol)
        assert len(grads) == len(loop_grads)
        for got, want in zip(grads, loop_grads):
            torch.testing.assert_close(got, want, rtol=0, atol=atol)


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("num_layers,bidirectional", CONFIGS)
@pytest.mark.parametrize("kind", KINDS)
def test_fused_equals_loop_and_torch_in_float64(kind, num_layers, bidirectional, with_lengths):
    check_three_way(kind, num_layers, bidirectional, LENGTHS if with_lengths else None, atol=1e-6)


@pytest.mark.parametrize("size", [1, 2 * 4 * 5 * 8 * 3])  # bytes: one step per block; uneven blocks
@pytest.mark.parametrize("kind", KINDS)
def test_fused_is_exact_across_time_blocks(kind, size, monkeypatch):
    # The default block holds the whole test sequence; long sequences are cut into blocks whose
    # boundaries carry state, gate gradients and (LSTM) cell state: cut this one everywhere.
    monkeypatch.setattr(common, "BLOCK_BYTES", size)
    for bidirectional in (False, True):
        loop, fused = make_pair(kind, 2, bidirectional)
        x = torch.randn(B, 11, I, dtype=torch.float64)
        lengths = torch.tensor([11, 3, 7, 1])
        state = random_state(loop)
        outs, grads = [], []
        for layer in (loop, fused):
            xi = x.clone().requires_grad_()
            si = tuple(s.detach().clone().requires_grad_() for s in state)
            out, final = layer(xi, si, lengths)
            (out.pow(2).sum() + sum(f.sin().sum() for f in final)).backward()
            outs.append((out, *final))
            grads.append([xi.grad, *(s.grad for s in si), *(p.grad for p in layer.parameters())])
            with torch.no_grad():
                outs.append(layer(x, state, lengths)[0])
        for got, want in zip(outs[2], outs[0]):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
        torch.testing.assert_close(outs[3], outs[1], rtol=0, atol=1e-10)  # no_grad, reused buffers
        for got, want in zip(grads[1], grads[0]):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_fused_gradcheck(kind):
    torch.manual_seed(3)
    layer = Recurrent(kind, 2, 3, num_layers=2, bidirectional=True, impl="fused").double()
    names = [name for name, _ in layer.named_parameters()]
    x = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    state = random_state(layer, batch=3)
    lengths = torch.tensor([4, 1, 3])

    def f(x, *rest):
        params = dict(zip(names, rest[len(state) :]))
        out, final = torch.func.functional_call(layer, params, (x, rest[: len(state)], lengths))
        return out, *final

    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    assert torch.autograd.gradcheck(f, (x, *state, *params))


@pytest.mark.parametrize("kind", KINDS)
def test_fused_float32_is_as_close_to_float64_as_the_loop(kind):
    # Long enough for rounding to build up; the fused path's tanh is 2 σ(2a) - 1 in float32.
    loop, fused = make_pair(kind, 2, True, sizes=(8, 16))
    x = torch.randn(6, 80, 8, dtype=torch.float64)
    exact_out, exact_final = loop(x)
    loop.float()
    fused.float()
    loop_error = (loop(x.float())[0].double() - exact_out).abs().max()
    out, final = fused(x.float())
    assert (out.double() - exact_out).abs().max() <= max(4 * loop_error, 1e-6)
    for got, want in zip(final, exact_final):
        torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_fused_float32_gradients_match_float64(kind):
    loop, fused = make_pair(kind, 1, False, sizes=(8, 16))
    fused.float()
    x = torch.randn(6, 80, 8, dtype=torch.float64)
    loop(x)[0].pow(2).sum().backward()
    fused(x.float())[0].pow(2).sum().backward()
    for got, want in zip(fused.parameters(), loop.parameters()):
        torch.testing.assert_close(got.grad.double(), want.grad, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_fused_under_no_grad_and_without_input_grad(kind):
    loop, fused = make_pair(kind, 2, True)
    x = torch.randn(B, T, I, dtype=torch.float64)  # does not require grad
    with torch.no_grad():
        out, final = fused(x, lengths=LENGTHS)
    assert not out.requires_grad and out.grad_fn is None
    expected_out, expected_final = loop(x, lengths=LENGTHS)
    torch.testing.assert_close(out, expected_out, rtol=0, atol=1e-10)
    for got, want in zip(final, expected_final):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    # Input without grad, weights with: the weight gradients still match.
    fused(x, lengths=LENGTHS)[0].pow(2).sum().backward()
    expected_out.pow(2).sum().backward()
    for got, want in zip(fused.parameters(), loop.parameters()):
        torch.testing.assert_close(got.grad, want.grad, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_fused_gradient_to_input_and_state_only(kind):
    # Frozen weights: only the input and the initial state need a gradient.
    loop, fused = make_pair(kind, 1, True)
    for p in [*loop.parameters(), *fused.parameters()]:
        p.requires_grad_(False)
    x = torch.randn(B, T, I, dtype=torch.float64)
    state = random_state(loop)
    grads = []
    for layer in (loop, fused):
        xi = x.clone().requires_grad_()
        si = tuple(s.detach().clone().requires_grad_() for s in state)
        out, final = layer(xi, si, LENGTHS)
        grads.append(torch.autograd.grad(final[0].sum() + out.sum(), (xi, *si)))
    for got, want in zip(grads[1], grads[0]):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("used", ["outputs", "final"])
@pytest.mark.parametrize("kind", KINDS)
def test_fused_when_only_outputs_or_only_final_state_carry_gradient(kind, used):
    loop, fused = make_pair(kind, 2, True)
    x = torch.randn(B, T, I, dtype=torch.float64)
    grads = []
    for layer in (loop, fused):
        out, final = layer(x, lengths=LENGTHS)
        loss = out.pow(2).sum() if used == "outputs" else final[-1].pow(2).sum()
        grads.append(torch.autograd.grad(loss, list(layer.parameters())))
    for got, want in zip(grads[1], grads[0]):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_fused_backward_twice_with_retained_graph(kind):
    # The backward must leave what it saved untouched: a second pass gives the same gradients.
    _, fused = make_pair(kind, 1, True)
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
    out, final = fused(x, lengths=LENGTHS)
    loss = out.pow(2).sum() + final[0].sum()
    first = torch.autograd.grad(loss, [x, *fused.parameters()], retain_graph=True)
    second = torch.autograd.grad(loss, [x, *fused.parameters()])
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_fused_runs_no_builtin_recurrent_kernel(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the fused path called a built-in recurrent kernel")

    for name in ("rnn_tanh", "rnn_relu", "lstm", "gru", "lstm_cell", "gru_cell", "rnn_tanh_cell"):
        monkeypatch.setattr(torch._VF, name, refuse)
    for kind in KINDS:
        _, fused = make_pair(kind, 2, True)
        out, final = fused(torch.randn(B, T, I, dtype=torch.float64), lengths=LENGTHS)
        (out.sum() + final[0].sum()).backward()
    with pytest.raises(AssertionError, match="built-in recurrent kernel"):
        torch.nn.LSTM(I, H)(torch.randn(T, B, I))  # the guard itself works


@pytest.mark.parametrize("kind", KINDS)
def test_fused_reads_no_value_back_to_the_host(kind):
    # Meta tensors hold no data: .item(), bool(t), .tolist() and any branch on a value raise on them. A forward and
    # backward that run on "meta" therefore never wait for a device, and queue asynchronously on CUDA.
    layer = Recurrent(kind, I, H, num_layers=2, bidirectional=True, impl="fused").to("meta")
    x = torch.randn(B, T, I, device="meta", requires_grad=True)
    state = tuple(torch.randn(4, B, H, device="meta", requires_grad=True) for _ in range(layer.state_size))
    out, final = layer(x, state, LENGTHS.to("meta"))
    (out.sum() + sum(f.sum() for f in final)).backward()
    assert out.shape == (B, T, 2 * H) and all(f.shape == (4, B, H) for f in final)
    assert x.grad.shape == x.shape and all(s.grad.shape == s.shape for s in state)
    assert all(p.grad.shape == p.shape for p in layer.parameters())
    with torch.no_grad():
        assert layer(x, lengths=LENGTHS.to("meta"))[0].shape == (B, T, 2 * H)
    with pytest.raises(RuntimeError, match="meta"):  # the guard itself works
        bool(out.sum() > 0)


def test_bench_reports_every_row_against_torch(capsys):
    from benchmarks import cells as bench

    bench.main(["--cells", "gru", "--shapes", "sentiment-b200", "--repeats", "1", "--warmup", "0", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert [r["impl"] for r in rows] == ["loop", "fused", "torch"]
    for row in rows:
        assert set(row) == {"cell", "impl", "shape", "dtype", "device", "ms", "peak_mb", "ratio"}
        assert row["ms"] > 0 and row["peak_mb"] > 0
    assert rows[-1]["ratio"] == 1.0
    assert rows[1]["ratio"] == pytest.approx(rows[1]["ms"] / rows[2]["ms"], rel=1e-2)
    bench.main(["--cells", "rnn", "--impls", "fused", "torch", "--shapes", "sentiment-b200", "--quick", "--no-memory"])
    table = capsys.readouterr().out
    assert "threads=1" in table and "clock=thread CPU time" in table
