"""Read the Pang & Lee rt-polarity files, and fetch them safely when they are missing.

The files are Windows-1252 text, one review per line, 5331 lines each (see the data README).
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import logging
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

from rnn_lightning.errors import DataError, MissingFileError

__all__ = [
    "EXPECTED_LINES",
    "EXPECTED_SHA256",
    "FetchFailedError",
    "NEG_FILE",
    "NEG_SHA256",
    "NotTheOriginalError",
    "OFFICIAL_URL",
    "POS_FILE",
    "POS_SHA256",
    "ensure_polarity_files",
    "file_sha256",
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

# The real tarball is about 0.5 MB; the caps only stop a hostile or broken server from filling the disk.
_MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
_MAX_MEMBER_BYTES = 10 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024


def _how_to_get_files(data_dir: Path, url: str = OFFICIAL_URL, download_failed: bool = False) -> str:
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
        for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
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
            f"The rt-polarity data folder {data_dir.resolve()} does not exist. " + _how_to_get_files(data_dir)
        )
    missing = missing_polarity_files(data_dir)
    if missing:
        raise MissingFileError(f"{', '.join(missing)} missing in {data_dir.resolve()}. " + _how_to_get_files(data_dir))
    return _read_review_file(data_dir / POS_FILE), _read_review_file(data_dir / NEG_FILE)


def ensure_polarity_files(
    data_dir: str | os.PathLike[str],
    url: str = OFFICIAL_URL,
    timeout: float = 30.0,
    verify: bool = True,
) -> Path:
    """Make sure ``data_dir`` holds both review files, downloading the tarball if one is missing.

    Files already present are never changed or deleted. With ``verify`` they must match the known
    sha256, else this raises instead of silently training on another copy. Downloaded files are
    always checked (5331 lines each and the known sha256) before being moved into place, each with
    an atomic rename, so a failure leaves no partial file.

    Returns:
        ``data_dir`` as a ``Path``.

    Raises:
        FetchFailedError: download failed (no network, HTTP error, timeout), the archive is corrupted or
            unsafe, or a file's checksum or line count is wrong. The message says where to put the
            files by hand.
        NotTheOriginalError: a file already in ``data_dir`` differs from the published one.
    """
    data_dir = Path(data_dir).expanduser()
    if verify:
        _verify_present_files(data_dir)
    missing = missing_polarity_files(data_dir)
    if not missing:
        return data_dir

    created_dir = not data_dir.exists()
    log.info("Downloading %s to fetch %s into %s", url, ", ".join(missing), data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        # The scratch folder is inside data_dir so the final os.replace is a same-filesystem rename,
        # and TemporaryDirectory removes the archive and any half-written file on every exit path.
        with tempfile.TemporaryDirectory(dir=data_dir, prefix=".rt-polarity-download-") as scratch:
            archive = Path(scratch) / "rt-polaritydata.tar.gz"
            _download(url, archive, timeout)
            contents = _extract_review_files(archive)
            for name, payload in contents.items():
                _check_payload(name, payload)
            # Both files are checked before either is moved, so a bad archive installs nothing.
            for name in missing:
                staged = Path(scratch) / name
                with open(staged, "wb") as f:
                    f.write(contents[name])
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(staged, data_dir / name)
    except (_FetchError, OSError) as err:
        if created_dir:
            _remove_if_empty(data_dir)
        what = str(err) if isinstance(err, _FetchError) else f"writing into {data_dir.resolve()} failed ({err})."
        raise FetchFailedError(
            f"Could not fetch the rt-polarity files: {what} " + _how_to_get_files(data_dir, url, download_failed=True)
        ) from err
    log.info("rt-polarity files are in %s", data_dir)
    return data_dir


def _remove_if_empty(folder: Path) -> None:
    """Remove a folder this module created, but only when nothing is in it."""
    with contextlib.suppress(OSError):
        folder.rmdir()  # refuses a non-empty folder, so nothing of anyone else's can go


class _FetchError(Exception):
    """Internal: one step of the download failed; the message says which and why."""


class FetchFailedError(MissingFileError):
    """The review files are missing and could not be downloaded; the message says where to put them by hand."""


class NotTheOriginalError(DataError):
    """A review file on disk differs from the published one."""


def _verify_present_files(data_dir: Path) -> None:
    """Raise when a review file already in ``data_dir`` differs from the known release."""
    for name, expected in EXPECTED_SHA256.items():
        path = data_dir / name
        if path.is_file() and (actual := file_sha256(path)) != expected:
            raise NotTheOriginalError(
                f"{path.resolve()} is not the original {name}: sha256 {actual} != expected {expected}. "
                "It was left untouched. Replace it with the original file from "
                f"{OFFICIAL_URL}, or pass verify=False to use this copy as it is."
            )


def _download(url: str, target: Path, timeout: float) -> None:
    """Stream ``url`` into ``target`` with a size cap."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
            size = 0
            while chunk := response.read(_CHUNK_BYTES):
                size += len(chunk)
                if size > _MAX_DOWNLOAD_BYTES:
                    raise _FetchError(f"{url} sent more than {_MAX_DOWNLOAD_BYTES} bytes; this is not the tarball.")
                out.write(chunk)
    except urllib.error.HTTPError as err:
        raise _FetchError(f"the server answered HTTP {err.code} ({err.reason}) for {url}.") from err
    except urllib.error.URLError as err:
        raise _FetchError(f"could not connect to {url} ({err.reason}); is the network reachable?") from err
    except (TimeoutError, OSError) as err:
        raise _FetchError(f"the download of {url} failed ({err}).") from err


