"""Turn raw review strings into padded id tensors for a recurrent network."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rnn_lightning.data.tokenizer import tokenize
from rnn_lightning.data.vocab import Vocabulary

__all__ = ["encode_batch"]


def encode_batch(texts: Sequence[str], vocab: Vocabulary, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize, map to ids, cut to ``max_len`` and right-pad with ``Vocabulary.PAD``.

    Truncation keeps the beginning of a review. A review with no tokens at all (only whitespace or
    HTML tags) becomes a single ``<unk>``: every length must be >= 1 because
    ``pack_padded_sequence`` rejects zero lengths, a "last hidden state" at index ``length - 1``
    would not exist, and mean pooling would divide by zero.

    Args:
        texts: B raw reviews.
        vocab: the vocabulary built on the training reviews.
        max_len: T, the fixed width of the output.

    Returns:
        ``tokens`` LongTensor (B, T) and ``lengths`` LongTensor (B,) with 1 <= length <= T.

    Raises:
        ValueError: when ``max_len`` < 1 or ``texts`` is a single string instead of a list.
    """
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be an integer >= 1, got {max_len!r}.")
    if isinstance(texts, str):
        # Iterating a str would silently encode each character as its own review.
        raise ValueError("encode_batch needs a list of reviews, got one str; wrap it: encode_batch([text], ...).")
    tokens = torch.full((len(texts), max_len), Vocabulary.PAD, dtype=torch.long)  # (B, T)
    lengths = torch.empty(len(texts), dtype=torch.long)  # (B,)
    for row, text in enumerate(texts):
        ids = vocab.encode(tokenize(text))[:max_len] or [Vocabulary.UNK]
        tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        lengths[row] = len(ids)
    return tokens, lengths
