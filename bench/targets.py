"""The issue's targets, judged from the run's medians (reported, never asserted)."""

from __future__ import annotations

import math

from bench.context import Bench


def judge(bench: Bench) -> None:
    f, report = bench.figures, bench.report
    names = [db.name for db in bench.databases]
    for name in names:
        ratio = f.get(f"drain_{name}", math.nan) / f.get("http_ceiling", math.nan)
        report.target(
            f"drain ≥ 0.85 × HTTP ceiling ({name})", f"{ratio:.2f} ×", _at_least(ratio, 0.85)
        )
        for client in ("http.client", "httpx"):
            ratio = f.get(f"drain_{name}", math.nan) / f.get(f"seed_{client}_{name}", math.nan)
            report.target(
                f"drain ≥ 8 × seed baseline, {client} ({name})",
                f"{ratio:.1f} ×",
                _at_least(ratio, 8),
            )
    ratio = f.get("scale_2", math.nan) / f.get("http_ceiling_2", math.nan)
    report.target(
        "2 workers ≥ 0.7 × 2-process HTTP ceiling", f"{ratio:.2f} ×", _at_least(ratio, 0.7)
    )
    ratio = f.get("supervised_2", math.nan) / f.get("http_ceiling_2", math.nan)
    report.target(
        "worker --processes 2 ≥ 0.8 × 2-process HTTP ceiling",
        f"{ratio:.2f} ×",
        _at_least(ratio, 0.8),
    )
    ratio = f.get("peer_drain", math.nan) / f.get("peer_pgqueuer", math.nan)
    report.target(
        "drain ≥ 1.7 × pgqueuer + aiohttp (PostgreSQL)", f"{ratio:.2f} ×", _at_least(ratio, 1.7)
    )
    ratio = f.get("scale_4", math.nan) / f.get("scale_1", math.nan)
    report.target("4 workers ≥ 1 worker (PostgreSQL)", f"{ratio:.2f} ×", _at_least(ratio, 1.0))
    doubles = [v for k, v in f.items() if "doubles" in k]
    report.target(
        "0 double deliveries",
        f"{int(max(doubles, default=0))} (max of any run)",
        None if not doubles else max(doubles) == 0,
    )
    p50 = f.get("latency_p50_PostgreSQL", math.nan)
    report.target(
        "idle latency p50 ≤ 20 ms (PostgreSQL, NOTIFY)", f"{p50:.1f} ms", _at_most(p50, 20)
    )
    bound = bench.profile.sqlite_poll_interval * 1000 / 2 + 10
    p50 = f.get("latency_p50_SQLite", math.nan)
    report.target(
        f"idle latency p50 ≤ {bound:g} ms (SQLite, poll/2 + 10 ms)",
        f"{p50:.1f} ms",
        _at_most(p50, bound),
    )
    first, last = bench.profile.memory_marks[0], bench.profile.memory_marks[-1]
    for name in names:
        ratio = f.get(f"rss_{last}_{name}", math.nan) / f.get(f"rss_{first}_{name}", math.nan)
        report.target(
            f"RSS at {last:,} within 10 % of {first:,} ({name})",
            f"{ratio:.3f} ×",
            _at_most(ratio, 1.10),
        )
    for name in names:
        ratio = f.get(f"claim_ratio_{name}", math.nan)
        rows = bench.profile.claim_sent_rows
        report.target(
            f"claim at {rows[-1]:,} sent rows ≤ 2 × at {rows[0]:,} ({name})",
            f"{ratio:.2f} ×",
            _at_most(ratio, 2.0),
        )


def _at_least(value: float, bound: float) -> bool | None:
    return None if math.isnan(value) else value >= bound


def _at_most(value: float, bound: float) -> bool | None:
    return None if math.isnan(value) else value <= bound
