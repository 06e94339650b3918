from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from domain.breaker import Breaker, BreakerSettings, BreakerState, is_congested
from domain.delivery import DeliveryResult

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OK = DeliveryResult(status_code=200, latency_ms=2)
DOWN = DeliveryResult(status_code=503, latency_ms=2)
REFUSED = DeliveryResult(error="ConnectError: connection refused")
SETTINGS = BreakerSettings(failures=3, cooldown_seconds=5, cooldown_max_seconds=20)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def failed(
    breaker: Breaker, times: int, result: DeliveryResult = DOWN, start: float = 0
) -> Breaker:
    for i in range(times):
        breaker = breaker.record(result, at(start + i * 0.01))
    return breaker


def test_consecutive_failures_open_the_breaker_until_the_cool_down() -> None:
    breaker = failed(Breaker(settings=SETTINGS), 3, REFUSED)

    assert breaker.state is BreakerState.OPEN
    assert breaker.since == at(0.02)
    assert not breaker.allows(at(5))
    assert breaker.allows(at(5.02))
    assert breaker.last_error is not None and "refused" in breaker.last_error


def test_a_success_between_failures_keeps_it_closed() -> None:
    breaker = failed(Breaker(settings=SETTINGS), 2).record(OK, at(1))

    breaker = failed(breaker, 2, start=2)

    assert breaker.state is BreakerState.CLOSED


def test_a_failure_ratio_over_the_window_opens_it_without_a_failure_streak() -> None:
    settings = BreakerSettings(failures=100, ratio=0.5, min_requests=10, window_seconds=10)
    breaker = Breaker(settings=settings)

    for i in range(12):
        breaker = breaker.record(DOWN if i % 2 else OK, at(i * 0.5))

    assert breaker.state is BreakerState.OPEN


def test_old_outcomes_leave_the_window() -> None:
    settings = BreakerSettings(failures=100, ratio=0.5, min_requests=10, window_seconds=2)
    breaker = Breaker(settings=settings)

    for i in range(10):
        breaker = breaker.record(DOWN if i % 2 else OK, at(i * 5))

    assert breaker.state is BreakerState.CLOSED


def test_a_healthy_target_records_nothing() -> None:
    breaker = Breaker(settings=SETTINGS)

    assert breaker.record(OK, at(0)) is breaker


def test_the_window_forgets_once_its_failures_age_out() -> None:
    breaker = failed(Breaker(settings=SETTINGS), 1).record(OK, at(30))

    assert breaker.buckets == () and breaker.consecutive == 0


def test_other_client_errors_show_the_target_alive() -> None:
    breaker = Breaker(settings=SETTINGS)

    for code in (400, 404, 410, 422, 400, 404):
        breaker = breaker.record(DeliveryResult(status_code=code), at(0))

    assert breaker.state is BreakerState.CLOSED


def test_after_the_cool_down_one_probe_goes_and_the_others_wait() -> None:
    breaker = failed(Breaker(settings=SETTINGS), 3)

    probing = breaker.begin(at(6))

    assert probing.state is BreakerState.HALF_OPEN
    assert not probing.allows(at(6.5))


def test_a_successful_probe_closes_it_and_resets_the_cool_down() -> None:
    breaker = failed(Breaker(settings=SETTINGS), 3).begin(at(6))

    closed = breaker.record(OK, at(6.1))

    assert closed.state is BreakerState.CLOSED and closed.since == at(6.1)
    assert closed.allows(at(6.1))
    assert failed(closed, 3, start=7).probe_at == at(7.02 + 5)


def test_a_failed_probe_reopens_it_with_a_cool_down_growing_to_the_cap() -> None:
    breaker = failed(Breaker(settings=SETTINGS), 3)
    waits = []
    now = 0.0
    for _ in range(4):
        assert breaker.probe_at is not None
        now = (breaker.probe_at - T0).total_seconds()
        breaker = breaker.begin(at(now)).record(DOWN, at(now))
        assert breaker.probe_at is not None
        waits.append((breaker.probe_at - at(now)).total_seconds())

    assert waits == [10, 20, 20, 20]
    assert breaker.state is BreakerState.OPEN and breaker.since == at(0.02)


def test_a_retry_after_pauses_the_target_that_long_even_when_closed() -> None:
    throttled = DeliveryResult(status_code=429, retry_after_seconds=5)

    breaker = Breaker(settings=SETTINGS).record(throttled, at(0))

    assert breaker.state is BreakerState.OPEN
    assert not breaker.allows(at(4.99)) and breaker.allows(at(5))


def test_past_a_retry_after_pause_the_breaker_closes_without_a_probe() -> None:
    throttled = DeliveryResult(status_code=429, retry_after_seconds=1)
    paused = Breaker(settings=SETTINGS).record(throttled, at(0))

    resumed = paused.begin(at(1))

    assert resumed.state is BreakerState.CLOSED
    assert resumed.allows(at(1)) and resumed.begin(at(1)).allows(at(1))


def test_only_overload_answers_count_as_congestion() -> None:
    congested = [DeliveryResult(status_code=c) for c in (408, 429, 503)]
    errors = [DeliveryResult(status_code=500), REFUSED, DeliveryResult(status_code=502)]

    assert all(is_congested(r) for r in congested)
    assert is_congested(DeliveryResult(error="ReadTimeout"))
    assert not any(is_congested(r) for r in [*errors, OK])


def test_a_probe_that_never_reports_lets_another_go_after_its_deadline() -> None:
    probing = failed(Breaker(settings=SETTINGS), 3).begin(at(6))

    assert probing.allows(at(6 + 5))


def test_rows_held_back_come_due_at_the_next_probe() -> None:
    breaker = failed(Breaker(settings=SETTINGS), 3)

    assert breaker.resumes_at(at(1)) == breaker.probe_at
    assert Breaker(settings=SETTINGS).resumes_at(at(1)) == at(1)


outcomes = st.lists(
    st.tuples(st.sampled_from([OK, DOWN, REFUSED]), st.floats(min_value=0, max_value=3)),
    max_size=60,
)


@given(outcomes)
def test_an_open_breaker_always_has_a_probe_time_and_a_closed_one_lets_requests_through(
    steps: list[tuple[DeliveryResult, float]],
) -> None:
    breaker, now = Breaker(settings=SETTINGS), 0.0
    for result, gap in steps:
        now += gap
        if breaker.allows(at(now)):
            breaker = breaker.begin(at(now))
        breaker = breaker.record(result, at(now))

        if breaker.state is BreakerState.CLOSED:
            assert breaker.allows(at(now))
        else:
            assert breaker.probe_at is not None and breaker.probe_at > at(now) - timedelta(1)
            assert breaker.cooldown <= SETTINGS.cooldown_max_seconds
