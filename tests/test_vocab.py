"""Tests for Vocabulary and encode_batch."""

from __future__ import annotations

import pytest
import torch

from rnn_lightning.data.encoding import encode_batch
from rnn_lightning.data.vocab import Vocabulary


def _small_vocab() -> Vocabulary:
    return Vocabulary.build([["b", "a", "c"], ["a", "b"], ["a"]])


def test_special_ids() -> None:
    assert Vocabulary.PAD == 0 and Vocabulary.UNK == 1
    vocab = _small_vocab()
    assert vocab.itos[:2] == ["<pad>", "<unk>"]


def test_order_is_frequency_then_alphabet() -> None:
    vocab = Vocabulary.build([["zeta", "beta", "alpha"], ["zeta"], ["gamma", "beta", "zeta"]])
    # zeta 3, beta 2, then alpha/gamma tied at 1 -> alphabetical
    assert vocab.itos == ["<pad>", "<unk>", "zeta", "beta", "alpha", "gamma"]
    assert len(vocab) == 6


def test_order_does_not_depend_on_review_order() -> None:
    lists = [["x", "y"], ["y", "z"], ["w"], ["z", "x"]]
    assert Vocabulary.build(lists).itos == Vocabulary.build(list(reversed(lists))).itos


def test_min_freq_drops_rare_tokens() -> None:
    vocab = Vocabulary.build([["a", "b"], ["a", "c"], ["a", "b"]], min_freq=2)
    assert vocab.itos == ["<pad>", "<unk>", "a", "b"]
    assert "c" not in vocab


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_min_freq_must_be_positive_int(bad: object) -> None:
    with pytest.raises(ValueError, match="min_freq must be an integer >= 1"):
        Vocabulary.build([["a"]], min_freq=bad)  # type: ignore[arg-type]


def test_literal_special_tokens_in_text_do_not_get_new_ids() -> None:
    vocab = Vocabulary.build([["<unk>", "<pad>", "a"]])
    assert vocab.itos == ["<pad>", "<unk>", "a"]


def test_encode_and_unknown_words() -> None:
    vocab = _small_vocab()  # a 3, b 2, c 1
    assert vocab.encode(["a", "b", "c", "never-seen"]) == [2, 3, 4, Vocabulary.UNK]


def test_a_hand_made_list_is_checked() -> None:
    with pytest.raises(ValueError, match="must start with '<pad>', '<unk>'"):
        Vocabulary(["<unk>", "<pad>", "a"])
    with pytest.raises(ValueError, match="repeated: \\['a'\\]"):
        Vocabulary(["<pad>", "<unk>", "a", "a"])


def test_encode_batch_pads_truncates_and_keeps_lengths() -> None:
    vocab = Vocabulary.build([["good", "film", "bad", "plot", "."]])
    tokens, lengths = encode_batch(["Good film .", "bad plot , bad film", "good"], vocab, max_len=4)
    assert tokens.dtype == torch.long and lengths.dtype == torch.long
    assert tokens.shape == (3, 4) and lengths.shape == (3,)
    good, film, bad, plot, dot = vocab.encode(["good", "film", "bad", "plot", "."])
    assert tokens.tolist() == [
        [good, film, dot, 0],
        [bad, plot, Vocabulary.UNK, bad],  # "," is unknown; "film" is cut off at max_len
        [good, 0, 0, 0],
    ]
    assert lengths.tolist() == [3, 4, 1]


def test_encode_batch_empty_review_gets_one_unk() -> None:
    vocab = _small_vocab()
    tokens, lengths = encode_batch(["", "<b></b>"], vocab, max_len=3)
    assert tokens.tolist() == [[1, 0, 0], [1, 0, 0]]
    assert lengths.tolist() == [1, 1]


def test_encode_batch_with_no_reviews() -> None:
    tokens, lengths = encode_batch([], _small_vocab(), max_len=5)
    assert tokens.shape == (0, 5) and lengths.shape == (0,)


def test_encode_batch_rejects_bad_arguments() -> None:
    vocab = _small_vocab()
    with pytest.raises(ValueError, match="max_len must be an integer >= 1, got 0"):
        encode_batch(["a"], vocab, max_len=0)
    with pytest.raises(ValueError, match="wrap it"):
        encode_batch("a b", vocab, max_len=3)  # type: ignore[arg-type]
