"""The recurrent layer (stacked, bidirectional, with lengths) equals torch.nn's, packed sequences included."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnn_lightning.nn.layer import Recurrent
from rnn_lightning.nn.reference import torch_twin

B, T, I, H = 4, 6, 3, 5
LENGTHS = torch.tensor([6, 2, 4, 1])
CONFIGS = [(1, False), (2, False), (1, True), (2, True)]  # (num_layers, bidirectional)


def make_pair(kind, num_layers, bidirectional, impl="loop"):
    torch.manual_seed(1)
    ours = Recurrent(kind, I, H, num_layers, bidirectional, impl=impl).double()
    return ours, torch_twin(ours)


def as_tuple(kind, state):
    return tuple(state) if kind == "lstm" else (state,)


@pytest.mark.parametrize("num_layers,bidirectional", CONFIGS)
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_layer_matches_torch(kind, num_layers, bidirectional):
    ours, theirs = make_pair(kind, num_layers, bidirectional)
    x = torch.randn(B, T, I, dtype=torch.float64)
    directions = 2 if bidirectional else 1
    state = tuple(torch.randn(num_layers * directions, B, H, dtype=torch.float64) for _ in range(ours.state_size))
    out, final = ours(x, state)
    expected_out, expected_final = theirs(x, state if kind == "lstm" else state[0])
    assert out.shape == (B, T, H * directions)
    torch.testing.assert_close(out, expected_out, rtol=0, atol=1e-6)
    for g, e in zip(final, as_tuple(kind, expected_final)):
        assert g.shape == (num_layers * directions, B, H)
        torch.testing.assert_close(g, e, rtol=0, atol=1e-6)


@pytest.mark.parametrize("num_layers,bidirectional", CONFIGS)
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_layer_with_lengths_matches_packed_sequence(kind, num_layers, bidirectional):
    ours, theirs = make_pair(kind, num_layers, bidirectional)
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
    out, final = ours(x, lengths=LENGTHS)
    packed = pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False)
    packed_out, packed_final = theirs(packed)
    expected_out, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=T)
    torch.testing.assert_close(out, expected_out, rtol=0, atol=1e-6)
    for g, e in zip(final, as_tuple(kind, packed_final)):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-6)
    # Gradients through the padded path equal those through the packed path.
    weights = list(ours.parameters())
    ours_grads = torch.autograd.grad(out.pow(2).sum() + final[0].sum(), [x, *weights])
    theirs_grads = torch.autograd.grad(
        expected_out.pow(2).sum() + as_tuple(kind, packed_final)[0].sum(), [x, *theirs.parameters()]
    )
    for g, e in zip(ours_grads, theirs_grads):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-6)


@pytest.mark.parametrize("impl", ["loop", "fused"])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_padding_never_changes_a_sequence(kind, impl):
    ours, _ = make_pair(kind, 2, True, impl)
    x = torch.randn(B, T, I, dtype=torch.float64)
    out, final = ours(x, lengths=LENGTHS)
    noisy = x.clone()
    for b, n in enumerate(LENGTHS.tolist()):
        noisy[b, n:] = 1e3  # garbage in every padded position
    noisy_out, noisy_final = ours(noisy, lengths=LENGTHS)
    torch.testing.assert_close(noisy_out, out, rtol=0, atol=0)
    for a, b in zip(final, noisy_final):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not out[1, 2:].any()  # padded outputs are zero


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_layer_gradcheck_bidirectional_two_layers_with_lengths(kind):
    torch.manual_seed(2)
    ours = Recurrent(kind, 2, 3, num_layers=2, bidirectional=True).double()
    x = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 1, 3])
    assert torch.autograd.gradcheck(lambda x: ours(x, lengths=lengths)[0], (x,))


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(3)
    layer = Recurrent("gru", I, H, num_layers=2, dropout=0.5).double()
    x = torch.randn(B, T, I, dtype=torch.float64)
    layer.eval()
    torch.testing.assert_close(layer(x)[0], layer(x)[0])
    layer.train()
    assert not torch.allclose(layer(x)[0], layer(x)[0])
    single = Recurrent("gru", I, H, num_layers=1, dropout=0.5).double().train()
    torch.testing.assert_close(single(x)[0], single(x)[0])  # nothing to drop between layers


@pytest.mark.parametrize(
    "kwargs,call,message",
    [
        ({"num_layers": 0}, None, "num_layers must be at least 1"),
        ({"dropout": 1.0}, None, r"dropout must be in \[0, 1\)"),
        ({"impl": "cuda"}, None, r"unknown recurrent impl 'cuda'"),
        ({}, (torch.zeros(2, 3, 9), None), r"expected input of shape \(batch, time, 3\)"),
        ({}, (torch.zeros(2, 3, 3), torch.tensor([3, 4])), r"lengths must lie in \[1, 3\]"),
        ({}, (torch.zeros(2, 3, 3), torch.tensor([3])), r"lengths must have shape \(2,\)"),
    ],
)
def test_bad_arguments_fail_with_a_clear_message(kwargs, call, message):
    with pytest.raises(ValueError, match=message):
        layer = Recurrent("rnn", 3, 4, **kwargs)
        x, lengths = call
        layer(x, lengths=lengths)


@pytest.mark.parametrize("impl", ["loop", "fused"])
def test_a_mismatched_input_dtype_gets_the_same_message_from_every_impl(impl):
    layer = Recurrent("lstm", I, H, impl=impl)  # float32 weights
    with pytest.raises(
        TypeError, match=r"Recurrent got an input or state of torch.float64 for weights of torch.float32"
    ):
        layer(torch.randn(B, T, I, dtype=torch.float64))
    state = tuple(torch.zeros(1, B, H, dtype=torch.bfloat16) for _ in range(2))
    with pytest.raises(TypeError, match=r"of torch.bfloat16 for weights of torch.float32: cast the input"):
        layer(torch.randn(B, T, I), state)
    with torch.autocast("cpu", torch.bfloat16):  # under autocast mixed dtypes are what autocast is for
        out, _ = layer(torch.randn(B, T, I, dtype=torch.bfloat16))
    assert out.shape == (B, T, H)
