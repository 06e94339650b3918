"""Where one claim + ack cycle of 500 rows goes: the store's loop against a hand-written
psycopg loop running the same SQL, in one run, alternating; then a profile and the server's
own time per statement.

    .venv/bin/python -m bench.db_cycle                   # PostgreSQL (database outbox_db_cycle)
    .venv/bin/python -m bench.db_cycle --sqlite          # the store alone, on a SQLite file
    .venv/bin/python -m bench.db_cycle --profile --explain

Rates on a loaded machine drift; the ratio store ÷ psycopg in the same run is what to quote.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from adapters.sql.statements import sql_of
from bench import loops
from bench.databases import TABLE, BenchDatabase, postgres_database, sqlite_url

BATCH = 500
_PARAM = re.compile(r"(?<!:):([a-z_]+)")


def psycopg_sql(block: str) -> str:
    """The store's PostgreSQL statement with psycopg's `%(name)s` placeholders."""
    return _PARAM.sub(r"%(\1)s", sql_of("postgresql", TABLE, block))


def psycopg_loop(
    conn: psycopg.Connection[Any], count: int, timings: dict[str, list[float]]
) -> float:
    """The reference: the same three statements, tuples and one json.dumps per document."""
    claim, ack, history = (psycopg_sql(b) for b in ("CLAIM", "ACK", "HISTORY"))
    done = 0
    started = time.perf_counter()
    while True:
        token, now = uuid.uuid4().hex[:26], datetime.now(UTC).replace(tzinfo=None)
        params = claim_params(token, now)
        t0 = time.perf_counter()
        rows = conn.execute(claim, params).fetchall()
        conn.commit()
        t1 = time.perf_counter()
        if not rows:
            break
        stamp = f"{now:%Y-%m-%d %H:%M:%S.%f}"
        acks = [
            {
                "ID": r[0],
                "ToSend": 0,
                "Status": f"sent: HTTP 204 in 2 ms, attempt {r[6]}, key {r[11]}",
                "Attempts": r[6],
                "NextAttemptAt": None,
                "LeaseOwner": None,
                "LeaseUntil": None,
                "LeaseToken": None,
                "IdempotencyKey": r[11],
                "SentAt": stamp,
            }
            for r in rows
        ]
        attempts = [
            {
                "MessageID": r[0],
                "Attempt": r[6],
                "IdempotencyKey": r[11],
                "StartedAt": stamp,
                "DurationMs": 2,
                "HttpStatus": 204,
                "Error": None,
                "Excerpt": None,
            }
            for r in rows
        ]
        t2 = time.perf_counter()
        written = conn.execute(ack, {"batch": json.dumps(acks), "token": token}).fetchall()
        t3 = time.perf_counter()
        conn.execute(history, {"batch": json.dumps(attempts)})
        conn.commit()
        t4 = time.perf_counter()
        if len(written) != len(rows):
            raise RuntimeError("lost a lease in the reference loop")
        done += len(rows)
        for name, spent in (("claim", t1 - t0), ("build", t2 - t1), ("ack", t3 - t2)):
            timings[name].append(spent)
        timings["history+commit"].append(t4 - t3)
    elapsed = time.perf_counter() - started
    if done != count:
        raise RuntimeError(f"reference loop acked {done} rows, expected {count}")
    return done / elapsed


def claim_params(token: str, now: datetime) -> dict[str, Any]:
    """The claim's parameters for one cycle of the hand-written loop."""
    return {
        "owner": "bench",
        "token": token,
        "limit": BATCH,
        "now": now,
        "lease_until": now + timedelta(seconds=30),
        "key_prefix": f"msg_{token[:8]}_",
    }


def explain(db: BenchDatabase) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of one cycle's three statements, as the server times them."""
    with psycopg.connect(_libpq(db)) as conn:
        token, now = uuid.uuid4().hex[:26], datetime.now(UTC).replace(tzinfo=None)
        params = claim_params(token, now)
        claim_plan = _explain(conn, psycopg_sql("CLAIM"), params)
        rows = conn.execute(
            f'SELECT "ID", "Attempts", "IdempotencyKey" FROM "{TABLE}" WHERE "LeaseToken" = %s',
            (token,),
        ).fetchall()
        stamp = f"{now:%Y-%m-%d %H:%M:%S.%f}"
        acks = [
            {"ID": i, "ToSend": 0, "Status": "sent", "Attempts": a, "SentAt": stamp}
            for i, a, _ in rows
        ]
        ack_plan = _explain(conn, psycopg_sql("ACK"), {"batch": json.dumps(acks), "token": token})
        history = [
            {"MessageID": i, "Attempt": a, "IdempotencyKey": k, "StartedAt": stamp,
             "DurationMs": 2, "HttpStatus": 204}
            for i, a, k in rows
        ]  # fmt: skip
        history_plan = _explain(conn, psycopg_sql("HISTORY"), {"batch": json.dumps(history)})
        t0 = time.perf_counter()
        conn.commit()
        commit_ms = 1000 * (time.perf_counter() - t0)
    for name, plan in (("claim", claim_plan), ("ack", ack_plan), ("history", history_plan)):
        print(f"--- {name} ({len(rows)} rows)\n{plan}")
    print(f"--- commit (WAL flush): {commit_ms:.2f} ms wall")


