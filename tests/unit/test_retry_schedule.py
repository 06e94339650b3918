import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.retry import STANDARD_WEBHOOKS, RetryPolicy, RetrySchedule, duration

jitters = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
schedules = st.builds(
    RetrySchedule,
    steps=st.lists(st.floats(min_value=0.001, max_value=86_400.0), min_size=1, max_size=20).map(
        tuple
    ),
    spread=st.floats(min_value=0.0, max_value=0.9),
)


def test_the_default_schedule_is_the_standard_webhooks_one_with_a_day_long_horizon() -> None:
    schedule = RetrySchedule()

    assert schedule.steps == (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert schedule.max_attempts == 10
    assert schedule.horizon() >= 24 * 3600


@given(schedules, st.integers(min_value=1, max_value=50), jitters)
def test_a_wait_stays_within_the_spread_of_its_step(
    schedule: RetrySchedule, attempt: int, jitter: float
) -> None:
    step = schedule.steps[min(attempt, len(schedule.steps)) - 1]

    wait = schedule.delay(attempt, jitter)

    assert step * (1 - schedule.spread) - 1e-9 <= wait <= step * (1 + schedule.spread) + 1e-9


def test_the_nth_failure_waits_the_nth_step() -> None:
    schedule = RetrySchedule(steps=(5.0, 300.0), spread=0.0)

    assert [schedule.delay(k, 0.5) for k in (1, 2, 3)] == [5.0, 300.0, 300.0]


def test_a_retry_after_longer_than_the_step_is_honoured_up_to_an_hour() -> None:
    schedule = RetrySchedule(steps=(5.0,), spread=0.0)

    assert schedule.delay(1, 0.0, retry_after=30.0) == 30.0
    assert schedule.delay(1, 0.0, retry_after=86_400.0) == 3600.0


def test_a_schedule_needs_positive_steps() -> None:
    with pytest.raises(ValueError):
        RetrySchedule(steps=())
    with pytest.raises(ValueError):
        RetrySchedule(steps=(5.0, 0.0))


def test_the_horizon_and_description_name_the_steps() -> None:
    text = RetrySchedule(steps=STANDARD_WEBHOOKS).describe()

    assert text.startswith("schedule: 5s, 5m, 30m, 2h, 5h, 10h, 14h, 20h, 1d")
    assert "10 attempts, horizon 3d3h35m5s" in text


def test_the_exponential_policy_reports_its_horizon_too() -> None:
    policy = RetryPolicy(base_seconds=1.0, max_seconds=300.0, max_attempts=4)

    assert policy.horizon() == 1 + 2 + 4
    assert "4 attempts" in policy.describe()


def test_durations_read_as_compact_units() -> None:
    assert [duration(s) for s in (0.5, 5, 90, 3600, 90061)] == [
        "0.5s",
        "5s",
        "1m30s",
        "1h",
        "1d1h1m1s",
    ]
