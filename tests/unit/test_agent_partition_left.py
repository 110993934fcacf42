"""A flush under exactly_once during which one partition left the worker (streams/agents.py
flush, streams/transactions.py): that partition's events stay unacknowledged, its state is
dropped (loaded again from the changelog if it comes back), its aggregates and dead letters are
not counted; the other partition's flush completes. The transactions are replaced by a recorder
that reports one partition as gone (the real ones: tests/faults, exactly_once)."""

from __future__ import annotations

import time

import orjson

from streams import agents, metrics, transactions
from tests.unit.test_agents_aggregate import event, outputs  # noqa: F401 - the fixture

SITE = "unit.example"


def _two_posts_on_two_partitions():
    keys = {}
    post_id = 1
    while len(keys) < 2:
        key = f"{SITE}/{post_id}"
        keys.setdefault(agents.store.partition_of(key), (key, post_id))
        post_id += 1
    return sorted(keys.items())


class _Message:
    def __init__(self, key, partition, offset):
        self.topic, self.partition, self.offset = "blog.comments", partition, offset
        self.key, self.timestamp, self.refs = key.encode(), time.time(), 0

    def incref(self):
        self.refs += 1


class _Event:
    def __init__(self, value, message):
        self.value, self.message, self.acked = value, message, False

    def ack(self):
        self.acked = True


def _emitted():
    return sum(
        s.value
        for metric in metrics.AGGREGATES_EMITTED.collect()
        for s in metric.samples
        if s.name.endswith("_total")
    )


async def test_the_partition_that_left_is_dropped_and_the_other_is_written(outputs, monkeypatch):  # noqa: F811
    (gone, (gone_key, gone_post)), (kept, (kept_key, kept_post)) = _two_posts_on_two_partitions()
    committed = {}

    async def commit(app, tick_topic, records, events):
        committed["records"] = records.by_partition()
        # the kept partition's transaction delivered its records (the RocksDB store keeps them)
        for topic, partition in list(committed["records"][kept]._records):
            records.delivered[(topic, partition)] = 1
        return {gone}

    monkeypatch.setattr(agents, "EXACTLY_ONCE", True)
    monkeypatch.setattr(transactions, "commit", commit)
    events = [
        _Event(orjson.dumps(event(1, post_id=gone_post)), _Message(gone_key, gone, 10)),
        _Event(b"{bad", _Message(gone_key, gone, 11)),  # a dead letter of the partition that left
        _Event(orjson.dumps(event(1, post_id=kept_post)), _Message(kept_key, kept, 20)),
    ]
    agents.pending.hold(events)
    await agents.process_batch(events)
    assert {gone, kept} <= agents.store.loaded
    before = _emitted()

    written = await agents.flush()

    # both partitions' records went to their transactions; only the kept one's committed
    assert set(committed["records"]) == {gone, kept}
    assert [e.acked for e in events] == [False, False, True]
    assert gone not in agents.store.loaded and kept in agents.store.loaded
    assert gone_key not in agents.store.states and kept_key in agents.store.states
    outputs_of = {
        p: sum(len(v) for (t, _), v in records.take().items() if t in agents.OUTPUT_TOPICS.values())
        for p, records in committed["records"].items()
    }
    assert outputs_of[gone] > 0 and outputs_of[kept] > 0
    assert written == _emitted() - before == outputs_of[kept]  # the gone one's are not counted
    assert not agents.pending  # nothing of the gone partition is held for a later flush
    assert dict(agents.pending.dead_reasons) == {}
