"""Soak: events at a steady rate (BLOGPULSE_SOAK_RATE, 1,000 events/s) for BLOGPULSE_SOAK_SECONDS
(180 s here and in CI; 1800 for the issue's 30-minute run, not in CI), the fault history's mix
(moderation changes, replies published before their parents, duplicates, shuffled), and the worker
restarted every BLOGPULSE_SOAK_RESTART_SECONDS (default: every minute, or every 5 minutes from a
30-minute run on), alternately SIGKILLed and stopped cleanly. Sampled every 5 s: the worker's and
its sink process's RSS and the consumer lag of the worker's group (input topics) and of the sink's
(output topics), read from the broker, so they are known while a worker is down too. Printed as a
curve; the end must equal the recount (post, thread and window rows) with 0 lost, 0 double-counted.

Checked: lag bounded (below what one restart plus a minute of events can pile up) and back to 0
at the end; each worker life took part in exactly one rebalance (its own join: a live worker
removed for missed heartbeats under load would count more); no worker's RSS grows past
SOAK_RSS_SLACK above what a fresh worker needs for the same state (docs/reliability.md, Soak).

BLOGPULSE_SOAK_GUARANTEE (default at_least_once; CI runs that) sets the workers' processing
guarantee; with exactly_once the output topics are also read back (tests/faults/committed_outputs.py)
and no committed aggregate may repeat. BLOGPULSE_SOAK_STORE (default memory; CI runs that) sets the
workers' state store: rocksdb holds a bounded part of the state in memory."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from schemas.topic_names import BASE_OUTPUT_TOPICS, INPUT_TOPICS
from streams.settings import sink_group
from tests.faults import committed_outputs
from tests.faults.harness import (
    CONVERGE_TIMEOUT,
    EXACT,
    Database,
    PublisherThread,
    compare,
    compare_rows,
    converge,
    rebalances_of,
    record,
    start_worker,
    stop_worker,
    wait_for_emission,
    wait_for_progress,
)
from tests.faults.history import generate, recount, recount_threads, recount_windows

SOAK_SECONDS = float(os.environ.get("BLOGPULSE_SOAK_SECONDS", "180"))
SOAK_RATE = float(os.environ.get("BLOGPULSE_SOAK_RATE", "1000"))
RESTART_EVERY = float(os.environ.get("BLOGPULSE_SOAK_RESTART_SECONDS", "0")) or (
    60.0 if SOAK_SECONDS < 1800 else 300.0
)
SAMPLE_EVERY = 5.0
SOAK_GUARANTEE = os.environ.get("BLOGPULSE_SOAK_GUARANTEE", "at_least_once")
SOAK_STORE = os.environ.get("BLOGPULSE_SOAK_STORE", "memory")


class PacedPublisher(PublisherThread):
    """Publishes `rate` events/s in 10 chunks a second, on a fixed schedule (a late chunk is
    caught up, not skipped). Keeps PublisherThread's retry of a failed chunk."""

    def __init__(self, broker: str, events: list[dict], rate: float):
        super().__init__(broker, events, chunk=max(1, int(rate / 10)), pause=0.0)
        self.rate = rate
        self.sent = 0

    def run(self) -> None:
        from streams.publisher import Publisher
        from streams.settings import Settings

        publisher = Publisher(Settings(broker=self.broker), request_timeout_ms=10000)
        start = time.monotonic()
        try:
            for i in range(0, len(self.events), self.chunk):
                delay = start + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                publisher.publish(self.events[i : i + self.chunk], timeout=30)
                self.sent = i + len(self.events[i : i + self.chunk])
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            publisher.close()
            self.done.set()


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class Lag:
    """Consumer lag of a group on some topics, from the broker (committed vs end offsets), with the
    product's own look-ups (streams/group_offsets.py)."""

    def __init__(self, broker: str) -> None:
        from streams.group_offsets import admin_client, lookup_consumer
        from streams.settings import Settings

        settings = Settings(broker=broker)
        self.admin = admin_client(settings, "soak-lag")
        self.consumer = lookup_consumer(settings, "soak-lag")

    def of(self, group: str, topics) -> int | None:
        from streams.group_offsets import committed, partitions_of

        try:
            ends = self.consumer.end_offsets(partitions_of(self.admin, topics))
            done = committed(self.admin, group, patience=0)
        except Exception:  # noqa: BLE001 - a sample is best effort; the next one counts
            return None
        return sum(max(0, end - done.get(tp, 0)) for tp, end in ends.items())

    def close(self) -> None:
        self.consumer.close()
        self.admin.close()


