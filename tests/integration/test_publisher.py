"""streams.publisher against the real broker: topics, keys, co-partitioning by post, counts."""

from __future__ import annotations

from collections import Counter

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.partitioner.default import murmur2

from schemas.identity import AuthorKeyer
from schemas.topic_names import BASE_OUTPUT_TOPICS, DLQ_TOPIC, INPUT_TOPICS, TICK_TOPIC
from schemas.wire import decode_event, make_event
from schemas.wxr import read_wxr
from streams.publisher import BrokerUnavailable, Publisher, ensure_topics
from streams.settings import Settings
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.integration

SAMPLE = REPO / "schemas" / "sample" / "sample-export.xml"


def _end_offsets(consumer, topics):
    parts = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
    return consumer.end_offsets(parts)


def test_publish_sample_keys_partitions_counts(broker, unique):
    settings = Settings(broker=broker)
    ensure_topics(settings)
    ensure_topics(settings)  # existing topics are fine
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        described = {
            d["name"]: d
            for d in admin.describe_topics(
                [*INPUT_TOPICS.values(), DLQ_TOPIC, TICK_TOPIC, *BASE_OUTPUT_TOPICS.values()]
            )
        }
        assert all(
            len(d["partitions"]) == settings.partitions
            for d in described.values()
            if d["name"] in INPUT_TOPICS.values()
        )
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t) for t in BASE_OUTPUT_TOPICS.values()],
            config_filter="all",
        )["topic"]
        assert {t: c["cleanup.policy"]["value"] for t, c in configs.items()} == {
            t: "compact" for t in BASE_OUTPUT_TOPICS.values()
        }
    finally:
        admin.close()

    site = f"it-{unique}"
    events = [dict(e, site=site) for e in read_wxr(SAMPLE, keyer=AuthorKeyer(b"it"))]
    # under our own site (topics are shared): event_id derived again for the new site
    events = [
        make_event(**{k: v for k, v in e.items() if k not in ("event_id", "schema_version")})
        for e in events
    ]
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    try:
        start = _end_offsets(consumer, INPUT_TOPICS.values())
        with Publisher(settings) as publisher:
            counts = publisher.publish(events)
        assert counts == Counter({"comment": 18, "reply": 2, "pingback": 4})
        end = _end_offsets(consumer, INPUT_TOPICS.values())
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        got = []
        while sum(consumer.position(tp) < end[tp] for tp in start):
            for tp, records in consumer.poll(timeout_ms=2000).items():
                got += [(tp, r) for r in records if decode_event(r.value)["site"] == site]
    finally:
        consumer.close()

    assert Counter(tp.topic for tp, _ in got) == {
        "blog.comments": 18,
        "blog.replies": 2,
        "blog.pingbacks": 4,
    }
    key = f"{site}/42".encode()
    assert {r.key for _, r in got} == {key}
    partitions = {tp.partition for tp, _ in got}
    assert partitions == {(murmur2(key) & 0x7FFFFFFF) % settings.partitions}  # one, on every topic
    assert sorted(decode_event(r.value)["event_id"] for _, r in got) == sorted(
        e["event_id"] for e in events
    )


def test_unreachable_broker_is_a_clear_error():
    settings = Settings(broker=f"127.0.0.1:{free_port()}")
    with pytest.raises(BrokerUnavailable) as info:
        ensure_topics(settings)
    assert "127.0.0.1" in str(info.value)


def test_publish_command_prints_counts(broker, unique):
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "BLOGPULSE_BROKER": broker,
        "BLOGPULSE_AUTHOR_SECRET": "it",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "publish", "--site", f"it-{unique}", str(SAMPLE)],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "comment: 18\nreply: 2\npingback: 4\nmoderation: 0\n" in out and "total: 24" in out
    bad = subprocess.run(
        [sys.executable, "-m", "streams.cli", "publish", str(SAMPLE)],
        cwd=REPO,
        env={**env, "BLOGPULSE_BROKER": f"127.0.0.1:{free_port()}"},
        capture_output=True,
        timeout=120,
    )
    assert bad.returncode == 1 and b"Traceback" not in bad.stderr
    assert b"no Kafka broker answers" in bad.stderr
