"""The seed-shaped sample set, through the real broker and worker, lands in SQLite and in PostgreSQL
with the numbers a reader of the post sees; its output messages validate against the shipped
JSON Schemas; and re-applying every output message of the run twice,
or in a shuffled order, to a fresh database gives the same rows (the sink's version guard)."""

from __future__ import annotations

import contextlib
import random
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import REPO
from tests.integration.output_schemas import assert_valid_outputs, output_messages
from tests.integration.worker_proc import running_worker, wait_until

SAMPLE = REPO / "schemas" / "sample" / "sample-export.xml"
TABLES = ("post_engagement", "thread_engagement", "engagement_window")


@contextlib.contextmanager
def database(kind: str, tmp_path: Path, pg_url: str | None):
    """URL of an empty database: a SQLite file, or a private PostgreSQL schema (search_path)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'{uuid.uuid4().hex[:8]}.db'}"
        return
    schema = f"sample_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    try:
        url = sa.make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'drop schema "{schema}" cascade'))
        admin.dispose()


def rows_of(url: str, site: str) -> dict[str, list[tuple]]:
    """Every aggregate row of `site`, without the sink's wall-clock updated_at."""
    engine = sa.create_engine(url)
    out = {}
    try:
        with engine.connect() as conn:
            for table in TABLES:
                result = conn.execute(
                    sa.text(f"select * from {table} where site = :site"), {"site": site}
                )
                cols = [c for c in result.keys() if c != "updated_at"]
                out[table] = sorted(
                    (tuple(row._mapping[c] for c in cols) for row in result), key=repr
                )
    finally:
        engine.dispose()
    return out


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_sample_lands_with_seed_numbers_and_replays_to_same_rows(
    kind, broker, unique, tmp_path, request
):
    from sinks import db
    from sinks.upsert import write_batch
    from streams.publisher import publish_file
    from streams.settings import Settings

    pg_url = request.getfixturevalue("pg_url") if kind == "postgresql" else None
    site = f"sample-{unique}.example"
    with database(kind, tmp_path, pg_url) as url:
        with running_worker(broker, f"it-sample-{unique}", url, tmp_path / "worker.log") as worker:
            assert publish_file(SAMPLE, site=site, settings=Settings(broker=broker)) == 24

            def settled():
                rows = rows_of(url, site)
                threads = rows["thread_engagement"]
                return rows if rows["post_engagement"] and len(threads) == 10 else None

            wait_until(settled, 90, "sample post and its 10 threads in the database", worker)

        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                post = conn.execute(
                    sa.text(
                        "select comments, replies, pingbacks, trackbacks, threads, post_author_replies,"
                        " max_depth, waiting_replies from post_engagement where site = :s"
                    ),
                    {"s": site},
                ).one()
                answered = conn.execute(
                    sa.text(
                        "select count(*) from thread_engagement where site = :s and post_author_answered"
                    ),
                    {"s": site},
                ).scalar()
        finally:
            engine.dispose()
        assert tuple(post) == (10, 2, 4, 0, 10, 2, 1, 0)
        assert answered == 2
        live = rows_of(url, site)

    messages = output_messages(broker, site)
    assert len(messages) >= 1 + 10  # the post and every thread at least once
    # every real output message (deletions included) validates against the shipped schemas
    seen = assert_valid_outputs(messages)
    assert {topic for topic, _ in seen} == {
        "engagement.posts",
        "engagement.threads",
        "engagement.windows",
    }
    shuffled = messages[:]
    random.Random(7).shuffle(shuffled)
    for name, sequence in (("twice", messages + messages), ("shuffled", shuffled)):
        with database(kind, tmp_path, pg_url) as fresh:
            db.upgrade(fresh)
            engine = db.make_engine(fresh)
            try:
                for start in range(0, len(sequence), 7):  # several batches, as the sink writes
                    write_batch(engine, sequence[start : start + 7])
            finally:
                engine.dispose()
            assert rows_of(fresh, site) == live, name
