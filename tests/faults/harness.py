"""Drive a fault run: worker processes, a publisher thread that keeps events flowing through the
fault, the database read back, and the comparison with the recount."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import REPO, free_port
from streams.process import stop_process
from tests.faults.history import COMPARED, recount
from tests.integration.worker_proc import CLI, Worker, db_upgrade, worker_env

# Far beyond any gap in the generated history: a reply waiting for its parent (published on
# another topic) must not be promoted to its own thread by the worker clock during the run.
NO_ORPHANS = str(10 ** 9)
REPORT = Path(os.environ.get("BLOGPULSE_FAULT_REPORT", REPO / "tests" / "faults" / "last-run.jsonl"))


def start_worker(broker: str, app_id: str, db_url: str, log: Path, **extra: str) -> Worker:
    port = free_port()
    env = worker_env(broker, app_id, port, db_url, BLOGPULSE_ORPHAN_TIMEOUT=NO_ORPHANS, **extra)
    db_upgrade(env)
    out = open(log, "ab")
    proc = subprocess.Popen([*CLI, "worker"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return Worker(proc, port, env, log)


def stop_worker(worker: Worker, sig: int = signal.SIGTERM) -> None:
    stop_process(worker.proc, grace=60, sig=sig)


class PublisherThread(threading.Thread):
    """Publish the events in chunks with a pause between them, so events keep arriving while the
    fault happens. A chunk that fails (broker restarting) is sent again: the history then holds
    duplicates, which the recount and the engine must both ignore."""

    def __init__(self, broker: str, events: list[dict], chunk: int = 1000, pause: float = 0.5):
        super().__init__(daemon=True)
        self.broker, self.events, self.chunk, self.pause = broker, events, chunk, pause
        self.retried_chunks = 0
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        from schemas.publisher import Publisher
        from streams.config import Settings

        settings = Settings(broker=self.broker)
        publisher = None
        try:
            for i in range(0, len(self.events), self.chunk):
                deadline = time.monotonic() + 180
                while True:
                    try:
                        publisher = publisher or Publisher(settings, request_timeout_ms=10000)
                        publisher.publish(self.events[i:i + self.chunk], timeout=30)
                        break
                    except Exception:  # broker away: start over with a new producer
                        if time.monotonic() > deadline:
                            raise
                        self.retried_chunks += 1
                        if publisher is not None:
                            try:
                                publisher.close()
                            except Exception:
                                pass
                            publisher = None
                        time.sleep(1)
                time.sleep(self.pause)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            if publisher is not None:
                publisher.close()
            self.done.set()


@dataclass
class Database:
    url: str
    tag: str
    engine: sa.Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = sa.create_engine(self.url, pool_pre_ping=True)

    def posts(self) -> dict[tuple[str, int], dict[str, int]] | None:
        """post_engagement rows of this test's sites; None while the database does not answer."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.text(
                    f"select site, post_id, {', '.join(COMPARED)} from post_engagement "
                    "where site like :pattern"), {"pattern": f"fault-{self.tag}-%"}).all()
        except sa.exc.SQLAlchemyError:
            return None
        return {(r[0], r[1]): dict(zip(COMPARED, r[2:])) for r in rows}

    def progress(self) -> int:
        """Sum of row versions: grows with every write the sink makes."""
        try:
            with self.engine.connect() as conn:
                return int(conn.execute(sa.text(
                    "select coalesce(sum(version), 0) from post_engagement where site like :p"),
                    {"p": f"fault-{self.tag}-%"}).scalar())
        except sa.exc.SQLAlchemyError:
            return -1

    def dispose(self) -> None:
        self.engine.dispose()


def wait_for_progress(db: Database, above: int, timeout: float, workers: list[Worker]) -> float:
    """Seconds until the database's progress exceeds `above`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for w in workers:
            w.check_alive()
        if db.progress() > above:
            return time.monotonic() - t0
        time.sleep(0.2)
    pytest.fail(f"no database progress beyond {above} in {timeout}s\n"
                + "\n".join(w.log_tail() for w in workers))


def compare(expected: dict, actual: dict) -> dict[str, int]:
    """lost: expected entries missing from the database; double: entries counted beyond the recount
    (both summed over comments, replies, pingbacks, trackbacks); plus the differing posts."""
    lost = double = 0
    wrong = 0
    for post, exp in expected.items():
        got = actual.get(post, dict.fromkeys(COMPARED, 0))
        if got != exp:
            wrong += 1
        for f in ("comments", "replies", "pingbacks", "trackbacks"):
            lost += max(0, exp[f] - got[f])
            double += max(0, got[f] - exp[f])
    extra = [p for p in actual if p not in expected]
    return {"lost": lost, "double_counted": double, "posts_differing": wrong + len(extra)}


def converge(db: Database, events: list[dict], timeout: float, workers: list[Worker]) -> float:
    """Seconds until the database equals the recount of `events`; fails with the difference."""
    expected = recount(events)
    t0 = time.monotonic()
    actual: dict = {}
    while time.monotonic() - t0 < timeout:
        for w in workers:
            w.check_alive()
        actual = db.posts() or actual
        if actual == expected:
            return time.monotonic() - t0
        time.sleep(0.5)
    diff = compare(expected, actual)
    sample = [(p, expected[p], actual.get(p)) for p in expected if actual.get(p) != expected[p]][:3]
    history = ""
    if sample:  # the first differing post's events, for whoever debugs the engine
        site, post_id = sample[0][0]
        history = "\n".join(sorted(
            f"  {e['event_time']} {e['type']:10} id={e['comment_id']} parent={e.get('parent_id', 0)} "
            f"{e['status']} {e['event_id'][:8]}"
            for e in {e['event_id']: e for e in events}.values()
            if e["site"] == site and e["post_id"] == post_id))
    pytest.fail(f"database differs from the recount after {timeout}s: {diff}; e.g. {sample}\n"
                f"events of {sample[0][0] if sample else None}:\n{history}\n"
                + "\n".join(w.log_tail(2000) for w in workers))


def record(fault: str, **numbers) -> None:
    """Append one result line for docs/reliability.md."""
    line = {"fault": fault, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **numbers}
    with open(REPORT, "a") as f:
        f.write(json.dumps(line) + "\n")
    print(json.dumps(line))
