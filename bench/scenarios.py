"""The measurements. Each worker run gets a fresh app id whose consumer group is pinned to the
current end of the shared topics before it starts, so it processes this run's events only (plus
whatever other users publish meanwhile, which the site filter leaves out of the counts)."""

from __future__ import annotations

import math
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy.engine import Engine

from bench import db, kafka_io, workers
from bench.events import generate
from schemas.topic_names import BASE_OUTPUT_TOPICS, INPUT_TOPICS, TICK_TOPIC
from sinks.upsert import store_offsets

NO_ROWS_LIMIT = 90.0  # seconds without a single row: the sink is not running, stop waiting
POLL_COST_FACTOR = 9  # wait >= 9x the last count query: the poller takes <= ~10 % of a core
APP_TOPICS = [*INPUT_TOPICS.values(), TICK_TOPIC, *BASE_OUTPUT_TOPICS.values()]


class Context:
    def __init__(
        self, broker: str, db_url: str, run_id: str, workdir: Path, timeout: float, log=print
    ):
        self.broker, self.db_url, self.run_id = broker, db_url, run_id
        self.workdir, self.timeout, self.log = workdir, timeout, log
        self.engine: Engine = db.engine(db_url)
        self.sites: list[str] = []
        self.profile_seconds = 60.0
        self.app_ids: list[str] = []
        self.topic_prefixes: list[str] = []  # other topics of this run to drop afterwards

    def site(self, label: str) -> str:
        site = f"bench-{self.run_id}-{label}.example"
        self.sites.append(site)
        return site

    def app_id(self, label: str) -> str:
        app_id = f"bench-{self.run_id}-{label}-{uuid.uuid4().hex[:6]}"
        self.app_ids.append(app_id)
        return app_id


def start_workers(
    ctx: Context,
    label: str,
    count: int,
    inputs_from: dict | None = None,
    env: dict[str, str] | None = None,
) -> list[workers.Worker]:
    """Start `count` workers of a new app id whose group starts at the end of every topic (or, for
    the input topics, at `inputs_from`), with `env` added to their environment."""
    app_id = ctx.app_id(label)
    ends = kafka_io.end_offsets(ctx.broker, APP_TOPICS)
    kafka_io.pin_group(ctx.broker, app_id, {**ends, **(inputs_from or {})})
    # The sink's position lives in the database: start it at the end of the output topics too.
    # Positions stored there by runs on an earlier broker can be past these ends (stored positions
    # only move forward, and a sink reads a topic whose end is behind its position from the
    # start): the benchmark's database is its own, so they are replaced.
    db.forget_sink_offsets(ctx.engine, BASE_OUTPUT_TOPICS.values())
    store_offsets(
        ctx.engine,
        {
            (tp.topic, tp.partition): o
            for tp, o in ends.items()
            if tp.topic in BASE_OUTPUT_TOPICS.values()
        },
    )
    env = {"BLOGPULSE_BROKER": ctx.broker, "BLOGPULSE_DB": ctx.db_url, **(env or {})}
    started = [workers.start(app_id, ctx.workdir / app_id, env, i) for i in range(count)]
    try:
        for w in started:
            workers.wait_web(w)
        kafka_io.wait_group_stable(ctx.broker, app_id, count)
        time.sleep(2)  # table recovery after the assignment (empty changelogs: short)
    except Exception:
        for w in started:
            w.stop()
        raise
    return started


def wait_counted(
    ctx: Context, site: str, n: int, procs: list[workers.Worker], poll: float = 0.2
) -> float | None:
    """Seconds (monotonic clock) when the sink's rows for `site` show all n entries, or None.

    The count sums every row of the site, so with many posts one query costs a share of the
    machine the worker and PostgreSQL run on: the wait between polls is at least
    `POLL_COST_FACTOR` times the last query, which keeps the poller's share below ~1/(1 + factor)
    of one core at the price of a completion time late by at most that wait."""
    began = time.monotonic()
    deadline = began + ctx.timeout
    while time.monotonic() < deadline:
        asked = time.monotonic()
        total, rows = db.counted(ctx.engine, site)
        answered = time.monotonic()
        if total >= n:
            return time.monotonic()
        if rows == 0 and time.monotonic() - began > NO_ROWS_LIMIT:
            raise RuntimeError(
                f"no post_engagement rows for {site} after {NO_ROWS_LIMIT:.0f} s: is the sink "
                f"service running (streams/sink.py)? worker log:\n"
                f"{procs[0].log_tail(1500)}"
            )
        for w in procs:
            if w.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {w.proc.returncode}:\n{w.log_tail()}")
        time.sleep(max(poll, POLL_COST_FACTOR * (answered - asked)))
    total, _ = db.counted(ctx.engine, site)
    ctx.log(f"  timed out after {ctx.timeout:.0f}s with {total:,}/{n:,} entries in the database")
    return None


