"""PostgreSQL stops in the middle of a sink run (deploy/local/postgres stop) and starts again: the
retrying writer holds its batch, resumes, and the final rows equal those of a run without the
outage. Stops the shared local PostgreSQL for a few seconds: run it alone, not next to other
database tests."""

from __future__ import annotations

import random
import subprocess
import threading
import time

import pytest
from prometheus_client import REGISTRY

from sinks.retry import RetryingWriter
from sinks.upsert import collapse, write_batch
from tests.conftest import REPO
from tests.integration.sink_pg import pg_schema_engine
from tests.unit.test_sink_upsert import expected_rows, history, snapshot

PG_SCRIPT = REPO / "deploy" / "local" / "postgres"

pytestmark = pytest.mark.fault


def pg(action: str) -> None:
    done = subprocess.run([str(PG_SCRIPT), action], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"deploy/local/postgres {action} failed: {done.stderr[-2000:]}"


def batches_of(messages: list, size: int) -> list:
    return [messages[i : i + size] for i in range(0, len(messages), size)]


def test_postgres_outage_mid_run_loses_nothing(pg_url):
    assert PG_SCRIPT.exists(), "deploy/local/postgres (start|stop) is missing"
    messages = history(random.Random(7), posts=40)  # per-key version order, as Kafka delivers
    batches = batches_of(messages, 10)

    with pg_schema_engine(pg_url) as reference:
        for batch in batches:
            write_batch(reference, batch)
        without_outage = snapshot(reference)
    assert without_outage == expected_rows(None, messages)

    with pg_schema_engine(pg_url) as engine:
        writer = RetryingWriter(engine, backoff_start=0.05, backoff_cap=1.0)
        written = []
        failure: list[BaseException] = []

        def run_sink() -> None:
            try:
                for batch in batches:
                    writer.write(collapse(batch))
                    written.append(len(batch))
                    time.sleep(0.03)  # a steady stream, so the outage lands mid-run
            except BaseException as exc:  # reported by the main thread
                failure.append(exc)

        sink = threading.Thread(target=run_sink, daemon=True)
        stopped = False
        try:
            sink.start()
            while len(written) < len(batches) // 4:
                assert sink.is_alive(), failure
                time.sleep(0.01)
            pg("stop")
            stopped = True
            deadline = time.monotonic() + 30
            while not writer.down:
                assert time.monotonic() < deadline, "the writer never noticed the outage"
                time.sleep(0.05)
            held_at = len(written)
            time.sleep(2.0)  # several retries while the database is down
            assert len(written) == held_at, "batches reported written while PostgreSQL was down"
            assert REGISTRY.get_sample_value("blogpulse_sink_up") == 0
            assert held_at < len(batches), "the run finished before the outage"
        finally:
            if stopped:
                pg("start")
        sink.join(timeout=120)
        assert not sink.is_alive(), "the sink did not resume after PostgreSQL came back"
        assert not failure, failure
        assert len(written) == len(batches)
        assert writer.failures >= 1 and not writer.down
        assert REGISTRY.get_sample_value("blogpulse_sink_up") == 1
        assert snapshot(engine) == without_outage
