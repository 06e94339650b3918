"""The dashboard's pure parts: percentiles, the chart, filters, redirects, binding, targets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from application import figures
from application.ports import MinuteActivity
from domain.model import State
from entrypoints.config import ConfigError
from entrypoints.container import dashboard_token
from entrypoints.dashboard.app import BindRefused, check_bind
from entrypoints.dashboard.auth import Guard, safe_next
from entrypoints.dashboard.chart import HEIGHT, bars
from entrypoints.dashboard.fields import BadFilter, age, parse_filter
from entrypoints.dashboard.run import public_target

NOW = datetime(2026, 3, 1, 12, 30, 45, tzinfo=UTC)


def test_percentiles_are_nearest_rank_over_a_histogram() -> None:
    latency = figures.latency({10: 90, 200: 9, 5000: 1})

    assert (latency.count, latency.p50, latency.p90, latency.p99, latency.max) == (
        100, 10, 10, 200, 5000,
    )  # fmt: skip


def test_no_attempts_give_no_percentiles() -> None:
    assert figures.latency({}).p50 is None


def test_the_window_is_sixty_whole_minutes_ending_with_the_current_one() -> None:
    start = figures.window_start(NOW)

    minutes = figures.activity(start, [(NOW.replace(second=0), "sent", 4)])

    assert start == datetime(2026, 3, 1, 11, 31, tzinfo=UTC)
    assert len(minutes) == 60 and minutes[-1].sent == 4


def test_chart_bars_stack_to_the_full_height_at_the_peak_minute() -> None:
    activity = [MinuteActivity(start=NOW, sent=6, retried=3, dead=1), MinuteActivity(start=NOW)]

    drawn = bars(activity)

    [peak, empty] = cast(list[Any], drawn["bars"])
    assert sum(height for _, _, height in peak.segments) == HEIGHT
    assert [kind for kind, _, _ in peak.segments] == ["sent", "retried", "dead"]
    assert empty.segments == ()


def test_a_filter_reads_every_field() -> None:
    query = {"state": "dead", "type": "orders", "user_id": "7", "min_id": "1", "max_id": "9",
             "status": " HTTP 4 "}  # fmt: skip

    where, raw = parse_filter(query)

    assert where.state is State.DEAD and where.message_type == "orders"
    assert (where.user_id, where.min_id, where.max_id) == (7, 1, 9)
    assert where.status_text == "HTTP 4" and raw["status"] == "HTTP 4"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"user_id": "7x"}, "UserID must be a whole number"),
        ({"min_id": "-1"}, "ID from must be a whole number"),
        ({"state": "gone"}, "state must be one of"),
    ],
)
def test_a_bad_filter_value_is_one_clear_error(query: dict[str, str], message: str) -> None:
    with pytest.raises(BadFilter, match=message):
        parse_filter(query)


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/messages?state=dead", "/messages?state=dead"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        (None, "/"),
    ],
)
def test_after_login_only_local_paths_are_followed(target: str | None, safe: str) -> None:
    assert safe_next(target) == safe


def test_without_a_token_only_loopback_addresses_are_served() -> None:
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", "a-token-of-sixteen+")

    with pytest.raises(BindRefused, match="without OUTBOX_DASHBOARD_TOKEN"):
        check_bind("0.0.0.0", None)


def test_a_short_dashboard_token_is_refused_naming_the_variable() -> None:
    assert dashboard_token({}) is None

    with pytest.raises(ConfigError, match="OUTBOX_DASHBOARD_TOKEN must be at least 16"):
        dashboard_token({"OUTBOX_DASHBOARD_TOKEN": "short"})


def test_the_session_cookie_is_derived_from_the_token_not_the_token() -> None:
    guard = Guard("a-token-of-sixteen+")

    assert "a-token-of-sixteen+" not in guard.session_value()
    assert guard.token_matches("a-token-of-sixteen+") and not guard.token_matches("a-token")


def test_targets_are_shown_without_credentials_or_query() -> None:
    shown = public_target("https://user:pw@hooks.example.com:8443/in?sig=abc")

    assert shown == "https://hooks.example.com:8443/in"


def test_ages_read_in_the_largest_sensible_unit() -> None:
    assert [age(None), age(42), age(125), age(7300)] == [
        "nothing due", "42 s", "2 min 5 s", "2 h 1 min",
    ]  # fmt: skip
