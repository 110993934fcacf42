"""Consumer-group offsets looked up and set from outside the group (kafka-python admin): how far a
group has got, and where a group that has never committed starts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, NoError
from kafka.structs import OffsetAndMetadata

from streams.settings import Settings

T = TypeVar("T")


def admin_client(settings: Settings, client_id: str) -> KafkaAdminClient:
    """An admin client, or BrokerUnavailable naming the broker."""
    from streams.publisher import BrokerUnavailable, check_reachable

    check_reachable(settings)
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=client_id,
            request_timeout_ms=15000,
            **settings.kafka_security.kafka_python_config(),
        )
    except KafkaError as exc:
        raise BrokerUnavailable(f"no Kafka broker answers at {settings.broker} ({exc})") from None


def lookup_consumer(settings: Settings, client_id: str) -> KafkaConsumer:
    # No group: only offset look-ups (end offsets, offsets for a time).
    return KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        client_id=client_id,
        **settings.kafka_security.kafka_python_config(),
    )


def partitions_of(admin: KafkaAdminClient, topics) -> list[TopicPartition]:
    """Partitions of the topics that exist (asked of the broker each time: a consumer's cached
    metadata would not see the output topics the worker creates)."""
    existing = set(admin.list_topics())
    wanted = [t for t in topics if t in existing]
    if not wanted:
        return []
    return sorted(
        TopicPartition(d["name"], p["partition_index"])
        for d in admin.describe_topics(wanted)
        for p in d["partitions"]
    )


def _coordinated(call: Callable[[], T], patience: float) -> T:
    """call() with the retriable errors of a fresh broker retried for `patience` seconds: it has
    no group coordinator until it has created __consumer_offsets."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return call()
        except KafkaError as exc:
            if not getattr(exc, "retriable", False) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def committed(
    admin: KafkaAdminClient, group: str, patience: float = 30.0
) -> dict[TopicPartition, int]:
    """The group's committed offsets."""
    offsets = _coordinated(lambda: admin.list_group_offsets({group: None}), patience)
    return {tp: om.offset for tp, om in offsets.get(group, {}).items() if om.offset >= 0}


def pin(
    admin: KafkaAdminClient, group: str, offsets: dict[TopicPartition, int], patience: float = 30.0
) -> None:
    """Commit `offsets` for a group with no members (a group's members own its offsets). The
    broker answers per partition and kafka-python returns those errors rather than raising
    them: a partition not committed raises here (retried while retriable), never passes as
    pinned."""
    request = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()}

    def commit() -> None:
        errors = admin.alter_group_offsets(group, request)
        failed = {tp: error for tp, error in errors.items() if error is not NoError}
        missing = request.keys() - errors.keys()
        if failed:
            error = next(iter(failed.values()))
            raise error(f"offsets of group {group} not committed: {sorted(failed.items())}")
        if missing:
            raise KafkaError(f"offsets of group {group}: no answer for {sorted(missing)}")

    _coordinated(commit, patience)


def start_new_group_at_ends(settings: Settings, group: str, topics) -> int:
    """A group that has never committed starts at the earliest offsets (faust's default): on a
    broker that already carries other traffic its first worker would read all of it. Pin such a
    group to the current end of `topics` (those that exist) before its worker joins. Returns the
    number of partitions pinned: 0 when the group has committed before or no topic exists yet."""
    admin = admin_client(settings, "blogpulse-offsets")
    consumer = lookup_consumer(settings, "blogpulse-offsets")
    try:
        if committed(admin, group):
            return 0
        parts = partitions_of(admin, topics)
        if parts:
            pin(admin, group, consumer.end_offsets(parts))
        return len(parts)
    finally:
        consumer.close()
        admin.close()
