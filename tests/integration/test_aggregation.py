"""End to end against the real broker: a `blogpulse worker` subprocess aggregates the seed-shaped
sample set and engagement.posts shows what a reader of the post sees. Each run uses its own site
(topics are fixed names), app id (consumer group, changelog topics) and web port."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from tests.conftest import REPO
from tests.integration.worker_proc import running_worker

pytestmark = pytest.mark.integration

SAMPLE = REPO / "schemas" / "sample" / "sample-export.xml"


def publish_sample(broker: str, site: str) -> int:
    """Publish the sample set through the publisher, under our own site name."""
    from streams import publisher

    return publisher.publish_file(SAMPLE, site=site, settings=_settings(broker))


def _settings(broker: str):
    from streams.settings import Settings

    return Settings(broker=broker)


@pytest.fixture(params=["memory", "rocksdb"])
def worker(broker, unique, tmp_path: Path, request):
    """A worker with each store (BLOGPULSE_STORE)."""
    with running_worker(
        broker,
        f"it-{unique}",
        f"sqlite:///{tmp_path / 'sink.db'}",
        tmp_path / "worker.log",
        BLOGPULSE_STORE=request.param,
        BLOGPULSE_STORE_DIR=str(tmp_path / "store"),
    ) as w:
        yield w.port


def latest_by_key(broker: str, topic: str, prefix: str, until, timeout: float = 90) -> dict:
    """Read `topic` from the start; return {key: last value} for keys starting with prefix once
    until(values) holds (or fail with what was seen)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=1000,
    )
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for record in consumer:
                key = record.key.decode()
                if key.startswith(prefix):
                    value = orjson.loads(record.value)
                    if key not in seen or value["version"] >= seen[key]["version"]:
                        seen[key] = value
            if until(seen):
                return seen
    finally:
        consumer.close()
    pytest.fail(f"{topic}: condition not met in {timeout}s; saw {seen}")


def test_sample_set_aggregates_on_engagement_posts(broker, unique, worker):
    site = f"it-{unique}.example"
    assert publish_sample(broker, site) > 0
    expected = {
        "comments": 10,
        "replies": 2,
        "pingbacks": 4,
        "threads": 10,
        "post_author_replies": 2,
        "max_depth": 1,
    }

    def done(seen):
        return any(all(v.get(k) == n for k, n in expected.items()) for v in seen.values())

    posts = latest_by_key(broker, "engagement.posts", f"{site}/", done)
    assert len(posts) == 1, posts  # the sample set is one post
    post = next(iter(posts.values()))
    assert post["waiting_replies"] == 0 and post["version"] >= 1

    threads = latest_by_key(
        broker,
        "engagement.threads",
        f"{site}/",
        lambda seen: sum(not v["deleted"] for v in seen.values()) == 10,
    )
    live = [v for v in threads.values() if not v["deleted"]]
    assert sum(v["post_author_answered"] for v in live) == 2
    assert max(v["depth"] for v in live) == 1

    metrics = urllib.request.urlopen(f"http://127.0.0.1:{worker}/metrics", timeout=5).read()
    assert b"blogpulse_aggregates_emitted_total" in metrics
    assert b'outcome="applied"' in metrics
