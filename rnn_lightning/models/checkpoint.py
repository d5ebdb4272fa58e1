"""Reading a checkpoint written by train.py: the one reader that resuming, predict and ensemble share.

A checkpoint is data: it is loaded with ``weights_only=True``, as Lightning loads it, so loading runs no code. A file
that is missing, damaged or not ours is a :class:`~rnn_lightning.errors.ConfigError` naming the setting it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnn_lightning.errors import ConfigError, first_line


@dataclass
class Checkpoint:
    path: Path
    task: str
    hparams: dict[str, Any]
    contents: dict[str, Any]

    @property
    def vocabulary(self) -> list[str] | None:
        return self.contents.get("vocabulary")


def read_checkpoint(path: str | Path, key: str = "ckpt_path") -> Checkpoint:
    """A checkpoint written by train.py, or a ConfigError that says what is wrong with the file (``key`` names the
    setting or argument it came from, for the message)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"{key}={path} is a folder, not a checkpoint file. {_checkpoints_in(path)}")
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise ConfigError(
            f"{key}={path} does not exist{where}. Give the path of a checkpoint file, such as "
            "outputs/<date>/<time>/checkpoints/last.ckpt."
        )
    try:
        # weights_only, as Lightning loads it: a checkpoint is data, and loading must not run code.
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigError(
            f"{key}={path} cannot be read as a checkpoint ({first_line(error)}): the file is damaged or not a "
            f"checkpoint.{_intact_sibling_hint(path)}"
        ) from None
    task = contents.get("task") if isinstance(contents, dict) else None
    hparams = contents.get("hyper_parameters") if isinstance(contents, dict) else None
    if not isinstance(task, str) or not isinstance(hparams, dict) or "state_dict" not in contents:
        raise ConfigError(
            f"{key}={path} is not a checkpoint written by train.py (it names no task). Give a .ckpt file from an "
            "outputs/.../checkpoints/ folder."
        )
    return Checkpoint(path, task, hparams, contents)


def _checkpoints_in(folder: Path) -> str:
    """What to give instead of a run folder: the checkpoint files in it, or an example where it has none."""
    found = sorted({*folder.glob("*.ckpt"), *folder.glob("checkpoints/*.ckpt")})
    if not found:
        return "It holds no .ckpt file; give the path of one, such as outputs/<date>/<time>/checkpoints/last.ckpt."
    return (
        f"Give one of its checkpoints: {', '.join(map(str, found))} (last.ckpt: where the run stopped; best-*.ckpt: "
        "its best validation score)."
    )


def _intact_sibling_hint(path: Path) -> str:
    """Name the intact checkpoints of the same run, which a damaged one usually has beside it (each is read whole:
    a truncated file is only found out by reading it)."""
    others, intact = sorted(p for p in path.parent.glob("*.ckpt") if p != path), []
    for other in others:
        try:
            torch.load(other, map_location="cpu", weights_only=True)
        except Exception:
            continue
        intact.append(str(other))
    if intact:
        return f" Intact checkpoint{'s' if len(intact) > 1 else ''} of that run: {', '.join(intact)}."
    return f" The other checkpoints beside it are damaged too ({', '.join(p.name for p in others)})." if others else ""
