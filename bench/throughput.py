"""Throughput: the two ceilings, the seed baseline, drain, worker, settings sweep, scale."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from dataclasses import dataclass

from bench import loops
from bench.context import Bench
from bench.databases import BenchDatabase
from bench.processes import Child, Settings, outbox_env, wait_until
from bench.report import Row


def http_ceiling(bench: Bench) -> None:
    """Raw aiohttp at each concurrency; the best median is the ceiling the dispatcher is held to."""
    p = bench.profile
    best = (0.0, 0)
    for concurrency in p.ceiling_concurrency:
        rates = [_ceiling_processes(bench, 1, p.ceiling_count, concurrency) for _ in range(p.runs)]
        bench.report.add(
            Row(
                "1 HTTP ceiling (raw aiohttp)",
                "—",
                "msgs/s",
                rates,
                f"concurrency {concurrency}, {p.ceiling_count:,} POSTs",
            )
        )
        best = max(best, (statistics.median(rates), concurrency))
    bench.figures["http_ceiling"], bench.figures["http_ceiling_concurrency"] = best
    rates = [_ceiling_processes(bench, 2, p.ceiling_count, best[1]) for _ in range(p.runs)]
    bench.report.add(
        Row(
            "1 HTTP ceiling, 2 processes",
            "—",
            "msgs/s",
            rates,
            f"concurrency {best[1]} each, {p.ceiling_count:,} POSTs in all",
        )
    )
    bench.figures["http_ceiling_2"] = statistics.median(rates)


def _ceiling_processes(bench: Bench, processes: int, count: int, concurrency: int) -> float:
    path = bench.path(f"ceiling{processes}x{concurrency}")
    share = count // processes
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.http_ceiling",
                bench.url + path,
                "--count",
                str(share),
                "--first",
                str(1 + i * share),
                "--concurrency",
                str(concurrency),
            ],
            stdout=subprocess.PIPE,
        )
        for i in range(processes)
    ]
    results = [json.loads(child.communicate()[0]) for child in children]
    if any(child.returncode for child in children):
        raise RuntimeError("an HTTP ceiling process failed")
    bench.log.forget(path)
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    return float(sum(r["count"] for r in results) / span)


def database_ceiling(bench: Bench, db: BenchDatabase) -> None:
    count = bench.profile.db_ceiling_count
    rates = []
    for _ in range(bench.profile.runs):
        db.reset()
        db.seed_pending(count)
        rates.append(loops.database_ceiling(db, count, batch=500))
    bench.report.add(
        Row(
            "2 database ceiling (claim+ack, no HTTP)",
            db.name,
            "rows/s",
            rates,
            f"SqlOutboxStore, batch 500, {count:,} rows",
        )
    )
    bench.figures[f"db_ceiling_{db.name}"] = statistics.median(rates)


def seed_baseline(bench: Bench, db: BenchDatabase) -> None:
    count = bench.profile.seed_count
    for client in ("http.client", "httpx"):
        rates = []
        for _ in range(bench.profile.runs):
            db.reset()
            db.seed_pending(count)
            rates.append(loops.seed_baseline(db, bench.url + bench.path("seed"), count, client))
        bench.report.add(
            Row(
                f"3 seed-style baseline ({client})",
                db.name,
                "msgs/s",
                rates,
                f"one row at a time, sync {client} keep-alive, {count:,} rows",
            )
        )
        bench.figures[f"seed_{client}_{db.name}"] = statistics.median(rates)


@dataclass(frozen=True)
class Outcome:
    rate: float  # first to last arrival at the receiver
    wall_rate: float  # whole process, start-up and shut-down included
    cpu_per_1000: float
    doubles: int


def drain_once(bench: Bench, db: BenchDatabase, count: int, settings: Settings) -> Outcome:
    """One drain; a failed one is noted (with its output) and run once more."""
    try:
        return _drain(bench, db, count, settings)
    except RuntimeError as error:
        first = " ".join(str(error).split())[-600:]
        bench.report.notes.append(f"A drain run on {db.name} failed and was repeated: {first}")
        print(f"drain failed, repeating once: {error}", flush=True)
        return _drain(bench, db, count, settings)


def _drain(bench: Bench, db: BenchDatabase, count: int, settings: Settings) -> Outcome:
    db.reset()
    db.seed_pending(count)
    path = bench.path(f"drain-{db.name}")
    child = Child("drain", outbox_env(db.url, bench.url + path, settings), bench.child_log("drain"))
    finished = child.wait()
    if finished.returncode != 0:
        tail = bench.child_log("drain").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"outbox drain exited {finished.returncode}:\n{tail}")
    return _outcome(bench, db, path, count, finished.wall_seconds, finished.cpu_seconds)


def worker_once(
    bench: Bench,
    db: BenchDatabase,
    count: int,
    settings: Settings,
    processes: int = 1,
    **extra: str,
) -> Outcome:
    db.reset()
    db.seed_pending(count)
    path = bench.path(f"worker{processes}-{db.name}")
    env = outbox_env(db.url, bench.url + path, settings, **extra)
    children = [Child("worker", env, bench.child_log(f"worker{i}")) for i in range(processes)]
    try:
        wait_until(lambda: len(bench.log.arrivals(path)) >= count, 900, "the workers to send all")
        wait_until(lambda: db.count(0) >= count, 30, "the last acks")
    finally:
        for child in children:
            child.terminate()
    ends = [child.wait(60) for child in children]
    if any(end.returncode != 0 for end in ends):
        raise RuntimeError(f"a worker exited non-zero: {[e.returncode for e in ends]}")
    wall = max(end.wall_seconds for end in ends)
    return _outcome(bench, db, path, count, wall, sum(end.cpu_seconds for end in ends))


def _outcome(
    bench: Bench, db: BenchDatabase, path: str, count: int, wall: float, cpu: float
) -> Outcome:
    arrivals = bench.log.wait_for(path, count)
    sent = db.count(0)
    if sent != count or len(arrivals) < count:
        raise RuntimeError(f"{path}: {sent} rows sent, {len(arrivals)} POSTs for {count} rows")
    bench.log.forget(path)
    return Outcome(arrivals.rate(), count / wall, 1000 * cpu / count, arrivals.doubles())


def dispatcher(bench: Bench, db: BenchDatabase) -> None:
    p, settings = bench.profile, bench.recommended
    runs = [drain_once(bench, db, p.drain_count, settings) for _ in range(p.heavy_runs)]
    note = f"outbox drain, {settings.label()}, {p.drain_count:,} rows"
    _report_runs(bench, db, "4 dispatcher: drain", runs, note, "drain")
    worker = [worker_once(bench, db, p.worker_count, settings) for _ in range(_fewer(p.heavy_runs))]
    note = f"outbox worker, SIGTERM when all sent, {p.worker_count:,} rows"
    _report_runs(bench, db, "4 dispatcher: worker", worker, note, "worker")


def sql_server(bench: Bench, db: BenchDatabase) -> None:
    """The SQL Server ceiling and drain next to a PostgreSQL drain of as many rows in this run.

    At least 20,000 rows: a new Babelfish session parses each statement shape slowly the first
    time (seconds), so a few thousand rows would mostly measure start-up."""
    p, settings = bench.profile, bench.recommended
    count = max(p.drain_count, 20_000)
    database_ceiling(bench, db)
    note = f"outbox drain, {settings.label()}, {count:,} rows"
    scenario = "4 dispatcher: drain, SQL Server vs PostgreSQL"
    rates = {}
    for each in (db, bench.postgres):
        runs = [drain_once(bench, each, count, settings) for _ in range(p.heavy_runs)]
        _report_runs(bench, each, scenario, runs, note, "versus")
        rates[each.name] = [r.rate for r in runs]
    postgres = statistics.median(rates[bench.postgres.name])
    ratio = [r / postgres for r in rates[db.name]]
    bench.report.add(Row(scenario, db.name, "÷ PostgreSQL drain (same run)", ratio))
    bench.figures[f"drain_ratio_{db.name}"] = statistics.median(ratio)


def _report_runs(
    bench: Bench, db: BenchDatabase, scenario: str, runs: list[Outcome], note: str, key: str
) -> None:
    report = bench.report
    rates = report.add(Row(scenario, db.name, "msgs/s", [r.rate for r in runs], note)).values
    report.add(Row(scenario, db.name, "msgs/s incl. start-up", [r.wall_rate for r in runs]))
    report.add(Row(scenario, db.name, "CPU s / 1,000 msgs", [r.cpu_per_1000 for r in runs]))
    report.add(Row(scenario, db.name, "double deliveries", [float(r.doubles) for r in runs]))
    ceiling = bench.figures.get("http_ceiling", math.nan)
    report.add(Row(scenario, db.name, "÷ HTTP ceiling", [r / ceiling for r in rates]))
    for client in ("http.client", "httpx"):
        seed = bench.figures.get(f"seed_{client}_{db.name}", math.nan)
        report.add(Row(scenario, db.name, f"÷ seed baseline ({client})", [r / seed for r in rates]))
    bench.figures[f"{key}_{db.name}"] = statistics.median(rates)
    bench.figures[f"{key}_doubles_{db.name}"] = max(r.doubles for r in runs)


def _fewer(runs: int) -> int:
    """Repetitions of the longest scenarios (worker, scale): one less than drain's."""
    return max(1, runs - 1)


