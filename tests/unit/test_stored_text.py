"""Datetimes go into the batch documents as SQLAlchemy's stored UTC text, whatever their zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from adapters.sql.mapping import stored_text

ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-9, minutes=-30))]
)


def as_stored(moment: datetime) -> str:
    """What the stores read back: the naive UTC moment's text, always with microseconds."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31), timezones=ZONES)
)
def test_any_aware_moment_becomes_its_utc_text_with_microseconds(moment: datetime) -> None:
    assert stored_text(moment) == as_stored(moment)


def test_a_utc_moment_on_the_second_keeps_six_zeros_and_none_stays_none() -> None:
    assert stored_text(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) == "2026-03-01 12:00:00.000000"
    assert stored_text(datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-03-01 12:00:00.000000"
    )
    assert stored_text(None) is None
