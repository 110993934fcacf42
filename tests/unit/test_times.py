"""schemas/times.py: one implementation per time operation, and the fast paths agree with the
general ones."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import times


@given(st.integers(788918400, 4102444799), st.integers(0, 999_999))
def test_fast_parse_and_format_agree_with_datetime(seconds, micro):
    ts = (seconds * 1_000_000 + micro) / 1_000_000
    text = times.format_epoch(ts)
    assert times.epoch_of(text) == times.epoch(text) == ts
    assert times.format_utc(times.parse_utc(text)) == text


def test_wordpress_dates():
    assert times.wordpress_time("2019-08-14 14:08:53") == "2019-08-14T14:08:53Z"
    assert times.wordpress_time(" 2019-08-14T14:08:53 ") == "2019-08-14T14:08:53Z"
    assert times.wordpress_time("2019-08-14 14:08:53.5+00:00") == "2019-08-14T14:08:53.500000Z"
    assert times.wordpress_time("") is None and times.wordpress_time(times.ZERO_DATE) is None
    with pytest.raises(ValueError):
        times.wordpress_time("yesterday")
    with pytest.raises(ValueError):
        times.wordpress_time("2019-02-30 10:00:00")


def test_rss_dates():
    assert times.rfc822_time("Thu, 01 Mar 2012 11:00:00 +0100") == "2012-03-01T10:00:00Z"
    assert times.rfc822_time("not a date") is None
