"""CPU per message of the dispatcher's own hot path, with no network and no server.

    .venv/bin/python -m bench.hot_path [--count 20000] [--rounds 5] [--before DIR]

Two measures, each the best of `rounds`, in CPU µs per message (`time.process_time`):
- claim: `SqlOutboxStore.claim` of batches of 500 from a SQLite file (rows become `Message`s);
- send: `Dispatcher.prepare` (validate, build, JSON-encode) plus the signed headers of one
  attempt (`WebhookHeaders.for_request`, one signing secret): what the sender adds per message.

With `--before DIR` (a checkout's `src` directory, e.g. from `git archive`), each round runs
that tree and this one in alternation in fresh processes and prints the ratios after/before,
so the machine's load falls on both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BATCH = 500


def measure(count: int, parts: str = "all") -> dict[str, float]:
    """µs of CPU per message for each measure, in this process (imports from sys.path)."""
    from sqlalchemy import create_engine

    from adapters.sql.migrate import migrate
    from adapters.sql.store import SqlOutboxStore
    from adapters.webhooks import WebhookHeaders
    from application.dispatcher import Dispatcher, DispatchSettings, TargetUrls
    from application.message_type_registry import discover
    from application.ports import NewMessage
    from domain.retry import RetryPolicy

    with tempfile.TemporaryDirectory() as directory:
        engine = create_engine(f"sqlite:///{directory}/hot.db")
        migrate(engine)
        store = SqlOutboxStore(engine)
        rows = [
            NewMessage(user_id=1 + i % 97, body=_text(i), message_type=kind)
            for i in range(count)
            for kind in ("json" if i % 2 else "default",)
        ]
        for row in rows:
            if row.message_type == "json":
                object.__setattr__(row, "body", json.dumps({"n": 1, "text": row.body}))
        store.enqueue(rows)
        if parts == "enqueue":
            return {}
        now = datetime(2030, 1, 1, tzinfo=UTC)
        claimed = []
        started = time.process_time()
        for n in range(0, count, BATCH):
            claimed += store.claim(
                owner="bench", token=f"t{n}", limit=BATCH, now=now,
                lease_until=datetime(2030, 1, 2, tzinfo=UTC),
            )  # fmt: skip
        claim_cpu = time.process_time() - started
        engine.dispose()
    assert len(claimed) == count, len(claimed)
    if parts == "claim":
        return {}

    dispatcher = Dispatcher(
        store=store,
        sender=None,  # type: ignore[arg-type]
        clock=None,  # type: ignore[arg-type]
        types=discover(),
        targets=TargetUrls(default="http://127.0.0.1:9/hook"),
        policy=RetryPolicy(),
        rng=random.Random(1),
        settings=DispatchSettings(owner="bench"),
    )
    headers = WebhookHeaders((SECRET,), "outbox-bench/1", time.time)
    started = time.process_time()
    for message in claimed:
        request = dispatcher.prepare(message)
        headers.for_request(request)  # type: ignore[arg-type]
    send_cpu = time.process_time() - started
    return {"claim": claim_cpu / count * 1e6, "send": send_cpu / count * 1e6}


def _text(i: int) -> str:
    """Three bodies in four are ASCII; the fourth has accents and a dash."""
    return f"hello {i} — ünïcode" if i % 4 == 0 else f"hello {i}, your order shipped"


def run_tree(src: Path, count: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{Path(__file__).parent.parent}"}
    env["PYTHONHASHSEED"] = "0"  # the same dict and set layouts in every tree
    output = subprocess.run(
        [sys.executable, "-m", "bench.hot_path", "--child", "--count", str(count)],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return dict(json.loads(output))


def instructions(src: Path, count: int, parts: str) -> int:
    """Instructions the whole child process executes under callgrind (deterministic)."""
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{Path(__file__).parent.parent}"}
    env["PYTHONHASHSEED"] = "0"  # the same dict and set layouts in every tree
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             "-m", "bench.hot_path", "--child", "--count", str(count), "--parts", parts],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
    return int(totals[0].split()[1])


def print_instructions(trees: dict[str, Path], count: int) -> None:
    """Per message: claim = (enqueue+claim) - enqueue, send = all - (enqueue+claim)."""
    jobs = [(name, parts) for name in trees for parts in ("enqueue", "claim", "all")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = pool.map(lambda job: instructions(trees[job[0]], count, job[1]), jobs)
        found = dict(zip(jobs, counts, strict=True))
    print(f"instructions per message (callgrind, {count} messages)")
    per = {
        name: {
            "claim": (found[name, "claim"] - found[name, "enqueue"]) / count,
            "send": (found[name, "all"] - found[name, "claim"]) / count,
        }
        for name in trees
    }
    names = list(trees)
    for key in ("claim", "send"):
        print(f"  {key}")
        for n, name in enumerate(names):
            ratio = "" if n == 0 else f"  / previous {per[name][key] / per[names[n - 1]][key]:.3f}"
            print(f"    {name:40} {per[name][key]:9,.0f}{ratio}")
        if len(names) > 1:
            print(f"    last / first {per[names[-1]][key] / per[names[0]][key]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", type=Path, help="the src directory to compare against")
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    parser.add_argument(
        "--steps", type=Path, nargs="+", help="with --callgrind: src trees, each against the last"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--parts", default="all", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.count, args.parts)))
        return
    here = Path(__file__).resolve().parent.parent / "src"
    trees = {"after": here} if args.before is None else {"before": args.before, "after": here}
    if args.callgrind:
        if args.steps:
            trees = {f"{n}:{path}": path for n, path in enumerate(args.steps)}
        print_instructions(trees, args.count)
        return
    best: dict[str, dict[str, float]] = {name: {} for name in trees}
    for _ in range(args.rounds):
        for name, src in trees.items():
            for key, value in run_tree(src, args.count).items():
                best[name][key] = min(value, best[name].get(key, value))
    print(f"CPU µs per message, best of {args.rounds} rounds of {args.count} messages")
    for key in best["after"]:
        line = f"  {key:6} " + "  ".join(f"{n} {best[n][key]:7.2f}" for n in trees)
        if "before" in best:
            line += f"  after/before {best['after'][key] / best['before'][key]:.2f}"
        print(line)


if __name__ == "__main__":
    main()