def _expected_member_name(member: tarfile.TarInfo) -> str | None:
    """Return the review file name when ``member`` is ``<folder>/rt-polarity.pos|neg``, else None.

    Raises:
        _FetchError: for an absolute path or a ``..`` component anywhere in the archive, since
            such an archive was tampered with even if we would never write that member.
    """
    path = PurePosixPath(member.name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or member.name.startswith(("/", "\\")):
        raise _FetchError(f"the archive has an unsafe member path {member.name!r}; refusing to use it.")
    parts = [p for p in path.parts if p != "."]
    if len(parts) == 2 and parts[1] in EXPECTED_SHA256:
        return parts[1]
    return None


def _extract_review_files(archive: Path) -> dict[str, bytes]:
    """Read the two review files out of the tarball into memory; nothing is written from the archive.

    Raises:
        _FetchError: corrupted archive, unsafe member, link instead of a file, duplicate or missing member.
    """
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = _expected_member_name(member)
                if name is None:
                    continue
                if not member.isfile():
                    raise _FetchError(f"archive member {member.name!r} is a link or special file.")
                if name in found:
                    raise _FetchError(f"the archive has {name} twice.")
                if member.size > _MAX_MEMBER_BYTES:
                    raise _FetchError(f"archive member {member.name!r} is {member.size} bytes, far too big.")
                stream = tar.extractfile(member)
                if stream is None:
                    raise _FetchError(f"archive member {member.name!r} cannot be read.")
                found[name] = stream.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise _FetchError(f"the downloaded archive is corrupted or not a tar.gz ({err}).") from err
    absent = [name for name in EXPECTED_SHA256 if name not in found]
    if absent:
        raise _FetchError(f"the archive has no <folder>/{' or <folder>/'.join(absent)} member.")
    return found


def _check_payload(name: str, payload: bytes) -> None:
    """Check the line count and sha256 of one extracted file."""
    lines = payload.count(b"\n")
    if lines != EXPECTED_LINES:
        raise _FetchError(f"{name} in the archive has {lines} lines, expected {EXPECTED_LINES}.")
    actual = hashlib.sha256(payload).hexdigest()
    if actual != EXPECTED_SHA256[name]:
        raise _FetchError(
            f"checksum mismatch for {name}: sha256 {actual} != expected {EXPECTED_SHA256[name]}; "
            "the download is corrupted or not the original release."
        )
