"""What a GPU number was measured on: device, driver, CUDA, cuDNN, versions, fp32 precision settings and clocks.

    python -m benchmarks.machine [--out FILE]       # one JSON object

Nothing here raises: a value that cannot be read says why in its place. torch's older TF32 flags
(``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.allow_tf32``) raise once anything has set the newer
``fp32_precision`` settings, so those are read first and the old flags only inside a guard.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

# nvidia-smi's names for what a reader of a timing wants to know: is the card throttled, busy or hot.
SMI_FIELDS = (
    "driver_version",
    "clocks.sm",
    "clocks.max.sm",
    "clocks.mem",
    "clocks.max.mem",
    "power.draw",
    "power.limit",
    "temperature.gpu",
    "pstate",
    "utilization.gpu",
    "memory.used",
    "clocks_event_reasons.active",
)


def read(get: Callable[[], Any]) -> Any:
    """``get()``, or what stopped it, as text."""
    try:
        return get()
    except Exception as error:  # a reading must never stop the check
        return f"unreadable ({type(error).__name__}: {str(error).split(',')[0][:120]})"


def precision_settings() -> dict[str, Any]:
    """torch's fp32 settings that decide whether products may run in TF32: the newer API first, the old flags last."""
    backends = torch.backends
    settings = {
        "cudnn.rnn.fp32_precision": read(lambda: backends.cudnn.rnn.fp32_precision),
        "cuda.matmul.fp32_precision": read(lambda: backends.cuda.matmul.fp32_precision),
        "cudnn.conv.fp32_precision": read(lambda: backends.cudnn.conv.fp32_precision),
        "float32_matmul_precision": read(torch.get_float32_matmul_precision),
    }
    settings["cuda.matmul.allow_tf32"] = read(lambda: backends.cuda.matmul.allow_tf32)
    settings["cudnn.allow_tf32"] = read(lambda: backends.cudnn.allow_tf32)
    return settings


def nvidia_smi(fields: tuple[str, ...] = SMI_FIELDS) -> dict[str, str] | str:
    """One reading per field of the first GPU, or why there is none."""
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi not found"
    try:
        done = subprocess.run(
            ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=15,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"nvidia-smi failed: {error}"
    if done.returncode != 0:  # an old driver refuses a field it does not know: ask again without the newest ones
        if "clocks_event_reasons.active" in fields:
            return nvidia_smi(fields[:-1])
        return f"nvidia-smi failed: {done.stderr.strip()[-200:]}"
    values = [v.strip() for v in done.stdout.strip().splitlines()[0].split(",")]
    return dict(zip(fields, values))


def describe() -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    record: dict[str, Any] = {
        "device": read(torch.cuda.get_device_name) if cuda else "no CUDA device",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "cudnn": read(torch.backends.cudnn.version) if cuda else None,
        "triton": read(lambda: __import__("triton").__version__),
        "precision": precision_settings(),
    }
    if cuda:
        props = read(lambda: torch.cuda.get_device_properties(0))
        if not isinstance(props, str):
            record |= {
                "capability": f"{props.major}.{props.minor}",
                "sms": props.multi_processor_count,
                "memory_gib": round(props.total_memory / 2**30, 1),
            }
        record["nvidia_smi"] = nvidia_smi()
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.machine", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    args = parser.parse_args(argv)
    text = json.dumps(describe(), indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
