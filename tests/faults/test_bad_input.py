"""Bad input mixed into a good stream on a private broker: every bad message lands in
blog.events.dlq, byte for byte, with a reason header naming the field; events that are odd but
valid (HTML/SQL metacharacters, reply cycles) are stored safely; the worker never stops and the
good numbers equal the recount."""

from __future__ import annotations

import hashlib
import json
import time

import orjson
import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer, KafkaProducer

from schemas.topic_names import DLQ_TOPIC, INPUT_TOPICS
from schemas.wire import make_event
from tests.faults.conftest import GUARANTEES
from tests.faults.harness import Database, converge, start_worker, stop_worker
from tests.faults.history import generate

CYCLE_SITE = "cycle.example"
NASTY_SITE = "<img src=x onerror=alert(1)>'; DROP TABLE post_engagement; --\"&amp;.example"


def _event_id(e: dict) -> str:
    text = (
        f"{e['site']}/{e['post_id']}/{e['comment_id']}/{e['type']}/{e['status']}/{e['event_time']}"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _with(base: dict, **changes) -> bytes:
    e = {**base, **changes}
    e["event_id"] = (
        _event_id(e)
        if all(
            isinstance(e.get(k), (str, int))
            for k in ("site", "post_id", "comment_id", "type", "status", "event_time")
        )
        else base["event_id"]
    )
    return json.dumps(e).encode()  # stdlib: also writes integers beyond 64 bits


def bad_messages(site: str) -> list[tuple[str, bytes | None, bytes | None, str]]:
    """(topic, key, value, field the reason must name)."""
    key = f"{site}/1".encode()
    good = make_event(
        type="comment",
        site=site,
        post_id=1,
        comment_id=1,
        author_key="b" * 64,
        event_time="2024-03-01T10:00:00Z",
    )
    reply = make_event(
        type="reply",
        site=site,
        post_id=1,
        comment_id=2,
        parent_id=1,
        author_key="b" * 64,
        event_time="2024-03-01T10:00:00Z",
    )
    c, r = INPUT_TOPICS["comment"], INPUT_TOPICS["reply"]
    no_author = {k: v for k, v in good.items() if k != "author_key"}
    return [
        (c, key, b'{"type": "comment", "site": ', "json"),
        (c, key, b"[1, 2, 3]", "schema"),
        (c, key, b"null", "schema"),
        (c, key, b"", "json"),
        (c, key, None, "schema"),  # a tombstone
        (c, key, b'{"site": "caf\xe9\xff", "type": "comment"}', "utf8"),
        (c, key, _with(good, post_id="one"), "post_id"),
        (c, key, _with(good, comment_id=1.5), "comment_id"),
        (c, key, _with(good, post_author="yes"), "post_author"),
        (c, key, orjson.dumps(no_author), "author_key"),
        (c, key, _with(good, author_key="alice@example.com"), "author_key"),
        (c, key, _with(good, type="like"), "type"),
        (c, key, _with(good, schema_version=2), "schema_version"),
        (c, key, _with(good, event_time="0001-01-01T00:00:00Z"), "event_time"),
        (c, key, _with(good, event_time="2999-12-31T23:59:59Z"), "event_time"),
        (c, key, _with(good, event_time="yesterday"), "event_time"),
        (c, key, _with(good, post_id=10**30), "post_id"),
        (c, key, _with(good, status="published"), "status"),
        (c, key, orjson.dumps({**good, "event_id": "0" * 32}), "event_id"),
        (c, key, _with(good, extra="x" * 10), "schema"),  # unknown field
        (c, key, orjson.dumps({**good, "site": "x" * 200_000}), "schema"),  # huge payload
        (c, key, b" " * 70_000 + orjson.dumps(good), "schema"),  # huge but valid JSON
        (c, f"{site}/2".encode(), orjson.dumps(good), "key"),  # wrong partition key
        (c, b"\xff\xfe", orjson.dumps(good), "key"),
        (r, key, _with(reply, parent_id=2), "parent_id"),  # reply to itself
        (r, key, _with(reply, parent_id=-1), "parent_id"),
    ]


def safe_events(site: str) -> list[dict]:
    """Valid but odd: must be stored as they are, not dead-lettered."""
    t = "2024-03-01T11:00:00Z"
    nasty = [
        make_event(
            type="comment",
            site=NASTY_SITE,
            post_id=1,
            comment_id=1,
            event_time=t,
            author_key="c" * 64,
        ),
        make_event(
            type="pingback",
            kind="trackback",
            site=NASTY_SITE,
            post_id=1,
            comment_id=2,
            event_time=t,
            author_key="d" * 64,
            source_url="https://x.example/?q=<script>alert(1)</script>&id=1' OR '1'='1",
        ),
    ]
    # replies 2 -> 3 -> 2: a cycle with no root; neither may be counted, nothing may loop forever
    # (own site: the engine keeps them waiting like replies without a parent until the orphan
    # timeout, which the recount does not model)
    cycle = [
        make_event(
            type="reply",
            site=CYCLE_SITE,
            post_id=99,
            comment_id=2,
            parent_id=3,
            event_time=t,
            author_key="e" * 64,
        ),
        make_event(
            type="reply",
            site=CYCLE_SITE,
            post_id=99,
            comment_id=3,
            parent_id=2,
            event_time=t,
            author_key="f" * 64,
        ),
    ]
    return nasty + cycle


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_bad_input_goes_to_the_dlq_and_the_worker_keeps_counting(
    kafka, fault_db, unique, tmp_path, guarantee
):
    from streams.publisher import Publisher, ensure_topics
    from streams.settings import Settings

    settings = Settings(broker=kafka.broker)
    ensure_topics(settings)
    good = generate(4000, unique, seed=3)
    site = f"fault-{unique}-0.example"
    bad = bad_messages(site)
    worker = start_worker(
        kafka.broker,
        f"fault-bad-{unique}",
        fault_db,
        tmp_path / "worker.log",
        BLOGPULSE_PROCESSING_GUARANTEE=guarantee,
    )
    db = Database(fault_db, unique)
    try:
        half = len(good) // 2
        with Publisher(settings) as publisher:
            publisher.publish(good[:half])
            producer = KafkaProducer(bootstrap_servers=[kafka.broker], max_request_size=2_000_000)
            for topic, key, value, _ in bad:
                producer.send(topic, key=key, value=value)
            producer.flush(30)
            producer.close()
            publisher.publish(safe_events(site))
            publisher.publish(good[half:])

        converge(db, good, 180, [worker])  # the good history is exact

        with db.engine.connect() as conn:
            nasty = conn.execute(
                sa.text(
                    "select comments, trackbacks from post_engagement "
                    "where site = :s and post_id = 1"
                ),
                {"s": NASTY_SITE},
            ).all()
            tables = set(sa.inspect(conn).get_table_names())
            cycle = conn.execute(
                sa.text(
                    "select comments + replies + threads, waiting_replies "
                    "from post_engagement where site = :s"
                ),
                {"s": CYCLE_SITE},
            ).all()
        assert nasty == [(1, 1)], "the site with HTML/SQL metacharacters is stored as it is"
        assert cycle == [(0, 2)], "a reply cycle has no root: nothing counted, both wait"
        assert "post_engagement" in tables

        dead = read_all(kafka.broker, DLQ_TOPIC, expect=len(bad), timeout=60)
        sent = {value: field for _, _, value, field in bad}
        assert len(dead) == len(bad), f"{len(dead)} dead letters for {len(bad)} bad messages"
        for value, headers in dead:
            assert value in sent, f"dead letter not byte-for-byte a bad message: {value[:80]!r}"
            reason = headers.get("blogpulse.reason", b"").decode()
            assert reason.startswith(sent[value] + ":"), (
                f"reason {reason!r} should name {sent[value]}"
            )
            assert {
                "blogpulse.source_topic",
                "blogpulse.source_partition",
                "blogpulse.source_offset",
            } <= headers.keys()
        worker.check_alive()
    finally:
        stop_worker(worker)
        db.dispose()


def read_all(broker: str, topic: str, expect: int, timeout: float) -> list[tuple[bytes, dict]]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=[broker],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # exactly_once: dead letters are in the flush's transaction; only committed ones count
        isolation_level="read_committed",
        consumer_timeout_ms=2000,
        fetch_max_bytes=5_000_000,
        max_partition_fetch_bytes=2_000_000,
    )
    out: list[tuple[bytes, dict]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            for msg in consumer:
                out.append((msg.value if msg.value is not None else None, dict(msg.headers or [])))
        time.sleep(2)  # anything beyond `expect` would be a defect too
        for msg in consumer:
            out.append((msg.value, dict(msg.headers or [])))
    finally:
        consumer.close()
    return out