def sweep(bench: Bench, db: BenchDatabase) -> None:
    """A few batch size × concurrency combinations, to choose the recommended settings."""
    p = bench.profile
    best: tuple[float, str] = (0.0, "")
    for settings in p.sweep:
        runs = [drain_once(bench, db, p.sweep_count, settings) for _ in range(p.runs)]
        best = max(best, (statistics.median(r.rate for r in runs), settings.label()))
        bench.report.add(
            Row(
                "4 settings sweep: drain",
                db.name,
                "msgs/s",
                [r.rate for r in runs],
                f"{settings.label()}, {p.sweep_count:,} rows",
            )
        )
    if best[1]:
        bench.report.notes.append(
            f"Settings sweep, {db.name}: best median {best[0]:,.0f} msgs/s at {best[1]} "
            f"(recommended and used for scenarios 4-8: {bench.recommended.label()})."
        )


def scale(bench: Bench) -> None:
    db, p = bench.postgres, bench.profile
    by_processes: dict[int, list[float]] = {}
    for processes in (1, 2, 4):
        runs = [
            worker_once(bench, db, p.scale_count, bench.recommended, processes)
            for _ in range(_fewer(p.heavy_runs))
        ]
        note = f"{processes} × outbox worker, {p.scale_count:,} rows"
        rates = bench.report.add(
            Row(f"5 scale: {processes} worker(s)", db.name, "msgs/s", [r.rate for r in runs], note)
        ).values
        by_processes[processes] = rates
        bench.report.add(
            Row(
                f"5 scale: {processes} worker(s)",
                db.name,
                "double deliveries",
                [float(r.doubles) for r in runs],
            )
        )
        bench.figures[f"scale_{processes}"] = statistics.median(rates)
        bench.figures[f"scale_doubles_{processes}"] = max(r.doubles for r in runs)
    ratio = [r / bench.figures.get("http_ceiling_2", math.nan) for r in by_processes[2]]
    bench.report.add(Row("5 scale: 2 workers", db.name, "÷ 2-process HTTP ceiling", ratio))
