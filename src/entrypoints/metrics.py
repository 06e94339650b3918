"""Prometheus metrics and the health endpoint, served by the worker on OUTBOX_METRICS_PORT."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics import MetricWrapperBase

from application.dispatcher import Settled
from domain.breaker import BreakerState, TargetHealth
from domain.delivery import DeliveryResult

HEARTBEAT = "outbox_worker_heartbeat_timestamp_seconds"
M = TypeVar("M", bound=MetricWrapperBase)


class Exposition(Protocol):
    def render(self) -> bytes: ...


class PrometheusObserver:
    """The pipeline's observer, counting into a registry of its own (no global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._series: dict[tuple[MetricWrapperBase, tuple[str, ...]], MetricWrapperBase] = {}
        self.claimed_total = Counter(
            "outbox_messages_claimed", "Rows claimed under a lease", registry=self.registry
        )
        self.settled_total = Counter(
            "outbox_messages", "Outcomes written, by outcome", ["outcome"], registry=self.registry
        )
        self.latency = Histogram(
            "outbox_send_latency_seconds",
            "HTTP attempt latency",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.batch_size = Histogram(
            "outbox_claim_batch_size",
            "Rows per claim",
            registry=self.registry,
            buckets=(0, 1, 10, 50, 100, 200, 500, 1000),
        )
        # multiprocess_mode: how `outbox worker --processes N` adds the children up
        self.in_flight_gauge = Gauge(
            "outbox_in_flight",
            "Claimed, not yet acked",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.oldest_pending = Gauge(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest due row",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.heartbeat = Gauge(
            HEARTBEAT,
            "Unix time this worker last found itself healthy (0: unhealthy)",
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        for outcome in ("sent", "retried", "dead", "invalid", "released", "deferred"):
            self.settled_total.labels(outcome)
        self._per_target()

    def _per_target(self) -> None:
        """One series per target (scheme://host:port), never per message."""
        self.target_state = Gauge(
            "outbox_target_breaker_state",
            "Circuit breaker per target: 1 for the current state, 0 for the others",
            ["target", "state"],
            registry=self.registry,
        )
        self.target_in_flight = Gauge(
            "outbox_target_in_flight",
            "Requests in flight per target",
            ["target"],
            registry=self.registry,
        )
        self.target_limit = Gauge(
            "outbox_target_concurrency_limit",
            "Current concurrency limit per target",
            ["target"],
            registry=self.registry,
        )
        self.target_latency = Histogram(
            "outbox_target_latency_seconds",
            "HTTP attempt latency per target",
            ["target"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.target_outcomes = Counter(
            "outbox_target_responses",
            "Answers per target: 2xx, 4xx, 5xx or the error class",
            ["target", "outcome"],
            registry=self.registry,
        )

    def _labelled(self, metric: M, *values: str) -> M:
        """`metric.labels(*values)`, looked up once: prometheus_client validates and locks on
        every call, and the pipeline reports several series per message."""
        key = (metric, values)
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = metric.labels(*values)
        return found  # type: ignore[return-value]

    def claimed(self, count: int) -> None:
        self.claimed_total.inc(count)
        self.batch_size.observe(count)

    def settled(self, settled: Settled) -> None:
        self._labelled(self.settled_total, settled.outcome.value).inc()
        if settled.attempt is not None:
            self.latency.observe(settled.attempt.result.latency_ms / 1000)

    def in_flight(self, count: int) -> None:
        self.in_flight_gauge.set(count)

    def target_changed(self, health: TargetHealth) -> None:
        for state in BreakerState:
            self.target_state.labels(health.target, state.value).set(state is health.state)

    def target_load(self, target: str, in_flight: int, limit: int) -> None:
        self._labelled(self.target_in_flight, target).set(in_flight)
        self._labelled(self.target_limit, target).set(limit)

    def target_answered(self, target: str, result: DeliveryResult) -> None:
        self._labelled(self.target_latency, target).observe(result.latency_ms / 1000)
        self._labelled(self.target_outcomes, target, _outcome(result)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _outcome(result: DeliveryResult) -> str:
    if result.status_code is None:
        return "timeout" if "timeout" in (result.error or "").lower() else "error"
    return f"{result.status_code // 100}xx"


class Liveness:
    """Healthy while the loop ticks and the database answered recently."""

    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self.last_tick = time.monotonic()

    def tick(self) -> None:
        self.last_tick = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self.last_tick < self.stale_after


def metrics_app(observer: Exposition, healthy: Callable[[], bool]) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=observer.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        ok = healthy()
        return web.json_response({"status": "ok" if ok else "unhealthy"}, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app
