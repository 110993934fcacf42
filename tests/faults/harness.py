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
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from streams.process import stop_process
from tests.conftest import REPO, free_port
from tests.faults import committed_outputs
from tests.faults.history import COMPARED, generate, recount, recount_threads, recount_windows
from tests.integration.worker_proc import CLI, Worker, db_upgrade, worker_env

# Far beyond any gap in the generated history: a reply waiting for its parent (published on
# another topic) must not be promoted to its own thread by the worker clock during the run.
NO_ORPHANS = str(10**9)
REPORT = Path(
    os.environ.get("BLOGPULSE_FAULT_REPORT", REPO / "tests" / "faults" / "last-run.jsonl")
)


def start_worker(broker: str, app_id: str, db_url: str, log: Path, **extra: str) -> Worker:
    port = free_port()
    env = worker_env(broker, app_id, port, db_url, BLOGPULSE_ORPHAN_TIMEOUT=NO_ORPHANS, **extra)
    db_upgrade(env)
    out = open(log, "ab")
    proc = subprocess.Popen(
        [*CLI, "worker"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
    )
    out.close()
    return Worker(proc, port, env, log)


def stop_worker(worker: Worker, sig: int = signal.SIGTERM) -> None:
    stop_process(worker.proc, grace=60, sig=sig)


class PublisherThread(threading.Thread):
    """Publish the events in chunks with a pause between them, so events keep arriving while the
    fault happens. A chunk that fails (broker restarting) is sent again: the history then holds
    duplicates, which the recount and the engine must both ignore. `holds`: (index, event) pairs,
    the events from that index on are published only once the event is set (Run.release): so
    that some of the history is still to come after a step of the test, however slow the
    machine."""

    def __init__(
        self,
        broker: str,
        events: list[dict],
        chunk: int = 1000,
        pause: float = 0.5,
        holds: list[tuple[int, threading.Event]] | None = None,
        **settings: object,
    ):
        super().__init__(daemon=True)
        self.broker, self.events, self.chunk, self.pause = broker, events, chunk, pause
        self.holds = sorted(holds or [], key=lambda hold: hold[0])
        self.settings = settings  # more Settings fields (the input generation of a growth run)
        self.retried_chunks = 0
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        from streams.publisher import Publisher
        from streams.settings import Settings

        settings = Settings(broker=self.broker, **self.settings)
        publisher = None
        try:
            for i in range(0, len(self.events), self.chunk):
                while self.holds and i >= self.holds[0][0]:
                    self.holds.pop(0)[1].wait()
                deadline = time.monotonic() + 180
                while True:
                    try:
                        publisher = publisher or Publisher(settings, request_timeout_ms=10000)
                        publisher.publish(self.events[i : i + self.chunk], timeout=30)
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
    """The rows of a run's sites: generation 1's tables, or with `current` the *_current views
    (the generation readers see: a run that switches generations)."""

    url: str
    tag: str
    current: bool = False
    engine: sa.Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = sa.create_engine(self.url, pool_pre_ping=True)
        self._view = "_current" if self.current else ""

    def posts(self) -> dict[tuple[str, int], dict[str, int]] | None:
        """post_engagement rows of this test's sites; None while the database does not answer."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.text(
                        f"select site, post_id, {', '.join(COMPARED)} from post_engagement{self._view} "
                        "where site like :pattern"
                    ),
                    {"pattern": f"fault-{self.tag}-%"},
                ).all()
        except sa.exc.SQLAlchemyError:
            return None
        return {(r[0], r[1]): dict(zip(COMPARED, r[2:])) for r in rows}

    def threads(self) -> dict[tuple[str, int, int], int]:
        """thread_engagement replies of this test's sites."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "select site, post_id, root_comment_id, replies "
                    f"from thread_engagement{self._view} "
                    "where site like :pattern"
                ),
                {"pattern": f"fault-{self.tag}-%"},
            ).all()
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    def windows(self) -> dict[tuple[str, int, str, float], dict[str, int]]:
        """engagement_window counts of this test's sites, window starts as epoch seconds."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    'select site, post_id, "window", window_start, comments, replies, pingbacks, '
                    f"trackbacks from engagement_window{self._view} where site like :pattern"
                ),
                {"pattern": f"fault-{self.tag}-%"},
            ).all()
        return {
            (r[0], r[1], r[2], _epoch(r[3])): dict(
                zip(("comments", "replies", "pingbacks", "trackbacks"), r[4:])
            )
            for r in rows
        }

    def progress(self) -> int:
        """Sum of row versions: grows with every write the sink makes."""
        try:
            with self.engine.connect() as conn:
                return int(
                    conn.execute(
                        sa.text(
                            "select coalesce(sum(version), 0) "
                            f"from post_engagement{self._view} where site like :p"
                        ),
                        {"p": f"fault-{self.tag}-%"},
                    ).scalar()
                )
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
    pytest.fail(
        f"no database progress beyond {above} in {timeout}s\n"
        + "\n".join(w.log_tail() for w in workers)
    )


def rebalances_of(worker: Worker) -> int:
    """The worker's blogpulse_rebalances_total (-1 if /metrics does not answer)."""
    try:
        text = worker.metrics()
    except OSError:
        return -1
    for line in text.splitlines():
        if line.startswith("blogpulse_rebalances_total "):
            return int(float(line.split()[1]))
    return 0


