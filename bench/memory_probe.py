"""`outbox worker` with a memory probe beside it: what lives in the process, on request.

    python -m bench.memory_probe DIR [--tracemalloc]

Runs the real worker (same CLI, same environment). A daemon thread watches DIR for a file
`request-<label>`; for each it writes `stats-<label>.json` (RSS split into anonymous, file and
shared memory; glibc malloc's totals and arena count; the Python heap; SQLite's own
allocations; the live objects of the caches and pools that could grow) and, with
`--tracemalloc`, `snap-<label>.pickle` for `tracemalloc.Snapshot.load`. Used by
`bench.memory --probe` to find what grows; never by the measured runs (it costs CPU).
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import gc
import json
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

_MALLINFO2_FIELDS = (
    "arena",  # bytes in the arenas' heaps (sbrk/mmap'ed heaps), used or free
    "ordblks",
    "smblks",
    "hblks",
    "hblkhd",  # bytes in chunks mmap'ed on their own (large allocations)
    "usmblks",
    "fsmblks",
    "uordblks",  # bytes in use
    "fordblks",  # bytes free inside the arenas: what malloc_trim can hand back
    "keepcost",
)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2_FIELDS]


def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def proc_status() -> dict[str, int]:
    """VmRSS, RssAnon, RssFile, RssShmem, VmHWM, VmData and Threads of this process (KiB)."""
    wanted = {"VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM", "VmData", "Threads"}
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in wanted:
            fields[name] = int(value.split()[0])
    return fields


def malloc_view() -> dict[str, int]:
    """glibc's totals over all arenas (bytes) and how many arenas exist."""
    libc = _libc()
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    view = {name: int(getattr(info, name)) for name in _MALLINFO2_FIELDS}
    view["arenas"] = _arena_count(libc)
    return view


def _arena_count(libc: Any) -> int:
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    with tempfile.NamedTemporaryFile(suffix=".xml") as out:
        handle = libc.fopen(out.name.encode(), b"w")
        libc.malloc_info(0, handle)
        libc.fclose(handle)
        return Path(out.name).read_text().count("<heap nr=")


def pymalloc_view() -> dict[str, int]:
    """obmalloc's arenas (1 MiB each on 64-bit 3.11, mmap'ed outside malloc), as it reports them."""
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode(errors="replace")
    view = {}
    for line in text.splitlines():
        if "bytes/arena" in line:  # "42 arenas * 1048576 bytes/arena = 44,040,192"
            view["arena bytes"] = int(line.rpartition("=")[2].strip().replace(",", ""))
        name, _, value = line.rpartition("=")
        name = name.strip().lstrip("#").strip()
        if name in ("arenas allocated current", "arenas highwater mark", "Total"):
            view[name] = int(value.strip().replace(",", ""))
    return view


def sqlite_view() -> dict[str, Any]:
    """Bytes SQLite itself holds (page caches, prepared statements, schema), process-wide."""
    path = next(
        (
            line.split()[-1]
            for line in Path("/proc/self/maps").read_text().splitlines()
            if "libsqlite3" in line
        ),
        None,
    )
    if path is None:
        return {}
    lib = ctypes.CDLL(path)
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    lib.sqlite3_memory_highwater.restype = ctypes.c_int64
    lib.sqlite3_memory_highwater.argtypes = [ctypes.c_int]
    return {
        "memory_used": int(lib.sqlite3_memory_used()),
        "memory_highwater": int(lib.sqlite3_memory_highwater(0)),
        "connections": _sqlite_connections(lib),
    }


def _sqlite_connections(lib: Any) -> list[dict[str, int]]:
    """Page cache, schema and prepared-statement bytes of each open sqlite3 connection."""
    import sqlite3

    lib.sqlite3_db_status.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_int,
    ]
    found = []
    for conn in (o for o in gc.get_objects() if isinstance(o, sqlite3.Connection)):
        # CPython 3.11's pysqlite_Connection starts with the sqlite3* after the object header
        handle = ctypes.c_void_p.from_address(id(conn) + 16).value
        if not handle:
            continue
        row = {}
        for name, op in (("cache", 1), ("schema", 2), ("statements", 3)):
            current, high = ctypes.c_int(), ctypes.c_int()
            lib.sqlite3_db_status(handle, op, ctypes.byref(current), ctypes.byref(high), 0)
            row[name] = current.value
        found.append(row)
    return found


def object_view() -> dict[str, Any]:
    """The process's caches, pools and per-claim state that could grow, found through gc."""
    from aiohttp import TCPConnector
    from sqlalchemy import Engine

    from application.pipeline import Pipeline

    objects = gc.get_objects()
    view: dict[str, Any] = {"gc_objects": len(objects)}
    types = collections.Counter(type(o).__name__ for o in objects)
    view["top_types"] = dict(types.most_common(25))
    for o in objects:
        if isinstance(o, Pipeline):
            view["pipeline"] = {
                name: len(getattr(o.acks, name))
                for name in ("_outstanding", "_lease_until", "_staged")
            } | {"queue": o.senders.waiting()}
        elif isinstance(o, Engine):
            cache = o._compiled_cache
            view.setdefault("engines", []).append(
                {
                    "url": o.url.render_as_string(),
                    "pool": o.pool.status(),
                    "compiled_cache": None if cache is None else len(cache),
                }
            )
        elif isinstance(o, TCPConnector):
            view.setdefault("connectors", []).append(
                {
                    "idle_hosts": len(o._conns),
                    "idle_connections": sum(len(v) for v in o._conns.values()),
                    "acquired": len(o._acquired),
                }
            )
    del objects
    import asyncio.tasks
    import logging

    view["asyncio_tasks"] = len(asyncio.tasks._all_tasks)  # type: ignore[attr-defined]
    view["loggers"] = len(logging.root.manager.loggerDict)
    view["root_handlers"] = len(logging.root.handlers)
    view["threads"] = threading.active_count()
    return view


def stats() -> dict[str, Any]:
    result: dict[str, Any] = {"time": time.time(), "proc_kib": proc_status()}
    result["python_blocks"] = sys.getallocatedblocks()
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        result["tracemalloc"] = {"current": current, "peak": peak}
    result["malloc"] = malloc_view()
    result["pymalloc"] = pymalloc_view()
    result["sqlite"] = sqlite_view()
    result["objects"] = object_view()
    return result


def _watch(directory: Path) -> None:
    done: set[str] = set()
    while True:
        for request in sorted(directory.glob("request-*")):
            label = request.name.removeprefix("request-")
            if label in done:
                continue
            done.add(label)
            try:
                if tracemalloc.is_tracing():
                    tracemalloc.take_snapshot().dump(str(directory / f"snap-{label}.pickle"))
                data = stats()
            except Exception as error:  # the probe must never stop the worker
                data = {"error": repr(error)}
            partial = directory / f".stats-{label}.json"
            partial.write_text(json.dumps(data, indent=1, default=str))
            partial.rename(directory / f"stats-{label}.json")
        time.sleep(0.2)


def main() -> None:
    directory = Path(sys.argv[1])
    if "--tracemalloc" in sys.argv[2:]:
        tracemalloc.start(int(os.environ.get("PROBE_FRAMES", "8")))
    directory.mkdir(parents=True, exist_ok=True)
    threading.Thread(target=_watch, args=(directory,), daemon=True).start()
    from entrypoints.cli import main as outbox

    outbox(["worker"])


if __name__ == "__main__":
    main()
