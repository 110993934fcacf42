"""What a read_committed reader of the output topics sees after a run, against a
read_uncommitted one: the records of aborted transactions (offsets the committed reader skips;
transaction markers are skipped by both), and repeats, a committed record whose content (all
but the version) equals the key's previous committed record. A flush emits an aggregate only
when it changed, so a repeat is an emission done twice: a flush whose effects were written but
whose offsets were not (at_least_once after a crash: the refresh after a load, or the replay).
Under exactly_once there must be none."""

from __future__ import annotations

from typing import Any

import orjson

from schemas.topic_names import BASE_OUTPUT_TOPICS


def read(broker: str, isolation_level: str) -> dict[tuple[str, int, int], tuple[bytes, Any]]:
    """Every record of the output topics: (topic, partition, offset) -> (key, value)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=broker.split(","),
        enable_auto_commit=False,
        isolation_level=isolation_level,
        consumer_timeout_ms=3000,
    )
    try:
        tps = [
            TopicPartition(t, p)
            for t in BASE_OUTPUT_TOPICS.values()
            for p in consumer.partitions_for_topic(t) or ()
        ]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)  # read_committed: the last stable offsets
        out = {}
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, records in consumer.poll(timeout_ms=2000, max_records=50_000).items():
                for r in records:
                    out[(tp.topic, tp.partition, r.offset)] = (r.key, r.value)
        return out
    finally:
        consumer.close()


def repeats(committed: dict[tuple[str, int, int], tuple[bytes, Any]]) -> list[tuple[str, bytes]]:
    """(topic, key) of each committed record equal to the key's previous one but for the version."""
    last: dict[tuple[str, bytes], dict] = {}
    found = []
    for (topic, _p, _o), (key, raw) in sorted(committed.items()):
        value = orjson.loads(raw)
        value.pop("version", None)
        if last.get((topic, key)) == value:
            found.append((topic, key))
        last[(topic, key)] = value
    return found


def check(broker: str) -> dict[str, int]:
    """Figures for the fault record: committed output records, aborted ones, repeats."""
    committed = read(broker, "read_committed")
    everything = read(broker, "read_uncommitted")
    assert committed.keys() <= everything.keys()
    return {
        "outputs_committed": len(committed),
        "outputs_aborted": len(everything.keys() - committed.keys()),
        "outputs_repeated": len(repeats(committed)),
    }
