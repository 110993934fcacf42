"""streams/kafka_batches.py: records go out in aiokafka record batches per topic partition, and
every batch is closed when handed over, which is what makes aiokafka send it without waiting for
the producer's linger time (checked on aiokafka's own batch classes)."""

from __future__ import annotations

import asyncio

from aiokafka.producer.message_accumulator import BatchBuilder, MessageBatch
from aiokafka.structs import RecordMetadata, TopicPartition

from streams.kafka_batches import BatchSender


class Producer:
    """aiokafka's create_batch/send_batch surface, with its real batch classes."""

    def __init__(self, batch_size: int = 16 * 1024) -> None:
        self.batch_size = batch_size
        self.sent: list[tuple[str, int, int, float | None]] = []
        self.ends: dict[tuple[str, int], int] = {}

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0)

    async def send_batch(self, batch, topic, *, partition):
        queued = MessageBatch(TopicPartition(topic, partition), batch, ttl=30, linger_time=10.0)
        self.sent.append((topic, partition, batch.record_count(), queued.remaining_linger()))
        base = self.ends.get((topic, partition), 0)  # the log's end: this batch's base offset
        self.ends[(topic, partition)] = base + batch.record_count()
        fut = asyncio.get_running_loop().create_future()
        tp = TopicPartition(topic, partition)
        fut.set_result(RecordMetadata(topic, partition, tp, base, None, 0, 0))
        return fut


def test_batches_per_partition_are_closed_so_they_do_not_linger():
    sender = BatchSender()
    for i in range(5):
        sender.add("engagement.posts", i % 2, f"k{i}".encode(), b"{}")
    producer = Producer()
    futures = asyncio.run(sender.send(producer))
    assert len(futures) == 2 and sender.count == 0
    assert sorted(producer.sent) == [
        ("engagement.posts", 0, 3, None),
        ("engagement.posts", 1, 2, None),
    ]


def test_a_full_batch_is_split_and_every_part_is_closed():
    sender = BatchSender()
    for i in range(50):
        sender.add("post-entries-changelog", 3, f"key-{i}".encode(), b"x" * 100)
    producer = Producer(batch_size=1024)
    asyncio.run(sender.send(producer))
    assert len(producer.sent) > 1
    assert sum(n for _, _, n, _ in producer.sent) == 50
    assert all(linger is None for *_, linger in producer.sent)


def test_delivered_says_the_offset_after_the_last_record_of_each_partition():
    """What the RocksDB store's checkpoint is made of, also when split by partition (exactly
    once: one transaction each)."""
    producer = Producer(batch_size=1024)

    async def send_twice():
        first = BatchSender()
        for i in range(30):
            first.add("changelog", i % 2, f"key-{i}".encode(), b"x" * 100)
        await asyncio.gather(*await first.send(producer))
        second = BatchSender()
        for i in range(7):
            second.add("changelog", 0, f"key-{i}".encode(), b"x")
        second.add("outputs", 1, b"k", b"v")
        for part in second.by_partition().values():
            await asyncio.gather(*await part.send(producer))
        return first.delivered, second.delivered

    first, second = asyncio.run(send_twice())
    assert len(producer.sent) > 2  # split into several batches
    assert first == {("changelog", 0): 15, ("changelog", 1): 15}
    assert second == {("changelog", 0): 22, ("outputs", 1): 1}


def test_an_open_batch_would_linger():
    """The property the sender relies on, shown the other way round."""

    async def linger():
        builder = BatchBuilder(1024, 0)
        builder.append(key=b"k", value=b"v", timestamp=None)
        return MessageBatch(
            TopicPartition("t", 0), builder, ttl=30, linger_time=10.0
        ).remaining_linger()

    assert asyncio.run(linger()) is not None
