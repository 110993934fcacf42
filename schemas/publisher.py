"""Publishing events to Kafka with kafka-python: topic creation and a confirmed, idempotent producer.

Every event of a post is keyed "<site>/<post_id>", so with the same partition count on every input
topic (and the default murmur2 partitioner) a post's events share one partition number everywhere."""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from schemas.wire import encode_event
from streams.config import DLQ_TOPIC, INPUT_TOPICS, OUTPUT_TOPICS, TICK_TOPIC, Settings

COMPACTED = {"cleanup.policy": "compact"}


class BrokerUnavailable(RuntimeError):
    """The broker did not answer or did not confirm delivery."""


def post_key(event: dict[str, Any]) -> bytes:
    return f"{event['site']}/{event['post_id']}".encode("utf-8")


def topic_for(event: dict[str, Any]) -> str:
    return INPUT_TOPICS[event["type"]]


def ensure_topics(settings: Settings) -> list[str]:
    """Create every blogpulse topic that is missing (inputs, ticks, DLQ; outputs compacted), with
    settings.partitions partitions. Returns the names it created. Existing topics with another
    partition count are an error: co-partitioning by post depends on it."""
    wanted = {name: {} for name in (*INPUT_TOPICS.values(), TICK_TOPIC, DLQ_TOPIC)}
    wanted.update({name: COMPACTED for name in OUTPUT_TOPICS.values()})
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="blogpulse-admin",
                                 request_timeout_ms=15000)
    except KafkaError as exc:
        raise BrokerUnavailable(f"no Kafka broker answers at {settings.broker} ({exc})") from None
    try:
        existing = set(admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        if missing:
            try:
                admin.create_topics([
                    NewTopic(n, num_partitions=settings.partitions, replication_factor=1,
                             topic_configs=wanted[n]) for n in missing
                ])
            except TopicAlreadyExistsError:
                pass  # another process created them between list and create
        described = admin.describe_topics([n for n in wanted if n not in missing])
        co_partitioned = {*INPUT_TOPICS.values(), TICK_TOPIC}
        wrong = {d["name"]: len(d["partitions"]) for d in described
                 if d["name"] in co_partitioned and len(d["partitions"]) != settings.partitions}
        if wrong:
            raise RuntimeError(f"input topics must have {settings.partitions} partitions "
                               f"(BLOGPULSE_PARTITIONS), found {wrong}")
        return missing
    finally:
        admin.close()


class Publisher:
    """Idempotent producer; publish() returns once the broker acknowledged every event."""

    def __init__(self, settings: Settings, **producer_config: Any) -> None:
        self.settings = settings
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=settings.bootstrap_servers,
                client_id="blogpulse-publisher",
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                batch_size=256 * 1024,
                compression_type=None,
                **producer_config,
            )
        except KafkaError as exc:
            raise BrokerUnavailable(f"no Kafka broker answers at {settings.broker} ({exc})") from None

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def send(self, event: dict[str, Any]):
        """Queue one event; returns kafka-python's future (confirmed by flush())."""
        return self._producer.send(topic_for(event), key=post_key(event), value=encode_event(event))

    def publish(self, events: Iterable[dict[str, Any]], timeout: float = 60.0,
                on_progress=None) -> Counter:
        """Send events and wait until the broker acknowledged all of them; count per type."""
        counts: Counter = Counter()
        futures = []
        for event in events:
            futures.append(self.send(event))
            counts[event["type"]] += 1
            if len(futures) >= 10_000:
                self._confirm(futures, timeout)
                if on_progress:
                    on_progress(counts)
        self._confirm(futures, timeout)
        if on_progress:
            on_progress(counts)
        return counts

    def _confirm(self, futures: list, timeout: float) -> None:
        self._producer.flush(timeout=timeout)
        try:
            for f in futures:
                f.get(timeout=timeout)
        except KafkaError as exc:
            raise BrokerUnavailable(f"the broker did not confirm delivery ({exc})") from None
        futures.clear()

    def close(self) -> None:
        self._producer.close(timeout=10)
