"""A database that is new, emptied or restored from an older copy converges by itself to the
pipeline's current aggregates: the sink keeps its positions in the database (sink_offset, written
with the rows), so a new one reads the compacted output topics from the start and a restored one
from where its copy was. Both end with the same rows as the database that never left, on SQLite
and on PostgreSQL."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from streams.process import stop_process
from tests.conftest import REPO, free_port
from tests.integration.test_sample_to_database import SAMPLE, TABLES, database, rows_of
from tests.integration.worker_proc import CLI, db_upgrade, running_worker, wait_until, worker_env

COPIED = (*TABLES, "sink_tombstone", "sink_offset")


def _copy(kind: str, src: str, dst: str) -> None:
    """What a backup and a restore do: every table of src, as it is now, into dst."""
    if kind == "sqlite":
        source = sqlite3.connect(sa.make_url(src).database)
        target = sqlite3.connect(sa.make_url(dst).database)
        with target:
            source.backup(target)
        source.close()
        target.close()
        return
    a, b = sa.create_engine(src), sa.create_engine(dst)
    try:
        with a.connect() as read, b.begin() as write:
            for table in COPIED:
                rows = read.execute(sa.text(f"select * from {table}")).mappings().all()
                write.execute(sa.text(f"delete from {table}"))
                if rows:
                    cols = list(rows[0].keys())
                    names = ", ".join(f'"{c}"' for c in cols)  # "window" is a keyword
                    write.execute(
                        sa.text(
                            f"insert into {table} ({names}) values "
                            f"({', '.join(':' + c for c in cols)})"
                        ),
                        [dict(r) for r in rows],
                    )
    finally:
        a.dispose()
        b.dispose()


@contextlib.contextmanager
def _sink(broker: str, db_url: str, log: Path):
    """A `blogpulse sink` of its own (own consumer group) on db_url."""
    env = worker_env(broker, f"it-restart-{uuid.uuid4().hex[:8]}", free_port(), db_url)
    db_upgrade(env)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*CLI, "sink", "--metrics-port", str(free_port())],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        stop_process(proc)


def _settled(url: str, site: str, seconds: float = 3.0) -> dict:
    """The rows, once they did not change for `seconds`."""
    last = rows_of(url, site)
    while True:
        time.sleep(seconds)
        now = rows_of(url, site)
        if now == last and now["post_engagement"]:
            return now
        last = now


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_new_and_restored_databases_converge_to_the_live_one(
    kind, broker, unique, tmp_path, request
):
    from schemas.readers import read_events
    from streams.publisher import Publisher, ensure_topics
    from streams.settings import Settings

    pg_url = request.getfixturevalue("pg_url") if kind == "postgresql" else None
    site = f"restart-{kind}-{unique}.example"
    settings = Settings(broker=broker)
    events = list(read_events(SAMPLE, site=site, keyer=settings.author_keyer))
    ensure_topics(settings)
    with (
        database(kind, tmp_path, pg_url) as live,
        database(kind, tmp_path, pg_url) as fresh,
        database(kind, tmp_path, pg_url) as restored,
    ):
        with running_worker(broker, f"it-live-{unique}", live, tmp_path / "worker.log") as worker:
            db_upgrade(worker.env | {"BLOGPULSE_DB": restored})
            with Publisher(settings) as publisher:
                publisher.publish(events[:12])
            early = _settled(live, site)
            _copy(kind, live, restored)  # the backup, taken half-way
            with Publisher(settings) as publisher:
                publisher.publish(events[12:])

            def complete():
                rows = rows_of(live, site)
                post = rows["post_engagement"]
                return rows if post and post[0][2:6] == (10, 2, 4, 0) else None

            wait_until(complete, 120, "the live database with the whole sample", worker)
            final = _settled(live, site)
        assert early != final  # the copy is older than the live database
        with (
            _sink(broker, fresh, tmp_path / "fresh.log"),
            _sink(broker, restored, tmp_path / "restored.log"),
        ):
            wait_until(
                lambda: rows_of(fresh, site) == final or None,
                120,
                "the new database equal to the live one",
            )
            wait_until(
                lambda: rows_of(restored, site) == final or None,
                120,
                "the restored database equal to the live one",
            )
