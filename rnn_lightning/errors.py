"""The mistakes a user can fix, as types: whatever raises one, ``train.py`` and the commands show its message alone.

A user error is decided by its class, never by where it was raised. Each layer raises the subclass that fits
(a bad setting, a missing or damaged file); the message names the value or file and says what to do.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (a setting, a file, a combination); the message says how."""


class ConfigError(UserError, ValueError):
    """A setting or a combination of settings that cannot work; found before training starts."""


class DataError(UserError, ValueError):
    """Data files that are there but cannot be used as they are (damaged, cut short, not the published ones)."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the run needs is not where the settings say."""


class TrainingStopped(UserError):
    """Training met a fault it cannot go past (a NaN or diverged loss, a full or unwritable disk); the message says
    what happened, what was kept and what to change."""


class WriteFailedError(TrainingStopped, OSError):
    """A file could not be written (a full disk, no permission); ``errno`` is the system's."""


def first_line(error: BaseException) -> str:
    """``Type: the first line of the message``: how a record or a one-line report names an error."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")
