"""Keep the C heap compact: few malloc arenas, free pages handed back to the system.

glibc's malloc keeps freed memory inside its arenas (one per thread that allocated, up to
8 × cores), and only the top of each heap is returned on its own. SQLite's page caches and
statements, aiohttp's buffers and the SQL threads' rows are all freed in scattered places,
so a long-running worker's RSS creeps up with free memory it no longer uses (RELIABILITY.md,
"Memory"). `malloc_trim(0)` gives every whole free page in every arena back (madvise), in
milliseconds at this heap's size. Capping the arenas at two (as MALLOC_ARENA_MAX=2 would)
stops each SQL thread from growing a heap of its own. Elsewhere than glibc both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

ARENAS = 2
_M_ARENA_MAX = -8  # mallopt parameter number in glibc's malloc.h


@functools.cache
def _glibc_function(name: str) -> Callable[..., int] | None:
    try:
        function: Callable[..., int] = getattr(
            ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name
        )
    except (OSError, AttributeError):
        return None
    return function


def limit_arenas(count: int = ARENAS) -> bool:
    """Threads started from now on share at most `count` arenas; False if not glibc."""
    mallopt = _glibc_function("mallopt")
    return mallopt is not None and mallopt(_M_ARENA_MAX, count) == 1


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; False where the allocator cannot."""
    trim = _glibc_function("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True
