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

A partition can leave this worker while its transaction runs (a rebalance; its producer fenced by
the partition's next owner, or stopped). Then the transaction is aborted where it still can be
(a fenced one was aborted by the broker when the next owner's producer started), and commit()
reports the partition instead of raising: the agent drops that partition's pending work and
state (its events were never acknowledged, and their offsets are not committed, so the next
owner reads them again from the committed offsets) and goes on with the others. A failure on a
partition this worker still owns, outside a rebalance, raises as before: the worker stops and
its partitions are processed again from the committed offsets.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import ProducerFenced
from faust.types import TP

from schemas.errors import BlogpulseError
from streams.faust_compat import (
    NoTransaction,
    current_transaction_producer,
    in_transaction,
    producer_closed,
    transaction_producer,
)
from streams.kafka_batches import BatchSender

log = logging.getLogger(__name__)

# How long an abort of a left partition's transaction may take (the broker aborts it anyway when
# the partition's next producer starts, or at the transaction timeout).
ABORT_TIMEOUT = 10.0


class PartitionLeft(BlogpulseError, RuntimeError):  # noqa: N818 - an outcome, not a failure
    """The partition left this worker while its transaction ran: not committed, aborted (never
    raised out of commit(), which reports the partition)."""

    def __init__(self, partition: int) -> None:
        super().__init__(f"partition {partition} left this worker during its transaction")
        self.partition = partition


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


async def commit(
    app: Any, tick_topic: str, records: BatchSender, events: Iterable[Any]
) -> set[int]:
    """One transaction per input partition with its records and offsets (the partitions'
    transactions run side by side: each has its own producer). `tick_topic`: the worker's tick
    topic (of its input generation), an input every worker is assigned. Returns the partitions
    that left this worker meanwhile (module doc): their transactions were not committed; every
    other partition's was. Raises on any other failure."""
    offsets = next_offsets(events)
    parts = records.by_partition()
    partitions = sorted(parts.keys() | offsets.keys())
    results = await asyncio.gather(
        *(
            _commit_partition(app, tick_topic, p, parts.get(p), offsets.get(p, {}))
            for p in partitions
        ),
        return_exceptions=True,
    )
    left: set[int] = set()
    for result in results:
        if isinstance(result, PartitionLeft):
            left.add(result.partition)
        elif isinstance(result, BaseException):
            raise result
    if left:
        log.warning(
            "partitions %s left this worker during a flush: their transactions are aborted and "
            "their events left to the next owner",
            sorted(left),
        )
    return left


async def _commit_partition(
    app: Any,
    tick_topic: str,
    partition: int,
    records: BatchSender | None,
    offsets: dict[TopicPartition, int],
) -> None:
    # the tick topic is read by the agent, so its partitions map to the same transactional ids
    try:
        lock, producer = transaction_producer(app, tick_topic, partition)
    except NoTransaction:
        if left(app, tick_topic, partition, None):
            raise PartitionLeft(partition) from None
        raise
    async with lock:
        try:
            current: Any = current_transaction_producer(app, tick_topic, partition)
            if current is not producer:
                raise NoTransaction(f"the producer of partition {partition} was stopped")
            if not in_transaction(producer):  # faust begins one at assignment; we after a commit
                await producer.begin_transaction()
            if records is not None and records.count:
                await asyncio.gather(*await records.send(producer))
            if offsets:
                await producer.send_offsets_to_transaction(offsets, app.conf.id)
            await producer.commit_transaction()
        except Exception as exc:
            if not left(app, tick_topic, partition, producer):
                raise
            await _abort(producer, partition, exc)
            raise PartitionLeft(partition) from exc


def left(app: Any, tick_topic: str, partition: int, producer: Any | None) -> bool:
    """Whether `partition` has left this worker (or is being moved): a rebalance is under way, the
    partition is not assigned here, or faust no longer holds `producer` for it (stopped when the
    partition was revoked, and maybe replaced since). Never true for a partition this worker owns
    outside a rebalance, with its producer in place: a failure there is a real one."""
    if app.rebalancing or TP(tick_topic, partition) not in app.consumer.assignment():
        return True
    return (
        producer is not None
        and current_transaction_producer(app, tick_topic, partition) is not producer
    )


async def _abort(producer: Any, partition: int, cause: BaseException) -> None:
    """Abort what can be aborted: not a stopped producer (the abort would never end) and not a
    fenced one (the broker aborted its transaction when the next owner's producer started)."""
    if producer_closed(producer) or isinstance(cause, ProducerFenced):
        return
    try:
        await asyncio.wait_for(producer.abort_transaction(), ABORT_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - best effort: the broker aborts it in any case
        log.info("abort of partition %d's transaction failed: %r", partition, exc)
