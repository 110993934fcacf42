"""A private PostgreSQL schema per test (search_path), so sink tests never share rows with each
other or with other suites using the same test database."""

from __future__ import annotations

import contextlib
import uuid

from sqlalchemy import text

from sinks import db


@contextlib.contextmanager
def pg_schema_engine(pg_url: str, migrate: bool = True, **kwargs):
    schema = f"sink_{uuid.uuid4().hex[:10]}"
    admin = db.make_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = db.make_engine(
        pg_url, connect_args={"connect_timeout": 5, "options": f"-csearch_path={schema}"}, **kwargs
    )
    try:
        if migrate:
            db.upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
