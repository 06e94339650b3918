"""Scenario 9: the peer (pgqueuer + aiohttp) against `outbox drain`, and the supervised worker.

Both halves run in the same `make bench` as the ceilings they are divided by.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys

from bench.context import Bench
from bench.pgqueuer_peer import psycopg_dsn
from bench.processes import Child
from bench.report import Row
from bench.throughput import drain_once, worker_once

PGQUEUER_BATCHES = (10, 32, 64)


def pgqueuer_vs_drain(bench: Bench) -> None:
    """pgqueuer at each batch size, then `outbox drain`, same rows and sink, in one go."""
    db, count = bench.postgres, bench.profile.peer_count
    best = (0.0, 0, math.nan)
    for batch in PGQUEUER_BATCHES:
        rate, cpu = _pgqueuer_once(bench, count, batch)
        note = f"uvloop, asyncpg, drain mode, batch {batch}, {count:,} jobs"
        bench.report.add(Row("9 peer: pgqueuer + aiohttp", db.name, "msgs/s", [rate], note))
        bench.report.add(Row("9 peer: pgqueuer + aiohttp", db.name, "CPU s / 1,000 msgs", [cpu]))
        best = max(best, (rate, batch, cpu))
    drain = drain_once(bench, db, count, bench.recommended)
    note = f"{bench.recommended.label()}, {count:,} rows"
    bench.report.add(Row("9 peer: outbox drain", db.name, "msgs/s", [drain.rate], note))
    bench.report.add(
        Row("9 peer: outbox drain", db.name, "CPU s / 1,000 msgs", [drain.cpu_per_1000])
    )
    label = f"÷ pgqueuer (best: batch {best[1]})"
    bench.report.add(Row("9 peer: outbox drain", db.name, label, [drain.rate / best[0]]))
    bench.report.add(
        Row("9 peer: outbox drain", db.name, "CPU ÷ pgqueuer's", [drain.cpu_per_1000 / best[2]])
    )
    bench.figures["peer_pgqueuer"], bench.figures["peer_drain"] = best[0], drain.rate


def _pgqueuer_once(bench: Bench, count: int, batch: int) -> tuple[float, float]:
    dsn = psycopg_dsn(bench.postgres.url)
    setup = [sys.executable, "-m", "bench.pgqueuer_peer", "setup", dsn, "--count", str(count)]
    subprocess.run(setup, check=True)
    path = bench.path(f"pgqueuer{batch}")
    argv = [sys.executable, "-m", "bench.pgqueuer_peer", "consume", dsn, bench.url + path]
    argv += ["--batch-size", str(batch), "--concurrency", "64"]
    finished = Child("pgqueuer", dict(os.environ), bench.child_log("pgqueuer"), argv).wait(900)
    if finished.returncode != 0:
        tail = bench.child_log("pgqueuer").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"pgqueuer consumer exited {finished.returncode}:\n{tail}")
    arrivals = bench.log.wait_for(path, count)
    bench.log.forget(path)
    if len(arrivals) < count:
        raise RuntimeError(f"pgqueuer: {len(arrivals)} POSTs for {count} jobs")
    return arrivals.rate(), 1000 * finished.cpu_seconds / count


def supervised_workers(bench: Bench) -> None:
    """`outbox worker --processes 2` (one supervisor) against the 2-process HTTP ceiling."""
    db, count = bench.postgres, bench.profile.scale_count
    runs = [
        worker_once(bench, db, count, bench.recommended, OUTBOX_PROCESSES="2")
        for _ in range(max(1, bench.profile.heavy_runs - 1))
    ]
    scenario = "5 scale: worker --processes 2"
    note = f"one supervisor, 2 children, {count:,} rows"
    rates = [r.rate for r in runs]
    bench.report.add(Row(scenario, db.name, "msgs/s", rates, note))
    bench.report.add(Row(scenario, db.name, "CPU s / 1,000 msgs", [r.cpu_per_1000 for r in runs]))
    bench.report.add(Row(scenario, db.name, "double deliveries", [float(r.doubles) for r in runs]))
    ceiling = bench.figures.get("http_ceiling_2", math.nan)
    bench.report.add(
        Row(scenario, db.name, "÷ 2-process HTTP ceiling", [r / ceiling for r in rates])
    )
    bench.figures["supervised_2"] = statistics.median(rates)
