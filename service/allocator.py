"""One malloc heap for the whole server, so memory freed by one decode is reused by the next, whichever thread
runs it, and the decode budget bounds the RSS.

glibc gives each thread that allocates concurrently a heap of its own and keeps freed memory there for reuse
by that heap. Image decodes run on whichever worker thread is free, so every thread's heap grows to the largest
image it happened to decode: four concurrent 12-megapixel 16-bit PNGs, decoded one at a time within the budget,
still grew the server's peak RSS by 173 MB, and by 3 MB with one heap (``M_ARENA_MAX`` 1). Unmapping every
large block on free instead (``M_MMAP_THRESHOLD`` 1 MiB) bounded it too, but made a 12-megapixel progressive
JPEG decode in 45 ms instead of 25 (libjpeg's coefficient buffers page-faulted in each time); with one heap they
are reused. Other C libraries (musl, macOS) are left as they are.
"""

from __future__ import annotations

import ctypes

M_ARENA_MAX = -8  # mallopt parameter (glibc malloc.h)


def _libc_function(name: str) -> ctypes._CFuncPtr | None:
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def share_one_heap() -> bool:
    """Make every thread allocate from one glibc heap (call before threads start); False without glibc."""
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, 1))


def give_back_freed_memory() -> bool:
    """Return the heap's free pages to the OS (``malloc_trim``): for a process that goes idle after a large
    decode (a decode worker); False without glibc."""
    trim = _libc_function("malloc_trim")
    if trim is None:
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    trim(0)
    return True
