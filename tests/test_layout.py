"""Each folder of the package is one layer, and imports only point down: nn <- data <- models <- training <- cli."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rnn_lightning"
LAYERS = ["nn", "data", "models", "training", "cli"]


def imported_layers(path: Path) -> set[str]:
    """The layers of rnn_lightning that a file imports (at any depth: lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "rnn_lightning" and len(parts) > 1 and parts[1] in LAYERS:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_only_the_layers_below_it(layer):
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        upward = imported_layers(path) - allowed
        assert not upward, f"{path.relative_to(PACKAGE)} imports {sorted(upward)}, a layer above {layer}/"


def test_the_modelling_core_imports_no_lightning_or_hydra():
    code = (
        "import sys, rnn_lightning.nn, rnn_lightning.nn.fused, rnn_lightning.nn.testing, rnn_lightning.nn.reference\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', 'hydra', "
        "'omegaconf', 'torchmetrics')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_no_file_in_the_package_is_over_about_300_lines():
    long = {
        str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 320
    }
    assert not long, long


def test_the_wheel_lists_every_package_and_ships_the_configs():
    """pyproject.toml lists the packages by hand (conf/ is mapped into the package): a new folder must be added."""
    import tomllib

    settings = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(("rnn_lightning", *p.parent.relative_to(PACKAGE).parts)) for p in PACKAGE.rglob("__init__.py")}
    conf = PACKAGE.parent / "conf"
    configs = {".".join(("rnn_lightning.conf", *p.relative_to(conf).parts)) for p in conf.rglob("*") if p.is_dir()}
    assert set(settings["packages"]) == folders | configs | {"rnn_lightning.conf"}
    assert settings["package-dir"] == {"rnn_lightning.conf": "conf"}
