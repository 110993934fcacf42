"""Copy the raw input records of one input generation into the topics of another that has more
partitions (docs/replay.md, "Growing the partition count").

The copy reads with self-assigned partitions (no consumer-group membership, so no rebalance) and
writes each record with its key, value, headers and timestamp and no partition, so kafka-python's
default partitioner puts it where a publisher would: murmur2(key) % the new count. Its read
positions are stored as a consumer group's committed offsets, and only once the broker confirmed
every record before them: a copy killed at any point resumes there and writes some records again,
never skips one (the engine drops a repeated event id)."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from typing import TextIO

from kafka import KafkaProducer
from kafka.errors import KafkaError

from schemas.errors import BlogpulseError
from schemas.topic_names import input_topics
from streams.group_offsets import admin_client, committed, lookup_consumer, partitions_of, pin
from streams.publisher import durable_producer
from streams.settings import Settings


class RepartitionError(BlogpulseError):
    """A copy that cannot start or go on; the message says why."""


def copy_group(app_id: str, target_generation: int) -> str:
    return f"{app_id}-repartition-g{target_generation}"


def partition_count(admin, topics) -> int | None:
    """The one partition count of these topics; None when none exists; an error when they differ."""
    counts: dict[str, int] = {}
    for tp in partitions_of(admin, topics):
        counts[tp.topic] = counts.get(tp.topic, 0) + 1
    if len(set(counts.values())) > 1:
        raise RepartitionError(f"the input topics have different partition counts: {counts}")
    return next(iter(counts.values()), None)


def copy(
    settings: Settings,
    target_generation: int,
    follow: bool = False,
    out: TextIO = sys.stderr,
    max_records: int = 5000,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Copy settings.input_generation's input topics into target_generation's, from the stored
    positions (the beginning at first). Without `follow`, stop once the end offsets as of the
    start are copied; with it, keep copying until should_stop() or SIGTERM/SIGINT. Returns the
    number of records written by this run."""
    source = input_topics(settings.input_generation)
    target = input_topics(target_generation)
    if target_generation == settings.input_generation:
        raise RepartitionError("the copy's source and target are the same input generation")
    names = {src: target[kind] for kind, src in source.items()}
    group = copy_group(settings.app_id, target_generation)
    admin, consumer = admin_client(settings, "blogpulse-repartition"), None
    stop = _stop_flag(should_stop)
    try:
        if partition_count(admin, target.values()) is None:
            raise RepartitionError(
                f"input generation {target_generation} has no topics: "
                f"`blogpulse reprocess start --partitions P` creates them"
            )
        parts = partitions_of(admin, source.values())
        consumer = lookup_consumer(settings, "blogpulse-repartition")
        consumer.assign(parts)
        stored = committed(admin, group)
        begin = consumer.beginning_offsets(parts)
        for tp in parts:
            consumer.seek(tp, max(stored.get(tp, 0), begin[tp]))
        ends = consumer.end_offsets(parts)
        producer = durable_producer(settings, "blogpulse-repartition")
        written, last_line = 0, time.monotonic()
        try:
            while not stop():
                if not follow and all(consumer.position(tp) >= ends[tp] for tp in parts):
                    break
                batch = consumer.poll(timeout_ms=500, max_records=max_records)
                if not batch:
                    continue
                written += _write(producer, batch, names)
                # Confirmed above: only now may the positions move past these records.
                pin(admin, group, {tp: consumer.position(tp) for tp in batch})
                if time.monotonic() - last_line >= 5:
                    last_line = time.monotonic()
                    left = sum(max(0, ends[tp] - consumer.position(tp)) for tp in parts)
                    print(
                        f"repartition: {written:,} records copied, {left:,} left of the start's "
                        f"end offsets",
                        file=out,
                        flush=True,
                    )
        finally:
            producer.close(timeout=10)
        return written
    finally:
        if consumer is not None:
            consumer.close()
        admin.close()


def _write(producer: KafkaProducer, batch: dict, names: dict[str, str]) -> int:
    futures = [
        producer.send(
            names[tp.topic],
            key=m.key,
            value=m.value,
            headers=list(m.headers or []),
            timestamp_ms=m.timestamp,
        )
        for tp, records in batch.items()
        for m in records
    ]
    producer.flush(timeout=60)
    try:
        for f in futures:
            f.get(timeout=60)
    except KafkaError as exc:
        raise RepartitionError(f"the broker did not confirm the copy ({exc})") from None
    return len(futures)


def _stop_flag(should_stop: Callable[[], bool] | None) -> Callable[[], bool]:
    """SIGTERM/SIGINT end the copy between batches (what is confirmed stays stored)."""
    asked: list[int] = []
    if should_stop is None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: asked.append(signum))
    return lambda: bool(asked) or bool(should_stop and should_stop())
