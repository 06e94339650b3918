"""What operators see of targets: `outbox status` lines and the per-target metrics."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from application.ports import Overview
from domain.breaker import BreakerState, TargetHealth
from domain.delivery import DeliveryResult
from domain.retry import RetrySchedule
from entrypoints.metrics import PrometheusObserver
from entrypoints.status_view import Health, render_overview

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OPEN = TargetHealth(
    target="https://hooks.example.com:443",
    state=BreakerState.OPEN,
    since=T0,
    last_error="HTTP 503 in 4 ms",
    updated_at=T0,
    reported_by="host:1",
)
EMPTY = Overview(counts={}, oldest_pending_age_seconds=None, leases={}, recent_dead=())


def test_status_shows_the_schedule_with_its_horizon_and_each_target() -> None:
    health = Health(retries=RetrySchedule().describe(), targets=[OPEN])

    text = render_overview(EMPTY, as_json=False, health=health)

    assert "retries: schedule: 5s, 5m, 30m, 2h, 5h, 10h, 14h, 20h, 1d" in text
    assert "horizon 3d3h35m5s" in text
    assert (
        "target https://hooks.example.com:443: open since 2026-03-01T12:00:00Z, "
        "last error: HTTP 503 in 4 ms"
    ) in text


def test_status_as_json_carries_the_targets() -> None:
    health = Health(retries="schedule: 5s", targets=[OPEN])

    document = json.loads(render_overview(EMPTY, as_json=True, health=health))

    assert document["targets"][0]["state"] == "open"
    assert document["targets"][0]["since"] == "2026-03-01T12:00:00Z"
    assert document["retries"] == "schedule: 5s"


def test_metrics_are_labelled_by_target_never_by_message() -> None:
    observer = PrometheusObserver()

    observer.target_changed(OPEN)
    observer.target_load(OPEN.target, 3, 16)
    observer.target_answered(OPEN.target, DeliveryResult(status_code=503, latency_ms=4))
    observer.target_answered(OPEN.target, DeliveryResult(error="ReadTimeout: timed out"))
    text = observer.render().decode()

    label = 'target="https://hooks.example.com:443"'
    assert f'outbox_target_breaker_state{{state="open",{label}}} 1.0' in text
    assert f'outbox_target_breaker_state{{state="closed",{label}}} 0.0' in text
    assert f"outbox_target_in_flight{{{label}}} 3.0" in text
    assert f"outbox_target_concurrency_limit{{{label}}} 16.0" in text
    assert f'outbox_target_responses_total{{outcome="5xx",{label}}} 1.0' in text
    assert f'outbox_target_responses_total{{outcome="timeout",{label}}} 1.0' in text
    assert "outbox_target_latency_seconds_bucket" in text