def _explain(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> str:
    plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, WAL) " + sql, params).fetchall()
    return "\n".join(str(line[0]) for line in plan)


def profile_store(db: BenchDatabase, count: int, top: int) -> None:
    db.reset()
    db.seed_pending(count)
    profiler = cProfile.Profile()
    profiler.enable()
    loops.database_ceiling(db, count, batch=BATCH)
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def server_cpu(db: BenchDatabase) -> float:
    """CPU seconds the database's server processes for this database have used (PostgreSQL
    backends read from /proc; 0 for SQLite, whose work is the client's)."""
    if not db.is_postgres:
        return 0.0
    with psycopg.connect(_libpq(db)) as conn:  # not one of the pool's: its backend is left out
        pids = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
        ticks = sum(_ticks(pid) for (pid,) in pids)
    return ticks / os.sysconf("SC_CLK_TCK")


def _libpq(db: BenchDatabase) -> str:
    return db.url.replace("postgresql+psycopg://", "postgresql://")


def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime


def alternate(
    db: BenchDatabase, count: int, rounds: int, loops_: dict[str, Callable[[], float]]
) -> dict[str, list[float]]:
    """Each loop in turn, `rounds` times: rows/s, and client and server CPU µs per row."""
    figures: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, run in loops_.items():
            db.reset()
            db.seed_pending(count)
            cpu, server = time.process_time(), server_cpu(db)
            figures.setdefault(name, []).append(run())
            client = time.process_time() - cpu
            figures.setdefault(f"{name} client µs/row", []).append(1e6 * client / count)
            server = 1e6 * (server_cpu(db) - server) / count
            figures.setdefault(f"{name} server µs/row", []).append(server)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--without-0005", action="store_true", help="drop migration 0005's indexes first"
    )
    parser.add_argument(
        "--without-notify", action="store_true", help="disable migration 0002's NOTIFY triggers"
    )
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}")
    if args.sqlite:
        with tempfile.TemporaryDirectory() as directory:
            _run_sqlite(BenchDatabase("SQLite", sqlite_url(Path(directory))), args)
        return
    with postgres_database("outbox_db_cycle") as url:
        db = BenchDatabase("PostgreSQL", url)
        if args.without_0005:
            _drop_0005_indexes(db)
        if args.without_notify:
            with db.engine.begin() as conn:
                conn.exec_driver_sql(f'ALTER TABLE "{TABLE}" DISABLE TRIGGER USER')
        try:
            _run_postgres(db, args)
        finally:
            db.close()


def _drop_0005_indexes(db: BenchDatabase) -> None:
    """What the write cost of migration 0005's indexes is: the same run without them."""
    with db.engine.begin() as conn:
        for name in (f"IX_{TABLE}_DueAt", f"IX_{TABLE}Attempts_Hour", f"IX_{TABLE}Attempts_Failed"):
            conn.exec_driver_sql(f'DROP INDEX "{name}"')


def _run_sqlite(db: BenchDatabase, args: argparse.Namespace) -> None:
    try:
        rates = alternate(
            db, args.rows, args.rounds, {"store": lambda: loops.database_ceiling(db, args.rows)}
        )
        _print_rates(rates)
        if args.profile:
            profile_store(db, args.rows, args.top)
    finally:
        db.close()


def _run_postgres(db: BenchDatabase, args: argparse.Namespace) -> None:
    timings: dict[str, list[float]] = {n: [] for n in ("claim", "build", "ack", "history+commit")}
    with psycopg.connect(_libpq(db)) as reference:
        rates = alternate(
            db,
            args.rows,
            args.rounds,
            {
                "store": lambda: loops.database_ceiling(db, args.rows),
                "psycopg": lambda: psycopg_loop(reference, args.rows, timings),
            },
        )
    _print_rates(rates)
    ratio = statistics.median(rates["store"]) / statistics.median(rates["psycopg"])
    print(f"store ÷ psycopg: {ratio:.2f}")
    print("psycopg loop, ms per cycle of 500 (wall, client + server):")
    for name, spent in timings.items():
        print(f"  {name:16} {1000 * statistics.median(spent):7.2f}")
    if args.explain:
        db.reset()
        db.seed_pending(args.rows)
        explain(db)
    if args.profile:
        profile_store(db, args.rows, args.top)


def _print_rates(rates: dict[str, list[float]]) -> None:
    for name, values in rates.items():
        shown = ", ".join(f"{v:,.0f}" for v in values)
        unit = "" if "µs" in name else " rows/s"
        print(f"{name:22} median {statistics.median(values):8,.0f}{unit}  ({shown})")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
