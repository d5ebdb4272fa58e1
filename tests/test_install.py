"""The package as a user installs it (not editable, away from the checkout) trains from any folder: its configs ship
inside it, and the run's outputs go below the folder it was started in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from hydra_compose import QUICK_LBFGS, TINY_SINE

ROOT = Path(__file__).resolve().parents[1]


def test_an_installed_package_trains_from_any_folder(tmp_path):
    source, site, elsewhere = tmp_path / "source", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    # From a copy of what a source archive holds: building in the checkout would leave build/ behind.
    for folder in ("rnn_lightning", "conf"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for file in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / file, source / file)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(source)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    assert (site / "rnn_lightning" / "conf" / "config.yaml").is_file()
    env = {**os.environ, "PYTHONPATH": str(site)}  # before the editable checkout on the path
    where = subprocess.run(
        [sys.executable, "-c", "import rnn_lightning.paths as p; print(p.CONF_DIR)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.strip() == str(site / "rnn_lightning" / "conf")
    trained = subprocess.run(
        [sys.executable, "-m", "rnn_lightning.train", *TINY_SINE, QUICK_LBFGS, "epochs=1", "trainer=cpu"],
        cwd=elsewhere, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    (record,) = elsewhere.glob("outputs/*/*/metrics.json")
    assert json.loads(record.read_text())["status"] == "completed"
    assert (record.parent / "figures" / "forecast.png").is_file()
