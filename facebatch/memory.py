"""Keeping a long run's memory down under glibc's malloc; both calls do nothing on other C libraries.

Measured in docs/benchmarks.md: on 12 MP photos, with two worker threads, each lowered peak RSS
by about 100 MB at little or no cost in speed.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools

_M_ARENA_MAX = -8  # from glibc's malloc.h


@functools.lru_cache(maxsize=1)
def _glibc():
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim"):
            return libc
    return None


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap malloc's arenas before the worker threads start.

    Every thread that allocates gets an arena of its own, and memory freed in one arena is not
    reused by the others, so photo-sized buffers piled up once per thread.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, arenas)


def return_freed_memory() -> None:
    """Hand the pages of freed buffers (decoded photos, tensors) back to the system.

    Called after each batch of photos is saved.  glibc otherwise keeps them in the heap, where a
    12 MP photo's 36 MB lands between smaller live blocks and cannot be returned.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
