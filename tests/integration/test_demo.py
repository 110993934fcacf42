"""`blogpulse demo` on a broker that already carries blogpulse traffic: the demo's new consumer
group starts at the end of the shared topics, so its database holds the sample's numbers and
nothing of the traffic that was there before (which a group starting at the earliest offsets
would read first, and whose aggregates its sink would write)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import orjson
import sqlalchemy as sa
from kafka import KafkaProducer

from schemas.topic_names import BASE_OUTPUT_TOPICS
from tests.conftest import REPO

SAMPLE_SITE = "solberg-blog.example.org"  # schemas/sample/sample-export.xml


def _earlier_traffic(broker: str, site: str) -> None:
    """An aggregate of another site on engagement.posts: valid, so a sink that read it would
    store it."""
    value = {
        "schema_version": 1,
        "site": site,
        "post_id": 1,
        "version": 1,
        "comments": 3,
        "replies": 0,
        "pingbacks": 0,
        "trackbacks": 0,
        "threads": 3,
        "participants": 3,
        "post_author_replies": 0,
        "max_depth": 0,
        "first_activity": "2020-01-01T00:00:00Z",
        "last_activity": "2020-01-01T00:00:00Z",
        "time_to_first_comment_seconds": None,
        "waiting_replies": 0,
    }
    producer = KafkaProducer(bootstrap_servers=broker)
    try:
        producer.send(
            BASE_OUTPUT_TOPICS["posts"], key=f"{site}/1".encode(), value=orjson.dumps(value)
        )
        producer.flush(30)
    finally:
        producer.close()


def test_demo_shows_only_its_own_events_on_a_busy_broker(broker, tmp_path):
    _earlier_traffic(broker, f"earlier-{uuid.uuid4().hex[:8]}.example")
    db_url = f"sqlite:///{tmp_path / 'demo.db'}"
    env = dict(
        os.environ,
        BLOGPULSE_BROKER=broker,
        BLOGPULSE_DB=db_url,
        BLOGPULSE_APP_ID=f"it-demo-{uuid.uuid4().hex[:8]}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    run = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--timeout", "240"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "starts at the end of" in run.stdout

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            sites = conn.execute(sa.text("select distinct site from post_engagement")).scalars()
            assert set(sites) == {SAMPLE_SITE}
            post = conn.execute(
                sa.text("select comments, replies, pingbacks, threads from post_engagement")
            ).one()
    finally:
        engine.dispose()
    assert tuple(post) == (
        10,
        2,
        4,
        10,
    )  # the seed post (tests/integration/test_sample_to_database.py)


def test_demo_again_after_the_database_was_deleted(broker, tmp_path):
    """The state lives in Kafka and the sink's positions in the database: a second demo on a new
    database reads the compacted output topics from the start and shows the seed numbers again."""
    db_path = tmp_path / "demo.db"
    env = dict(
        os.environ,
        BLOGPULSE_BROKER=broker,
        BLOGPULSE_DB=f"sqlite:///{db_path}",
        BLOGPULSE_APP_ID=f"it-demo-{uuid.uuid4().hex[:8]}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    for attempt in ("first", "after rm"):
        run = subprocess.run(
            [sys.executable, "-m", "streams.cli", "demo", "--timeout", "240"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert run.returncode == 0, attempt + run.stdout[-3000:] + run.stderr[-3000:]
        engine = sa.create_engine(f"sqlite:///{db_path}")
        try:
            with engine.connect() as conn:
                post = conn.execute(
                    sa.text(
                        "select comments, replies, pingbacks, threads from post_engagement "
                        "where site = :site"
                    ),
                    {"site": SAMPLE_SITE},
                ).one()
        finally:
            engine.dispose()
        assert tuple(post) == (10, 2, 4, 10), attempt
        db_path.unlink()
