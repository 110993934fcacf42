"""Reading back what a test published: remember the end offsets first, then read from there and keep
only the test's own site, so tests sharing the real broker never see each other's events."""

from __future__ import annotations

import socket
import time

import orjson
from kafka import KafkaConsumer, TopicPartition

from schemas.topic_names import INPUT_TOPICS

TOPICS = tuple(INPUT_TOPICS.values())


class Readback:
    def __init__(self, broker: str, topics=TOPICS) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=broker.split(","),
            enable_auto_commit=False,
            group_id=None,
            consumer_timeout_ms=500,
        )
        parts = [
            TopicPartition(t, p)
            for t in topics
            for p in self.consumer.partitions_for_topic(t) or ()
        ]
        self.consumer.assign(parts)
        for tp, offset in self.consumer.end_offsets(parts).items():
            self.consumer.seek(tp, offset)

    def read(
        self, site: str, until: int, timeout: float = 20.0, settle: float = 1.0
    ) -> list[tuple[str, dict]]:
        """(topic, event) of `site`, waiting until `until` arrived, then `settle` s more for extras."""
        out: list[tuple[str, dict]] = []
        deadline, settle_end = time.time() + timeout, None
        while time.time() < deadline:
            for msg in self.consumer.poll(timeout_ms=300).values():
                for record in msg:
                    event = orjson.loads(record.value)
                    if event.get("site") == site:
                        out.append((record.topic, event, record.value))
            if len(out) >= until and settle_end is None:
                settle_end = time.time() + settle
            if settle_end is not None and time.time() >= settle_end:
                break
        return out

    def close(self) -> None:
        self.consumer.close()


def free_port() -> int:
    """A loopback port nothing listens on (for the broker-down case)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
