"""`blogpulse replay`: publish a history (WXR or JSONL) in event-time order, as fast as possible or
at a chosen multiple of the original pace (docs/replay.md).

Order and pace only matter to someone watching the dashboards while a history plays: the engine's
result does not depend on arrival order (docs/architecture.md, "Aggregation semantics"), and windows
are kept forever, so events older than any window still count."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from streams.settings import Settings

from schemas.times import epoch

Event = dict[str, Any]


def event_seconds(event: Event) -> float:
    """event_time as epoch seconds (the wire format is ISO 8601 UTC, `...Z`)."""
    return epoch(event["event_time"])


def in_event_time_order(events: Iterable[Event]) -> list[tuple[float, Event]]:
    """(epoch seconds, event) sorted by event time. Stable: events with the same time keep file
    order (a comment and its moderation written in the same second stay in that order)."""
    timed = [(event_seconds(e), e) for e in events]
    timed.sort(key=lambda pair: pair[0])  # list.sort is stable
    return timed


def paced(
    timed: Iterable[tuple[float, Event]],
    speed: float | None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Event]:
    """Yield events; with a speed, event i is released (t_i - t_0) / speed seconds after the first.
    Measured from the start rather than from the previous event, so slow sends do not add up to
    drift. speed None: no waiting at all."""
    if speed is not None and speed <= 0:
        raise ValueError(f"speed: must be > 0, got {speed}")
    start_wall: float | None = None
    start_event = 0.0
    for seconds, event in timed:
        if speed is not None:
            if start_wall is None:
                start_wall, start_event = clock(), seconds
            delay = start_wall + (seconds - start_event) / speed - clock()
            if delay > 0:
                sleep(delay)
        yield event


class Progress:
    """A progress line on stderr, at most once per `every` seconds, and once at the end."""

    def __init__(
        self,
        total: int,
        out: TextIO = sys.stderr,
        every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.out, self.every, self.clock = total, out, every, clock
        self.sent = 0
        self.started = clock()
        self._last = float("-inf")

    def track(self, events: Iterable[Event]) -> Iterator[Event]:
        self.started = self.clock()  # rate of publishing, not of reading and sorting
        for event in events:
            self.sent += 1
            now = self.clock()
            if now - self._last >= self.every:
                self._last = now
                self.line(event["event_time"])
            yield event

    def line(self, event_time: str = "") -> None:
        elapsed = max(self.clock() - self.started, 1e-9)
        pct = 100.0 * self.sent / self.total if self.total else 100.0
        at = f", event time {event_time}" if event_time else ""
        print(
            f"replay: {self.sent:,}/{self.total:,} events ({pct:.0f}%), "
            f"{self.sent / elapsed:,.0f} events/s{at}",
            file=self.out,
            flush=True,
        )


def replay(
    path: str,
    settings: Settings,
    site: str | None = None,
    speed: float | None = None,
    out: TextIO = sys.stderr,
) -> Counter:
    """Read the whole file, sort by event time, publish (delivery confirmed). Returns the count per
    event type. Raises the readers' ReadError / OSError and the publisher's BrokerUnavailable."""
    from schemas.readers import read_events
    from streams.publisher import Publisher, ensure_topics

    timed = in_event_time_order(read_events(path, site=site, keyer=settings.author_keyer))
    progress = Progress(len(timed), out)
    ensure_topics(settings)
    with Publisher(settings) as publisher:
        counts = publisher.publish(progress.track(paced(timed, speed)))
    progress.line()
    return counts
