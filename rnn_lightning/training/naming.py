"""What a job is called: its overrides, the settings its sweep varies, and its TensorBoard run's name (Hydra's record
of the command line, read here and nowhere else).

A sweep job is named by its swept overrides alone (``batch=200,optim=adam``): what every job of the sweep shares
(``epochs=3``) would only lengthen each name until TensorBoard cuts it. A single run is named by all its overrides.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import OmegaConf

# Where a run reads or writes, not what it is: never a parameter.
NOT_PARAMETERS = ("ckpt_path", "paths", "data.data_dir", "hydra")
# A decimal with more than 4 digits after the point, as a whole override value in Hydra's override_dirname.
LONG_DECIMAL = re.compile(r"(?<==)-?\d+\.\d{5,}(?:e[-+]?\d+)?(?=,|$)")
FILE_NAME_BYTES = 255  # the limit of one path component on Linux and macOS file systems


def job_overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def override_keys(overrides: list[str]) -> list[str]:
    """The keys or groups the overrides set (``model.hidden_size``, ``optim``), in their order."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    keys = [override.key_or_group for override in parsed]
    return [key for key in keys if not any(key == skip or key.startswith(skip + ".") for skip in NOT_PARAMETERS)]


def run_name() -> str:
    """The job's swept overrides in a sweep, else all its overrides, as Hydra's override_dirname spells them."""
    if not HydraConfig.initialized():
        return "default"
    hydra = HydraConfig.get()
    if hydra.mode == RunMode.MULTIRUN:
        swept = set(swept_keys())
        parsed = OverridesParser.create().parse_overrides(job_overrides())
        lines = sorted(override.input_line for override in parsed if override.key_or_group in swept)
        naming = hydra.job.config.override_dirname
        name = naming.item_sep.join(line.replace("=", naming.kv_sep, 1) for line in lines)
    else:
        name = hydra.job.override_dirname
    # A "/" in an override value (a path) would nest folders; keep the run one folder deep.
    name = (name or "default").replace("/", "_")
    # An optimizing sweeper passes its draws with every digit (optim.lr=0.0003574712922600243); four tell the trials
    # apart in TensorBoard and keep the name short. metrics.json and .hydra/ keep the exact values.
    name = LONG_DECIMAL.sub(lambda number: f"{float(number.group()):.4g}", name)
    return fit_file_name(name)


def swept_keys() -> list[str]:
    """The keys this job's sweep varies (``run_params`` spelling), in the order of the job's overrides; [] outside
    a sweep.

    Read from Hydra's record of the sweep command (``multirun.yaml``, which its basic sweeper writes into the sweep
    folder before any job starts) and from the sweeper's ``params`` (a search space set in a config). A sweeper that
    keeps no record (Optuna's) leaves only the job's overrides to go by: then every one of them counts as swept.
    """
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return []
    hydra = HydraConfig.get()
    parser = OverridesParser.create()
    searched = parser.parse_overrides([f"{key}={value}" for key, value in (hydra.sweeper.get("params") or {}).items()])
    record = Path(hydra.sweep.dir) / "multirun.yaml"
    if record.exists():
        command = parser.parse_overrides(list(OmegaConf.load(record).hydra.overrides.task))
        swept = [override for override in [*command, *searched] if override.is_sweep_override()]
    else:
        swept = [*parser.parse_overrides(job_overrides()), *searched]
    varied = set(override_keys([override.input_line for override in swept]))
    return [key for key in dict.fromkeys([*override_keys(job_overrides()), *sorted(varied)]) if key in varied]


def fit_file_name(name: str) -> str:
    """``name`` cut to the 255 bytes a file system allows in one folder name, with a hash of the whole to keep it
    unique: a search over many knobs still makes a name longer than that."""
    encoded = name.encode()
    if len(encoded) <= FILE_NAME_BYTES:
        return name
    digest = hashlib.sha1(encoded).hexdigest()[:8]
    return encoded[: FILE_NAME_BYTES - len(digest) - 1].decode(errors="ignore") + "_" + digest
