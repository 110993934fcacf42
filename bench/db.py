"""Database side: apply the migrations, read the sink's progress for the benchmark's site, clean
up the site's rows afterwards. Table and column names are the sink's (docs/architecture.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from sqlalchemy import create_engine, delete, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from bench.workers import REPO
from sinks.models import SinkOffset, table_of


def upgrade(db_url: str) -> None:
    """`blogpulse db upgrade` against db_url (idempotent)."""
    env = dict(
        os.environ,
        BLOGPULSE_DB=db_url,
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
    )
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "db", "upgrade"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"blogpulse db upgrade failed ({done.returncode}):\n"
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )


def engine(db_url: str) -> Engine:
    # pre_ping: PostgreSQL may be restarted under us (other suites inject faults on it)
    return create_engine(db_url, pool_size=1, max_overflow=0, pool_pre_ping=True)


def _retrying(query):
    """Run a read; on a dropped connection wait and try again (up to ~30 s), then give up with a
    clear error instead of a traceback."""

    def run(*args):
        for _attempt in range(30):
            try:
                return query(*args)
            except OperationalError as exc:
                last = exc
                time.sleep(1)
        raise RuntimeError(f"database unreachable for 30 s: {str(last).splitlines()[0]}")

    run.__doc__ = query.__doc__
    return run


@_retrying
def progress(eng: Engine, site: str) -> dict[int, int]:
    """post_id -> entries the sink's row reflects (comments + replies + waiting replies: every
    benchmark entry is approved, so each processed entry adds one)."""
    with eng.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT post_id, comments + replies + waiting_replies FROM post_engagement "
                "WHERE site = :site"
            ),
            {"site": site},
        )
        return {int(post_id): int(n) for post_id, n in rows}


@_retrying
def counted(eng: Engine, site: str) -> tuple[int, int]:
    """(sum of comments + replies, number of post rows) for the site."""
    with eng.connect() as conn:
        total, posts = conn.execute(
            text(
                "SELECT COALESCE(SUM(comments + replies), 0), COUNT(*) FROM post_engagement "
                "WHERE site = :site"
            ),
            {"site": site},
        ).one()
        return int(total), int(posts)


def cleanup(eng: Engine, site: str) -> None:
    """Delete the benchmark site's rows from every sink table that has a site column."""
    try:
        _delete_site(eng, site)
    except SQLAlchemyError as exc:  # best effort: rows of a unique site harm nobody
        print(f"note: could not delete the rows of {site}: {str(exc).splitlines()[0]}")


def _delete_site(eng: Engine, site: str) -> None:
    with eng.begin() as conn:
        for table in ("post_engagement", "thread_engagement", "engagement_window"):
            try:
                with conn.begin_nested():
                    conn.execute(text(f"DELETE FROM {table} WHERE site = :site"), {"site": site})
            except Exception:  # table not there (older schema): nothing to clean
                pass


def forget_sink_offsets(eng: Engine, topics) -> None:
    """Drop the sink's stored positions of these topics (sinks.models.SinkOffset)."""
    offsets = table_of(SinkOffset)
    with eng.begin() as conn:
        conn.execute(delete(offsets).where(offsets.c.topic.in_(sorted(topics))))
