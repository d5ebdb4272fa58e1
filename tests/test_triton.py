"""impl=triton is the same model: outputs, final states and every gradient equal the loop's and torch.nn's.

Without CUDA the kernels run through Triton's interpreter (``conftest.py`` sets TRITON_INTERPRET=1), which
runs the programs one after another and accepts what a GPU refuses. So what the GPU demands is tested apart:
the launch parameters and the block-size chooser here, and every kernel compiled for sm_90 in a subprocess
without the interpreter. On a CUDA machine the same tests run the compiled kernels.
"""

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from extras import require_extra
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

triton = require_extra("triton")
pytestmark = pytest.mark.triton  # CI runs these after adding the extra: pytest -m triton

from rnn_lightning.nn import triton as triton_impl  # noqa: E402  (after the skip)
from rnn_lightning.nn.layer import Recurrent  # noqa: E402
from rnn_lightning.nn.reference import PARAMETER_NAMES, torch_twin  # noqa: E402
from rnn_lightning.nn.triton import launch, plan  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
B, T, I, H = 4, 6, 3, 5
LENGTHS = torch.tensor([6, 2, 4, 1])
KINDS = ["rnn", "lstm", "gru"]
REPO = Path(__file__).resolve().parents[1]


def make_pair(kind, num_layers=2, bidirectional=True, hidden=H, dtype=torch.float64, seed=0):
    """A loop layer and a triton layer holding the same weights; fp32 products in IEEE precision, as the loop's."""
    torch.manual_seed(seed)
    loop = Recurrent(kind, I, hidden, num_layers, bidirectional, impl="loop").to(DEVICE, dtype)
    fast = Recurrent(kind, I, hidden, num_layers, bidirectional, impl="triton", fp32_precision="ieee")
    fast = fast.to(DEVICE, dtype)
    fast.load_state_dict(loop.state_dict())
    return loop, fast


def run(layer, x, state, lengths, twin=False):
    """Outputs, final state and the gradients of a loss that weighs every output and final element apart:
    [dx, d state..., d parameters in the cells' order (PARAMETER_NAMES per cell)]."""
    x = x.clone().requires_grad_()
    state = tuple(s.clone().requires_grad_() for s in state)
    if twin:  # torch.nn, through a packed sequence when there are lengths
        hx = state if len(state) == 2 else state[0]
        if lengths is None:
            out, final = layer(x, hx)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_out, final = layer(packed, hx)
            out, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=x.shape[1])
        final = tuple(final) if len(state) == 2 else (final,)
    else:
        out, final = layer(x, state, lengths)
    weights = torch.Generator().manual_seed(1)
    loss = sum((t * torch.randn(t.shape, generator=weights).to(t.device, t.dtype)).sum() for t in (out, *final))
    params = twin_parameters(layer) if twin else list(layer.parameters())
    return out, final, torch.autograd.grad(loss, [x, *state, *params])


def twin_parameters(twin):
    suffixes = [f"_l{k}" + s for k in range(twin.num_layers) for s in ("", "_reverse")[: 1 + twin.bidirectional]]
    return [getattr(twin, name + suffix) for suffix in suffixes for name in PARAMETER_NAMES]


def random_inputs(layer, batch=B, steps=T, dtype=torch.float64):
    x = torch.randn(batch, steps, I, dtype=dtype, device=DEVICE)
    shape = (layer.num_layers * layer.directions, batch, layer.hidden_size)
    return x, tuple(torch.randn(shape, dtype=dtype, device=DEVICE) for _ in range(layer.state_size))


def assert_same(got, want, atol, rtol=0.0):
    (out, final, grads), (out_w, final_w, grads_w) = got, want
    torch.testing.assert_close(out, out_w, atol=atol, rtol=rtol)
    assert len(final) == len(final_w)
    for f, w in zip(final, final_w):
        torch.testing.assert_close(f, w, atol=atol, rtol=rtol)
    assert len(grads) == len(grads_w)
    for index, (g, w) in enumerate(zip(grads, grads_w)):
        torch.testing.assert_close(g, w, atol=atol, rtol=rtol, msg=lambda m, k=index: f"gradient {k}: {m}")


