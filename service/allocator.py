"""Freed image buffers go back to the operating system at once, so the decode budget bounds the RSS.

glibc's malloc serves large blocks with ``mmap`` and unmaps them on free, but it raises that threshold
each time such a block is freed (up to 32 MB), after which megabyte-sized decode buffers come from
per-thread heaps that keep them: four concurrent 12-megapixel 16-bit PNGs, decoded one at a time within
the budget, still grew the server's peak RSS by 173 MB, and by 7 MB with the threshold fixed at 1 MiB
(tests/test_decode_budget.py). Other C libraries (musl, macOS) are left as they are.
"""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # mallopt parameter (glibc malloc.h)
MMAP_THRESHOLD_BYTES = 1 << 20


def unmap_large_blocks(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold (which also stops it adapting); False where there is no glibc ``mallopt``."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold_bytes))
