"""Fetch the rt-polarity files safely when they are missing: the official tarball, checked before anything is kept."""

from __future__ import annotations

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

from rnn_lightning.data.polarity import (
    CHUNK_BYTES,
    EXPECTED_LINES,
    EXPECTED_SHA256,
    OFFICIAL_URL,
    file_sha256,
    how_to_get_files,
    missing_polarity_files,
)
from rnn_lightning.errors import DataError, MissingFileError

__all__ = ["FetchFailedError", "NotTheOriginalError", "ensure_polarity_files"]

log = logging.getLogger(__name__)

# The real tarball is about 0.5 MB; the caps only stop a hostile or broken server from filling the disk.
_MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
_MAX_MEMBER_BYTES = 10 * 1024 * 1024


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
            f"Could not fetch the rt-polarity files: {what} " + how_to_get_files(data_dir, url, download_failed=True)
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
            while chunk := response.read(CHUNK_BYTES):
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
