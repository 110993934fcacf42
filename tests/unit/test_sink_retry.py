"""The retrying writer (sinks.retry) and the sink agent's message decoding."""

from __future__ import annotations

import logging
import threading

import pytest
from prometheus_client import REGISTRY

from sinks import db
from sinks.retry import RetryingWriter, WriterStopped
from sinks.upsert import InvalidAggregate, collapse
from tests.unit.test_sink_upsert import post, snapshot


def sample(name: str, labels: dict | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_write_waits_for_the_database_and_reports_the_outage_once(tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'late.db'}"
    engine = db.make_engine(url)  # no tables yet: every write fails until the migration runs
    writer = RetryingWriter(engine, backoff_start=0.01, backoff_cap=0.05)
    errors_before = sample("blogpulse_sink_errors_total", {"kind": "database"})
    rows_before = sample("blogpulse_sink_rows_written_total", {"table": "post_engagement"})
    seen_down = threading.Event()

    def migrate_when_down():
        while not writer.down:
            threading.Event().wait(0.005)
        seen_down.set()
        assert sample("blogpulse_sink_up") == 0
        threading.Event().wait(0.2)  # several retries
        db.upgrade(url)

    helper = threading.Thread(target=migrate_when_down)
    helper.start()
    with caplog.at_level(logging.INFO, logger="sinks.retry"):
        result = writer.write(collapse([post("s", 1, 3)]))
    helper.join()
    assert seen_down.is_set()
    assert result.upserted == {"post_engagement": 1}
    assert {r[-1] for r in snapshot(engine)["posts"]} == {3}
    assert writer.failures >= 2 and not writer.down
    assert sample("blogpulse_sink_up") == 1
    assert (
        sample("blogpulse_sink_errors_total", {"kind": "database"}) - errors_before
        == writer.failures
    )
    assert (
        sample("blogpulse_sink_rows_written_total", {"table": "post_engagement"}) - rows_before == 1
    )
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unavailable" in m for m in messages) == 1
    assert sum("is back" in m for m in messages) == 1
    engine.dispose()


def test_outage_log_masks_the_password(caplog):
    # Nothing listens on port 1: connection refused at once.
    engine = db.make_engine("postgresql+psycopg://sinkuser:pa55word@127.0.0.1:1/none")
    writer = RetryingWriter(engine, backoff_start=0.01, backoff_cap=0.01)
    timer = threading.Timer(0.3, writer.stop)
    timer.start()
    with caplog.at_level(logging.INFO, logger="sinks.retry"), pytest.raises(WriterStopped):
        writer.write(collapse([post("s", 1, 1)]))
    timer.join()
    text = caplog.text
    assert "unavailable" in text and "sinkuser:***@127.0.0.1:1" in text
    assert "pa55word" not in text


def test_decode_turns_bad_json_into_invalid_aggregate():
    from streams.sink import decode

    assert decode("engagement.posts", b"s/1", b'{"version": 1}') == ("posts", "s/1", {"version": 1})
    with pytest.raises(InvalidAggregate) as err:
        decode("engagement.threads", b"s/1/2", b"{not json")
    assert err.value.field == "value" and err.value.kind == "threads"
