"""Keep freed heap memory in the process (glibc), so big torch tensors reuse warm pages.

On CPU, glibc returns every large block (> the mmap threshold) to the kernel when torch
frees it, and trims the heap top as soon as it is free; the next evaluation then page-faults
its way through gigabytes again. For a K = 4 ensemble on 1,372 atoms that was 4x the
arithmetic (`benchmarks/ensemble_cost.py`). `keep_freed_memory()` asks glibc to serve large
blocks from the heap and not to trim it, the CPU analogue of the CUDA caching allocator: the
process keeps its peak resident size. A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
_applied: bool | None = None


def keep_freed_memory(enabled: bool | None = None) -> bool:
    """Stop glibc returning freed memory to the kernel; True when it took effect.

    `enabled=None` reads MLIPSERVE_KEEP_FREED_MEMORY (default on; "0" turns it off).
    Applies once per process; later calls report the first outcome.
    """
    global _applied
    if _applied is not None:
        return _applied
    if enabled is None:
        enabled = os.environ.get("MLIPSERVE_KEEP_FREED_MEMORY", "1").lower() not in (
            "0",
            "false",
            "no",
        )
    _applied = False
    if not enabled:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # no mmap-served blocks; -1 disables trimming of the heap top (mallopt(3)); one arena:
    # a thread's own arena grows in 64 MB mmap'd heaps, which big tensors cannot use, so
    # the compute thread of the batcher would run 3-4x slower than the main thread
    _applied = (
        bool(mallopt(M_MMAP_MAX, 0))
        and bool(mallopt(M_TRIM_THRESHOLD, -1))
        and bool(mallopt(M_ARENA_MAX, 1))
    )
    return _applied
