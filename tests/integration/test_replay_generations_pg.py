"""Generations on PostgreSQL (private schema per test): the switch is one transaction there too
(a failure half-way leaves everything as it was), cleanup drops the old tables. A reader inside a
transaction holds a lock on the views, so the switch waits for it: no reader mixes generations."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from sinks import generations
from sinks.upsert import write_batch
from tests.integration.sink_pg import pg_schema_engine
from tests.unit.test_sink_upsert import post, thread


@pytest.fixture
def engine(pg_url):
    with pg_schema_engine(pg_url) as e:
        yield e


def comments(conn) -> int:
    return conn.execute(text("SELECT comments FROM post_engagement_current")).scalar()


def test_switch_is_atomic_and_cleanup_drops_the_old_generation(engine):
    write_batch(engine, [post("s", 1, 3), thread("s", 1, 7, 3)])
    generations.create(engine, 2, "blogpulse-g2", None)
    write_batch(engine, [post("s", 1, 5), thread("s", 1, 7, 5)], generation=2)

    with engine.connect() as conn:
        assert comments(conn) == 3  # readers on generation 1 while 2 is written
    assert generations.switch(engine, 2) == 1
    with engine.connect() as conn:
        assert comments(conn) == 5
        assert conn.execute(text("SELECT replies FROM thread_engagement_current")).scalar() == 5

    generations.cleanup(engine, 1)
    assert generations.row_counts(engine, 1) == {"posts": 0, "threads": 0, "windows": 0}
    generations.create(engine, 3, "blogpulse-g3", None)
    generations.switch(engine, 3)
    generations.cleanup(engine, 2)
    assert generations.row_counts(engine, 2)["posts"] is None


def test_failed_switch_rolls_back_on_postgresql(engine, monkeypatch):
    write_batch(engine, [post("s", 1, 3)])
    generations.create(engine, 2, "blogpulse-g2", None)

    def broken(conn, generation):
        conn.execute(text("DROP VIEW post_engagement_current"))
        raise RuntimeError("boom")

    monkeypatch.setattr(generations, "_point_views", broken)
    with pytest.raises(RuntimeError):
        generations.switch(engine, 2)
    with engine.connect() as conn:
        assert generations.active(conn) == 1 and comments(conn) == 3
