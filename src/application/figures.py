"""Pure arithmetic behind the dashboard's figures, shared by every `OutboxBrowser`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from application.ports import Latency, MinuteActivity

WINDOW = timedelta(hours=1)
MINUTES = 60


def window_start(now: datetime) -> datetime:
    """The first minute of the hour the overview shows (whole minutes, so buckets line up)."""
    return (now - WINDOW).replace(second=0, microsecond=0) + timedelta(minutes=1)


def minute_index(start: datetime, moment: datetime) -> int | None:
    index = int((moment - start).total_seconds() // 60)
    return index if 0 <= index < MINUTES else None


def activity(
    start: datetime, counts: Iterable[tuple[datetime, str, int]]
) -> tuple[MinuteActivity, ...]:
    """Sixty minutes from `start`, filled from (minute, outcome, count) triples."""
    minutes = [{"sent": 0, "retried": 0, "dead": 0} for _ in range(MINUTES)]
    for moment, outcome, count in counts:
        index = minute_index(start, moment)
        if index is not None and outcome in minutes[index]:
            minutes[index][outcome] += count
    return tuple(
        MinuteActivity(start=start + timedelta(minutes=i), **each) for i, each in enumerate(minutes)
    )


def latency(histogram: Mapping[int, int]) -> Latency:
    """Nearest-rank percentiles from a histogram of whole milliseconds."""
    total = sum(histogram.values())
    if total == 0:
        return Latency(count=0)
    ordered = sorted(histogram.items())

    def rank(percent: int) -> float:
        wanted = max(1, -(-percent * total // 100))
        seen = 0
        for value, count in ordered:
            seen += count
            if seen >= wanted:
                return float(value)
        return float(ordered[-1][0])

    return Latency(count=total, p50=rank(50), p90=rank(90), p99=rank(99), max=float(ordered[-1][0]))
