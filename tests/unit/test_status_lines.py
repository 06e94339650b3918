from datetime import UTC, datetime, timedelta, timezone

import pytest

from domain import status
from domain.delivery import DeliveryResult

WHEN = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
HUGE = "x" * 100_000
UNAVAILABLE = DeliveryResult(status_code=503, latency_ms=4.0)


def every_kind_of_line(result: DeliveryResult, reason: str) -> dict[str, str]:
    return {
        "sent": status.sent(DeliveryResult(status_code=200, excerpt=reason), 1, "msg_k_1"),
        "retrying": status.retrying(result, 2, 8, WHEN),
        "dead": status.dead(result, 8, 8),
        "gave up": status.gave_up(reason),
        "invalid": status.invalid(reason),
    }


@pytest.mark.parametrize(
    "kind, word",
    [
        ("sent", "sent:"),
        ("retrying", "retrying:"),
        ("dead", "dead:"),
        ("gave up", "dead:"),
        ("invalid", "invalid:"),
    ],
)
def test_a_status_line_starts_with_its_state_word(kind: str, word: str) -> None:
    line = every_kind_of_line(UNAVAILABLE, "Message is empty")[kind]

    assert line.split(" ")[0] == word


@pytest.mark.parametrize("kind", ["sent", "retrying", "dead", "gave up", "invalid"])
def test_a_status_line_is_at_most_400_characters_even_for_huge_input(kind: str) -> None:
    result = DeliveryResult(status_code=503, excerpt=HUGE)

    line = every_kind_of_line(result, HUGE)[kind]

    assert len(line) <= status.MAX_LENGTH == 400


def test_a_truncated_status_line_keeps_its_state_word_and_shows_the_cut() -> None:
    line = status.invalid(HUGE)

    assert line.startswith("invalid: xxx") and line.endswith("…") and len(line) == 400


def test_a_short_status_line_is_not_cut() -> None:
    line = status.invalid("Message is empty")

    assert line == "invalid: Message is empty"


@pytest.mark.parametrize(
    "noise", ["\n", "\r\n", "\x00", "\t", "\x1b[31m", "\x7f", "\x85", "\u2028", "\u2029"]
)
def test_a_status_line_is_one_printable_line(noise: str) -> None:
    result = DeliveryResult(status_code=500, excerpt=f"boom{noise}line two")

    line = status.dead(result, 1, 8)

    assert len(line.splitlines()) == 1 and line.isprintable()
    assert "boom" in line and "line two" in line


def test_a_reason_ending_in_newlines_leaves_no_trailing_space() -> None:
    line = status.invalid("Message is empty\n\n")

    assert line == "invalid: Message is empty"


def test_the_retry_time_is_utc_iso_with_z() -> None:
    line = status.retrying(UNAVAILABLE, 2, 8, WHEN)

    assert line == "retrying: HTTP 503 in 4 ms, attempt 2 of 8, next at 2026-03-04T05:06:07.890Z"


def test_a_retry_time_in_another_zone_is_written_in_utc() -> None:
    plus_two = WHEN.astimezone(timezone(timedelta(hours=2)))

    line = status.retrying(UNAVAILABLE, 2, 8, plus_two)

    assert line.endswith("next at 2026-03-04T05:06:07.890Z")


def test_a_network_error_names_its_class() -> None:
    result = DeliveryResult(error="ConnectTimeout", latency_ms=5000.0)

    line = status.retrying(result, 1, 8, WHEN)

    assert line.startswith("retrying: ConnectTimeout in 5000 ms, attempt 1 of 8")


def test_a_dead_line_carries_the_response_excerpt() -> None:
    result = DeliveryResult(status_code=400, excerpt='{"error":"no such user"}')

    line = status.dead(result, 1, 8)

    assert line == 'dead: HTTP 400 in 0 ms, attempt 1 of 8, response: {"error":"no such user"}'
