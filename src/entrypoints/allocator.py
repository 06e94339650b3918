"""Hand the C heap's free pages back to the system: a perpetual worker's RSS stays flat.

glibc's malloc keeps freed memory inside its arenas (one per thread that allocated, up to
8 × cores), and only the top of each heap is returned on its own. SQLite's page caches and
statements, aiohttp's buffers and the SQL threads' rows are all freed in scattered places,
so a long-running worker's RSS creeps up with free memory it no longer uses (RELIABILITY.md,
"Memory"). `malloc_trim(0)` gives every whole free page in every arena back (madvise), in
about a millisecond at this heap's size. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; False where the allocator cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
