"""Times, one implementation per operation. The wire format is ISO 8601 UTC with a Z
('2012-03-01T10:00:00Z', optional fraction up to microseconds); WordPress writes GMT dates as
'2012-03-01 10:00:00' (rows, exports) or '2012-03-01T10:00:00' (REST).

epoch_of (per consumed event) and format_epoch (per output) are measured hot paths
(docs/performance.md): parsed and formatted by hand, with caches where values repeat."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache


# ---------------------------------------------------------------------------- wire times, fast
@lru_cache(maxsize=1 << 12)
def _day_epoch(date: str) -> int:
    """Epoch seconds of midnight UTC of 'YYYY-MM-DD' (ValueError if it is no real date)."""
    return int(datetime.fromisoformat(date).replace(tzinfo=UTC).timestamp())


def epoch_of(text: str) -> float:
    """Epoch seconds of a wire time that matched schemas.wire's pattern (ValueError if it is no
    real date/time). The same float as datetime.timestamp(): whole microseconds divided once by
    10**6. Parsed by hand (dates cached): it runs for every event, and datetime parsing is the
    slower way (docs/performance.md)."""
    hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"time out of range in {text!r:.40}")
    seconds = _day_epoch(text[:10]) + hour * 3600 + minute * 60 + second
    micro = int(text[20:-1].ljust(6, "0")) if text[19] == "." else 0
    return (seconds * 1_000_000 + micro) / 1_000_000


# A post's post_time comes with every one of its events.
cached_epoch_of = lru_cache(maxsize=1 << 14)(epoch_of)


def format_epoch(ts: float | None) -> str | None:
    """Epoch seconds -> wire time (None stays None)."""
    if ts is None:
        return None
    if ts.is_integer() if isinstance(ts, float) else isinstance(ts, int):
        # whole seconds (most event times): time.gmtime is the cheaper way (docs/performance.md)
        return "%04d-%02d-%02dT%02d:%02d:%02dZ" % time.gmtime(ts)[:6]  # noqa: UP031 (the measured fast path)
    return format_utc(datetime.fromtimestamp(ts, tz=UTC))


# ---------------------------------------------------------------------------- general
def parse_utc(text: str) -> datetime:
    """ISO 8601 ('...Z', an offset, or naive taken as UTC) -> aware UTC datetime (ValueError)."""
    dt = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def epoch(text: str) -> float:
    """Any ISO 8601 time (parse_utc) -> epoch seconds."""
    return parse_utc(text).timestamp()


def format_utc(dt: datetime) -> str:
    """Aware (or naive UTC) datetime -> wire time."""
    dt = dt.astimezone(UTC) if dt.tzinfo is not None else dt
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_utc() -> str:
    """The current time as a wire time."""
    return format_utc(datetime.now(UTC))


# ---------------------------------------------------------------------------- WordPress, RSS
ZERO_DATE = "0000-00-00 00:00:00"  # WordPress' "no date"
_WP_TIME = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(\.\d{1,6})?(Z|\+00:00)?\Z", re.ASCII)


def wordpress_time(text: str) -> str | None:
    """A WordPress GMT date ('2012-03-01 10:00:00' or '2012-03-01T10:00:00') -> wire time; None
    for an empty or zero date; ValueError for anything else that is not a real date/time."""
    text = text.strip()
    if not text or text.startswith("0000-00-00"):
        return None
    m = _WP_TIME.match(text)
    if not m:
        raise ValueError(f"must be a GMT date like 2012-03-01 10:00:00, got {text!r:.40}")
    return format_utc(datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{m.group(3) or ''}"))


def rfc822_time(text: str | None) -> str | None:
    """RSS <pubDate> 'Thu, 01 Mar 2012 10:00:00 +0000' -> wire time; None if unreadable."""
    try:
        when = parsedate_to_datetime((text or "").strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