class Sampler(threading.Thread):
    def __init__(self, broker: str, app_id: str, current) -> None:
        super().__init__(daemon=True)
        self.lag, self.app_id, self.current = Lag(broker), app_id, current
        self.samples: list[dict] = []
        self.stop = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_EVERY):
            worker = self.current()
            pid = worker.proc.pid if worker.proc.poll() is None else None
            sink = _children(pid) if pid else []
            self.samples.append(
                {
                    "t": round(time.monotonic() - self.t0),
                    "worker_mb": _rss_mb(pid) if pid else None,
                    "sink_mb": _rss_mb(sink[0]) if sink else None,
                    "input_lag": self.lag.of(self.app_id, INPUT_TOPICS.values()),
                    "sink_lag": self.lag.of(sink_group(self.app_id), BASE_OUTPUT_TOPICS.values()),
                    "life": worker.log.stem,
                }
            )

    def close(self) -> None:
        self.stop.set()
        self.join(30)
        self.lag.close()


def _curve(samples: list[dict]) -> str:
    def fmt(v, width=7):
        return f"{'-' if v is None else round(v):>{width}}"

    lines = ["    t s  worker MB  sink MB  input lag  sink lag  worker"]
    for s in samples:
        lines.append(
            f"{fmt(s['t'])}  {fmt(s['worker_mb'], 9)}  {fmt(s['sink_mb'])}  "
            f"{fmt(s['input_lag'], 9)}  {fmt(s['sink_lag'], 8)}  {s['life']}"
        )
    return "\n".join(lines)


# A restarted worker reloads the whole state: its RSS once caught up is what the state needs.
# The worker before it, at the end of its life, held the same state (a little less): it may not
# be more than this above the next one (a leak grows with the life's length).
SOAK_RSS_SLACK = 1.25


