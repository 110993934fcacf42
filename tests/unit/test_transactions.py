"""streams/transactions.py's offsets and the split of a flush's records by partition (the
transactions themselves run against real brokers: tests/faults, exactly_once)."""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka import TopicPartition

from streams.kafka_batches import BatchSender
from streams.transactions import next_offsets


def _event(topic, partition, offset):
    return SimpleNamespace(message=SimpleNamespace(topic=topic, partition=partition, offset=offset))


def test_next_offsets_are_one_past_the_newest_event_per_topic_partition():
    events = [_event("a", 0, 5), _event("a", 0, 9), _event("b", 0, 2), _event("a", 1, 0)]
    assert next_offsets(events) == {
        0: {TopicPartition("a", 0): 10, TopicPartition("b", 0): 3},
        1: {TopicPartition("a", 1): 1},
    }


def test_records_split_by_partition_keep_topic_order_and_headers():
    records = BatchSender()
    records.add("log", 0, b"k1", b"v1")
    records.add("out", 1, b"k2", b"v2", 7)
    dead = BatchSender()
    dead.add("dlq", 0, b"k3", b"v3", headers=[("h", b"x")])
    records.extend(dead)
    assert dead.count == 0 and records.count == 3
    parts = records.by_partition()
    assert records.count == 0 and sorted(parts) == [0, 1]
    assert parts[0].take() == {
        ("log", 0): [(b"k1", b"v1", None, [])],
        ("dlq", 0): [(b"k3", b"v3", None, [("h", b"x")])],
    }
    assert parts[1].count == 1
