"""The ceiling: a plain aiokafka consumer (the client faust runs on) reading the benchmark's events
and decoding each value with orjson, nothing else."""

from __future__ import annotations

import asyncio
import time

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition as AioTP
from kafka import TopicPartition


async def _consume(
    broker: str, start: dict[TopicPartition, int], end: dict[TopicPartition, int], timeout: float
) -> tuple[int, float]:
    todo = {AioTP(tp.topic, tp.partition): end[tp] for tp in start if end[tp] > start[tp]}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker,
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        consumer.assign(list(todo))
        for tp in todo:
            consumer.seek(tp, start[TopicPartition(tp.topic, tp.partition)])
        count = 0
        loads = orjson.loads
        began = time.monotonic()
        while todo and time.monotonic() - began < timeout:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, records in batches.items():
                stop = todo.get(tp)
                if stop is None:
                    continue
                for record in records:
                    if record.offset >= stop:  # later runs' events share the partition
                        break
                    loads(record.value)
                    count += 1
                if records and records[-1].offset + 1 >= stop:
                    todo.pop(tp, None)
                    consumer.pause(tp)
        return count, time.monotonic() - began
    finally:
        await consumer.stop()


def measure(
    broker: str,
    start: dict[TopicPartition, int],
    end: dict[TopicPartition, int],
    timeout: float = 300,
) -> dict:
    """Read every record between start and end offsets; events/s over the read."""
    count, seconds = asyncio.run(_consume(broker, start, end, timeout))
    return {
        "events": count,
        "seconds": round(seconds, 3),
        "events_per_s": round(count / seconds, 1) if seconds else None,
    }
