"""Where one `outbox drain` spends its CPU: py-spy samples of every thread, summed by area.

    .venv/bin/python -m bench.profile_drain [--count 50000] [--database postgresql|sqlite]

Seeds `count` rows in a database of its own (PostgreSQL `outbox_profile`, or a SQLite file),
runs `outbox drain` under `py-spy record --format raw` (idle threads left out, so a sample is
CPU being spent) against a loopback nginx, and prints the share of samples per area and the
top functions by own samples. Needs `pip install -e '.[bench]'` (py-spy) and nginx.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.databases import BenchDatabase, postgres_database, sqlite_url
from bench.nginx_receiver import nginx_receiver
from bench.processes import Settings, outbox_env

# first match wins: (area, substring of a frame's "function (file:line)")
AREAS = (
    ("PostgreSQL driver (psycopg)", "psycopg"),
    ("SQLite driver", "sqlite3"),
    ("SQLAlchemy", "sqlalchemy"),
    ("aiohttp client", "aiohttp"),
    ("reqwest client (pyreqwest, its Tokio thread)", "pyreqwest"),
    ("HMAC signing", "webhooks.py"),
    ("JSON / message types", "message_types"),
    ("domain (status lines, transitions)", "domain/"),
    ("attrs", "attr"),
    ("dispatcher service", "application/dispatcher.py"),
    ("pipeline (claimer, senders, target gate, acks)", "application/"),
    ("SQL store adapter", "adapters/sql"),
    ("sender adapter", "_sender.py"),
    ("asyncio / uvloop", "asyncio"),
    ("start-up imports", "<frozen importlib"),
)


def summarise(raw: Path, top: int = 10) -> str:
    """Areas by inclusive share (a sample counts once, in its innermost known area), then the
    functions with the most own samples."""
    areas: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaves[frames[-1]] += count
        areas[_area(frames)] += count
    lines = [f"{total:,} samples of CPU (all threads)", "", "share | area (innermost frame)"]
    lines += [f"{100 * n / total:5.1f}% | {name}" for name, n in areas.most_common()]
    lines += ["", f"top {top} functions by own samples"]
    lines += [f"{100 * n / total:5.1f}% | {name}" for name, n in leaves.most_common(top)]
    return "\n".join(lines)


def _area(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, marker in AREAS:
            if marker in frame:
                return name
    return "other"


@contextlib.contextmanager
def _database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield sqlite_url(workdir)
    else:
        with postgres_database("outbox_profile") as url:
            yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--keep", help="also copy the raw py-spy output here")
    args = parser.parse_args()
    spy = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy not found: pip install -e '.[bench]'")
    with tempfile.TemporaryDirectory(prefix="outbox-profile-") as tmp, nginx_receiver() as url:
        workdir = Path(tmp)
        with _database(args.database, workdir) as db_url:
            db = BenchDatabase(args.database, db_url)
            db.reset()
            db.seed_pending(args.count)
            raw = workdir / "drain.raw"
            env = outbox_env(db_url, url + "/profile", Settings(batch_size=500, concurrency=64))
            record = [spy, "record", "--format", "raw", "--rate", str(args.rate)]
            record += ["--nonblocking", "--output", str(raw), "--"]
            drain = [sys.executable, "-m", "entrypoints", "drain", "--no-progress"]
            subprocess.run([*record, *drain], env=env, check=True)
            db.close()
        if args.keep:
            shutil.copy(raw, args.keep)
        print(summarise(raw))


if __name__ == "__main__":
    main()
