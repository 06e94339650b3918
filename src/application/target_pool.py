"""Per-target health and share of the senders: a circuit breaker and an adaptive limit each.

A target is the scheme, host and port of a URL. Its breaker decides whether a request may go;
its limit (additive increase while answers come back well, halved on 429, 503, timeouts and
connection errors, between 1 and a cap) keeps one target from holding every sender. The cap is
`target_concurrency` and never more than a fair share of the senders among recently busy targets.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import attrs

from domain import status as status_line
from domain.breaker import Breaker, BreakerSettings, TargetHealth, is_congested, is_failure
from domain.delivery import DeliveryRequest, DeliveryResult
from domain.model import Message

log = logging.getLogger(__name__)
_RECENT = timedelta(seconds=5)
_RECOUNT = timedelta(seconds=0.2)
_START_LIMIT = 8.0


def target_key(url: str) -> str:
    """`scheme://host:port` of a URL, the default port made explicit."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


@attrs.frozen(kw_only=True)
class TargetSettings:
    concurrency: int = 64
    target_concurrency: int | None = None
    breaker: BreakerSettings = attrs.field(factory=BreakerSettings)


Held = tuple[str, Message, DeliveryRequest]


@attrs.define
class Target:
    key: str
    breaker: Breaker
    limit: float = _START_LIMIT
    slow_start: bool = True
    in_flight: int = 0
    backlog: deque[Held] = attrs.field(factory=deque)
    active_at: datetime | None = None
    candidate_for: datetime | None = None
    spare_at: datetime | None = None  # the last row kept for a later probe
    spares_since: datetime | None = None  # the breaker's `since` the spares were kept for
    resumed_at: datetime | None = None
    parked: bool = False  # rows held back beyond the next probe since the last resume
    reported: bool = False
    latency: float | None = None  # seconds, a moving average of this target's answers

    def health(self, cap: int, now: datetime) -> TargetHealth:
        b = self.breaker
        return TargetHealth(
            target=self.key,
            state=b.state,
            since=b.since,
            last_error=b.last_error,
            in_flight=self.in_flight,
            limit=min(cap, int(self.limit)),
            updated_at=now,
        )

    def adapt(self, result: DeliveryResult, cap: int) -> None:
        seconds = result.latency_ms / 1000
        self.latency = seconds if self.latency is None else 0.8 * self.latency + 0.2 * seconds
        if is_congested(result):
            self.limit = max(1.0, self.limit / 2)
            self.slow_start = False
        elif self.slow_start:
            self.limit = min(float(cap), self.limit + 1)
        else:
            self.limit = min(float(cap), self.limit + 1 / self.limit)

    def backlog_wait(self) -> float:
        """Seconds the last row of the backlog can expect to wait (0 until the target answered)."""
        ahead = len(self.backlog) + self.in_flight
        return ahead / max(self.limit, 1.0) * (self.latency or 0.0)

    def hold(self, now: datetime, kept: bool = False) -> tuple[datetime, bool]:
        """When a row held back now comes due, and whether it is kept to probe the target.

        The first row held back in each cool-down is due when the breaker will let one request
        through. The next ones are spares, one per longest cool-down up to the park bound, so
        that some row is due for every probe however long the outage lasts; the rest are parked
        until the bound (the same moment for all held back in one cool-down: one statement).
        A probe's success resumes them at once, whichever worker sends it: see `resumes_on`.
        A row already `kept` to probe (by any worker) that is back early, made due by another
        worker's resume, stays a probe due at the next probe: parked with the others, it could
        leave the outage without a row due for any probe, every row waiting out the bound."""
        breaker = self.breaker
        probe_at = breaker.resumes_at(now)
        if breaker.paused:  # a Retry-After pause is short and known: all go at its end
            return probe_at, kept
        if kept:
            return probe_at, True
        if self.spares_since != breaker.since:  # a new outage: the old spares were resumed
            self.spares_since, self.spare_at = breaker.since, None
        if self.candidate_for != probe_at:
            self.candidate_for = probe_at
            return probe_at, True
        settings = breaker.settings
        parked = probe_at + timedelta(seconds=settings.park_seconds)
        spare = max(self.spare_at or probe_at, probe_at)
        spare += timedelta(seconds=settings.cooldown_max_seconds)
        self.parked = True
        if spare < parked:
            self.spare_at = spare
            return spare, True
        return parked, False

    def resumes_on(self, status: str | None, result: DeliveryResult, now: datetime) -> bool:
        """Should this worker resume the target's waiting rows now that a row went out? Yes
        when the row was kept to probe the target (by any worker, its `Status` says so) and
        the target answered: rows another worker parked must not wait for that worker's own
        breaker. At most once per first cool-down (the spares come back together)."""
        if is_failure(result) or not status_line.kept_to_probe(status):
            return False
        quiet = timedelta(seconds=self.breaker.settings.cooldown_seconds)
        if self.resumed_at is not None and now - self.resumed_at < quiet:
            return False
        self.resumed(now)
        return True

    def resumed(self, now: datetime) -> None:
        """The target's waiting rows were made due: spares kept so far are gone with them."""
        self.resumed_at, self.spare_at, self.parked = now, None, False


class TargetPool:
    """Every target this worker has sent to, by key."""

    def __init__(self, settings: TargetSettings, by_type: Mapping[str, str], default: str) -> None:
        self.settings = settings
        self._by_key: dict[str, Target] = {}
        self._keys: dict[str, str] = {}
        self._by_type = {name: target_key(url) for name, url in by_type.items()}
        self._default = target_key(default)
        self._unseen = {self._default, *self._by_type.values()}
        self._cap: tuple[datetime, int] | None = None

    def of(self, url: str) -> Target:
        key = self._keys.get(url)
        if key is None:
            key = self._keys[url] = target_key(url)
        return self.of_key(key)

    def of_key(self, key: str) -> Target:
        target = self._by_key.get(key)
        if target is None:
            target = self._by_key[key] = Target(
                key=key, breaker=Breaker(settings=self.settings.breaker)
            )
        return target

    def all(self) -> list[Target]:
        return list(self._by_key.values())

    def busy(self, now: datetime) -> int:
        """Targets with rows in hand or answers in the last few seconds (at least 1). Each
        configured target counts from the start, so the first to get rows cannot take every
        sender before the others show up."""
        for key in self._unseen:
            self.of_key(key).active_at = now
        self._unseen.clear()
        recent = [
            t
            for t in self._by_key.values()
            if t.in_flight or t.backlog or (t.active_at is not None and now - t.active_at < _RECENT)
        ]
        return max(1, len(recent))

    def cap(self, now: datetime) -> int:
        """The most one target may have in flight; recounted at most every 0.2 s (hot path)."""
        if self._cap is not None and timedelta(0) <= now - self._cap[0] < _RECOUNT:
            return self._cap[1]
        fair = max(1, self.settings.concurrency // self.busy(now))
        limit = self.settings.target_concurrency or self.settings.concurrency
        self._cap = (now, max(1, min(limit, fair)))
        return self._cap[1]

    def admits(self, target: Target, now: datetime) -> bool:
        return target.in_flight < max(1, min(self.cap(now), int(target.limit)))

    def message_types(self, key: str) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
        """The types routed to `key`, as `resume` takes them: (types, None) or (None, excluding)."""
        if key == self._default:
            return None, tuple(sorted(n for n, k in self._by_type.items() if k != key))
        return tuple(sorted(n for n, k in self._by_type.items() if k == key)), ()
