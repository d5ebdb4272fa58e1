"""The README's `make install` then `make test` pass without any extra: every test that needs one skips without it.

Read from the test files' source, so that a new test importing Triton without the mark fails here, on every
machine, and not only on a fresh clone without Triton.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# What in a test's source means it needs the extra: imports of it, or config options that load its plugin.
NEEDS = {
    "triton": ("import triton", "nn.triton", "nn import triton"),
    "optuna": ("hydra_optuna_sweeper", "hydra/sweeper=tune", "experiment=tune_sentiment"),
    "slurm": ("hydra_submitit_launcher", "hydra/launcher=slurm"),
    "parallel": ("hydra_joblib_launcher", "hydra/launcher=parallel"),
}


def guarded(extra: str, node: ast.AST, source: str) -> bool:
    """Marked with the extra, or calling require_extra for it, in the node's own source or its decorators."""
    text = ast.get_source_segment(source, node) or ""
    decorators = " ".join(ast.get_source_segment(source, d) or "" for d in getattr(node, "decorator_list", []))
    return f'require_extra("{extra}")' in text or f"pytest.mark.{extra}" in decorators + text


def unguarded_tests(folder: Path = TESTS) -> list[str]:
    found = []
    for path in sorted(folder.glob("test_*.py")):
        source = path.read_text(encoding="utf-8")
        module = ast.parse(source)
        top_level = [node for node in module.body if not isinstance(node, ast.FunctionDef | ast.ClassDef)]
        for extra, needles in NEEDS.items():
            if any(guarded(extra, node, source) for node in top_level):
                continue  # the whole module skips (require_extra at import, or pytestmark)
            for node in ast.walk(module):
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                    text = ast.get_source_segment(source, node) or ""
                    if any(needle in text for needle in needles) and not guarded(extra, node, source):
                        found.append(f"{path.name}::{node.name} needs {extra}")
    return found


def test_every_test_that_needs_an_extra_skips_without_it():
    assert unguarded_tests() == [], "mark them @pytest.mark.<extra> or call extras.require_extra('<extra>')"


def test_the_guard_sees_an_unmarked_triton_test(tmp_path):
    (tmp_path / "test_new.py").write_text("def test_kernel():\n    from rnn_lightning.nn.triton import launch\n")
    (tmp_path / "test_marked.py").write_text(
        "import pytest\n\n\n@pytest.mark.triton\ndef test_kernel():\n    from rnn_lightning.nn.triton import launch\n"
    )
    assert unguarded_tests(tmp_path) == ["test_new.py::test_kernel needs triton"]
