"""Faults against real services (a private broker and PostgreSQL, see conftest.py): after each,
post_engagement must equal the independent recount of the published history (nothing lost,
nothing counted twice). Event count: BLOGPULSE_FAULT_EVENTS (docs/reliability.md)."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.faults.harness import (Database, PublisherThread, compare, converge, record, start_worker,
                                  stop_worker, wait_for_progress)
from tests.faults.history import generate, recount

CONVERGE_TIMEOUT = 300


class Run:
    """One fault run: topics on the private broker, a worker, the publisher thread started."""

    def __init__(self, kafka, db_url: str, tag: str, n: int, tmp_path) -> None:
        from schemas.publisher import ensure_topics
        from streams.config import Settings

        self.kafka, self.db_url, self.tag, self.tmp = kafka, db_url, tag, tmp_path
        self.app_id = f"fault-{tag}"
        self.events = generate(n, tag)
        ensure_topics(Settings(broker=kafka.broker))
        self.db = Database(db_url, tag)
        self.workers = [self.worker("worker-1")]
        wait_for_progress(self.db, -1, 120, self.workers)  # migrated and answering
        self.publisher = PublisherThread(kafka.broker, self.events)
        self.publisher.start()

    def worker(self, name: str):
        return start_worker(self.kafka.broker, self.app_id, self.db_url, self.tmp / f"{name}.log")

    def midstream(self, fraction: float = 0.3) -> dict:
        """Wait until the database shows `fraction` of the history's entries, then return where the
        run stands (the fault happens now, with the rest still to process)."""
        expected = recount(self.events)
        total = sum(r["comments"] + r["replies"] for r in expected.values())
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            for w in self.live():
                w.check_alive()
            posts = self.db.posts() or {}
            done = sum(r["comments"] + r["replies"] for r in posts.values())
            if done >= fraction * total:
                return {"processed_at_fault": round(done / total, 2), "progress": self.db.progress()}
            time.sleep(0.2)
        pytest.fail(f"the worker did not reach {fraction:.0%} of the history in 180 s\n"
                    + self.workers[-1].log_tail())

    def live(self):
        return [w for w in self.workers if w.proc.poll() is None]

    def finish(self, fault: str, **numbers) -> None:
        self.publisher.done.wait(300)
        assert self.publisher.error is None, f"publishing failed: {self.publisher.error!r}"
        converged = converge(self.db, self.events, CONVERGE_TIMEOUT, self.live())
        diff = compare(recount(self.events), self.db.posts())
        record(fault, events=len(self.events), posts=len(recount(self.events)),
               republished_chunks=self.publisher.retried_chunks, **diff,
               converged_after_s=round(converged, 1), **numbers)
        assert diff == {"lost": 0, "double_counted": 0, "posts_differing": 0}

    def close(self) -> None:
        for w in self.workers:
            stop_worker(w)
        dump = os.environ.get("BLOGPULSE_FAULT_DUMP")
        if dump:
            _dump_topics(self.kafka.broker, self.app_id, Path(dump))
        self.db.dispose()


@pytest.fixture
def run(kafka, fault_db, unique, fault_events, tmp_path):
    r = Run(kafka, fault_db, unique, fault_events, tmp_path)
    try:
        yield r
    finally:
        r.close()


def test_worker_sigkill_midstream_then_restart(run):
    at = run.midstream()
    stop_worker(run.workers[0], signal.SIGKILL)
    assert run.workers[0].proc.returncode == -signal.SIGKILL
    t0 = time.monotonic()
    run.workers.append(run.worker("worker-2"))
    resumed = wait_for_progress(run.db, at["progress"], 180, run.live())
    run.finish("worker SIGKILL mid-stream, restarted", processed_at_fault=at["processed_at_fault"],
               recovery_s=round(time.monotonic() - t0, 1), resumed_after_s=round(resumed, 1))


def test_broker_restart_midstream(run):
    at = run.midstream()
    down = run.kafka.run("restart")
    progress = run.db.progress()
    resumed = wait_for_progress(run.db, progress, 180, run.live())
    run.finish("Kafka broker restarted mid-stream", processed_at_fault=at["processed_at_fault"],
               broker_restart_s=round(down, 1), recovery_s=round(resumed, 1))


def test_postgres_stopped_midstream(run, postgres_server):
    at = run.midstream()
    postgres_server.stop()
    time.sleep(10)  # the worker keeps consuming; the sink retries
    for w in run.live():
        w.check_alive()
    postgres_server.start()
    resumed = wait_for_progress(run.db, at["progress"], 180, run.live())
    run.finish("PostgreSQL stopped for 10 s mid-stream", processed_at_fault=at["processed_at_fault"],
               recovery_s=round(resumed, 1))


def test_two_workers_rebalance_while_events_flow(run):
    at = run.midstream(0.2)
    t0 = time.monotonic()
    run.workers.append(run.worker("worker-2"))  # joins: partitions are split between the two
    first = wait_for_progress(run.db, run.db.progress(), 180, run.live())
    run.midstream(0.5)
    progress = run.db.progress()
    stop_worker(run.workers[1])  # leaves: worker-1 takes its partitions back
    second = wait_for_progress(run.db, progress, 180, run.live())
    run.finish("second worker joins, then leaves, while events flow",
               processed_at_fault=at["processed_at_fault"], recovery_s=round(max(first, second), 1),
               join_to_progress_s=round(time.monotonic() - t0, 1))


def _dump_topics(broker: str, app_id: str, out: Path) -> None:
    """Every record of the run's topics as JSON lines (BLOGPULSE_FAULT_DUMP=<dir>): what a
    failing run is debugged from (e.g. a post's changelog states in order, docs/reliability.md)."""
    from kafka import KafkaConsumer
    out.mkdir(parents=True, exist_ok=True)
    c = KafkaConsumer(bootstrap_servers=broker, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=5000)
    topics = [t for t in c.topics() if t.startswith(app_id) or t.startswith("engagement.")
              or t.startswith("blogpulse.") or t.startswith("blog.")]
    c.subscribe(topics)
    with open(out / "topics.jsonl", "w") as f:
        for m in c:
            f.write(json.dumps({"t": m.topic, "p": m.partition, "o": m.offset, "ts": m.timestamp,
                                "k": m.key.decode() if m.key else None,
                                "v": m.value.decode() if m.value else None}) + "\n")
    c.close()
