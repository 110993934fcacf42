"""The Alembic migrations build exactly the ORM's schema (SQLite here; PostgreSQL in
tests/integration/test_sink_migrations_pg.py)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table

from sinks import db
from sinks.models import Base


def schema_diff(engine, metadata=Base.metadata) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(ctx, metadata)


def extra_column_metadata() -> MetaData:
    """The ORM metadata plus one column the migrations don't create (negative control)."""
    md = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(md)
    Table("post_engagement", md, Column("not_migrated", Integer), extend_existing=True)
    return md


def check_migrations(engine) -> None:
    assert db.current_revision(engine) is None
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    assert db.missing_tables(engine) == []
    assert schema_diff(engine) == []
    assert schema_diff(engine, extra_column_metadata()) != []  # the comparison does see changes
    db.upgrade(engine)  # idempotent
    db.downgrade(engine, "base")
    assert set(db.missing_tables(engine)) == set(db.SINK_TABLES)


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    yield engine
    engine.dispose()


def test_migrated_sqlite_schema_matches_the_models(sqlite_engine):
    check_migrations(sqlite_engine)


def test_upgrade_from_a_url_string(tmp_path):
    url = f"sqlite:///{tmp_path / 'u.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    assert db.missing_tables(engine) == []
    engine.dispose()


def test_masked_url_hides_the_password():
    assert (
        db.masked("postgresql+psycopg://u:s3cret@h:5432/d") == "postgresql+psycopg://u:***@h:5432/d"
    )
    assert "s3cret" not in db.masked("postgresql+psycopg://u:s3cret@h/d")
