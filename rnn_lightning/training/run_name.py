"""The name of a job's TensorBoard run: its overrides, short enough for a file name."""

from __future__ import annotations

import hashlib
import re

from hydra.core.hydra_config import HydraConfig

# A decimal with more than 4 digits after the point, as a whole override value in Hydra's override_dirname.
LONG_DECIMAL = re.compile(r"(?<==)-?\d+\.\d{5,}(?:e[-+]?\d+)?(?=,|$)")
FILE_NAME_BYTES = 255  # the limit of one path component on Linux and macOS file systems


def run_name() -> str:
    """The job's overrides (``batch=200,optim=adam``), so TensorBoard names each sweep job by what differs."""
    if not HydraConfig.initialized():
        return "default"
    # A "/" in an override value (a path) would nest folders; keep the run one folder deep.
    name = (HydraConfig.get().job.override_dirname or "default").replace("/", "_")
    # An optimizing sweeper passes its draws with every digit (optim.lr=0.0003574712922600243); four tell the trials
    # apart in TensorBoard and keep the name short. metrics.json and .hydra/ keep the exact values.
    name = LONG_DECIMAL.sub(lambda number: f"{float(number.group()):.4g}", name)
    return fit_file_name(name)


def fit_file_name(name: str) -> str:
    """``name`` cut to the 255 bytes a file system allows in one folder name, with a hash of the whole to keep it
    unique: a search over many knobs still makes a name longer than that."""
    encoded = name.encode()
    if len(encoded) <= FILE_NAME_BYTES:
        return name
    digest = hashlib.sha1(encoded).hexdigest()[:8]
    return encoded[: FILE_NAME_BYTES - len(digest) - 1].decode(errors="ignore") + "_" + digest