@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_same_as_loop_and_torch_in_float64(kind, with_lengths):
    """2 layers, bidirectional: outputs, final states, dx, d initial states, all four parameters of every cell."""
    loop, fast = make_pair(kind)
    x, state = random_inputs(loop)
    lengths = LENGTHS.to(DEVICE) if with_lengths else None
    got = run(fast, x, state, lengths)
    assert got[0].shape == (B, T, 2 * H) and got[1][0].shape == (4, B, H)
    assert_same(got, run(loop, x, state, lengths), atol=1e-6)
    assert_same(got, run(torch_twin(loop), x, state, lengths, twin=True), atol=1e-6)
    if with_lengths:  # padded steps are zero, exactly
        padded = torch.arange(T, device=DEVICE)[None, :] >= lengths[:, None]
        assert not got[0][padded].any()


@pytest.mark.parametrize("weight_in_l2", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_weight_from_l2_and_several_programs(kind, weight_in_l2, monkeypatch):
    """U read from L2 in chunks, or held on chip, over several programs per direction, with lengths: the same numbers
    as the loop, weight gradients included (da^T h_prev over every program's rows). Four chunks per product: in the
    interpreter of 4 rows (below tl.dot's GPU minimum, which the interpreter does not mind), on a GPU of 16 (H = 40).
    L2 is chosen by leaving room in shared memory for the chunks but not for U."""
    hidden, chunk = (40, 16) if DEVICE == "cuda" else (H, 4)
    gates = launch.KERNELS[type(make_pair(kind, 1)[0].cells[0])].gates
    monkeypatch.setattr(plan, "CHUNK", chunk)
    if weight_in_l2:
        _, shared = launch.device_limits(torch.device(DEVICE))
        monkeypatch.setattr(plan, "CONVERSION_ROOM", shared - gates * plan.padded(hidden) * 2 * chunk * 8)
    chosen = plan.choose_plan(
        9, hidden, gates, 2, torch.float64, torch.float64, *launch.device_limits(torch.device(DEVICE))
    )
    assert chosen.weight_on_chip == (not weight_in_l2)
    assert chosen.blocks(9) == 3 and chosen.hidden_pad // chosen.chunk == 4
    loop, fast = make_pair(kind, num_layers=1, hidden=hidden)
    x, state = random_inputs(loop, batch=9, steps=4)
    lengths = torch.arange(9, device=DEVICE) % 4 + 1
    assert_same(run(fast, x, state, lengths), run(loop, x, state, lengths), atol=1e-6)


@pytest.mark.skipif(DEVICE != "cuda", reason="GPU only: too large for the interpreter's minute")
@pytest.mark.parametrize("hidden,dtype,tol", [(51, torch.float64, 1e-6), (128, torch.float32, 1e-4)])
@pytest.mark.parametrize("kind", KINDS)
def test_the_projects_sizes_on_a_gpu(kind, hidden, dtype, tol):
    """The sine's H = 51 in float64 (U on chip) and the sentiment's H = 128 in float32 (U in L2), with lengths."""
    loop, fast = make_pair(kind, hidden=hidden, dtype=dtype)
    x, state = random_inputs(loop, batch=70, steps=50, dtype=dtype)
    lengths = torch.randint(1, 51, (70,), device=DEVICE)
    assert_same(run(fast, x, state, lengths), run(loop, x, state, lengths), atol=tol, rtol=tol)


@pytest.mark.parametrize("kind", KINDS)
def test_float32_in_ieee_precision(kind):
    loop, fast = make_pair(kind, num_layers=1, dtype=torch.float32)
    x, state = random_inputs(loop, dtype=torch.float32)
    assert_same(run(fast, x, state, LENGTHS.to(DEVICE)), run(loop, x, state, LENGTHS.to(DEVICE)), atol=2e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_16_bit_under_autocast_matches_the_loop_under_autocast(kind):
    """The recurrent matmuls in 16-bit (fp32 sums), states and outputs in fp32, like the loop under autocast.
    bfloat16 runs only on a GPU: the interpreter's tl.dot cannot."""
    loop, fast = make_pair(kind, num_layers=1, dtype=torch.float32)
    x, state = random_inputs(loop, dtype=torch.float32)
    for half in (torch.float16, torch.bfloat16) if DEVICE == "cuda" else (torch.float16,):
        results = []
        for layer in (loop, fast):
            with torch.autocast(DEVICE, dtype=half):
                results.append(run(layer, x, state, LENGTHS.to(DEVICE)))
        (out, final, grads), (out_w, final_w, grads_w) = results
        assert out.dtype == out_w.dtype == torch.float32
        scale = 1e-2 if half == torch.float16 else 5e-2  # bfloat16 keeps 8 bits of mantissa, float16 11
        torch.testing.assert_close(out, out_w, atol=scale, rtol=0)
        for g, w in zip(grads, grads_w):
            torch.testing.assert_close(g, w, atol=scale * w.abs().max().item(), rtol=0)
        with torch.no_grad():  # and still the same model: near the float32 results
            torch.testing.assert_close(out, loop(x, state, LENGTHS.to(DEVICE))[0], atol=3 * scale, rtol=0)


def test_16_bit_module_returns_16_bit_near_float32():
    """A module cast to float16: 16-bit outputs and gradients, computed with fp32 states and sums."""
    loop, fast = make_pair("lstm", num_layers=1, dtype=torch.float32)
    x, state = random_inputs(loop, dtype=torch.float32)
    want = run(loop, x, state, LENGTHS.to(DEVICE))
    out, final, grads = run(fast.half(), x.half(), tuple(s.half() for s in state), LENGTHS.to(DEVICE))
    assert out.dtype == final[0].dtype == grads[-1].dtype == torch.float16
    torch.testing.assert_close(out.float(), want[0], atol=1e-2, rtol=0)
    for g, w in zip(grads, want[2]):
        torch.testing.assert_close(g.float(), w, atol=1e-2 * w.abs().max().item(), rtol=0)


def test_weight_gradients_are_deterministic():
    """dW_hh is one matmul over every row and step after the launch, never summed by programs: the same bits on every
    run (no atomics)."""
    _, fast = make_pair("lstm", num_layers=1, dtype=torch.float32)
    x, state = random_inputs(fast, batch=9, steps=3, dtype=torch.float32)  # 3 programs per direction
    first, second = run(fast, x, state, None)[2], run(fast, x, state, None)[2]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    kernel_sources = [inspect.getsource(m) for m in (triton_impl.rnn, triton_impl.lstm, triton_impl.gru)]
    assert not any("atomic" in source for source in kernel_sources)


def test_backward_runs_once():
    _, fast = make_pair("gru", num_layers=1)
    x, state = random_inputs(fast)
    out, _ = fast(x.requires_grad_(), state)
    out.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="runs once per forward.*impl=fused or loop"):
        out.sum().backward()


# What the GPU demands, which the interpreter does not check.


@pytest.mark.parametrize(
    "hidden,gates,dtype,precision,pad,on_chip,rows",
    [
        (51, 4, torch.float32, "ieee", 64, True, 4),  # the sine's LSTM: U 64 KB in fp32
        (51, 4, torch.float64, "ieee", 64, True, 4),  # 128 KB in fp64
        (128, 3, torch.float32, "tf32", 128, True, 8),  # the sentiment's GRU: 192 KB, on tensor cores
        (128, 3, torch.float32, "ieee", 128, False, 8),  # the same on the FMA units: a 128 x 128 tile spills
        (128, 4, torch.float32, "tf32", 128, False, 8),  # 256 KB: L2
        (128, 4, torch.bfloat16, "ieee", 128, True, 8),  # 128 KB in 16-bit
        (5, 3, torch.float64, "ieee", 16, True, 4),
        (17, 1, torch.float32, "ieee", 32, True, 4),
    ],
)
def test_plan_pads_places_the_weight_and_gives_each_row_a_warp(hidden, gates, dtype, precision, pad, on_chip, rows):
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    chosen = plan.choose_plan(64, hidden, gates, 2, dtype, acc, fp32_precision=precision)
    assert chosen.hidden_pad == pad
    assert chosen.weight_on_chip == on_chip
    assert chosen.block_b == chosen.num_warps == rows and chosen.blocks(64) == 64 // rows
    assert chosen.chunk >= 16 and pad % chosen.chunk == 0


def test_plan_keeps_the_weight_within_the_gpus_shared_memory():
    """U on chip only where it fits the device's shared memory (an A100 has 163 KB per block, an H100 227 KB); a
    cell that does not fit even in L2 chunks is refused with what to do."""
    sentiment = (64, 128, 3, 2, torch.float32, torch.float32, 108)
    assert plan.choose_plan(*sentiment, fp32_precision="tf32").weight_on_chip
    assert not plan.choose_plan(*sentiment, fp32_precision="tf32", shared_bytes=163 << 10).weight_on_chip
    plan.choose_plan(8, 256, 3, 1, torch.float64, torch.float64)  # a GRU's chunks fit
    with pytest.raises(ValueError, match=r"more shared memory than this GPU's 227 KB.*model.impl=fused"):
        plan.choose_plan(8, 256, 4, 1, torch.float64, torch.float64)


@pytest.mark.parametrize(
    "batch,directions,block",
    [(1, 1, 4), (64, 2, 4), (528, 1, 4), (529, 1, 8), (2112, 2, 32), (8448, 2, 64), (10**6, 1, 64)],
)
def test_plan_batch_block_grows_only_when_programs_outnumber_the_sms(batch, directions, block):
    chosen = plan.choose_plan(batch, 51, 4, directions, torch.float32, torch.float32, sms=132)
    assert chosen.block_b == block and chosen.num_warps == 4
    assert block & (block - 1) == 0  # a power of two, for tl.arange


@pytest.fixture
def torch_precision():
    """torch's fp32 precision settings as they were after the test, and its older flags readable again."""
    rnn, matmul = torch.backends.cudnn.rnn.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    yield torch.backends
    torch.backends.cudnn.rnn.fp32_precision, torch.backends.cuda.matmul.fp32_precision = rnn, matmul
    assert torch.backends.cuda.matmul.allow_tf32 is not None and torch.backends.cudnn.allow_tf32 is not None


def test_precision_follows_torchs_setting_for_cudnn_rnns(torch_precision):
    """None: what torch lets cuDNN's RNNs do (TF32 by default), so that a comparison with torch.nn is like for like;
    a setting of the layer wins; float64 and 16-bit products have one precision."""
    assert torch.backends.cudnn.rnn.fp32_precision == "tf32"  # torch's default for cuDNN RNNs
    assert plan.dot_precision(torch.float32) == "tf32"
    assert plan.choose_plan(8, 51, 4, 1, torch.float32, torch.float32).precision == "tf32"
    torch_precision.cudnn.rnn.fp32_precision = "ieee"
    assert plan.dot_precision(torch.float32) == "ieee"
    assert plan.dot_precision(torch.float32, "tf32x3") == "tf32x3"
    for operand in (torch.float64, torch.float16, torch.bfloat16):
        assert plan.dot_precision(operand, "tf32") == "ieee"
    assert plan.choose_plan(8, 51, 4, 1, torch.float32, torch.float32, fp32_precision="tf32").precision == "tf32"


def test_precision_is_read_without_the_flag_that_raises(torch_precision):
    """Once anything has set torch's newer fp32_precision, reading allow_tf32 raises; our reading does not."""
    torch_precision.cuda.matmul.fp32_precision = "tf32"
    with pytest.raises(RuntimeError, match="mix of the legacy and new APIs"):
        torch.backends.cuda.matmul.allow_tf32  # noqa: B018  (the read itself raises)
    torch_precision.cudnn.rnn.fp32_precision = "ieee"
    assert plan.dot_precision(torch.float32) == "ieee"


def test_precision_on_a_torch_without_the_newer_api():
    """torch < 2.9 has only torch.backends.cudnn.allow_tf32 (True by default there too)."""
    assert plan.torch_rnn_precision(SimpleNamespace(allow_tf32=True)) == "tf32"
    assert plan.torch_rnn_precision(SimpleNamespace(allow_tf32=False)) == "ieee"


def test_precision_setting_reaches_the_kernels_and_a_bad_one_is_refused(monkeypatch):
    chosen = []
    monkeypatch.setattr(launch, "launch", lambda kernel, plan_, *args, **kwargs: chosen.append(plan_.precision))
    x = torch.randn(2, 3, I, device=DEVICE)
    with torch.no_grad():  # the forward launch only, recorded instead of run
        Recurrent("gru", I, H, 2, impl="triton", fp32_precision="tf32x3").to(DEVICE)(x)
    assert chosen == ["tf32x3", "tf32x3"]  # each layer's
    Recurrent("gru", I, H, impl="loop", fp32_precision="tf32")(x.cpu())  # loop (and fused): IEEE, it does not matter
    with pytest.raises(ValueError, match=r"fp32_precision must be one of \['ieee', 'tf32', 'tf32x3'\].*'fp32'"):
        Recurrent("gru", I, H, impl="triton", fp32_precision="fp32")


def test_plan_refuses_what_one_program_cannot_hold():
    assert triton_impl.MAX_HIDDEN_SIZE == 256  # for a caller that picks an impl (registry.choose_impl)
    plan.choose_plan(8, 256, 4, 1, torch.float32, torch.float32)
    with pytest.raises(ValueError, match="hidden sizes up to 256.*model.impl=fused"):
        plan.choose_plan(8, 257, 4, 1, torch.float32, torch.float32)
    with pytest.raises(ValueError, match="parameters, not torch.int32"):
        plan.compute_dtypes(torch.int32, "cpu")


def test_launch_parameters(monkeypatch):
    """What each launch gets: grid (batch blocks, directions), padded power-of-two sizes >= 16, a warp per batch row,
    IEEE fp32 (asked for), every compile-time argument the kernel declares (from the plan, as ``compiled.py``
    compiles them), and the time length as a run-time argument (not specialised: a new T compiles nothing)."""
    launches = []
    real_launch = launch.launch

    def record(kernel, chosen, x, directions, *args, **constexprs):
        launches.append((kernel, chosen, (chosen.blocks(x.shape[0]), directions), args, constexprs))
        return real_launch(kernel, chosen, x, directions, *args, **constexprs)

    _, fast = make_pair("lstm", num_layers=1, hidden=51, dtype=torch.float32)
    x, state = random_inputs(fast, batch=3, steps=2, dtype=torch.float32)
    run(fast, x, state, None)  # on a GPU the first call also runs the kernels' first check (nn/proving.py)
    monkeypatch.setattr(launch, "launch", record)
    run(fast, x, state, None)
    assert [k.__name__ for k, *_ in launches] == ["lstm_forward", "lstm_backward"]
    for kernel, chosen, grid, args, constexprs in launches:
        assert grid == (1, 2)
        assert (chosen.hidden_pad, chosen.block_b, chosen.num_warps, chosen.precision) == (64, 4, 4, "ieee")
        declared = inspect.signature(kernel.fn).parameters
        assert set(constexprs) == {n for n, p in declared.items() if "constexpr" in str(p.annotation)}
        assert constexprs == chosen.constexprs(has_lengths=False)
        names = [n for n in kernel.arg_names if n not in constexprs]
        assert len(args) == len(names) and dict(zip(names, args))["T"] == 2
        assert declared["T"].annotation is inspect.Parameter.empty  # not a constexpr
        options = kernel.kwargs if hasattr(kernel, "kwargs") else vars(kernel)  # interpreted, or compiled
        assert {"B", "T"} <= set(options["do_not_specialize"])  # nor specialised on T == 1 or T % 16 == 0


@pytest.mark.skipif(DEVICE != "cuda", reason="compiled kernels only: the interpreter has no compile cache")
def test_new_lengths_compile_nothing():
    _, fast = make_pair("gru", num_layers=1, dtype=torch.float32)
    kernel = launch.KERNELS[type(fast.cells[0])].forward
    for steps in (5, 9, 16, 33):
        with torch.no_grad():
            fast(*random_inputs(fast, steps=steps, dtype=torch.float32))
        compiled = len(kernel.device_caches[torch.cuda.current_device()][0])
        assert compiled == 1, f"{compiled} compilations after T={steps}"


# Every kernel compiled for an H100/H200 (sm_90) with the installed Triton, without a GPU (``nn/triton/compiled.py``):
# tl.dot's sizes and dtypes, IEEE fp32 (no TF32 instruction) or TF32, no atomics, shared memory within a block's
# limit, registers and spills from ptxas, and the time loop as the TTGIR has it. In a subprocess, because the
# interpreter replaces the kernels in this one.
SM90_SHARED_BYTES = 227 << 10  # the most shared memory one block of an H100/H200 may have
SENTIMENT = "gru,128,64,2,float32,float32"  # as trained: bidirectional, B = 64 (T and the lengths compile nothing)
SINE = "lstm,51,98,1"


def compile_for_sm90(configs):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    command = [sys.executable, "-m", "rnn_lightning.nn.triton.compiled", *configs]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 2 * len(configs), done.stdout
    for row in rows:
        where = f"{row['config']} {row['kernel']}"
        assert row["tf32_in_ptx"] == row["precision"].startswith("tf32"), f"{where}: {row['precision']}, PTX says"
        assert not row["atomics_in_ptx"], f"{where} uses atomics"
        assert 0 < row["shared_bytes"] <= SM90_SHARED_BYTES, f"{where}: {row['shared_bytes']} bytes of shared memory"
        # Every load in a time step is ahead of time (the next step's), none of an address the step stores to; and
        # the step's only products are the state's, G of them (3 TF32 passes each for tf32x3): no dW_hh in the loop.
        assert row["loop_read_modify_writes"] == 0, f"{where}: a load of what the same step stores"
        gates = {"rnn": 1, "lstm": 4, "gru": 3}[row["config"].split(",")[0]]
        assert row["loop_products"] == gates * (3 if row["precision"] == "tf32x3" else 1), where
    return {(row["config"], row["kernel"].split("_")[1]): row for row in rows}


def spills(row):
    return row["spill_store_bytes"] + row["spill_load_bytes"]


def test_kernels_compile_for_the_gpu_without_spills_at_the_projects_shapes():
    """The sentiment's GRU in TF32 (torch's default for cuDNN's RNNs, U on chip), the sine's LSTM in fp64 and in
    IEEE fp32, and an RNN in tf32x3: no register spills, and in IEEE fp32 (one batch row per warp) at most one layout
    conversion through shared memory per forward step, four per backward step. 8 kernels."""
    configs = [f"{SENTIMENT},tf32", f"{SINE},float64,float64,ieee", f"{SINE},float32,float32,ieee"]
    rows = compile_for_sm90([*configs, "rnn,51,64,2,float32,float32,tf32x3"])
    for (config, side), row in rows.items():
        assert spills(row) == 0, f"{config} {side}: {row['registers']} registers, {spills(row)} bytes spilled"
    assert rows[f"{SENTIMENT},tf32", "forward"]["weight_on_chip"]
    ieee = f"{SINE},float32,float32,ieee"
    assert (rows[ieee, "forward"]["loop_conversions"], rows[ieee, "backward"]["loop_conversions"]) <= (1, 4)


@pytest.mark.slow
def test_kernels_compile_for_the_gpu_in_every_dtype():
    """The other precisions at the project's shapes, and every kind at the other sizes and dtypes (the spills left
    at H >= 128 where U is read from L2 are reported by ``python -m rnn_lightning.nn.triton.compiled``)."""
    rows = compile_for_sm90(
        [f"{SENTIMENT},ieee", f"{SINE},float32,float32,tf32", f"{SINE},float32,float32,tf32x3"]
        + [
            "lstm,128,64,2,float32,float32,tf32",
            "gru,51,64,2,float32,float32,ieee",
            "rnn,128,64,2,float32,float32,ieee",
        ]
        + [f"{kind},51,64,2,float64,float64,ieee" for kind in KINDS]
        + [f"{kind},128,64,2,float32,bfloat16,ieee" for kind in KINDS]
        + [f"{kind},256,64,2,float32,float16,ieee" for kind in KINDS]
    )
    assert (
        spills(rows[f"{SINE},float32,float32,tf32", "forward"])
        == spills(rows[f"{SINE},float32,float32,tf32", "backward"])
        == 0
    )
    # Left: the sentiment's GRU in IEEE fp32 reads U from L2 (a 128 x 128 tile on chip spills more on the FMA units),
    # 16 rows at a time; ptxas spills a few dozen bytes per thread of its chunk operands.
    assert spills(rows[f"{SENTIMENT},ieee", "forward"]) <= 128 and spills(rows[f"{SENTIMENT},ieee", "backward"]) <= 128


# Errors a user can cause, and what they say to do.


def test_cpu_without_the_interpreter_says_what_to_do(monkeypatch):
    monkeypatch.setattr(launch, "interpreted", lambda: False)
    _, fast = make_pair("lstm", num_layers=1)
    x = torch.randn(B, T, I, dtype=torch.float64)
    message = r"runs on CUDA tensors, and this input is on cpu: use model.impl=auto or fused on CPU.*TRITON_INTERPRET=1"
    with pytest.raises(RuntimeError, match=message):
        fast.to("cpu")(x)
    with pytest.raises(RuntimeError, match=message):  # the same, before anything runs
        triton_impl.check_runnable("cpu")
    if torch.cuda.is_available():
        triton_impl.check_runnable("cuda")


def test_missing_triton_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # import triton now raises ImportError
    for name in [m for m in sys.modules if m.startswith("rnn_lightning.nn.triton.")]:
        monkeypatch.delitem(sys.modules, name)
    _, fast = make_pair("rnn", num_layers=1)
    with pytest.raises(ImportError, match=r"pip install triton==3.6.0.*\.\[triton\]"):
        fast(torch.randn(B, T, I, dtype=torch.float64, device=DEVICE))


@pytest.mark.skipif(DEVICE == "cuda", reason="the interpreter's limitation")
def test_bfloat16_in_the_interpreter_is_refused():
    _, fast = make_pair("rnn", num_layers=1, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(RuntimeError, match="bfloat16.*float16"):
        fast(torch.randn(B, T, I))


def test_mixed_dtypes_outside_autocast_are_refused_like_the_loop():
    _, fast = make_pair("lstm", num_layers=1, dtype=torch.float32)
    with pytest.raises(TypeError, match=r"torch.float64 for weights of torch.float32"):  # Recurrent's check
        fast(torch.randn(B, T, I, dtype=torch.float64, device=DEVICE))
