"""The database sink: a faust agent on engagement.posts, engagement.threads and engagement.windows.

Per batch (streams/batching.py: up to BLOGPULSE_SINK_BATCH events or BLOGPULSE_SINK_FLUSH_SECONDS):
decode, collapse to the newest version per key, write in one transaction on a worker thread (the
event loop keeps serving the other agents), then let the batch's offsets be committed: the events
are released only after the database commit, so an interrupted batch stays unacked and is read
again after a restart.

Database outage: the RetryingWriter retries the same batch with backoff until it is written, so
the stream holds its position (faust pauses fetching while the stream's buffer is full)."""
from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from sinks import metrics
from sinks.db import make_engine, masked, missing_tables
from sinks.retry import RetryingWriter
from sinks.upsert import KIND_OF_TOPIC, InvalidAggregate, Message, collapse
from streams.app import app
from streams.batching import processed_batches
from streams.config import OUTPUT_TOPICS, settings

log = logging.getLogger(__name__)


def _env_number(name: str, default: str, cast, minimum) -> Any:
    raw = os.environ.get(name, "").strip() or default
    try:
        value = cast(raw)
    except ValueError:
        raise SystemExit(f"{name}: expected a number, got {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"{name}: must be at least {minimum}, got {raw!r}")
    return value


SINK_BATCH = _env_number("BLOGPULSE_SINK_BATCH", "500", int, 1)
SINK_FLUSH_SECONDS = _env_number("BLOGPULSE_SINK_FLUSH_SECONDS", "0.5", float, 0.001)

sink_topic = app.topic(
    *OUTPUT_TOPICS.values(), key_type=bytes, value_type=bytes,
    partitions=settings().partitions, compacting=True,
)

# One thread: batches are written in the order they were read (per-key order is kept).
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blogpulse-sink")
_writer: RetryingWriter | None = None


def writer() -> RetryingWriter:
    global _writer
    if _writer is None:
        s = settings()
        _writer = RetryingWriter(make_engine(s.db_url), generation=s.generation)
    return _writer


def decode(topic: str, key: bytes | None, raw: bytes | None) -> Message:
    """(kind, key, value dict) of one output message; InvalidAggregate if it is not JSON."""
    kind = KIND_OF_TOPIC.get(topic, topic)
    try:
        value = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError as exc:
        raise InvalidAggregate(kind, "value", f"not JSON ({exc})") from None
    text_key = key.decode("utf-8", "replace") if key is not None else None
    return kind, text_key, value


def _skip_invalid(message: Message, exc: InvalidAggregate) -> None:
    # Our engine cannot produce such a message (it renders every value from typed fields); one
    # here was written by something else. Skipping it loses nothing the engine emitted, and
    # blocking the whole sink on it would.
    metrics.SINK_ERRORS.labels(kind="invalid").inc()
    log.error("sink: skipping an output message that cannot be stored: key %r: %s",
              message[1], exc)


def _check_schema(w: RetryingWriter) -> None:
    try:
        missing = missing_tables(w.engine)
    except Exception:  # database down: the writer reports it with its retries
        return
    if missing:
        log.error("sink: tables %s missing in %s: run `blogpulse db upgrade`",
                  ", ".join(missing), masked(w.engine.url.render_as_string(hide_password=False)))


@app.agent(sink_topic, name="blogpulse.sink")
async def sink(stream) -> None:
    loop = asyncio.get_running_loop()
    w = writer()
    await loop.run_in_executor(_executor, _check_schema, w)
    async for events in processed_batches(stream, SINK_BATCH, SINK_FLUSH_SECONDS):
        messages = []
        for event in events:
            try:
                messages.append(decode(event.message.topic, event.message.key, event.value))
            except InvalidAggregate as exc:
                _skip_invalid((KIND_OF_TOPIC.get(event.message.topic, ""), event.message.key,
                               None), exc)
        batch = collapse(messages, on_invalid=_skip_invalid)
        if len(batch):
            await loop.run_in_executor(_executor, w.write, batch)


@app.on_before_shutdown.connect
async def _stop_writer(app_: Any, **kwargs: Any) -> None:
    # Lets a write that is waiting for the database give up: its batch stays unacked.
    if _writer is not None:
        _writer.stop()
