"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from extras import EXTRAS, install_hint, is_installed

# Without a GPU, impl=triton's kernels run through Triton's interpreter; triton reads this when the kernels are
# defined, so it is set here, before any test module imports them.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
POLARITY_FILES = ("rt-polarity.pos", "rt-polarity.neg")


def pytest_configure(config: pytest.Config) -> None:
    for extra in EXTRAS:
        config.addinivalue_line("markers", f"{extra}: {install_hint(extra)}; skipped without it (tests/extras.py)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked with an extra's name skips, naming the install command, where that extra is missing."""
    for extra in EXTRAS:
        if item.get_closest_marker(extra) is not None and not is_installed(extra):
            pytest.skip(install_hint(extra))


@pytest.fixture(scope="session")
def polarity_dir() -> Path:
    """Folder with the real rt-polarity.pos/.neg (read-only; copy before changing anything).

    ``RNN_LIGHTNING_DATA_DIR`` wins when set, and then the files must be there: a CI job that sets
    it wants these tests to run, so a missing file fails instead of quietly skipping. Otherwise the
    project's own data folder is used (where the first sentiment run downloads the files), and the tests are
    skipped when it is empty.
    """
    configured = os.environ.get("RNN_LIGHTNING_DATA_DIR")
    if configured:
        folder = Path(configured).expanduser().resolve()
        missing = [name for name in POLARITY_FILES if not (folder / name).is_file()]
        if missing:
            pytest.fail(
                f"RNN_LIGHTNING_DATA_DIR={configured} but {', '.join(missing)} not found in {folder}; "
                "point it at the folder holding both rt-polarity files, or unset it."
            )
        return folder
    downloaded = REPO_ROOT / "data" / "rt-polarity"
    if all((downloaded / name).is_file() for name in POLARITY_FILES):
        return downloaded
    pytest.skip(
        f"rt-polarity files not found in {downloaded}: run `python train.py` once (it downloads them), or set "
        "RNN_LIGHTNING_DATA_DIR to a folder that has them."
    )
