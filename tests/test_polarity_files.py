"""Tests for reading the rt-polarity files (real files, and broken copies in tmp_path)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rnn_lightning.data.polarity import (
    EXPECTED_LINES,
    NEG_FILE,
    NEG_SHA256,
    POS_FILE,
    POS_SHA256,
    file_sha256,
    missing_polarity_files,
    read_reviews,
)


@pytest.fixture(scope="module")
def reviews(polarity_dir: Path) -> tuple[list[str], list[str]]:
    return read_reviews(polarity_dir)


def _write_pair(folder: Path, pos: bytes, neg: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / POS_FILE).write_bytes(pos)
    (folder / NEG_FILE).write_bytes(neg)
    return folder


GOOD = b"a fine film . \n"


def test_real_files_match_the_known_checksums(polarity_dir: Path) -> None:
    assert file_sha256(polarity_dir / POS_FILE) == POS_SHA256
    assert file_sha256(polarity_dir / NEG_FILE) == NEG_SHA256


def test_exactly_5331_reviews_each(reviews: tuple[list[str], list[str]]) -> None:
    pos, neg = reviews
    assert len(pos) == len(neg) == EXPECTED_LINES == 5331
    assert all(r and r == r.strip() for r in pos + neg)


def test_first_and_last_reviews(reviews: tuple[list[str], list[str]]) -> None:
    pos, neg = reviews
    assert pos[0].startswith('the rock is destined to be the 21st century\'s new " conan "')
    assert neg[0] == "simplistic , silly and tedious ."
    assert neg[-1].startswith("enigma is well-made , but it's just too dry")


def test_cp1252_bytes_are_decoded(reviews: tuple[list[str], list[str]]) -> None:
    pos, neg = reviews
    assert neg[31] == "the action clichés just pile up ."  # byte 0xe9
    assert neg[3520] == "…its solemn pretension prevents us from sharing the awe in which it holds itself ."  # 0x85
    assert pos[272].startswith("münch's genuine insight")
    # Read as latin-1, 0x85 would become the control character U+0085 instead of "…".
    assert not any("\x85" in r for r in pos + neg)
    assert sum(r.count("…") for r in pos + neg) == 33  # every 0x85 byte of both files


def test_html_remnants_are_kept_raw(reviews: tuple[list[str], list[str]]) -> None:
    pos, neg = reviews
    assert neg[4665] == "and people make fun of me for liking showgirls</> ."
    assert "<b>want</b>" in neg[4444]
    assert pos[4282].startswith("imagine o . henry's <b>the gift of the magi</b>")
    assert pos[4702].startswith("<em>ash wednesday</em> is not")


def test_missing_folder_says_how_to_get_the_files(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        read_reviews(missing)
    message = str(info.value)
    assert str(missing) in message
    assert "does not exist" in message
    assert "data.data_dir=" in message and "download" in message


def test_missing_one_file(tmp_path: Path) -> None:
    (tmp_path / POS_FILE).write_bytes(GOOD)
    assert missing_polarity_files(tmp_path) == [NEG_FILE]
    with pytest.raises(FileNotFoundError, match=r"rt-polarity\.neg missing in"):
        read_reviews(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    _write_pair(tmp_path, GOOD, b"")
    with pytest.raises(ValueError, match=r"rt-polarity\.neg is empty or has only blank lines"):
        read_reviews(tmp_path)


def test_blank_lines_only(tmp_path: Path) -> None:
    _write_pair(tmp_path, b"\n  \n\t\n\r\n", GOOD)
    with pytest.raises(ValueError, match=r"rt-polarity\.pos is empty or has only blank lines"):
        read_reviews(tmp_path)


def test_binary_file_with_nul_bytes(tmp_path: Path) -> None:
    _write_pair(tmp_path, GOOD, b"\x1f\x8b\x08\x00\x00\x00binary")
    with pytest.raises(ValueError, match=r"rt-polarity\.neg is not a text file \(it contains NUL bytes\)"):
        read_reviews(tmp_path)


def test_bytes_undefined_in_cp1252(tmp_path: Path) -> None:
    _write_pair(tmp_path, b"ok line\n\x81\x8d\xff\xfe junk\n", GOOD)
    with pytest.raises(ValueError, match=r"rt-polarity\.pos is not cp1252 text \(byte 0x81 at offset 8"):
        read_reviews(tmp_path)


def test_utf8_copy_is_read_as_utf8_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write_pair(tmp_path, "the action clichés .\n".encode(), GOOD)
    with caplog.at_level(logging.WARNING, logger="rnn_lightning.data.polarity"):
        pos, _ = read_reviews(tmp_path)
    assert pos == ["the action clichés ."]  # not the mojibake "clichÃ©s"
    assert "is UTF-8, not the original cp1252" in caplog.text


def test_crlf_and_blank_lines_inside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write_pair(tmp_path, b" one \r\n\r\ntwo\r\n", b"three\n\n\nfour")
    with caplog.at_level(logging.WARNING, logger="rnn_lightning.data.polarity"):
        pos, neg = read_reviews(tmp_path)
    assert pos == ["one", "two"]
    assert neg == ["three", "four"]
    assert "rt-polarity.pos: skipped 1 blank line(s)" in caplog.text
    assert "rt-polarity.neg: skipped 2 blank line(s)" in caplog.text


def test_nel_byte_does_not_split_a_line(tmp_path: Path) -> None:
    # 0x85 is "…" in cp1252; a splitlines()-based reader would break this review in two.
    _write_pair(tmp_path, b"wait\x85 for it .\n", GOOD)
    pos, _ = read_reviews(tmp_path)
    assert pos == ["wait… for it ."]


@pytest.mark.parametrize(
    ("body", "review"),
    [
        (b"the action clich\xe9s .\n", "the action clichés ."),
        ("the action clichés .\n".encode(), "the action clichés ."),
        (b"a plain ascii review .\n", "a plain ascii review ."),
    ],
    ids=["cp1252", "utf-8", "ascii"],
)
def test_a_byte_order_mark_in_front_is_dropped_whatever_the_encoding(tmp_path: Path, body: bytes, review: str) -> None:
    # A Windows editor saves the original cp1252 bytes with a UTF-8 BOM in front: no "ï»¿" in the first review.
    _write_pair(tmp_path, b"\xef\xbb\xbf" + body, GOOD)
    pos, _ = read_reviews(tmp_path)
    assert pos == [review]
