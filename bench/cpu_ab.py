"""CPU time per message of a real `outbox drain`, two source trees alternated in one run.

    .venv/bin/python -m bench.cpu_ab [--before DIR] [--after DIR] [--count 50000]
                                     [--rounds 5] [--database postgresql|sqlite]
                                     [--engine reqwest --engine aiohttp ...]

Each round seeds `count` pending rows and drains them once with each tree (the order swapped
every round), against the loopback nginx of bench/nginx_receiver.py, batch 500, concurrency 64,
then runs the bare aiohttp client (bench/http_ceiling.py, `count` POSTs, concurrency 64) once.
It reads each process's own CPU (user + system from wait4, start-up included; PostgreSQL's
server is another process and not counted) and its rate. A change shows as the median of the
per-round ratios after / before, and each tree against the bare client as the median of its
per-round ratios (issue 13's measure): pairing within a round cancels most of a shared
machine's drift, where callgrind (bench/cpu_ratio.py) counts instructions but alters the
timing the pipeline sees. Without `--before` only `--after` and the bare client run. With
`--engine` (repeatable) the `--after` tree drains once per named OUTBOX_HTTP_ENGINE instead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench.databases import BenchDatabase, postgres_database, sqlite_url
from bench.nginx_receiver import nginx_receiver
from bench.processes import Child, Finished, Settings, outbox_env, source_trees

ROOT = Path(__file__).resolve().parent.parent


Variant = tuple[Path, dict[str, str]]  # a src tree and the settings it drains with


def drain(db: BenchDatabase, variant: Variant, count: int, target: str, log: Path) -> Finished:
    src, extra = variant
    db.reset()
    db.seed_pending(count)
    db.engine.dispose()
    env = outbox_env(db.url, target + "/ab", Settings(batch_size=500, concurrency=64), **extra)
    env.update(PYTHONPATH=f"{src}{os.pathsep}{ROOT}")
    finished = Child("drain", env, log).wait()
    if finished.returncode != 0 or db.unfinished():
        raise RuntimeError(f"drain with {src} failed: {tail(log)}")
    return finished


def bare(count: int, target: str, log: Path) -> Finished:
    argv = [sys.executable, "-m", "bench.http_ceiling", target + "/bare", "--count", str(count)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    finished = Child("bare", env, log, argv=argv).wait()
    if finished.returncode != 0:
        raise RuntimeError(f"the bare client failed: {tail(log)}")
    return finished


def tail(log: Path) -> str:
    """The end of a child's log (the directory holding it is gone once the run stops)."""
    return log.read_text(errors="replace")[-2000:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="the src tree to compare to")
    parser.add_argument("--after", type=Path, default=ROOT / "src", help="the src under test")
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--engine", action="append", choices=("reqwest", "aiohttp", "httpx"))
    args = parser.parse_args()
    trees = source_trees(parser, args.before, args.after)
    variants: dict[str, Variant] = {name: (src, {}) for name, src in trees.items()}
    if args.engine:
        if args.before is not None:
            parser.error("--engine compares engines on one tree: leave out --before")
        variants = {e: (trees["after"], {"OUTBOX_HTTP_ENGINE": e}) for e in args.engine}
    with tempfile.TemporaryDirectory(prefix="outbox-ab-") as tmp, nginx_receiver() as target:
        if args.database == "sqlite":
            db = BenchDatabase("ab", sqlite_url(Path(tmp)))
            run_all(db, variants, args, target, Path(tmp))
        else:
            with postgres_database(f"outbox_ab_{os.getpid()}") as url:
                db = BenchDatabase("ab", url)
                run_all(db, variants, args, target, Path(tmp))
                db.close()


def run_all(
    db: BenchDatabase,
    trees: dict[str, Variant],
    args: argparse.Namespace,
    target: str,
    tmp: Path,
) -> None:
    names = [*trees, "bare"]
    cpu: dict[str, list[float]] = {name: [] for name in names}
    rate: dict[str, list[float]] = {name: [] for name in names}
    print(f"`outbox drain` of {args.count:,} rows, {args.database}: CPU µs/msg and msgs/s")
    for round_ in range(args.rounds):
        order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
        for name in [*order, "bare"]:
            log = tmp / f"{name}.log"
            if name == "bare":
                done = bare(args.count, target, log)
            else:
                done = drain(db, trees[name], args.count, target, log)
            cpu[name].append(done.cpu_seconds / args.count * 1e6)
            rate[name].append(args.count / done.wall_seconds)
        print(
            f"  round {round_ + 1}: "
            + ", ".join(f"{n} {cpu[n][-1]:.1f} µs {rate[n][-1]:,.0f}/s" for n in names),
            flush=True,
        )
    for name in names:
        print(
            f"  {name:6} median {statistics.median(cpu[name]):.1f} µs/msg, "
            f"{statistics.median(rate[name]):,.0f} msgs/s"
        )
    for name in trees:
        print(f"  {name} / bare: CPU {median_ratio(cpu[name], cpu['bare'])}")
    if len(trees) == 2 and "before" not in trees:
        first, second = list(trees)
        print(
            f"  {first} / {second}: CPU {median_ratio(cpu[first], cpu[second])}, "
            f"rate {median_ratio(rate[first], rate[second])}"
        )
    if "before" in trees:
        print(
            f"  after / before: CPU {median_ratio(cpu['after'], cpu['before'])}, "
            f"rate {median_ratio(rate['after'], rate['before'])}"
        )


def median_ratio(over: list[float], under: list[float]) -> str:
    """The median of the per-round ratios, with their range."""
    ratios = [a / b for a, b in zip(over, under, strict=True)]
    return f"{statistics.median(ratios):.3f} (rounds {min(ratios):.3f}-{max(ratios):.3f})"


if __name__ == "__main__":
    main()
