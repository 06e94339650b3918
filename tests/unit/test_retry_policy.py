import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.retry import RetryPolicy

attempts = st.integers(min_value=1, max_value=200)
jitters = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
jitter_kinds = st.sampled_from(["full", "equal"])
policies = st.builds(
    RetryPolicy,
    base_seconds=st.floats(min_value=0.001, max_value=100.0),
    max_seconds=st.floats(min_value=100.0, max_value=86_400.0),
    max_attempts=st.integers(min_value=1, max_value=50),
    jitter=jitter_kinds,
)


@given(policies, attempts, jitters)
def test_a_delay_is_never_negative_nor_beyond_the_cap(
    policy: RetryPolicy, attempt: int, jitter: float
) -> None:
    delay = policy.delay(attempt, jitter)

    assert 0.0 <= delay <= policy.max_seconds


@given(attempts, jitters)
def test_equal_jitter_waits_at_least_half_the_ceiling(attempt: int, jitter: float) -> None:
    policy = RetryPolicy(base_seconds=1.0, max_seconds=300.0, jitter="equal")
    ceiling = min(300.0, 2.0 ** (attempt - 1))

    delay = policy.delay(attempt, jitter)

    assert ceiling / 2 <= delay <= ceiling


@given(attempts, jitters)
def test_full_jitter_stays_below_the_ceiling(attempt: int, jitter: float) -> None:
    policy = RetryPolicy(base_seconds=1.0, max_seconds=300.0, jitter="full")
    ceiling = min(300.0, 2.0 ** (attempt - 1))

    delay = policy.delay(attempt, jitter)

    assert 0.0 <= delay <= ceiling


@given(st.integers(min_value=1, max_value=30), jitters, jitter_kinds)
def test_the_ceiling_doubles_with_each_attempt_until_the_cap(
    attempt: int, jitter: float, kind: str
) -> None:
    policy = RetryPolicy(base_seconds=0.5, max_seconds=600.0, jitter=kind)  # type: ignore[arg-type]
    at_the_cap = policy.delay(1_000, jitter)

    this, following = policy.delay(attempt, jitter), policy.delay(attempt + 1, jitter)

    assert following == pytest.approx(min(2 * this, at_the_cap))


def test_the_first_retry_waits_about_the_base_delay() -> None:
    policy = RetryPolicy(base_seconds=2.0, max_seconds=300.0, jitter="equal")

    assert (policy.delay(1, 0.0), policy.delay(1, 0.5)) == (1.0, 1.5)


def test_retry_after_is_honoured_when_longer_than_the_backoff() -> None:
    policy = RetryPolicy(base_seconds=1.0, max_seconds=300.0)

    delay = policy.delay(1, 0.0, retry_after=120.0)

    assert delay == 120.0


def test_retry_after_shorter_than_the_backoff_does_not_shorten_it() -> None:
    policy = RetryPolicy(base_seconds=1.0, max_seconds=300.0, jitter="equal")

    delay = policy.delay(5, 0.0, retry_after=1.0)

    assert delay == 8.0


@given(st.floats(min_value=300.0, max_value=1e12), jitters)
def test_retry_after_is_capped_at_max_seconds(retry_after: float, jitter: float) -> None:
    policy = RetryPolicy(base_seconds=1.0, max_seconds=300.0)

    delay = policy.delay(1, jitter, retry_after=retry_after)

    assert delay == 300.0


def test_a_negative_retry_after_is_ignored() -> None:
    policy = RetryPolicy(base_seconds=1.0, max_seconds=300.0, jitter="full")

    delay = policy.delay(1, 0.5, retry_after=-50.0)

    assert delay == 0.5


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 1.5, math.nan])
def test_a_jitter_draw_outside_zero_to_one_is_rejected(jitter: float) -> None:
    policy = RetryPolicy()

    with pytest.raises(ValueError, match="jitter"):
        policy.delay(1, jitter)


def test_an_unknown_jitter_kind_is_rejected() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(jitter="decorrelated")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "field, value",
    [
        ("base_seconds", 0.0),
        ("base_seconds", -1.0),
        ("max_seconds", 0.0),
        ("max_seconds", -5.0),
        ("max_attempts", 0),
        ("max_attempts", -1),
    ],
)
def test_a_policy_value_that_is_not_positive_is_rejected(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [math.nan, math.inf])
@pytest.mark.parametrize("field", ["base_seconds", "max_seconds"])
def test_a_policy_delay_that_is_not_finite_is_rejected(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]