def emitted(worker) -> float:
    """The worker's blogpulse_aggregates_emitted_total (0 while /metrics does not answer)."""
    try:
        text = worker.metrics()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("blogpulse_aggregates_emitted_total{")
    )


def wait_for_emission(worker, timeout: float) -> float:
    """Seconds until the (new) worker has written its first aggregates: its partitions are
    processed again. (The database alone cannot tell: the killed worker's sink process may still
    be writing what it had read.)"""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        worker.check_alive()
        if emitted(worker) > 0:
            return time.monotonic() - t0
        time.sleep(0.2)
    pytest.fail(f"the restarted worker wrote nothing in {timeout} s\n{worker.log_tail()}")


def _epoch(value) -> float:
    if isinstance(value, str):  # SQLite returns text
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def compare_rows(expected: dict, actual: dict) -> int:
    """Rows that differ, are missing or are extra."""
    return sum(1 for k in expected.keys() | actual.keys() if expected.get(k) != actual.get(k))


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
    """Seconds until the database equals the recount of `events` (post, thread and window rows);
    fails with the difference."""
    expected = recount(events)
    threads, windows = recount_threads(events), recount_windows(events)
    t0 = time.monotonic()
    actual: dict = {}
    while time.monotonic() - t0 < timeout:
        for w in workers:
            w.check_alive()
        actual = db.posts() or actual
        try:
            if actual == expected and db.threads() == threads and db.windows() == windows:
                return time.monotonic() - t0
        except sa.exc.SQLAlchemyError:
            pass  # database down (a fault test): ask again
        time.sleep(0.5)
    diff = compare(expected, actual)
    try:  # which thread and window rows differ (the post rows may all be equal)
        got_threads, got_windows = db.threads(), db.windows()
        diff["threads_differing"] = compare_rows(threads, got_threads)
        diff["windows_differing"] = compare_rows(windows, got_windows)
        diff["thread_examples"] = [
            (k, threads.get(k), got_threads.get(k))
            for k in threads.keys() | got_threads.keys()
            if threads.get(k) != got_threads.get(k)
        ][:3]
        diff["window_examples"] = [
            (k, windows.get(k), got_windows.get(k))
            for k in windows.keys() | got_windows.keys()
            if windows.get(k) != got_windows.get(k)
        ][:3]
    except sa.exc.SQLAlchemyError:
        pass
    sample = [(p, expected[p], actual.get(p)) for p in expected if actual.get(p) != expected[p]][:3]
    history = ""
    first = (
        sample[0][0]
        if sample
        else (diff.get("thread_examples") or diff.get("window_examples") or [((None, None),)])[0][
            0
        ][:2]
    )
    if first[0] is not None:  # the first differing post's events, for whoever debugs the engine
        site, post_id = first
        history = "\n".join(
            sorted(
                f"  {e['event_time']} {e['type']:10} id={e['comment_id']} parent={e.get('parent_id', 0)} "
                f"{e['status']} {e['event_id'][:8]}"
                for e in {e["event_id"]: e for e in events}.values()
                if e["site"] == site and e["post_id"] == post_id
            )
        )
    pytest.fail(
        f"database differs from the recount after {timeout}s: {diff}; e.g. {sample}\n"
        f"events of {first}:\n{history}\n" + "\n".join(w.log_tail(2000) for w in workers)
    )


def record(fault: str, **numbers) -> None:
    """Append one result line for docs/reliability.md."""
    line = {"fault": fault, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **numbers}
    with open(REPORT, "a") as f:
        f.write(json.dumps(line) + "\n")
    print(json.dumps(line))


CONVERGE_TIMEOUT = 300
# compare_rows() of a database that equals the recount: every fault test's end result
EXACT = {
    "lost": 0,
    "double_counted": 0,
    "posts_differing": 0,
    "threads_differing": 0,
    "windows_differing": 0,
}


def patience(events: int) -> float:
    """Waits grow with the history: sized for the default 20,000 events, and a 3-node cluster on
    2 cores processes a 100,000-event run far slower than one broker (acks from 2 replicas)."""
    return max(1.0, events / 20000)


