"""Tests that need an optional extra skip without it, and the skip says the command that installs it.

``make install`` then ``make test`` (the README's two commands) installs ``.[dev]`` only, so a test that imports
Triton, Optuna's sweeper or the submitit launcher must skip there, not fail. Mark such a test with the extra's name
(``@pytest.mark.triton``; conftest.py skips it when the extra is missing), or call :func:`require_extra` where the
import happens at module level. CI installs the Triton extra in a second step and runs ``pytest -m triton``.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

# extra (as in pyproject.toml's optional-dependencies and `make install-<extra>`) -> the module it brings
EXTRAS = {
    "triton": "triton",
    "optuna": "hydra_plugins.hydra_optuna_sweeper",
    "slurm": "hydra_plugins.hydra_submitit_launcher",
    "parallel": "hydra_plugins.hydra_joblib_launcher",
}


def install_hint(extra: str) -> str:
    return f"needs the {extra} extra: make install-{extra} (or pip install -e '.[{extra}]')"


def is_installed(extra: str) -> bool:
    try:
        return importlib.util.find_spec(EXTRAS[extra]) is not None
    except ModuleNotFoundError:  # a parent package (hydra_plugins) is missing
        return False


def require_extra(extra: str) -> ModuleType:
    """The extra's module, or a skip of the calling test (or test module) that names the install command."""
    if not is_installed(extra):
        pytest.skip(install_hint(extra), allow_module_level=True)
    return importlib.import_module(EXTRAS[extra])
