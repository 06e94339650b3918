"""RSS of one real `outbox worker` against messages delivered, fed in steps, on each database.

    .venv/bin/python -m bench.memory --total 5000000 --step 250000     # make bench-memory-long
    .venv/bin/python -m bench.memory --total 1000000 --probe DIR       # what lives in the worker

The worker runs with default settings against an nginx answering 204; after each step of
rows is acked (nothing left unfinished) and one maintenance round idle, its /proc status is
read. `make bench` uses `curve()` for the 1M points; this command adds the long run and
writes its own table and plot (docs/memory-long.md, docs/memory-long.svg).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.databases import BenchDatabase, postgres_database, sqlite_url
from bench.nginx_receiver import nginx_receiver
from bench.plot import Series, line_plot
from bench.processes import Child, Settings, outbox_env, wait_until
from entrypoints.worker import MAINTENANCE_SECONDS

DEFAULTS = Settings(batch_size=500, concurrency=64)  # the worker's defaults
# Idle long enough for one maintenance round, whose malloc_trim hands back what the last
# burst freed: the reading is what the worker keeps, not where the allocator happened to be.
SETTLE_SECONDS = MAINTENANCE_SECONDS + 1.0


@dataclass
class Curve:
    database: str
    points: list[tuple[int, dict[str, int]]] = field(default_factory=list)

    def rss_mib(self, messages: int) -> float:
        return next(kib["VmRSS"] for n, kib in self.points if n == messages) / 1024

    def series(self) -> Series:
        return Series(self.database, [(n, kib["VmRSS"] / 1024) for n, kib in self.points])


def curve(
    db: BenchDatabase,
    url: str,
    marks: list[int],
    log: Path,
    *,
    probe: Path | None = None,
    tracemalloc: bool = False,
    on_point: Callable[[Curve], None] = lambda curve: None,
) -> Curve:
    """Feed rows up to each mark, wait until all are acked, read the worker's RSS there."""
    db.reset()
    argv = _probe_argv(probe, tracemalloc) if probe else None
    child = Child("worker", outbox_env(db.url, url, DEFAULTS), log, argv)
    result = Curve(db.name)
    try:
        for previous, mark in zip((0, *marks), marks, strict=False):
            db.seed_pending(mark - previous)
            wait_until(lambda: db.unfinished() == 0, 3600, f"{mark:,} messages acked", 0.5)
            time.sleep(SETTLE_SECONDS)
            result.points.append((mark, child.rss_kib()))
            if probe:
                _ask_probe(probe, str(mark))
            _print_point(db.name, mark, result.points[-1][1])
            on_point(result)
    finally:
        child.terminate()
        child.wait(120)
    sent = db.count(0)
    if sent != marks[-1]:
        raise RuntimeError(f"{db.name}: {sent:,} rows sent, expected {marks[-1]:,}")
    return result


def _probe_argv(directory: Path, tracemalloc: bool) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.memory_probe",
        str(directory),
        *(["--tracemalloc"] if tracemalloc else []),
    ]


def _ask_probe(directory: Path, label: str) -> None:
    (directory / f"request-{label}").touch()
    wait_until(lambda: (directory / f"stats-{label}.json").exists(), 600, "probe stats", 0.2)


def _print_point(name: str, mark: int, kib: dict[str, int]) -> None:
    parts = " ".join(f"{k}={v / 1024:.1f}" for k, v in kib.items())
    print(f"memory {name} {mark:>9,} messages: {parts} MiB", flush=True)


def marks_for(total: int, step: int, long_step: int | None = None) -> list[int]:
    """Every `step` up to 1M (or `total`), then every `long_step` beyond."""
    marks = list(range(step, min(total, 1_000_000) + 1, step))
    after = marks[-1] if marks else 0
    marks += list(range(after + (long_step or step), total + 1, long_step or step))
    return marks


def ratio(curve: Curve, later: int, earlier: int) -> float:
    return curve.rss_mib(later) / curve.rss_mib(earlier)