class Run:
    """One fault run: topics on the private broker (or cluster), a worker, the publisher thread
    started."""

    def __init__(
        self,
        kafka,
        db_url: str,
        tag: str,
        n: int,
        tmp_path,
        guarantee: str = "at_least_once",
        holds: tuple[float, ...] = (),
        store: str = "memory",
    ) -> None:
        """`holds`: fractions of the history at which the publisher waits for release(i)."""
        from streams.publisher import ensure_topics

        self.kafka, self.db_url, self.tag, self.tmp = kafka, db_url, tag, tmp_path
        self.guarantee, self.store = guarantee, store
        self.app_id = f"fault-{tag}"
        self.events = generate(n, tag)
        ensure_topics(kafka.settings())
        self.db = Database(db_url, tag)
        self.workers = [self.worker("worker-1")]
        wait_for_progress(self.db, -1, 120, self.workers)  # migrated and answering
        self.holds = [threading.Event() for _ in holds]
        self.publisher = PublisherThread(
            kafka.broker,
            self.events,
            holds=[(int(f * len(self.events)), e) for f, e in zip(holds, self.holds)],
        )
        self.publisher.start()

    def release(self, hold: int) -> None:
        """Let the publisher go on past its hold number `hold`."""
        self.holds[hold].set()

    def worker(self, name: str):
        return start_worker(
            self.kafka.broker,
            self.app_id,
            self.db_url,
            self.tmp / f"{name}.log",
            BLOGPULSE_PROCESSING_GUARANTEE=self.guarantee,
            BLOGPULSE_STORE=self.store,
            BLOGPULSE_STORE_DIR=str(self.tmp / "store"),
            **self.kafka.client_env,
        )

    def midstream(self, fraction: float = 0.3) -> dict:
        """Wait until the database shows `fraction` of the history's entries, then return where the
        run stands (the fault happens now, with the rest still to process)."""
        expected = recount(self.events)
        total = sum(r["comments"] + r["replies"] for r in expected.values())
        limit = 180 * patience(len(self.events))
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            for w in self.live():
                w.check_alive()
            posts = self.db.posts() or {}
            done = sum(r["comments"] + r["replies"] for r in posts.values())
            if done >= fraction * total:
                return {
                    "processed_at_fault": round(done / total, 2),
                    "progress": self.db.progress(),
                }
            time.sleep(0.2)
        pytest.fail(
            f"the worker did not reach {fraction:.0%} of the history in {limit:.0f} s\n"
            + self.workers[-1].log_tail()
        )

    def live(self):
        return [w for w in self.workers if w.proc.poll() is None]

    def rebalances(self) -> dict[str, int]:
        """blogpulse_rebalances_total of each live worker (by log name): a worker counts 1 for
        its first assignment and 1 for each rebalance after; more than the test's joins and
        leaves means a live worker was removed from the group (missed heartbeats)."""
        return {w.log.stem: rebalances_of(w) for w in self.live()}

    def finish(self, fault: str, **numbers) -> None:
        self.publisher.done.wait(300 * patience(len(self.events)))
        assert self.publisher.error is None, f"publishing failed: {self.publisher.error!r}"
        converged = converge(
            self.db, self.events, CONVERGE_TIMEOUT * patience(len(self.events)), self.live()
        )
        diff = compare(recount(self.events), self.db.posts())
        diff["threads_differing"] = compare_rows(recount_threads(self.events), self.db.threads())
        diff["windows_differing"] = compare_rows(recount_windows(self.events), self.db.windows())
        outputs = committed_outputs.check(self.kafka.broker)
        record(
            fault,
            guarantee=self.guarantee,
            store=self.store,
            **outputs,
            events=len(self.events),
            posts=len(recount(self.events)),
            republished_chunks=self.publisher.retried_chunks,
            **diff,
            converged_after_s=round(converged, 1),
            rebalances=self.rebalances(),
            **numbers,
        )
        assert diff == EXACT
        if self.guarantee == "exactly_once":
            assert outputs["outputs_repeated"] == 0, outputs

    def close(self) -> None:
        for hold in self.holds:
            hold.set()
        for w in self.workers:
            stop_worker(w)
        dump = os.environ.get("BLOGPULSE_FAULT_DUMP")
        if dump:
            _dump_topics(self.kafka.broker, self.app_id, Path(dump))
        self.db.dispose()


def _dump_topics(broker: str, app_id: str, out: Path) -> None:
    """Every record of the run's topics as JSON lines (BLOGPULSE_FAULT_DUMP=<dir>): what a
    failing run is debugged from (e.g. a post's changelog states in order, docs/reliability.md)."""
    from kafka import KafkaConsumer

    out.mkdir(parents=True, exist_ok=True)
    c = KafkaConsumer(
        bootstrap_servers=broker,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    topics = [
        t
        for t in c.topics()
        if t.startswith(app_id)
        or t.startswith("engagement.")
        or t.startswith("blogpulse.")
        or t.startswith("blog.")
    ]
    c.subscribe(topics)
    with open(out / "topics.jsonl", "w") as f:
        for m in c:
            f.write(
                json.dumps(
                    {
                        "t": m.topic,
                        "p": m.partition,
                        "o": m.offset,
                        "ts": m.timestamp,
                        "k": m.key.decode() if m.key else None,
                        "v": m.value.decode() if m.value else None,
                    }
                )
                + "\n"
            )
    c.close()
