"""Keep freed memory in the process, so that each training step reuses it instead of faulting in fresh pages.

glibc hands a freed block of more than its mmap threshold (128 kB to start with) back to the kernel, and trims
the heap top beyond its trim threshold; the next step's allocation of the same size then comes back as fresh
pages, and every page costs a minor fault. A sentiment epoch faulted 0.7 GB that way in a plain PyTorch loop and
1-1.5 GB through the Trainer (which keeps a step's tensors a little longer), ~0.3 ms per MB here: 5-10 % of the
epoch, and most of the Trainer's overhead over the plain loop. Raising both thresholds keeps the memory in the
heap for reuse; the process then holds on to its peak, which a training process reaches every step anyway.

It is not a free win everywhere: the sine LBFGS runs (float64, 999 steps, buffers of tens of MB) became 10-40 %
slower with it, so each task config says whether to use it (``keep_freed_memory``; sentiment yes, sine no). The
setting holds for the rest of the process, so in a multirun whose jobs share a process it stays on once set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# The largest mmap threshold glibc accepts on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX): blocks above 32 MB still map.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where there is no glibc (macOS, Windows,
    musl), which changes nothing."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
