"""Confirmed delivery from asyncio code through streams.publisher.Publisher (kafka-python).

kafka-python is blocking, so sends run in a thread; the broker's acknowledgement is awaited through
the send futures' callbacks instead of Publisher.publish()'s flush(), so concurrent requests share
the producer's batches (linger_ms) rather than each flushing everything. The producer is created
on first use and recreated after a broker failure, so the endpoint starts and answers 503 while the
broker is down and recovers by itself when it is back."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

from kafka.errors import KafkaError

from streams.publisher import BrokerUnavailable, Publisher
from streams.settings import Settings

log = logging.getLogger("blogpulse.ingest")

# Bounded waits: a request must fail fast (503) rather than hang while the broker is away.
PRODUCER_TIMEOUTS = {
    "bootstrap_timeout_ms": 5000,  # first connection (kafka-python's default is 30 s)
    "max_block_ms": 5000,  # send() waiting for metadata / buffer space
    "request_timeout_ms": 5000,
    "delivery_timeout_ms": 15000,  # acknowledgement of one batch, retries included
}


class AsyncPublisher:
    """publish(events) returns once the broker acknowledged every event, else BrokerUnavailable."""

    def __init__(self, settings: Settings, timeout: float = 20.0, **producer_config: Any) -> None:
        self.settings = settings
        self.timeout = timeout
        self._config = {**PRODUCER_TIMEOUTS, **producer_config}
        self._publisher: Publisher | None = None
        self._lock = threading.Lock()

    @property
    def input_topics(self) -> dict[str, str]:
        """Event type -> the input topic its events go to (the settings' input generation)."""
        return self.settings.input_topics

    def _get(self) -> Publisher:
        with self._lock:
            if self._publisher is None:
                self._publisher = Publisher(self.settings, **self._config)
            return self._publisher

    def _discard(self, publisher: Publisher) -> None:
        with self._lock:
            if self._publisher is publisher:
                self._publisher = None
        try:
            publisher._producer.close(timeout=0)  # pending sends fail; nothing to wait for
        except Exception:  # noqa: BLE001 - closing a broken producer must not mask the real error
            log.debug("closing a failed producer raised", exc_info=True)

    def _send_all(self, events: list[dict[str, Any]], loop: asyncio.AbstractEventLoop):
        publisher = self._get()
        waiters = []
        try:
            for event in events:
                waiter = loop.create_future()
                kafka_future = publisher.send(event)
                kafka_future.add_both(_resolve_in(loop, waiter))
                waiters.append(waiter)
        except KafkaError as exc:
            for w in waiters:
                loop.call_soon_threadsafe(_cancel_quietly, w)
            self._discard(publisher)
            raise BrokerUnavailable(f"the broker did not accept the events ({exc})") from None
        return publisher, waiters

    async def publish(self, events: Iterable[dict[str, Any]]) -> Counter:
        events = list(events)
        counts: Counter = Counter(e["type"] for e in events)
        if not events:
            return counts
        loop = asyncio.get_running_loop()
        publisher, waiters = await loop.run_in_executor(None, self._send_all, events, loop)
        try:
            results = await asyncio.wait_for(asyncio.gather(*waiters), self.timeout)
        except TimeoutError:
            self._discard(publisher)
            raise BrokerUnavailable(f"no acknowledgement within {self.timeout:.0f} s") from None
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await loop.run_in_executor(None, self._discard, publisher)
            raise BrokerUnavailable(f"the broker did not confirm delivery ({failed[0]})")
        return counts

    async def close(self) -> None:
        with self._lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await asyncio.get_running_loop().run_in_executor(None, publisher.close)


def _resolve_in(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future):
    """kafka-python calls back from its I/O thread: hand the outcome to the event loop."""

    def done(value: Any) -> None:
        # A failure is delivered as a value so gather() waits for all and we can report the first.
        try:
            loop.call_soon_threadsafe(_set_quietly, waiter, value)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    return done


def _set_quietly(waiter: asyncio.Future, value: Any) -> None:
    if not waiter.done():
        waiter.set_result(value)


def _cancel_quietly(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.cancel()
