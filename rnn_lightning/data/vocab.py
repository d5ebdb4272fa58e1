"""Token <-> id mapping with fixed padding and unknown-word ids."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = ["Vocabulary"]


class Vocabulary:
    """An ordered list of token types; a token's id is its position in ``itos``.

    Id 0 is ``<pad>`` (so zero-filled tensors are padding) and id 1 is ``<unk>`` (every token not in
    the list). Build it from training reviews only: a word seen only in validation or test reviews
    must become ``<unk>``, or the evaluation would leak into the model's inputs.
    """

    PAD = 0
    UNK = 1
    PAD_TOKEN = "<pad>"
    UNK_TOKEN = "<unk>"

    def __init__(self, itos: Sequence[str]) -> None:
        """Wrap an existing id -> token list (normally use :meth:`build`).

        Raises:
            ValueError: when the two special tokens are not at ids 0 and 1, a token is not a
                non-empty ``str``, or a token occurs twice.
        """
        itos = list(itos)
        if itos[:2] != [self.PAD_TOKEN, self.UNK_TOKEN]:
            raise ValueError(
                f"A vocabulary must start with {self.PAD_TOKEN!r}, {self.UNK_TOKEN!r} at ids 0 and 1; "
                f"got {itos[:2]!r}. Build it with Vocabulary.build(...) instead of by hand."
            )
        for token in itos:
            if not isinstance(token, str) or not token:
                raise ValueError(f"Vocabulary tokens must be non-empty strings; got {token!r}.")
        self.itos: list[str] = itos
        self.stoi: dict[str, int] = {token: i for i, token in enumerate(itos)}
        if len(self.stoi) != len(itos):
            duplicates = sorted(t for t, n in Counter(itos).items() if n > 1)
            raise ValueError(f"Vocabulary tokens must be unique; repeated: {duplicates[:10]!r}.")

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_freq: int = 1) -> Vocabulary:
        """Count tokens and keep those seen at least ``min_freq`` times.

        Order after the two special tokens: by count, most frequent first, ties alphabetically.
        That makes ids independent of the order of the reviews and of Python's hash seed.

        Raises:
            ValueError: when ``min_freq`` < 1.
        """
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be an integer >= 1, got {min_freq!r}.")
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        # Special tokens are added by position; a literal "<unk>" in a review is just unknown.
        for special in (cls.PAD_TOKEN, cls.UNK_TOKEN):
            counts.pop(special, None)
        kept = sorted((t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
        return cls([cls.PAD_TOKEN, cls.UNK_TOKEN, *kept])

    def __len__(self) -> int:
        """Number of ids, the two special tokens included."""
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        """Whether ``token`` has its own id (``<unk>`` itself counts)."""
        return token in self.stoi

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Map tokens to ids; unknown tokens map to ``UNK``."""
        return [self.stoi.get(token, self.UNK) for token in tokens]

    def __eq__(self, other: object) -> bool:
        """Two vocabularies are equal when they map the same tokens to the same ids."""
        return isinstance(other, Vocabulary) and self.itos == other.itos

    __hash__ = None  # type: ignore[assignment]  # mutable-looking container: not hashable

    def __repr__(self) -> str:
        """Short form showing the size and the most frequent types."""
        return f"Vocabulary(size={len(self)}, first={self.itos[2:7]!r})"
