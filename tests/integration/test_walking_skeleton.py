"""The walking skeleton through the real stack: one comment published with kafka-python -> the faust
worker counts it for its post -> the count is in PostgreSQL (through SQLAlchemy) -> the worker's
/metrics shows it consumed and written."""

from __future__ import annotations

import re

import sqlalchemy as sa

from tests.integration.worker_proc import running_worker, wait_until


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"{name}(?:\{{(.*)\}})? (\S+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            total += float(m.group(2))
    return total


def test_one_comment_reaches_postgresql_and_metrics(broker, pg_url, unique, tmp_path):
    from schemas.wire import make_event
    from streams.publisher import Publisher, ensure_topics
    from streams.settings import Settings

    site = f"skeleton-{unique}.example"
    with running_worker(broker, f"it-skeleton-{unique}", pg_url, tmp_path / "worker.log") as worker:
        before = worker.metrics()
        settings = Settings(broker=broker)
        ensure_topics(settings)
        comment = make_event(
            type="comment",
            site=site,
            post_id=7,
            comment_id=1,
            author_key="c" * 64,
            event_time="2024-06-01T12:00:00Z",
        )
        with Publisher(settings) as publisher:
            assert publisher.publish([comment]) == {"comment": 1}

        engine = sa.create_engine(pg_url)
        try:

            def row():
                with engine.connect() as conn:
                    return conn.execute(
                        sa.text(
                            "select comments, threads, version from post_engagement "
                            "where site = :site and post_id = 7"
                        ),
                        {"site": site},
                    ).first()

            comments, threads, version = wait_until(row, 60, "post row in PostgreSQL", worker)
        finally:
            engine.dispose()
        assert (comments, threads) == (1, 1) and version >= 1

        after = worker.metrics()
        applied = "blogpulse_events_consumed_total"
        assert (
            _metric(after, applied, type="comment", outcome="applied")
            >= _metric(before, applied, type="comment", outcome="applied") + 1
        )
        assert _metric(after, "blogpulse_sink_rows_written_total", table="post_engagement") >= 1
