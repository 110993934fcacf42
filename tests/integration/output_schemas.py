"""Real output messages against the shipped JSON Schemas (schemas/jsonschema/engagement.*.json),
the files consumers are told to validate with."""

from __future__ import annotations

import json
from collections import Counter

import orjson
from jsonschema import Draft202012Validator

from schemas.aggregates import OUTPUTS
from tests.conftest import REPO

SCHEMA_DIR = REPO / "schemas" / "jsonschema"


def validators() -> dict[str, Draft202012Validator]:
    """Output topic (generation 1 and N: engagement.posts, engagement.posts.g2) -> validator."""
    return {
        output.topic: Draft202012Validator(
            json.loads((SCHEMA_DIR / f"{output.topic}.json").read_text())
        )
        for output in OUTPUTS.values()
    }


def assert_valid_outputs(messages: list[tuple[str, str, dict | None]]) -> Counter:
    """Every (topic, key, value) validates against its topic's shipped schema; a Kafka tombstone
    (value None) would fail, as the contract has none. Returns messages per (topic, deleted)."""
    checks = validators()
    seen: Counter = Counter()
    problems = []
    for topic, key, value in messages:
        base = topic.split(".g")[0] if ".g" in topic else topic
        if value is None:
            problems.append(f"{topic} {key}: a null-value tombstone")
            continue
        errors = [e.message for e in checks[base].iter_errors(value)]
        if errors:
            problems.append(f"{topic} {key}: {'; '.join(errors)}")
        seen[(base, bool(value.get("deleted")))] += 1
    assert not problems, "output messages that break the shipped schemas:\n" + "\n".join(
        problems[:20]
    )
    return seen


def output_messages(broker: str, site: str) -> list[tuple[str, str, dict]]:
    """(topic, key, value) of every output message produced for `site`, in partition order."""
    from kafka import KafkaConsumer

    from schemas.topic_names import BASE_OUTPUT_TOPICS

    consumer = KafkaConsumer(
        *BASE_OUTPUT_TOPICS.values(),
        bootstrap_servers=broker,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=3000,
    )
    try:
        return [
            (r.topic, r.key.decode(), None if r.value is None else orjson.loads(r.value))
            for r in consumer
            if r.key and r.key.decode().startswith(f"{site}/")
        ]
    finally:
        consumer.close()