def replay_throughput(
    ctx: Context,
    label: str,
    n: int,
    posts: int,
    count: int = 1,
    profile_to: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[list[workers.Worker], dict]:
    """Publish n events with no worker running, then start `count` workers at the first of them:
    events/s and CPU per event from the first database rows of the run until the database shows
    all of them. The faust floor and Quix are measured the same way (a range published before),
    so that the publisher's CPU is not on the machine during any of the three. Returns the
    workers (still running: the caller stops them) and the figures."""
    site = ctx.site(label)
    events = generate(n, posts, site)
    start_offsets = kafka_io.end_offsets(ctx.broker, INPUT_TOPICS.values())
    publish_s = kafka_io.publish(ctx.broker, events)
    end_offsets = kafka_io.end_offsets(ctx.broker, INPUT_TOPICS.values())
    procs = start_workers(ctx, label, count, inputs_from=start_offsets, env=env)
    try:
        first = None
        deadline = time.monotonic() + ctx.timeout
        while time.monotonic() < deadline:
            total, _ = db.counted(ctx.engine, site)
            if total > 0:
                first = (time.monotonic(), total, [w.cpu() for w in procs])
                break
            time.sleep(0.05)
        spy = None
        if profile_to is not None and first is not None:
            from bench import profile

            spy = profile.start(procs[0].proc.pid, profile_to, seconds=ctx.profile_seconds)
        done = wait_counted(ctx, site, n, procs, poll=0.05) if first is not None else None
        cpu_after = [w.cpu() for w in procs]
        _stop_spy(spy)
    except BaseException:
        stop_all(procs)
        raise
    out = {
        "events": n,
        "posts": posts,
        "site": site,
        "publish_seconds": round(publish_s, 3),
        "measured": "replay: published before the workers started; from their first rows",
        "peak_rss_mb": [w.peak_rss_mb() for w in procs],
        "offsets": {"start": _plain(start_offsets), "end": _plain(end_offsets)},
    }
    if first is None or done is None or done <= first[0]:
        return procs, {**out, "seconds": None, "events_per_s": None}
    counted = n - first[1]
    return procs, {
        **out,
        "seconds": round(done - first[0], 3),
        "events_counted": counted,
        "events_per_s": round(counted / (done - first[0]), 1),
        "cpu_us_per_event": _cpu_per_event(first[2], cpu_after, counted),
    }


def _stop_spy(spy) -> None:
    if spy is None:
        return
    import signal

    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)  # py-spy stops and writes what it has sampled
    try:
        spy.wait(60)
    except Exception:
        spy.kill()


def _cpu_per_event(before: list[dict], after: list[dict], n: int) -> dict[str, float | None]:
    """CPU µs per event of all workers' main processes and of their sinks, summed: robust to
    other load on the machine, unlike events/s."""
    out: dict[str, float | None] = {}
    for part in ("worker", "sink"):
        spent = [
            a[part] - b[part]
            for b, a in zip(before, after)
            if a[part] is not None and b[part] is not None
        ]
        out[part] = round(sum(spent) / n * 1e6, 1) if spent and n else None
    return out


