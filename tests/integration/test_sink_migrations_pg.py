"""The Alembic migrations build exactly the ORM's schema on PostgreSQL."""

from __future__ import annotations

from tests.integration.sink_pg import pg_schema_engine
from tests.unit.test_sink_migrations import check_migrations


def test_migrated_postgresql_schema_matches_the_models(pg_url):
    with pg_schema_engine(pg_url, migrate=False) as engine:
        check_migrations(engine)
