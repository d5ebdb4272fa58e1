"""Read the Pang & Lee rt-polarity files (``download.py`` fetches them when they are missing).

The files are Windows-1252 text, one review per line, 5331 lines each (see the data README).
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
from pathlib import Path

from rnn_lightning.errors import DataError, MissingFileError

__all__ = [
    "EXPECTED_LINES",
    "EXPECTED_SHA256",
    "NEG_FILE",
    "NEG_SHA256",
    "OFFICIAL_URL",
    "POS_FILE",
    "POS_SHA256",
    "check_review_counts",
    "file_sha256",
    "how_to_get_files",
    "missing_polarity_files",
    "read_reviews",
]

log = logging.getLogger(__name__)

POS_FILE = "rt-polarity.pos"
NEG_FILE = "rt-polarity.neg"
POS_SHA256 = "d79ef14009bbf87cd6be21f91c3ea1a3cbcb73b34dfb4231aef7bbcd7677abc4"
NEG_SHA256 = "4af43bf489620b498a0852c5a8c6a535155dec7985fdfea782b8f7756b957ccc"
EXPECTED_SHA256 = {POS_FILE: POS_SHA256, NEG_FILE: NEG_SHA256}
EXPECTED_LINES = 5331
OFFICIAL_URL = "http://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz"
CHUNK_BYTES = 64 * 1024


def how_to_get_files(data_dir: Path, url: str = OFFICIAL_URL, download_failed: bool = False) -> str:
    """The instructions every error ends with: where the files must go, and how to get them there."""
    last = (
        "or retry where the network can reach the URL."
        if download_failed
        else "or allow the automatic download (data.download=true) on a machine with network access."
    )
    return (
        f"To fix: download {url} by hand, extract {POS_FILE} and {NEG_FILE} from it and put both in "
        f"{data_dir.resolve()} ; or set data.data_dir=... to a folder that already has them; " + last
    )


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def missing_polarity_files(data_dir: str | os.PathLike[str]) -> list[str]:
    """Names of the two review files that are not regular files in ``data_dir``."""
    data_dir = Path(data_dir)
    return [name for name in (POS_FILE, NEG_FILE) if not (data_dir / name).is_file()]


def _decode(raw: bytes, path: Path) -> str:
    """Bytes of one review file -> text, refusing binary files.

    Raises:
        DataError: for NUL bytes or bytes that are not cp1252 text.
    """
    if b"\x00" in raw:
        raise DataError(
            f"{path} is not a text file (it contains NUL bytes). Replace it with the original "
            f"{path.name} from the rt-polarity tarball."
        )
    # An editor on Windows may put a UTF-8 byte order mark in front of the original cp1252 bytes, whatever
    # their encoding; decoded as cp1252 it would be the three characters "ï»¿" glued to the first review.
    raw = raw.removeprefix(codecs.BOM_UTF8)
    if not raw.isascii():
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            pass  # the expected case: the original files are not valid UTF-8
        else:
            # A re-encoded copy exists in the wild; reading it as cp1252 would turn "é" into "Ã©".
            log.warning("%s is UTF-8, not the original cp1252; decoding it as UTF-8.", path)
            return text
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path} is not cp1252 text (byte {raw[err.start]:#04x} at offset {err.start} is undefined "
            f"in cp1252); it looks binary or corrupted. Replace it with the original {path.name}."
        ) from err


def _read_review_file(path: Path) -> list[str]:
    """One review per line, stripped; whitespace-only lines are skipped.

    Split on "\\n" only: ``str.splitlines`` also breaks on U+0085 and U+2028, which are characters
    inside a review, not line ends (see the data README).

    Raises:
        DataError: for a binary file, or a file with no non-blank line.
    """
    text = _decode(path.read_bytes(), path)
    lines = [line.strip() for line in text.split("\n")]
    reviews = [line for line in lines if line]
    if not reviews:
        raise DataError(
            f"{path} is empty or has only blank lines; expected one review per line "
            f"({EXPECTED_LINES} in the original). Replace it with the original {path.name}."
        )
    # The one empty string after the final "\n" is expected; more means blank lines in the middle.
    blank_inside = len(lines) - len(reviews) - (1 if text.endswith("\n") else 0)
    if blank_inside > 0:
        log.warning("%s: skipped %d blank line(s).", path, blank_inside)
    return reviews


def read_reviews(data_dir: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """Read both files of ``data_dir``.

    Returns:
        ``(positive_reviews, negative_reviews)``, each in file order, each review stripped.

    Raises:
        MissingFileError: when the folder or one of the files is missing.
        DataError: when a file is empty, blank, binary or not cp1252 text.
    """
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise MissingFileError(
            f"The rt-polarity data folder {data_dir.resolve()} does not exist. " + how_to_get_files(data_dir)
        )
    missing = missing_polarity_files(data_dir)
    if missing:
        raise MissingFileError(f"{', '.join(missing)} missing in {data_dir.resolve()}. " + how_to_get_files(data_dir))
    return _read_review_file(data_dir / POS_FILE), _read_review_file(data_dir / NEG_FILE)


def check_review_counts(data_dir: Path, n_pos: int, n_neg: int, expected: int, url: str = OFFICIAL_URL) -> None:
    """Refuse files that do not hold ``expected`` reviews each. A file cut short would otherwise train without a
    word: its class loses test reviews, and the test set is no longer half positive.

    Raises:
        DataError: naming each file with another count, and how to get the original.
    """
    wrong = {name: n for name, n in ((POS_FILE, n_pos), (NEG_FILE, n_neg)) if n != expected}
    if not wrong:
        return
    counts = " and ".join(f"{name} has {n} reviews" for name, n in wrong.items())
    raise DataError(
        f"{counts} in {data_dir}, not {expected} (data.expected_reviews; each published file has "
        f"{EXPECTED_LINES}). A file cut short by an interrupted download or copy, or one with reviews added, would "
        "train and test on unbalanced classes. To fix: delete that file and run again to download the original "
        f"(data.download=true), or copy it from {url}; for reviews of your own, set data.expected_reviews=null."
    )