def latency(
    ctx: Context,
    procs: list[workers.Worker],
    rate: int,
    seconds: float,
    posts: int,
    poll: float = 0.05,
    label: str = "latency",
    stages: bool = False,
) -> dict:
    """Publish at a fixed rate with known send times and poll the sink's rows: an entry is in the
    database once its post's row reflects at least its ordinal entries. With `stages`, also when
    it reached engagement.posts (kafka_io.PostProgressWatcher): the worker's share and the
    sink's."""
    site = ctx.site(label)  # one site per run: rows of an earlier run would count as reached
    n = int(rate * seconds)
    events = generate(n, posts, site)
    watcher = (
        kafka_io.PostProgressWatcher(ctx.broker, BASE_OUTPUT_TOPICS["posts"], site)
        if stages
        else None
    )
    sent_at: list[float] = []
    publisher = threading.Thread(
        target=lambda: sent_at.extend(kafka_io.publish_at_rate(ctx.broker, events, rate))
    )
    reached: dict[int, list[float]] = {}  # post -> time each ordinal was first seen in the DB
    cpu_before = [w.cpu() for w in procs]
    publisher.start()
    deadline = time.monotonic() + seconds + ctx.timeout
    polls = 0
    while time.monotonic() < deadline:
        now = time.time()
        for post_id, count in db.progress(ctx.engine, site).items():
            seen = reached.setdefault(post_id, [])
            while len(seen) < count:
                seen.append(now)
        polls += 1
        if not publisher.is_alive() and sum(len(v) for v in reached.values()) >= n:
            break
        time.sleep(poll)
    publisher.join()
    cpu = _cpu_per_event(cpu_before, [w.cpu() for w in procs], n)
    lat = []
    missing = 0
    for ev, t in zip(events, sent_at):
        seen = reached.get(ev.post_id, [])
        if ev.ordinal <= len(seen):
            lat.append(max(0.0, seen[ev.ordinal - 1] - t))
        else:
            missing += 1
    # The worst latency of each second of the run: a tail at the start is warm-up, a periodic
    # one is a stall (a full GC, a commit, a rebalance).
    worst: dict[int, float] = {}
    if sent_at:
        for ev, t in zip(events, sent_at):
            seen = reached.get(ev.post_id, [])
            if ev.ordinal <= len(seen):
                sec = int(t - sent_at[0])
                worst[sec] = max(worst.get(sec, 0.0), seen[ev.ordinal - 1] - t)
    lat.sort()
    out = {
        "rate": rate,
        "events": n,
        "posts": posts,
        "site": site,
        "poll_interval_ms": poll * 1000,
        "polls": polls,
        "missing": missing,
    }
    for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"), (1.0, "max")):
        out[f"{name}_ms"] = round(_quantile(lat, q) * 1000, 1) if lat and not missing else None
    out["mean_ms"] = round(sum(lat) / len(lat) * 1000, 1) if lat else None
    if watcher is not None:
        out.update(_stages(events, sent_at, watcher.stop(), reached))
    out["cpu_us_per_event"] = cpu
    out["worst_ms_by_second"] = [
        round(worst.get(s, 0.0) * 1000) for s in range(max(worst, default=-1) + 1)
    ]
    return out


def _stages(events, sent_at, on_topic: dict, in_db: dict) -> dict:
    """Percentiles of publish -> output topic and output topic -> database, over the events seen
    in both."""
    worker, sink = [], []
    for ev, t in zip(events, sent_at):
        topic_seen, db_seen = on_topic.get(ev.post_id, []), in_db.get(ev.post_id, [])
        if ev.ordinal <= len(topic_seen) and ev.ordinal <= len(db_seen):
            worker.append(max(0.0, topic_seen[ev.ordinal - 1] - t))
            sink.append(max(0.0, db_seen[ev.ordinal - 1] - topic_seen[ev.ordinal - 1]))
    out: dict = {"stage_events": len(worker)}
    for name, values in (("to_topic", worker), ("topic_to_db", sink)):
        values.sort()
        for q, p in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"), (1.0, "max")):
            out[f"{name}_{p}_ms"] = round(_quantile(values, q) * 1000, 1) if values else None
    return out


def _quantile(sorted_values: list[float], q: float) -> float:
    idx = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[idx]


def _plain(offsets) -> dict[str, int]:
    return {f"{tp.topic}:{tp.partition}": off for tp, off in offsets.items()}


def unplain(offsets: dict[str, int]):
    from kafka import TopicPartition

    out = {}
    for name, off in offsets.items():
        topic, part = name.rsplit(":", 1)
        out[TopicPartition(topic, int(part))] = off
    return out


def stop_all(procs: list[workers.Worker]) -> None:
    for w in procs:
        w.stop()
