"""Publishing events to Kafka with kafka-python: topic creation and a confirmed, idempotent producer.

Every event of a post is keyed "<site>/<post_id>", so with the same partition count on every input
topic (and the default murmur2 partitioner) a post's events share one partition number everywhere."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterable
from typing import Any

from kafka import KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from schemas.errors import BlogpulseError
from schemas.topic_names import DLQ_TOPIC, INPUT_TOPICS
from schemas.wire import encode_event
from streams.kafka_login import KafkaLoginError, check_login
from streams.settings import Settings

COMPACTED = {"cleanup.policy": "compact"}


def topic_configs(settings: Settings, compacted: bool = False) -> dict[str, str]:
    """Per-topic configs of a topic blogpulse creates: min ISR always (with acks=all, a write
    succeeds only once that many replicas have it), compaction for outputs."""
    configs = {"min.insync.replicas": str(settings.min_insync_replicas)}
    return {**configs, **COMPACTED} if compacted else configs


class BrokerUnavailable(BlogpulseError, RuntimeError):
    """The broker did not answer or did not confirm delivery."""


class TopicMismatch(BlogpulseError, RuntimeError):
    """Existing blogpulse topics have another partition count than BLOGPULSE_PARTITIONS: a
    setting to change, not a run-time failure."""

    exit_code = 2


def post_key(event: dict[str, Any]) -> bytes:
    return f"{event['site']}/{event['post_id']}".encode()


def topic_for(event: dict[str, Any], topics: dict[str, str] = INPUT_TOPICS) -> str:
    return topics[event["type"]]


def check_reachable(settings: Settings, timeout: float = 5.0) -> None:
    """Fail in seconds, not after the client's 30 s bootstrap timeout, when no bootstrap server
    accepts a TCP connection, or when the first that does refuses our TLS or SASL settings (the
    clients would only say "unable to bootstrap" after 30 s)."""
    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                pass
        except (OSError, ValueError):
            continue
        try:
            check_login(host, int(port), settings.kafka_security)
        except KafkaLoginError as exc:
            raise BrokerUnavailable(str(exc)) from None
        return
    raise BrokerUnavailable(f"no Kafka broker answers at {settings.broker} (BLOGPULSE_BROKER)")


def ensure_topics(settings: Settings, compacted: Iterable[str] = ()) -> list[str]:
    """Create every blogpulse topic that is missing (inputs, ticks, DLQ; outputs compacted), with
    settings.partitions partitions, settings.replication_factor replicas and
    settings.min_insync_replicas, and make existing output topics compacted. Returns the names it
    created. Existing topics with another
    partition count are an error: co-partitioning by post depends on it."""
    outputs = list(settings.output_topics.values())
    inputs = [*settings.input_topics.values(), settings.tick_topic]
    wanted = {name: topic_configs(settings) for name in (*inputs, DLQ_TOPIC)}
    wanted.update(
        {name: topic_configs(settings, compacted=True) for name in (*outputs, *compacted)}
    )
    check_reachable(settings)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers,
            client_id="blogpulse-admin",
            request_timeout_ms=15000,
            **settings.kafka_security.kafka_python_config(),
        )
    except KafkaError as exc:
        raise BrokerUnavailable(f"no Kafka broker answers at {settings.broker} ({exc})") from None
    try:
        existing = set(admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        if missing:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            n,
                            num_partitions=settings.partitions,
                            replication_factor=settings.replication_factor,
                            topic_configs=wanted[n],
                        )
                        for n in missing
                    ]
                )
            except TopicAlreadyExistsError:
                pass  # another process created them between list and create
        described = admin.describe_topics([n for n in wanted if n not in missing])
        # outputs and state changelogs too: every record of a post goes to the post's partition
        co_partitioned = {*inputs, *outputs, *compacted}
        wrong = {
            d["name"]: len(d["partitions"])
            for d in described
            if d["name"] in co_partitioned and len(d["partitions"]) != settings.partitions
        }
        if wrong:
            raise TopicMismatch(
                f"blogpulse topics must have {settings.partitions} partitions "
                f"(BLOGPULSE_PARTITIONS), found {wrong}: set BLOGPULSE_PARTITIONS and "
                f"BLOGPULSE_INPUT_GENERATION to the generation's (`blogpulse reprocess status`)"
            )
        _compact_outputs(admin, [n for n in outputs if n not in missing])
        return missing
    finally:
        admin.close()


def _compact_outputs(admin: KafkaAdminClient, names: list[str]) -> None:
    """Output topics created by someone else (a consumer's auto-creation, an older run) may have the
    broker's default cleanup.policy=delete: switch them to compact (an incremental change)."""
    if not names:
        return
    described = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, n) for n in names], config_filter="all"
    )
    topics = described.get("topic", {})
    wrong = [
        n
        for n in names
        if "compact" not in str(topics.get(n, {}).get("cleanup.policy", {}).get("value", ""))
    ]
    if wrong:
        admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n, configs=COMPACTED) for n in wrong]
        )


def durable_producer(settings: Settings, client_id: str, **overrides: Any) -> KafkaProducer:
    """A kafka-python producer with acks=all and idempotence: a send is confirmed once every
    in-sync replica has it, and a retried batch is not written twice."""
    return KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
        compression_type=None,
        **{**settings.kafka_security.kafka_python_config(), **overrides},
    )


class Publisher:
    """Idempotent producer with acks=all: publish() returns once every in-sync replica (at least
    BLOGPULSE_MIN_INSYNC_REPLICAS) has every event, and a retried batch is not written twice."""

    def __init__(self, settings: Settings, **producer_config: Any) -> None:
        self.settings = settings
        check_reachable(settings)
        try:
            self._producer = durable_producer(settings, "blogpulse-publisher", **producer_config)
        except KafkaError as exc:
            raise BrokerUnavailable(
                f"no Kafka broker answers at {settings.broker} ({exc})"
            ) from None

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def send(self, event: dict[str, Any]):
        """Queue one event; returns kafka-python's future (confirmed by flush())."""
        return self._producer.send(
            topic_for(event, self.settings.input_topics),
            key=post_key(event),
            value=encode_event(event),
        )

    def publish(
        self, events: Iterable[dict[str, Any]], timeout: float = 60.0, on_progress=None
    ) -> Counter:
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


def publish_file(
    path, settings: Settings, site: str | None = None, on_progress=None, keyer=None, on_skip=None
) -> int:
    """Read a WXR or JSONL file, make sure the topics exist and publish every event with delivery
    confirmed. Returns how many events were published (Publisher.publish gives counts per type).
    Author keys: `keyer`, else the settings' secret."""
    from schemas.readers import read_events

    keyer = keyer or settings.author_keyer
    ensure_topics(settings)
    with Publisher(settings) as publisher:
        counts = publisher.publish(
            read_events(path, site=site, keyer=keyer, on_skip=on_skip), on_progress=on_progress
        )
    return sum(counts.values())
