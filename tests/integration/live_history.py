"""A WXR history fed live to a broker of the tests' own, and a worker that has caught up with it:
the setup the replay/reprocess and partition-growth tests share. The broker itself is the
`own_broker` fixture (tests/integration/conftest.py)."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from schemas.identity import AuthorKeyer
from schemas.readers import read_events
from schemas.topic_names import INPUT_TOPICS, output_topics
from sinks import generations
from streams import group_offsets, reprocess
from streams.publisher import Publisher
from streams.settings import Settings
from tests.fixtures.replay_wxr import generate
from tests.integration.worker_proc import Worker, running_worker, wait_until, worker_env

SECRET = "replay-integration"


def caught_up(broker: str, group: str, generation: int = 1) -> bool:
    """The group has read every input event and its sink every aggregate it emitted."""
    s = Settings(broker=broker)
    admin = group_offsets.admin_client(s, "test")
    consumer = group_offsets.lookup_consumer(s, "test")
    try:
        inputs = group_offsets.partitions_of(admin, INPUT_TOPICS.values())
        state = reprocess.measure(
            admin,
            consumer,
            group,
            consumer.beginning_offsets(inputs),
            consumer.end_offsets(inputs),
            output_topics(generation).values(),
        )
        return state.done
    finally:
        consumer.close()
        admin.close()


def rows(engine, generation: int, site: str) -> dict[str, set[tuple]]:
    """Every aggregate column of a generation's rows for a site (not version / updated_at)."""
    out = {}
    with engine.connect() as conn:
        for kind, table in generations.tables_for(generation).aggregates.items():
            cols = [c for c in table.columns if c.name not in ("version", "updated_at")]
            out[kind] = set(conn.execute(select(*cols).where(table.c.site == site)).all())
    return out


def live_feed(events: list[dict], rng: random.Random) -> list[dict]:
    """Each post's events shuffled, a quarter of them sent twice, posts interleaved."""
    per_post = defaultdict(list)
    for e in events:
        per_post[e["post_id"]].append(e)
    for evs in per_post.values():
        evs += rng.sample(evs, len(evs) // 4)
        rng.shuffle(evs)
    feed = []
    while any(per_post.values()):
        for evs in per_post.values():
            if evs:
                feed.append(evs.pop())
    return feed


def publish(broker: str, events: list[dict]) -> None:
    with Publisher(Settings(broker=broker)) as p:
        p.publish(events)


def published_history(
    broker: str, tmp_path: Path, name: str, posts: int, seed: int, feed_seed: int
) -> tuple[str, list[dict]]:
    """A generated WXR export of a new site, published as a live feed. Returns the site and its
    events (each once, in export order). The caller sets BLOGPULSE_AUTHOR_SECRET=SECRET for the
    commands it runs, so that they key authors as these events do."""
    site = f"{name}-{uuid.uuid4().hex[:6]}.example.org"
    wxr = tmp_path / f"{name}.xml"
    wxr.write_text(generate(site, posts=posts, seed=seed))
    events = list(read_events(wxr, site=site, keyer=AuthorKeyer(SECRET.encode())))
    publish(broker, live_feed(events, random.Random(feed_seed)))
    return site, events


@contextmanager
def caught_up_worker(
    broker: str, app_id: str, db_url: str, log: Path
) -> Iterator[tuple[Worker, dict[str, str]]]:
    """A live worker that has processed everything published so far, and the environment for CLI
    commands next to it (same app id, database and secret, no web port)."""
    with running_worker(broker, app_id, db_url, log, BLOGPULSE_AUTHOR_SECRET=SECRET) as live:
        wait_until(lambda: caught_up(broker, app_id), 180, "live worker caught up", live)
        env = worker_env(broker, app_id, 0, db_url, BLOGPULSE_AUTHOR_SECRET=SECRET)
        env.pop("BLOGPULSE_WEB_PORT")
        yield live, env