@pytest.mark.soak
def test_soak_steady_rate_with_restarts(kafka, fault_db, unique, tmp_path):
    from streams.publisher import ensure_topics

    n = int(SOAK_RATE * SOAK_SECONDS)
    events = generate(n, unique)
    ensure_topics(kafka.settings())
    db = Database(fault_db, unique)
    app_id = f"fault-{unique}"
    lives = [
        start_worker(
            kafka.broker,
            app_id,
            fault_db,
            tmp_path / "worker-1.log",
            BLOGPULSE_PROCESSING_GUARANTEE=SOAK_GUARANTEE,
            BLOGPULSE_STORE=SOAK_STORE,
            BLOGPULSE_STORE_DIR=str(tmp_path / "store"),
            **kafka.client_env,
        )
    ]
    sampler = Sampler(kafka.broker, app_id, lambda: lives[-1])
    publisher = PacedPublisher(kafka.broker, events, SOAK_RATE)
    restarts: list[dict] = []
    try:
        wait_for_progress(db, -1, 120, lives)
        sampler.start()
        publisher.start()
        started = time.monotonic()
        while not publisher.done.wait(1.0):
            lives[-1].check_alive()
            if time.monotonic() - started >= RESTART_EVERY * (len(restarts) + 1):
                old = lives[-1]
                sig = signal.SIGKILL if len(restarts) % 2 == 0 else signal.SIGTERM
                rss = _rss_mb(old.proc.pid)
                before = rebalances_of(old)
                progress = db.progress()
                t_stop = time.monotonic()
                stop_worker(old, sig)
                t0 = time.monotonic()
                lives.append(
                    start_worker(
                        kafka.broker,
                        app_id,
                        fault_db,
                        tmp_path / f"worker-{len(lives) + 1}.log",
                        BLOGPULSE_PROCESSING_GUARANTEE=SOAK_GUARANTEE,
                        BLOGPULSE_STORE=SOAK_STORE,
                        BLOGPULSE_STORE_DIR=str(tmp_path / "store"),
                        **kafka.client_env,
                    )
                )
                wait_for_emission(lives[-1], 180)
                recovery = time.monotonic() - t0
                wait_for_progress(db, progress, 180, lives[-1:])
                restarts.append(
                    {
                        "at_s": round(t_stop - started),
                        "signal": sig.name,
                        "stop_s": round(t0 - t_stop, 1),
                        "exit": old.proc.returncode,
                        "rss_before_mb": round(rss or 0),
                        "rebalances_of_life": before,
                        "recovery_s": round(recovery, 1),
                    }
                )
        published_for = time.monotonic() - started
        assert publisher.error is None, f"publishing failed: {publisher.error!r}"
        # the lag is bounded, so the rest is a few seconds of events: no need to wait long
        converged = converge(db, events, CONVERGE_TIMEOUT, lives[-1:])
        time.sleep(2 * SAMPLE_EVERY)  # the lag after the end, once commits caught up
        last_rebalances = rebalances_of(lives[-1])
    finally:
        sampler.close()
        for w in lives:
            stop_worker(w)
        db.dispose()

    samples = sampler.samples
    print("\nsoak curve:\n" + _curve(samples))
    diff = compare(recount(events), db.posts())
    diff["threads_differing"] = compare_rows(recount_threads(events), db.threads())
    diff["windows_differing"] = compare_rows(recount_windows(events), db.windows())
    lags = [s["input_lag"] for s in samples if s["input_lag"] is not None]
    sink_lags = [s["sink_lag"] for s in samples if s["sink_lag"] is not None]
    rss = [s["worker_mb"] for s in samples if s["worker_mb"] is not None]
    entries = sum(
        r["comments"] + r["replies"] + r["pingbacks"] + r["trackbacks"]
        for r in recount(events).values()
    )
    peak_of_life: dict[str, float] = {}
    for s in samples:
        if s["worker_mb"] is not None:
            peak_of_life[s["life"]] = max(peak_of_life.get(s["life"], 0), s["worker_mb"])
    outputs = committed_outputs.check(kafka.broker) if SOAK_GUARANTEE == "exactly_once" else {}
    record(
        "soak: steady rate, restarts",
        guarantee=SOAK_GUARANTEE,
        **outputs,
        events=n,
        posts=len(recount(events)),
        rate=SOAK_RATE,
        seconds=SOAK_SECONDS,
        published_for_s=round(published_for, 1),
        **diff,
        converged_after_s=round(converged, 1),
        restarts=restarts,
        rebalances_of_last_life=last_rebalances,
        max_input_lag=max(lags, default=None),
        max_sink_lag=max(sink_lags, default=None),
        end_input_lag=lags[-1] if lags else None,
        end_sink_lag=sink_lags[-1] if sink_lags else None,
        worker_rss_mb={
            "first": round(rss[0]) if rss else None,
            "peak": round(max(rss, default=0)),
            "end": round(rss[-1]) if rss else None,
        },
        peak_rss_of_life_mb={k: round(v) for k, v in peak_of_life.items()},
        visible_entries=entries,
    )

    assert diff == EXACT
    if outputs:
        assert outputs["outputs_repeated"] == 0, outputs
    assert publisher.sent == n
    # Publishing kept the rate: one restart cannot stall it (a slower machine may lag behind a bit).
    assert published_for < SOAK_SECONDS * 1.5 + 30, published_for
    assert len(restarts) >= 1
    # a clean stop finishes (it hung until killed before streams/faust_compat.py patch 4)
    for r in restarts:
        if r["signal"] == "SIGTERM":
            assert r["exit"] == 0 and r["stop_s"] < 20, r
    # no needless rebalance: each life joined once (its start), none was kicked out meanwhile
    assert [r["rebalances_of_life"] for r in restarts] == [1] * len(restarts), restarts
    assert last_rebalances == 1, last_rebalances
    # Lag bounded: at most what piles up while one worker restarts plus a minute, whatever the
    # run's length; and drained at the end.
    bound = SOAK_RATE * (max(r["recovery_s"] for r in restarts) + 60)
    assert lags and max(lags) <= bound, (max(lags, default=None), bound, json.dumps(restarts))
    assert lags[-1] == 0 and sink_lags and sink_lags[-1] == 0, (lags[-3:], sink_lags[-3:])
    # RSS: each life's peak against the next life's, which reloaded (nearly) the same state.
    lifes = [w.log.stem for w in lives]
    for older, newer in zip(lifes, lifes[1:]):
        if older in peak_of_life and newer in peak_of_life:
            assert peak_of_life[older] <= SOAK_RSS_SLACK * peak_of_life[newer] + 50, peak_of_life
