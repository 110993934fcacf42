"""Exactly-once flushes (BLOGPULSE_PROCESSING_GUARANTEE=exactly_once).

Under exactly_once faust starts one transactional producer per input partition when the
partition is assigned (its transactional id names the app and the partition, so a new owner
fences the old one and the broker aborts whatever the old one left open). A flush then commits,
per input partition, one Kafka transaction holding that partition's changelog records, output
records and dead letters, and the consumer offsets just past the flush's events of that
partition: either all of it is visible to read_committed readers (the sink, the next owner's
state load) or none of it, and the events are read again. So the changelog-before-outputs order
and the refresh after a load (streams/agents.py) are not needed here. faust's own offset commit
writes nothing meanwhile (streams/faust_compat.py, patch 7).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition

from streams.faust_compat import in_transaction, transaction_producer
from streams.kafka_batches import BatchSender


def next_offsets(events: Iterable[Any]) -> dict[int, dict[TopicPartition, int]]:
    """Per partition number, the offset to commit for each topic partition: one past the newest
    of the events (a partition's events reach the agent in order, and the agent holds every one
    it got until the flush)."""
    offsets: dict[int, dict[TopicPartition, int]] = defaultdict(dict)
    for event in events:
        msg = event.message
        tp = TopicPartition(msg.topic, msg.partition)
        mine = offsets[msg.partition]
        mine[tp] = max(mine.get(tp, 0), msg.offset + 1)
    return offsets


async def commit(app: Any, tick_topic: str, records: BatchSender, events: Iterable[Any]) -> None:
    """One transaction per input partition with its records and offsets, all committed (the
    partitions' transactions run side by side: each has its own producer). `tick_topic`: the
    worker's tick topic (of its input generation), an input every worker is assigned."""
    offsets = next_offsets(events)
    parts = records.by_partition()
    await asyncio.gather(
        *(
            _commit_partition(app, tick_topic, p, parts.get(p), offsets.get(p, {}))
            for p in sorted(parts.keys() | offsets.keys())
        )
    )


async def _commit_partition(
    app: Any,
    tick_topic: str,
    partition: int,
    records: BatchSender | None,
    offsets: dict[TopicPartition, int],
) -> None:
    # the tick topic is read by the agent, so its partitions map to the same transactional ids
    lock, producer = transaction_producer(app, tick_topic, partition)
    async with lock:
        if not in_transaction(producer):  # faust begins one at assignment; we after a commit
            await producer.begin_transaction()
        if records is not None and records.count:
            await asyncio.gather(*await records.send(producer))
        if offsets:
            await producer.send_offsets_to_transaction(offsets, app.conf.id)
        await producer.commit_transaction()
