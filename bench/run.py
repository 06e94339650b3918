"""Benchmarks of the outbox dispatcher against the ceilings measured in the same run.

    .venv/bin/python -m bench.run --quick    # under 2 minutes, prints the table
    .venv/bin/python -m bench.run --full     # N = 100,000, memory to 1M; writes BENCHMARKS.md

Sets up a fresh PostgreSQL database (`outbox_bench` on 127.0.0.1:5432), a SQLite file and an
nginx receiver answering 204 on a free loopback port, then runs the scenarios of issue 6.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import behaviour, dashboard, peer, throughput
from bench.context import Bench, Profile
from bench.databases import BenchDatabase, mssql_database, postgres_database, sqlite_url
from bench.findings import FINDINGS
from bench.nginx_receiver import nginx_receiver
from bench.plot import line_plot
from bench.processes import Settings
from bench.receiver_log import ReceiverLog
from bench.report import machine, text_table, write_markdown
from bench.targets import judge

RECOMMENDED = Settings(batch_size=500, concurrency=64)
MSSQL_NAME = "SQL Server (Babelfish stand-in)"
MEMORY_PLOT = "docs/memory.svg"

QUICK = Profile(
    name="quick",
    runs=2,
    heavy_runs=1,
    ceiling_count=5_000,
    ceiling_concurrency=(64, 128),
    db_ceiling_count=5_000,
    seed_count=500,
    drain_count=5_000,
    worker_count=5_000,
    sweep_count=5_000,
    sweep=(),
    scale_count=3_000,
    latency_count=100,
    sqlite_poll_interval=0.1,
    memory_marks=(5_000, 10_000),
    claim_sent_rows=(10_000, 100_000),
    claim_repeats=10,
    peer_count=10_000,
)
FULL = Profile(
    name="full",
    runs=3,
    heavy_runs=3,
    ceiling_count=30_000,
    ceiling_concurrency=(32, 64, 128),
    db_ceiling_count=100_000,
    seed_count=3_000,
    drain_count=100_000,
    worker_count=50_000,
    sweep_count=10_000,
    sweep=(
        Settings(200, 64),
        Settings(100, 32),
        Settings(500, 64),
        Settings(500, 128),
        Settings(1000, 256),
    ),
    scale_count=30_000,
    latency_count=1_000,
    sqlite_poll_interval=0.1,
    memory_marks=tuple(range(100_000, 1_000_001, 100_000)),
    claim_sent_rows=(10_000, 1_000_000),
    claim_repeats=30,
)


def main() -> None:
    args = _arguments()
    profile = FULL if args.full else QUICK
    command = ".venv/bin/python -m bench.run " + shlex.join(sys.argv[1:])
    started, load = time.monotonic(), os.getloadavg()
    # a database name of the run's own: two runs on one server must not drop each other's
    database = postgres_database(f"outbox_bench_{os.getpid()}")
    with tempfile.TemporaryDirectory(prefix="outbox-bench-") as tmp, database as pg_url:
        workdir = Path(tmp)
        with nginx_receiver(key_log=workdir / "received.log") as url:
            databases = [
                BenchDatabase("SQLite", sqlite_url(workdir)),
                BenchDatabase("PostgreSQL", pg_url),
            ]
            bench = Bench(
                profile, url, ReceiverLog(workdir / "received.log"), databases, workdir, RECOMMENDED
            )
            try:
                _run_scenarios(bench, args.only)
                if args.only is None or "mssql" in args.only:
                    _sql_server(bench)
                pg_version = _pg_version(bench)
            finally:
                for db in databases:
                    db.close()
    minutes = (time.monotonic() - started) / 60
    _standing_notes(bench)
    judge(bench)
    print("\n" + text_table(bench.report.rows))
    print(f"\n{profile.name} run took {minutes:.1f} min")
    if args.full or args.write:
        markdown = Path(args.write or "BENCHMARKS.md")
        if bench.curves:
            (markdown.parent / "docs").mkdir(exist_ok=True)
            line_plot(
                bench.curves,
                markdown.parent / MEMORY_PLOT,
                title="RSS of one outbox worker against messages delivered (default settings)",
            )
        info = machine(pg_version) | {
            "run time": f"{minutes:.1f} min",
            "load average (1/5/15 min) at start, end": f"{_load(load)}; {_load(os.getloadavg())}",
        }
        write_markdown(
            markdown,
            bench.report,
            info,
            command,
            _preamble(profile),
            FINDINGS,
        )


def _load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.2f}" for value in load)


def _standing_notes(bench: Bench) -> None:
    p, notes = bench.profile, bench.report.notes
    notes.insert(
        0,
        f"**Recommended settings: OUTBOX_BATCH_SIZE={bench.recommended.batch_size}, "
        f"OUTBOX_CONCURRENCY={bench.recommended.concurrency}** (the defaults), used for "
        "scenarios 4-8; the sweep rows show the alternatives measured.",
    )
    notes.append(
        f"Memory: one `outbox worker` per database, default settings, fed "
        f"{p.memory_marks[0]:,} rows at a time up to {p.memory_marks[-1]:,}; RSS (VmRSS from "
        "/proc) read after each step was acked and one maintenance round idle (the worker's "
        "malloc_trim has run). The 5M run (`make bench-memory-long`): "
        "[docs/memory-long.md](docs/memory-long.md); what grew and what bounds it: "
        "RELIABILITY.md, *Memory of a perpetual worker*.\n\n"
        f"  ![RSS of one worker against messages delivered]({MEMORY_PLOT})"
    )
    notes.append(
        "Rows are seeded in one INSERT … SELECT (generate_series / recursive CTE) and the "
        "table ANALYZEd before each run, as autovacuum would; PostgreSQL tables are truncated "
        "and the SQLite file emptied and VACUUMed between runs."
    )
    notes.append(
        "The seed-style baseline uses the same database settings as the dispatcher (SQLite in "
        "WAL mode, synchronous=NORMAL) and one keep-alive connection; it is measured with the "
        "lean stdlib `http.client` and with sync httpx."
    )
    notes.append(
        f"Latency on SQLite uses OUTBOX_POLL_INTERVAL={p.sqlite_poll_interval:g} s (the idle "
        "wait is jittered between half and the whole interval); PostgreSQL uses the default "
        "1 s poll and is woken by NOTIFY. Inserts are spaced by random gaps so that they do "
        "not lock to the poll's phase."
    )


def _run_scenarios(bench: Bench, only: list[str] | None) -> None:
    each_db: list[tuple[str, Callable[[Bench, BenchDatabase], None]]] = [
        ("db", throughput.database_ceiling),
        ("seed", throughput.seed_baseline),
        ("dispatcher", throughput.dispatcher),
        ("sweep", throughput.sweep),
    ]
    steps: list[tuple[str, Callable[[], None]]] = [("http", lambda: throughput.http_ceiling(bench))]
    for name, scenario in each_db:
        steps += [(name, lambda s=scenario, d=db: s(bench, d)) for db in bench.databases]  # type: ignore[misc]
    steps += [("scale", lambda: throughput.scale(bench))]
    steps += [("processes", lambda: peer.supervised_workers(bench))]
    steps += [("peer", lambda: peer.pgqueuer_vs_drain(bench))]
    steps += [("latency", lambda d=db: behaviour.latency(bench, d)) for db in bench.databases]  # type: ignore[misc]
    steps += [("memory", lambda: behaviour.memory(bench))]
    steps += [("claim", lambda d=db: behaviour.claim_cost(bench, d)) for db in bench.databases]  # type: ignore[misc]
    overview = dashboard.overview_cost
    steps += [("dashboard", lambda d=db: overview(bench, d)) for db in bench.databases]  # type: ignore[misc]
    for name, step in steps:
        if only is None or name in only:
            step()


def _sql_server(bench: Bench) -> None:
    """SQL Server (OUTBOX_BENCH_MSSQL_URL, else OUTBOX_TEST_MSSQL_URL: the stand-in) next to
    PostgreSQL: database ceiling and drain, the drain as a ratio of PostgreSQL's in this run."""
    with mssql_database() as url:
        if url is None:
            bench.report.notes.append("SQL Server rows skipped: no OUTBOX_BENCH_MSSQL_URL.")
            return
        db = BenchDatabase(MSSQL_NAME, url)
        try:
            throughput.sql_server(bench, db)
        finally:
            db.close()


def _pg_version(bench: Bench) -> str:
    with bench.postgres.engine.connect() as conn:
        return str(conn.exec_driver_sql("SHOW server_version").scalar_one())


def _preamble(profile: Profile) -> str:
    return (
        "Written by `make bench`. Every figure sits next to ceilings measured in the same run "
        "on the same machine: raw aiohttp posting the same bodies to the same nginx receiver "
        "(no database), and the project's `SqlOutboxStore` claiming and acking the same rows "
        "(no HTTP). Dispatcher rates are taken from the receiver's access log, first to last "
        "arrival; the *incl. start-up* rate divides by the child process's whole wall time. "
        "CPU is the child's user + system time (wait4). Everything, nginx and PostgreSQL "
        f"included, shares the machine's cores. Profile `{profile.name}`.\n"
    )


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes")
    size.add_argument("--full", action="store_true", help="N = 100,000; writes BENCHMARKS.md")
    parser.add_argument(
        "--only",
        action="append",
        help="run only these scenarios (repeatable): "
        "http db seed dispatcher sweep scale processes peer latency memory claim mssql dashboard",
    )
    parser.add_argument("--write", help="write the markdown report to this file")
    return parser.parse_args()


if __name__ == "__main__":
    main()
