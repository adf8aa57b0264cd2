from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from streamagg_engine.windows import (
    Window,
    parse_window_key,
    window_end,
    window_key,
    window_last_second,
)

MOMENTS = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2199, 12, 31), timezones=st.just(UTC)
)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_window_keys_are_iso_starts_of_hour_day_and_month() -> None:
    at = ms(datetime(2024, 1, 15, 14, 37, 5, tzinfo=UTC))
    assert window_key(at, Window.HOURLY) == "2024-01-15T14:00:00Z"
    assert window_key(at, Window.DAILY) == "2024-01-15T00:00:00Z"
    assert window_key(at, Window.MONTHLY) == "2024-01-01T00:00:00Z"


@given(MOMENTS, st.sampled_from(list(Window)))
def test_every_moment_lies_inside_its_window(moment: datetime, window: Window) -> None:
    key = window_key(ms(moment), window)
    start = parse_window_key(key)
    assert start <= moment < window_end(key, window)


@given(MOMENTS, st.sampled_from(list(Window)))
def test_the_window_after_starts_where_this_one_ends(moment: datetime, window: Window) -> None:
    key = window_key(ms(moment), window)
    end = window_end(key, window)
    assert window_key(ms(end), window) == end.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert window_key(ms(end - timedelta(milliseconds=1)), window) == key


def test_month_end_rolls_over_december_into_the_next_year() -> None:
    assert window_end("2023-12-01T00:00:00Z", Window.MONTHLY) == datetime(2024, 1, 1, tzinfo=UTC)
    assert window_last_second("2023-12-01T00:00:00Z", Window.MONTHLY) == "2023-12-31T23:59:59Z"


def test_february_has_29_days_in_leap_years_only() -> None:
    assert window_last_second("2024-02-01T00:00:00Z", Window.MONTHLY) == "2024-02-29T23:59:59Z"
    assert window_last_second("2023-02-01T00:00:00Z", Window.MONTHLY) == "2023-02-28T23:59:59Z"
    assert window_last_second("2100-02-01T00:00:00Z", Window.MONTHLY) == "2100-02-28T23:59:59Z"


def test_hourly_and_daily_last_seconds_match_what_zae_limiter_shows() -> None:
    assert window_last_second("2024-01-15T14:00:00Z", Window.HOURLY) == "2024-01-15T14:59:59Z"
    assert window_last_second("2024-01-15T00:00:00Z", Window.DAILY) == "2024-01-15T23:59:59Z"