def write_long_report(curves: list[Curve], directory: Path, command: str, seconds: float) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    line_plot(
        [c.series() for c in curves],
        directory / "memory-long.svg",
        title="RSS of one outbox worker against messages delivered, default settings",
    )
    lines = [
        "# Memory of one worker over a long run\n",
        f"Written by `make bench-memory-long` (`{command}`), {_utc_now()}, "
        f"{seconds / 60:.0f} min; machine as in [BENCHMARKS.md](../BENCHMARKS.md). "
        f"RSS is VmRSS from /proc after each step of rows was acked and {SETTLE_SECONDS:g} s idle "
        "(one maintenance round, whose malloc_trim hands back what the last burst freed).\n",
        "![RSS against messages delivered](memory-long.svg)\n",
        "| database | messages | RSS MiB | anonymous MiB | file MiB | shared MiB |",
        "|---|---|---|---|---|---|",
    ]
    for c in curves:
        for n, kib in c.points:
            cells = [kib.get(k, 0) / 1024 for k in ("VmRSS", "RssAnon", "RssFile", "RssShmem")]
            lines.append(
                f"| {c.database} | {n:,} | " + " | ".join(f"{v:.1f}" for v in cells) + " |"
            )
    lines += [
        "",
        "| database | last point | RSS(last) ÷ RSS(1M) | RSS(1M) ÷ RSS(100k) |",
        "|---|---|---|---|",
    ]
    for c in curves:
        last = c.points[-1][0]
        lines.append(
            f"| {c.database} | {last:,} | {_maybe(c, last, 1_000_000)} "
            f"| {_maybe(c, 1_000_000, 100_000)} |"
        )
    (directory / "memory-long.md").write_text("\n".join(lines) + "\n")


def _utc_now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def _maybe(c: Curve, later: int, earlier: int) -> str:
    try:
        return f"{ratio(c, later, earlier):.3f} ×"
    except StopIteration:
        return "—"


def main() -> None:
    args = _arguments()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up nginx, database, worker
    command = ".venv/bin/python -m bench.memory " + " ".join(sys.argv[1:])
    if args.from_json:
        write_long_report([_load(path) for path in args.from_json], args.report, command, 0.0)
        return
    started = time.monotonic()
    marks = marks_for(args.total, args.step, args.long_step)
    with (
        tempfile.TemporaryDirectory(prefix="outbox-memory-") as tmp,
        postgres_database(f"outbox_bench_memory_{os.getpid()}") as pg_url,
        nginx_receiver() as base,
    ):
        workdir = Path(tmp)
        urls = {"sqlite": sqlite_url(workdir), "postgresql": pg_url}
        done: list[Curve] = []

        def save(partial: Curve) -> None:  # after every point: a stopped run still shows its line
            if args.json:
                path = args.json.with_name(f"{args.json.stem}-{partial.database}.json")
                path.write_text(
                    json.dumps({"database": partial.database, "points": partial.points})
                )
            if args.report:
                seconds = time.monotonic() - started
                write_long_report([*done, partial], args.report, command, seconds)

        for key in args.db:
            db = BenchDatabase(NAMES[key], urls[key])
            try:
                probe = args.probe / db.name if args.probe else None
                log = workdir / f"{key}.log"
                done.append(
                    curve(
                        db,
                        base + "/memory",
                        marks,
                        log,
                        probe=probe,
                        tracemalloc=args.tracemalloc,
                        on_point=save,
                    )
                )
            finally:
                db.close()


NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _load(path: Path) -> Curve:
    data = json.loads(path.read_text())
    return Curve(data["database"], [(int(n), kib) for n, kib in data["points"]])


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--step", type=int, default=100_000)
    parser.add_argument("--long-step", type=int, help="step beyond 1M (default: --step)")
    parser.add_argument("--db", action="append", choices=("sqlite", "postgresql"))
    parser.add_argument("--probe", type=Path, help="run the worker under bench.memory_probe")
    parser.add_argument("--tracemalloc", action="store_true", help="with --probe: snapshots too")
    parser.add_argument("--json", type=Path, help="also write the curves here")
    parser.add_argument("--report", type=Path, help="write memory-long.md/.svg in this folder")
    parser.add_argument(
        "--from-json", type=Path, action="append", help="with --report: plot saved curves"
    )
    args = parser.parse_args()
    args.db = args.db or ["sqlite", "postgresql"]
    return args


if __name__ == "__main__":
    main()
