"""CPU per message of a whole `outbox drain` process against the bare aiohttp client, in
instructions (callgrind), so that the machine's load does not move the figure.

    .venv/bin/python -m bench.cpu_ratio [--sizes 2000 6000] [--database sqlite|postgresql]
                                        [--before DIR] [--jobs 2]

For each size N it seeds N pending rows, runs `outbox drain` under
`valgrind --tool=callgrind` against a loopback nginx (bench/nginx_receiver.py) and reads the
instructions of the whole process (every thread, start-up included); the same for the bare
client loop (bench/http_ceiling.py `post_all`, N POSTs, concurrency 64). Two sizes separate
the fixed cost (imports, connecting, migrations check) from the cost per message:

    per message = (I(large) - I(small)) / (large - small),  start-up = I(small) - small * per

and the whole-process figure at 50,000 messages is `per + start-up / 50,000`, the issue's
measure. With `--before DIR` (a checkout's `src`, e.g. from `git archive`; `--after DIR`
defaults to this checkout's `src`) the drain runs that tree as well, so a change shows as
before / after. Callgrind runs a process about 50 × slower: 1,000 and 3,000 rows take about
ten minutes on a loaded 2-core machine. Timing-dependent work (how many outcomes each ack
flush holds, idle wake-ups, SQLite lock waits) differs under callgrind from a real run and
between runs: one tree measured 1.00 M and 1.24 M instructions per message at 50,000 in two
runs (its small run differed by 0.55 G), so compare trees within one run and repeat a close
result; the thread hop per SQL call is undercounted here, as flushes come out larger.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.databases import BenchDatabase, postgres_database, sqlite_url
from bench.nginx_receiver import nginx_receiver
from bench.processes import Settings, outbox_env, source_trees

ROOT = Path(__file__).resolve().parent.parent
WHOLE_RUN = 50_000  # the drain size, for the start-up share
_ALEMBIC = threading.Lock()  # alembic's migration context is process-global


def callgrind(argv: list[str], env: dict[str, str]) -> int:
    """Instructions executed by the whole process (all threads) under callgrind."""
    with tempfile.TemporaryDirectory(prefix="outbox-cg-") as directory:
        out = Path(directory) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr[-2000:]}")
        totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
    return int(totals[0].split()[1])


def drain_instructions(src: Path, count: int, database: str, target: str) -> int:
    with tempfile.TemporaryDirectory(prefix="outbox-cpu-") as tmp:
        if database == "sqlite":
            return _drain(src, count, sqlite_url(Path(tmp)), target)
        with postgres_database(f"outbox_cpu_{os.getpid()}_{count}_{abs(hash(src))}") as url:
            return _drain(src, count, url, target)


def _drain(src: Path, count: int, url: str, target: str) -> int:
    with _ALEMBIC:
        db = BenchDatabase("cpu", url)
    db.reset()
    db.seed_pending(count)
    db.engine.dispose()
    env = outbox_env(url, target + "/cpu", Settings(batch_size=500, concurrency=64))
    env.update(PYTHONPATH=f"{src}{os.pathsep}{ROOT}", PYTHONHASHSEED="0")
    total = callgrind([sys.executable, "-m", "entrypoints", "drain", "--no-progress"], env)
    left = db.unfinished()  # the disposed engine opens a fresh connection
    db.engine.dispose()
    if left:
        raise RuntimeError(f"drain of {count} left {left} rows unfinished")
    return total


def bare_instructions(count: int, target: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
    argv = [sys.executable, "-m", "bench.http_ceiling", target + "/bare", "--count", str(count)]
    return callgrind(argv, env)


def split(small: tuple[int, int], large: tuple[int, int]) -> tuple[float, float]:
    """(instructions per message, start-up instructions) from two (size, total) runs."""
    per = (large[1] - small[1]) / (large[0] - small[0])
    return per, small[1] - small[0] * per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=(2000, 6000))
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--before", type=Path, help="the src directory to compare against")
    parser.add_argument("--after", type=Path, default=ROOT / "src", help="the src under test")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare aiohttp client")
    parser.add_argument("--jobs", type=int, default=2, help="callgrind runs side by side")
    args = parser.parse_args()
    trees = source_trees(parser, args.before, args.after)
    jobs: list[tuple[str, int]] = [(name, n) for name in trees for n in args.sizes]
    if not args.no_bare:
        jobs += [("bare aiohttp", n) for n in args.sizes]
    with nginx_receiver() as target, ThreadPoolExecutor(max_workers=args.jobs) as pool:

        def run(job: tuple[str, int]) -> int:
            name, count = job
            if name == "bare aiohttp":
                return bare_instructions(count, target)
            return drain_instructions(trees[name], count, args.database, target)

        found = dict(zip(jobs, pool.map(run, jobs), strict=True))
    small, large = args.sizes
    print(f"instructions (callgrind, whole process, {args.database}, sizes {small}/{large})")
    print(f"  {'':14} {'per message':>12} {'start-up':>14} {f'per msg @{WHOLE_RUN:,}':>16}")
    whole: dict[str, float] = {}
    for name in dict.fromkeys(name for name, _ in jobs):
        per, start = split((small, found[name, small]), (large, found[name, large]))
        whole[name] = per + start / WHOLE_RUN
        print(f"  {name:14} {per:12,.0f} {start:14,.0f} {whole[name]:16,.0f}")
    for name in trees:
        if "bare aiohttp" in whole:
            ratio = whole[name] / whole["bare aiohttp"]
            print(f"  {name} / bare aiohttp at {WHOLE_RUN:,}: {ratio:.2f}")
    if "before" in whole:
        print(f"  after / before at {WHOLE_RUN:,}: {whole['after'] / whole['before']:.3f}")


if __name__ == "__main__":
    main()
