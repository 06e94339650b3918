"""Database load of a worker whose only target is down while 100,000 rows wait for it.

    .venv/bin/python -m bench.open_target [--rows 100000] [--seconds 60]

The target refuses connections, so its breaker opens: the rows are held back without spending
attempts and must not be claimed again and again. Prints PostgreSQL transactions per second
(each claim, deferral or lease renewal is one) while idle (empty table) and while the target
is open, measured one after the other with the same worker settings.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from bench.databases import BenchDatabase, postgres_database
from bench.processes import Child, Settings, outbox_env

DATABASE = "outbox_bench_open_target"


def refused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def transactions(db: BenchDatabase) -> int:
    query = text("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :name")
    with db.engine.connect() as conn:
        return int(conn.execute(query, {"name": DATABASE}).scalar_one())


def rate(db: BenchDatabase, seconds: float) -> float:
    time.sleep(1.0)  # pg_stat counters are flushed about once a second
    before, start = transactions(db), time.monotonic()
    time.sleep(seconds)
    time.sleep(1.0)
    return (transactions(db) - before - 2) / (time.monotonic() - start - 1.0)


def parked(db: BenchDatabase) -> int:
    query = text('SELECT count(*) FROM "Messages" WHERE "ToSend" = 1 AND "NextAttemptAt" > now()')
    with db.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--show-log", action="store_true")
    args = parser.parse_args()
    target = f"http://127.0.0.1:{refused_port()}/hooks"
    with postgres_database(DATABASE) as url, tempfile.TemporaryDirectory() as logs:
        db = BenchDatabase("postgresql", url)
        env = outbox_env(url, target, Settings(batch_size=500, concurrency=64))
        worker = Child("worker", env, Path(logs) / "worker.log")
        time.sleep(3)
        idle = rate(db, args.seconds)
        db.seed_pending(args.rows)
        started = time.monotonic()
        while parked(db) < args.rows - 100 and time.monotonic() - started < 300:
            time.sleep(0.5)
        held_back = time.monotonic() - started
        open_rate = rate(db, args.seconds)
        attempts = db.engine.connect().execute(text('SELECT sum("Attempts") FROM "Messages"'))
        worker.terminate()
        worker.wait()
        print(
            f"idle: {idle:.2f} transactions/s; target open with {args.rows} rows waiting: "
            f"{open_rate:.2f} transactions/s ({open_rate / idle:.2f} x idle); all rows held "
            f"back {held_back:.1f} s after seeding; attempts spent: {attempts.scalar_one()}"
        )
        db.close()
        if args.show_log:
            print((Path(logs) / "worker.log").read_text()[-4000:])


if __name__ == "__main__":
    main()
