"""Broker side of the benchmark: publish (as fast as possible or at a fixed rate), read end offsets,
pin a fresh consumer group to given offsets, wait for a group to settle."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from bench.events import BenchEvent
from streams import group_offsets


def producer(broker: str, linger_ms: int = 5) -> KafkaProducer:
    # Default partitioner is murmur2 on the key, as the contract requires.
    return KafkaProducer(
        bootstrap_servers=broker,
        linger_ms=linger_ms,
        acks=1,
        batch_size=256 * 1024,
        max_in_flight_requests_per_connection=5,
    )


def publish(broker: str, events: Sequence[BenchEvent]) -> float:
    """Send every event as fast as the client goes; returns seconds until all were acknowledged."""
    p = producer(broker)
    start = time.monotonic()
    try:
        send = p.send
        for ev in events:
            send(ev.topic, key=ev.key, value=ev.value)
        p.flush()
    finally:
        p.close()
    return time.monotonic() - start


def publish_at_rate(
    broker: str, events: Sequence[BenchEvent], rate: float, tick: float = 0.01
) -> list[float]:
    """Send at `rate` events/s in small bursts every `tick` seconds; returns each event's send time
    (wall clock, time.time()) in the order of `events`."""
    p = producer(broker, linger_ms=0)
    sent_at: list[float] = []
    per_tick = max(1, round(rate * tick))
    start = time.monotonic()
    try:
        for i in range(0, len(events), per_tick):
            due = start + (i / rate)
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.time()
            for ev in events[i : i + per_tick]:
                p.send(ev.topic, key=ev.key, value=ev.value)
                sent_at.append(now)
        p.flush()
    finally:
        p.close()
    return sent_at


def end_offsets(broker: str, topics: Iterable[str]) -> dict[TopicPartition, int]:
    c = KafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False)
    try:
        tps = [
            TopicPartition(t, p) for t in topics for p in sorted(c.partitions_for_topic(t) or ())
        ]
        return dict(c.end_offsets(tps))
    finally:
        c.close()


def pin_group(broker: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit `offsets` for a consumer group that has no members yet, so a new worker starts there
    instead of at the beginning of the shared topics (history of earlier runs and tests)."""
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        group_offsets.pin(admin, group, offsets)
    finally:
        admin.close()


def wait_group_stable(broker: str, group: str, members: int, timeout: float = 120) -> float:
    """Wait until `group` is Stable with `members` members each holding an assignment; returns
    seconds waited."""
    admin = KafkaAdminClient(bootstrap_servers=broker)
    start = time.monotonic()
    try:
        while time.monotonic() - start < timeout:
            try:
                info = admin.describe_groups([group]).get(group)
            except Exception:  # coordinator not ready yet
                info = None
            if (
                info
                and info.get("group_state") == "Stable"
                and len(info.get("members") or ()) == members
            ):
                return time.monotonic() - start
            time.sleep(0.5)
    finally:
        admin.close()
    raise TimeoutError(
        f"consumer group {group} did not reach {members} stable members in {timeout:.0f}s"
    )


def _read(broker: str, topics: Sequence[str]):
    """Every record of `topics` (all partitions) from the beginning up to their current end."""
    c = KafkaConsumer(
        bootstrap_servers=broker,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    try:
        tps = [
            TopicPartition(t, p) for t in topics for p in sorted(c.partitions_for_topic(t) or ())
        ]
        todo = {tp: end for tp, end in c.end_offsets(tps).items() if end > 0}
        c.assign(list(todo))
        c.seek_to_beginning(*todo)
        while todo:
            for tp, records in c.poll(timeout_ms=1000, max_records=50_000).items():
                for r in records:
                    if r.offset < todo.get(tp, 0):
                        yield r
                if records and records[-1].offset + 1 >= todo.get(tp, 0):
                    todo.pop(tp, None)
            todo = {tp: end for tp, end in todo.items() if c.position(tp) < end}
    finally:
        c.close()


def topics_matching(broker: str, prefix: str, suffix: str = "") -> list[str]:
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        return sorted(t for t in admin.list_topics() if t.startswith(prefix) and t.endswith(suffix))
    finally:
        admin.close()


def topic_bytes(broker: str, prefix: str, suffix: str = "") -> dict:
    """Messages and key + value bytes of every topic named prefix...suffix (all partitions), read
    with a plain consumer: what a changelog costs the broker, before compaction."""
    topics = topics_matching(broker, prefix, suffix)
    messages = size = 0
    for r in _read(broker, topics):
        messages += 1
        size += max(r.serialized_key_size, 0) + max(r.serialized_value_size, 0)
    return {"topics": topics, "messages": messages, "bytes": size}


def message_count(broker: str, topics: Iterable[str]) -> int:
    """Messages in `topics` (end offsets; the topics are a run's own, so they start at 0)."""
    return sum(end_offsets(broker, topics).values())


def latest_values(broker: str, topic: str, key_prefix: str = "") -> dict[str, dict]:
    """The last JSON value per key (keys starting with key_prefix) of a topic."""
    import orjson

    out: dict[str, dict] = {}
    for r in _read(broker, [topic]):
        key = r.key.decode() if r.key else ""
        if key.startswith(key_prefix) and r.value is not None:
            out[key] = orjson.loads(r.value)
    return out


class PostProgressWatcher:
    """Reads engagement.posts from its current end in a thread and records, per post of `site`,
    when each entry count was first seen on the topic: the same probe as bench.db.progress, one
    stage earlier, so that a latency run can say how much of publish -> database is the worker
    (publish -> output topic) and how much the sink (output topic -> database)."""

    def __init__(self, broker: str, topic: str, site: str) -> None:
        import threading

        self.site = site.encode()
        self.reached: dict[int, list[float]] = {}
        self._consumer = KafkaConsumer(
            bootstrap_servers=broker, enable_auto_commit=False, fetch_max_wait_ms=20
        )
        tps = [TopicPartition(topic, p) for p in self._consumer.partitions_for_topic(topic) or ()]
        self._consumer.assign(tps)
        self._consumer.seek_to_end(*tps)
        for tp in tps:
            self._consumer.position(tp)  # resolve the end now, before anything is published
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import orjson

        prefix = self.site + b"/"
        while not self._stop.is_set():
            for records in self._consumer.poll(timeout_ms=50).values():
                now = time.time()
                for r in records:
                    if r.key is None or not r.key.startswith(prefix) or r.value is None:
                        continue
                    v = orjson.loads(r.value)
                    count = v["comments"] + v["replies"] + v["waiting_replies"]
                    seen = self.reached.setdefault(int(v["post_id"]), [])
                    while len(seen) < count:
                        seen.append(now)

    def stop(self) -> dict[int, list[float]]:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()
        return self.reached
