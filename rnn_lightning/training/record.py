"""``metrics.json``: what a job did, written when it starts and rewritten when it ends.

A job that crashes hard leaves ``status: running`` behind, which tells a report that it never finished.
Writes go to a temporary file first and are renamed into place, so the file is never half-written.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


class RunRecord:
    def __init__(self, path: Path, **fields: Any) -> None:
        self.path = Path(path)
        self.started = time.monotonic()
        self.fields: dict[str, Any] = {
            "status": "running",
            "error": None,
            "best_val": None,
            "test": {},
            "epochs": 0,
            "wall_seconds": 0.0,
            **fields,
        }
        self.write()

    def update(self, **fields: Any) -> None:
        self.fields.update(fields)
        self.write()

    def finish(self, status: str, error: BaseException | None = None, **fields: Any) -> None:
        wall = round(time.monotonic() - self.started, 2)
        self.update(status=status, error=None if error is None else first_line(error), wall_seconds=wall, **fields)

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(self.fields, indent=2, default=_plain) + "\n")
        os.replace(temporary, self.path)


def _plain(value: Any) -> Any:
    """Tensors and numpy scalars become plain numbers."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


class NoRecord:
    """What DDP ranks other than 0 keep instead of a RunRecord: they must not write rank 0's metrics.json."""

    def update(self, **fields: Any) -> None:
        pass

    def finish(self, status: str, error: BaseException | None = None, **fields: Any) -> None:
        pass


def keep_earlier_record(path: Path) -> Path | None:
    """Rename a metrics.json left by an earlier run in this folder (a resumed or a failed one) instead of losing it."""
    if not path.exists():
        return None
    number = 1
    while (kept := path.with_name(f"metrics.earlier-{number}.json")).exists():
        number += 1
    path.rename(kept)
    return kept
