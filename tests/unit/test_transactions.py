"""streams/transactions.py's offsets and the split of a flush's records by partition (the
transactions themselves run against real brokers: tests/faults, exactly_once), and which failures
of a partition's transaction report the partition as gone (fakes of faust's app and aiokafka's
producer: the rebalance itself is tests/faults/test_faults.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from faust.types import TP

from streams.faust_compat import NoTransaction
from streams.kafka_batches import BatchSender
from streams.transactions import commit, next_offsets


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


class _Producer:
    """Stands in for a transactional AIOKafkaProducer: records what the transaction did; `fail`
    is raised by commit_transaction."""

    def __init__(self, fail=None):
        self.fail, self.calls, self._closed = fail, [], False
        self._txn_manager = SimpleNamespace(is_in_transaction=lambda: "begin" in self.calls)

    async def begin_transaction(self):
        self.calls.append("begin")

    async def send_offsets_to_transaction(self, offsets, group_id):
        self.calls.append(("offsets", dict(offsets)))

    async def commit_transaction(self):
        if self.fail is not None:
            raise self.fail
        self.calls.append("commit")

    async def abort_transaction(self):
        self.calls.append("abort")


def _app(producers, *, rebalancing=False, assigned=(0, 1)):
    tids = {f"app-1-{p}": producer for p, producer in producers.items()}
    return SimpleNamespace(
        conf=SimpleNamespace(id="app"),
        assignor=SimpleNamespace(group_for_topic=lambda topic: 1),
        producer=SimpleNamespace(
            _transaction_producers=tids, _trn_locks={t: asyncio.Lock() for t in tids}
        ),
        rebalancing=rebalancing,
        consumer=SimpleNamespace(assignment=lambda: {TP("ticks", p) for p in assigned}),
    )


def _events():
    return [_event("in", 0, 4), _event("in", 1, 8)]


async def test_a_partition_fenced_during_a_rebalance_is_reported_and_the_others_commit():
    fenced = _Producer(ProducerFenced())
    ok = _Producer()
    left = await commit(
        _app({0: ok, 1: fenced}, rebalancing=True), "ticks", BatchSender(), _events()
    )
    assert left == {1}
    assert ok.calls == ["begin", ("offsets", {TopicPartition("in", 0): 5}), "commit"]
    assert "abort" not in fenced.calls  # the broker aborted it when the next producer started


async def test_a_failure_on_a_partition_that_moved_away_aborts_its_transaction():
    failing = _Producer(KafkaError("coordinator went away"))
    app = _app({0: _Producer(), 1: failing}, assigned=(0,))
    assert await commit(app, "ticks", BatchSender(), _events()) == {1}
    assert failing.calls[-1] == "abort"


async def test_a_partition_whose_producer_faust_stopped_is_reported():
    app = _app({0: _Producer()}, assigned=(0,))  # partition 1: revoked, its producer stopped
    assert await commit(app, "ticks", BatchSender(), _events()) == {1}


async def test_a_failure_on_a_partition_still_owned_outside_a_rebalance_raises():
    with pytest.raises(ProducerFenced):  # another producer took our id: the worker stops
        await commit(
            _app({0: _Producer(), 1: _Producer(ProducerFenced())}),
            "ticks",
            BatchSender(),
            _events(),
        )
    with pytest.raises(NoTransaction):  # owned, but faust holds no producer for it
        await commit(_app({0: _Producer()}), "ticks", BatchSender(), _events())
