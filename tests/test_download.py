"""Tests for ensure_polarity_files against tarballs served from 127.0.0.1."""

from __future__ import annotations

import functools
import io
import logging
import socket
import tarfile
import threading
import urllib.request
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rnn_lightning.data.download import FetchFailedError, NotTheOriginalError, ensure_polarity_files
from rnn_lightning.data.polarity import NEG_FILE, POS_FILE, file_sha256
from rnn_lightning.data.sentiment import SentimentDataModule

TIMEOUT = 5.0


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base-class signature
        """Keep the test output clean."""


def _tar_gz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A .tar.gz holding regular files ``members`` and symbolic ``links`` (name -> target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def real_bytes(polarity_dir: Path) -> dict[str, bytes]:
    return {
        POS_FILE: (polarity_dir / POS_FILE).read_bytes(),
        NEG_FILE: (polarity_dir / NEG_FILE).read_bytes(),
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, real_bytes: dict[str, bytes]) -> Iterator[str]:
    """Serve a folder of test tarballs; yields the base URL."""
    root = tmp_path_factory.mktemp("served")
    pos, neg = real_bytes[POS_FILE], real_bytes[NEG_FILE]
    good = _tar_gz(
        {
            "rt-polaritydata.README.1.0.txt": b"readme\n",
            f"rt-polaritydata/{POS_FILE}": pos,
            f"rt-polaritydata/{NEG_FILE}": neg,
        }
    )
    (root / "good.tar.gz").write_bytes(good)
    # Flip bytes in the middle of the compressed stream.
    middle = len(good) // 2
    (root / "corrupted.tar.gz").write_bytes(good[:middle] + bytes(b ^ 0xFF for b in good[middle : middle + 64]))
    # Same line count, one letter changed: only the checksum can tell.
    (root / "modified.tar.gz").write_bytes(
        _tar_gz({f"d/{POS_FILE}": pos.replace(b"conan", b"cohan", 1), f"d/{NEG_FILE}": neg})
    )
    (root / "short.tar.gz").write_bytes(_tar_gz({f"d/{POS_FILE}": b"one review\n", f"d/{NEG_FILE}": neg}))
    (root / "evil.tar.gz").write_bytes(_tar_gz({"../evil": b"owned\n", f"d/{POS_FILE}": pos, f"d/{NEG_FILE}": neg}))
    (root / "link.tar.gz").write_bytes(_tar_gz({f"d/{NEG_FILE}": neg}, links={f"d/{POS_FILE}": "/etc/passwd"}))
    (root / "no_neg.tar.gz").write_bytes(_tar_gz({f"d/{POS_FILE}": pos}))

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture()
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/rt-polaritydata.tar.gz"


def _leftovers(folder: Path) -> list[str]:
    """Everything in ``folder`` (scratch folders start with a dot, so list those too)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_installs_both_files(server: str, tmp_path: Path) -> None:
    target = tmp_path / "data" / "rt-polarity"
    result = ensure_polarity_files(target, url=f"{server}/good.tar.gz", timeout=TIMEOUT)
    assert result == target
    assert _leftovers(target) == [NEG_FILE, POS_FILE]  # no README, no scratch folder
    assert file_sha256(target / POS_FILE) == "d79ef14009bbf87cd6be21f91c3ea1a3cbcb73b34dfb4231aef7bbcd7677abc4"
    assert file_sha256(target / NEG_FILE) == "4af43bf489620b498a0852c5a8c6a535155dec7985fdfea782b8f7756b957ccc"


@pytest.mark.parametrize(
    ("tarball", "fragment"),
    [
        ("corrupted.tar.gz", "the downloaded archive is corrupted or not a tar.gz"),
        ("modified.tar.gz", "checksum mismatch for rt-polarity.pos"),
        ("short.tar.gz", "rt-polarity.pos in the archive has 1 lines, expected 5331"),
        ("evil.tar.gz", "unsafe member path '../evil'"),
        ("link.tar.gz", "is a link or special file"),
        ("no_neg.tar.gz", "no <folder>/rt-polarity.neg member"),
        ("absent.tar.gz", "the server answered HTTP 404"),
    ],
)
def test_bad_downloads_fail_cleanly(server: str, tmp_path: Path, tarball: str, fragment: str) -> None:
    target = tmp_path / "rt-polarity"
    with pytest.raises(FetchFailedError) as info:
        ensure_polarity_files(target, url=f"{server}/{tarball}", timeout=TIMEOUT)
    message = str(info.value)
    assert fragment in message
    assert f"put both in {target.resolve()}" in message  # says where to put the files by hand
    assert not target.exists()  # the folder it created is gone again, with nothing partial in it
    assert _leftovers(tmp_path) == []  # and nothing escaped next to it (../evil)


def test_failure_keeps_an_existing_folder_and_its_other_files(server: str, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FetchFailedError, match="checksum mismatch"):
        ensure_polarity_files(tmp_path, url=f"{server}/modified.tar.gz", timeout=TIMEOUT)
    assert _leftovers(tmp_path) == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_no_network(closed_port_url: str, tmp_path: Path) -> None:
    target = tmp_path / "rt-polarity"
    with pytest.raises(FetchFailedError) as info:
        ensure_polarity_files(target, url=closed_port_url, timeout=TIMEOUT)
    assert "could not connect to" in str(info.value)
    assert "is the network reachable?" in str(info.value)
    assert "download http://127.0.0.1" in str(info.value)  # the by-hand instructions name the URL
    assert str(info.value).endswith("or retry where the network can reach the URL.")
    assert not target.exists()


def _forbid_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("ensure_polarity_files tried to download although the files are present")

    monkeypatch.setattr(urllib.request, "urlopen", fail)


def test_files_present_means_no_download(
    real_bytes: dict[str, bytes], tmp_path: Path, closed_port_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, payload in real_bytes.items():
        (tmp_path / name).write_bytes(payload)
    _forbid_network(monkeypatch)
    assert ensure_polarity_files(tmp_path, url=closed_port_url) == tmp_path
    assert _leftovers(tmp_path) == [NEG_FILE, POS_FILE]


def test_present_copy_with_other_bytes(
    real_bytes: dict[str, bytes], tmp_path: Path, closed_port_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    edited = real_bytes[NEG_FILE] + b"an extra review .\n"
    (tmp_path / POS_FILE).write_bytes(real_bytes[POS_FILE])
    (tmp_path / NEG_FILE).write_bytes(edited)
    _forbid_network(monkeypatch)
    with pytest.raises(NotTheOriginalError, match=r"rt-polarity\.neg is not the original .* left untouched"):
        ensure_polarity_files(tmp_path, url=closed_port_url)
    assert (tmp_path / NEG_FILE).read_bytes() == edited
    # verify=False accepts the copy as it is, still without downloading.
    assert ensure_polarity_files(tmp_path, url=closed_port_url, verify=False) == tmp_path
    assert (tmp_path / NEG_FILE).read_bytes() == edited


def test_only_the_missing_file_is_installed(server: str, real_bytes: dict[str, bytes], tmp_path: Path) -> None:
    (tmp_path / POS_FILE).write_bytes(real_bytes[POS_FILE])
    before = (tmp_path / POS_FILE).stat()
    ensure_polarity_files(tmp_path, url=f"{server}/good.tar.gz", timeout=TIMEOUT)
    after = (tmp_path / POS_FILE).stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)  # not replaced
    assert (tmp_path / NEG_FILE).read_bytes() == real_bytes[NEG_FILE]
    assert _leftovers(tmp_path) == [NEG_FILE, POS_FILE]


def test_datamodule_prepare_data_downloads(server: str, tmp_path: Path) -> None:
    dm = SentimentDataModule(data_dir=str(tmp_path / "rt"), url=f"{server}/good.tar.gz")
    dm.prepare_data()
    assert _leftovers(tmp_path / "rt") == [NEG_FILE, POS_FILE]


def test_datamodule_accepts_a_user_copy_with_a_warning(
    real_bytes: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / POS_FILE).write_bytes(real_bytes[POS_FILE].replace(b"conan", b"cohan", 1))
    (tmp_path / NEG_FILE).write_bytes(real_bytes[NEG_FILE])
    _forbid_network(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="rnn_lightning.data.sentiment"):
        SentimentDataModule(data_dir=str(tmp_path)).prepare_data()
    assert "rt-polarity.pos differs from the original release" in caplog.text
    assert "rt-polarity.neg" not in caplog.text
