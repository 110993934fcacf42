"""Reprocessing time: N events already in the input topics, rebuilt by `blogpulse reprocess start`
(a generation-2 worker from the earliest offsets until caught up and every row written).

    python -m bench.reprocess_bench --events 1000000 --posts 10000

Starts its own broker (deploy/local/kafka, port --port, a temporary state dir) unless --broker is
given: a new consumer group on the shared broker would read its millions of benchmark events too.
The figure: events / seconds from `reprocess start` until it reports caught up (worker start-up,
reading, aggregation, output topics, sink writes, the caught-up checks)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.workers import peak_rss_kb

REPO = Path(__file__).resolve().parents[1]


def _start_broker(port: int, state: str) -> dict[str, str]:
    env = dict(
        os.environ,
        BLOGPULSE_STATE_DIR=state,
        BLOGPULSE_KAFKA_PORT=str(port),
        BLOGPULSE_KAFKA_CONTROLLER_PORT=str(port + 1),
    )
    subprocess.run([str(REPO / "deploy/local/kafka"), "start"], env=env, check=True)
    return env


class _PeakRss(threading.Thread):
    """Largest VmHWM (peak resident set) among this process's children: the reprocessing worker
    that `reprocess.start` launches. Sampled every 2 s; VmHWM only grows, so sampling misses
    nothing but the last 2 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.kb = 0
        self._done = threading.Event()

    @property
    def mb(self) -> float:
        return self.kb / 1024

    def run(self) -> None:
        me = str(os.getpid())
        while not self._done.wait(2.0):
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    if stat.read_text().rsplit(")", 1)[1].split()[1] != me:
                        continue
                except (OSError, IndexError):
                    continue  # the process ended meanwhile
                self.kb = max(self.kb, peak_rss_kb(stat.parent.name) or 0)

    def stop(self) -> None:
        self._done.set()
        self.join(5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--posts", type=int, default=10_000)
    ap.add_argument(
        "--broker",
        help="use this broker instead of starting one (must be empty of "
        "other blogpulse traffic for a meaningful figure)",
    )
    ap.add_argument("--port", type=int, default=19392)
    ap.add_argument("--db", help="sink database URL (default: SQLite in a temporary directory)")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args(argv)

    work = tempfile.mkdtemp(prefix="reprocess-bench-")
    broker_env = None
    broker = args.broker
    if not broker:
        broker_env = _start_broker(args.port, work)
        broker = f"127.0.0.1:{args.port}"
    db_url = args.db or f"sqlite:///{work}/sink.db"
    app_id = f"reprocess-bench-{uuid.uuid4().hex[:6]}"
    os.environ.update(
        {"BLOGPULSE_BROKER": broker, "BLOGPULSE_DB": db_url, "BLOGPULSE_APP_ID": app_id}
    )
    try:
        from sqlalchemy import func, select

        from bench.events import generate
        from bench.kafka_io import publish
        from sinks import db, generations
        from streams import reprocess
        from streams.publisher import ensure_topics
        from streams.settings import load_settings

        s = load_settings()
        ensure_topics(s)
        site = f"bench-{uuid.uuid4().hex[:6]}"
        t0 = time.monotonic()
        events = generate(args.events, args.posts, site)
        print(
            f"generated {len(events):,} events over {args.posts:,} posts in "
            f"{time.monotonic() - t0:.1f}s",
            flush=True,
        )
        print(f"published in {publish(broker, events):.1f}s", flush=True)
        del events
        db.upgrade(db_url)

        started = time.monotonic()
        peak = _PeakRss()
        peak.start()
        generation = reprocess.start(
            s, timeout=args.timeout, log_path=Path(work) / "worker.log", out=sys.stdout, poll=2.0
        )
        seconds = time.monotonic() - started
        peak.stop()

        engine = db.make_engine(db_url)
        posts = generations.tables_for(generation).aggregates["posts"]
        with engine.connect() as conn:
            total = conn.scalar(
                select(func.sum(posts.c.comments + posts.c.replies)).where(posts.c.site == site)
            )
        engine.dispose()
        if total != args.events:
            print(f"ERROR: generation {generation} holds {total} entries, expected {args.events}")
            return 1
        print(
            f"reprocess bench: {args.events:,} events, {args.posts:,} posts, "
            f"{seconds:.1f}s until caught up and written, {args.events / seconds:,.0f} events/s "
            f"({os.cpu_count()} CPUs, {db_url.split(':')[0]}); worker peak RSS "
            f"{peak.mb:,.0f} MB"
        )
        return 0
    finally:
        if broker_env:
            subprocess.run([str(REPO / "deploy/local/kafka"), "stop"], env=broker_env)
        # The broker's data (GBs for 1M events), the worker log and the SQLite file.
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
