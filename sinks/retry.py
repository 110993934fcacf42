"""The retrying database writer: a batch is written, or retried until it is. Never skipped, so the
Kafka offsets behind it (committed by faust only after the batch) never pass unwritten data."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from schemas.errors import BlogpulseError
from sinks import metrics
from sinks.upsert import Batch, WriteResult, write

log = logging.getLogger(__name__)

BACKOFF_START = 0.1
BACKOFF_CAP = 5.0


class WriterStopped(BlogpulseError):
    """stop() was called while a batch was still waiting for the database."""


class RetryingWriter:
    """write(batch) blocks until the batch is committed: exponential backoff (BACKOFF_START
    doubling up to BACKOFF_CAP seconds) on database errors, forever, until stop(). Keeps
    blogpulse_sink_up and the error/rows/duration metrics; logs an outage once and its end once."""

    def __init__(
        self,
        engine: Engine,
        *,
        backoff_start: float = BACKOFF_START,
        backoff_cap: float = BACKOFF_CAP,
        clock: Callable[[], float] = time.monotonic,
        generation: int = 1,
    ) -> None:
        self.engine = engine
        self.generation = generation  # whose tables the batches go to (sinks/generations.py)
        self.backoff_start = backoff_start
        self.backoff_cap = backoff_cap
        self._clock = clock
        self._stopping = threading.Event()
        self._down_since: float | None = None
        self.failures = 0  # failed attempts since start (tests and logs)
        self._url = engine.url.render_as_string(hide_password=True)
        metrics.SINK_UP.set(1)

    @property
    def down(self) -> bool:
        return self._down_since is not None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        self._stopping.set()

    def write(self, batch: Batch) -> WriteResult:
        delay = self.backoff_start
        while True:
            if self._stopping.is_set():
                raise WriterStopped("sink stopping before the batch reached the database")
            t0 = time.perf_counter()
            try:
                result = write(self.engine, batch, self.generation)
            except SQLAlchemyError as exc:
                # Any database error: a batch is never dropped. A permanent fault (a schema not
                # migrated, say) keeps the sink down and visible in metrics and logs until fixed.
                self._failed(exc)
                self._stopping.wait(delay)
                delay = min(delay * 2, self.backoff_cap)
                continue
            self._succeeded(result, time.perf_counter() - t0)
            return result

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        metrics.SINK_ERRORS.labels(kind="database").inc()
        metrics.SINK_UP.set(0)
        if self._down_since is None:
            self._down_since = self._clock()
            # The exception text may carry the URL; its class and first line are enough, and the
            # masked URL says which database.
            text = str(getattr(exc, "orig", None) or exc)
            reason = text.splitlines()[0][:300] if text else ""
            log.error(
                "sink: database %s unavailable (%s: %s); retrying with backoff up to %.0fs, "
                "holding the Kafka position",
                self._url,
                type(exc).__name__,
                _scrub(reason, self.engine),
                self.backoff_cap,
            )

    def _succeeded(self, result: WriteResult, seconds: float) -> None:
        metrics.SINK_UP.set(1)
        if self._down_since is not None:
            log.warning(
                "sink: database %s is back after %.1fs (%d failed attempts); resuming",
                self._url,
                self._clock() - self._down_since,
                self.failures,
            )
            self._down_since = None
        metrics.BATCH_SIZE.observe(result.rows)
        metrics.BATCH_SECONDS.observe(seconds)
        for counts in (result.upserted, result.deleted):
            for table, n in counts.items():
                metrics.ROWS_WRITTEN.labels(table=table).inc(n)


def _scrub(text: str, engine: Engine) -> str:
    """Remove the password from a driver message, should the driver echo it."""
    password = engine.url.password
    return text.replace(str(password), "***") if password else text
