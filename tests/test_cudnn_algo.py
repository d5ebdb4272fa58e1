"""benchmarks.cudnn_algo says which cuDNN algorithm PyTorch's RNN.cpp picks, at the benchmark's shapes and at the
edges of each of its conditions."""

import pytest

from benchmarks.cudnn_algo import H100, PERSISTENT, SMALL_H, STANDARD, Device, cudnn_algorithm

A40 = Device(8, 6, 84)
T4 = Device(7, 5, 40)
V100 = Device(7, 0, 80)
P100 = Device(6, 0, 56)
MAXWELL = Device(5, 2, 24)


def algo(cell="lstm", hidden=51, input_size=1, batch=98, steps=999, layers=1, bi=False, dtype="float32",
         packed=False, forward=True, device=H100, proj=0):  # fmt: skip
    return cudnn_algorithm(cell, hidden, input_size, batch, steps, layers, bi, dtype, packed, forward, device, proj)


@pytest.mark.parametrize(
    "case,forward,backward",
    [
        ({}, SMALL_H, SMALL_H),  # the sine LSTM in float32
        ({"dtype": "float64"}, STANDARD, STANDARD),  # the sine default: no small-H kernel for float64
        (
            {"cell": "gru", "hidden": 128, "input_size": 50, "batch": 64, "steps": 51, "bi": True, "packed": True},
            STANDARD,
            STANDARD,
        ),  # the sentiment default: packed (lengths)
        ({"cell": "gru", "hidden": 128, "input_size": 50, "batch": 64, "steps": 51, "bi": True}, SMALL_H, SMALL_H),
        ({"cell": "gru", "hidden": 128, "input_size": 50, "batch": 200, "steps": 51}, SMALL_H, SMALL_H),
        ({"hidden": 192}, SMALL_H, STANDARD),  # LSTM/GRU: forward to 192, backward to 128
        ({"hidden": 129, "cell": "gru"}, SMALL_H, STANDARD),
        ({"hidden": 193}, STANDARD, STANDARD),
        ({"cell": "rnn", "hidden": 384}, SMALL_H, STANDARD),  # plain RNN: forward to 384, backward to 256
        ({"cell": "rnn", "hidden": 256}, SMALL_H, SMALL_H),
        ({"dtype": "bfloat16"}, SMALL_H, SMALL_H),
        ({"layers": 3, "bi": True}, SMALL_H, SMALL_H),  # layers and directions do not matter for small H
        ({"proj": 20}, STANDARD, STANDARD),
        ({"device": MAXWELL}, STANDARD, STANDARD),  # small H needs sm_60+
        ({"device": P100}, SMALL_H, SMALL_H),
    ],
)
def test_small_hidden_sizes_get_the_persistent_small_h_kernels_unless_packed_or_float64(case, forward, backward):
    assert algo(**case, forward=True) == forward
    assert algo(**case, forward=False) == backward


WIDE = {"hidden": 256, "input_size": 128, "batch": 64, "dtype": "float16"}  # past small H: the float16 rule


@pytest.mark.parametrize(
    "case,expected",
    [
        ({}, PERSISTENT),
        ({"dtype": "float32"}, STANDARD),  # persistent (not small H) is for float16 only
        ({"input_size": 100}, STANDARD),
        ({"layers": 2}, STANDARD),
        ({"bi": True}, STANDARD),
        ({"hidden": 1152}, STANDARD),
        ({"cell": "gru"}, STANDARD),  # never a persistent GRU on sm_80+
        ({"batch": 132}, STANDARD),
        ({"batch": 68}, STANDARD),
        ({"cell": "rnn", "hidden": 896, "batch": 96}, STANDARD),
        ({"cell": "rnn", "hidden": 896, "batch": 88}, PERSISTENT),
        ({"device": A40}, STANDARD),
        ({"device": T4}, STANDARD),
        ({"device": V100, "batch": 80}, STANDARD),
        ({"device": V100, "batch": 96, "steps": 20}, PERSISTENT),
        ({"device": V100, "batch": 128, "steps": 20}, STANDARD),
        ({"device": V100, "cell": "gru", "steps": 40}, PERSISTENT),
        ({"packed": True}, STANDARD),
    ],
)
def test_float16_wide_layers_follow_the_device_rule(case, expected):
    assert algo(**{**WIDE, **case}) == expected
