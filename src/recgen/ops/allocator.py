"""Keep freed tensor memory inside the process (glibc), so that CPU training and decoding stop paying page faults.

Torch on a CPU allocates its tensors with the C library's ``malloc``. With glibc's defaults a freed block at the
top of the heap above 128 KiB-32 MiB is given back to the kernel (``M_TRIM_THRESHOLD``, twice the adaptive
``M_MMAP_THRESHOLD``), so the next step's tensors of the same size fault their pages in again, zero-filled by the
kernel: in TIGER's beam search a ReLU over a fresh (64, 61, 256) float64 buffer ran at 7 ns per element, the page
faults included, against 2.5 ns with the memory kept (``benchmarks/allocator_speed.py`` measures whole steps).
``keep_freed_memory`` sets blocks up to 32 MiB to come from the heap and the heap to be trimmed only above 1 GiB
of free space at its top, so a training loop reuses the same pages. The cost: the process keeps up to that much
freed memory resident instead of returning it.

The ``recgen`` command calls it at start; library users may call it themselves. ``RECGEN_MALLOC=default`` leaves
the C library's settings alone. No effect (returns False) off glibc. Why not jemalloc/tcmalloc: they need
``LD_PRELOAD`` before the process starts, which a ``pip install`` cannot arrange; ``mallopt`` works at run time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h parameter numbers
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling for it on 64-bit systems
TRIM_THRESHOLD = 1024 * 1024 * 1024
TOP_PAD = 64 * 1024 * 1024

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the settings above once per process; True when glibc accepted them."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("RECGEN_MALLOC", "").lower() == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = all(
        mallopt(param, value) == 1
        for param, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (M_TOP_PAD, TOP_PAD),
        )
    )
    return _applied
