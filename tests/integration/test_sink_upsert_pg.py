"""The sink upsert suite of tests/unit/test_sink_upsert.py, run on the real PostgreSQL."""

from __future__ import annotations

import pytest

from tests.integration.sink_pg import pg_schema_engine
from tests.unit.test_sink_upsert import *  # noqa: F401,F403  (the same tests, collected here too)
from tests.unit.test_sink_upsert import post, snapshot, write_batch


@pytest.fixture
def sink_engine(pg_url):  # noqa: F811  (overrides the SQLite engine of the imported tests)
    with pg_schema_engine(pg_url) as engine:
        yield engine


def test_runs_on_postgresql(sink_engine):
    assert sink_engine.dialect.name == "postgresql"
    write_batch(sink_engine, [post("s", 1, 2), post("s", 1, 1)])
    assert {r[-1] for r in snapshot(sink_engine)["posts"]} == {2}
