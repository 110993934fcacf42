"""Sink throughput: rows/s of sinks.upsert into SQLite and PostgreSQL, against a same-process
baseline (plain executemany INSERT of the same rows, same batches, into unconstrained copies of the
tables: no primary key, no conflict check, no version guard).

    python -m bench.sink_bench [--rows 30000] [--batch 500] [--db sqlite|postgresql|both]

PostgreSQL: BLOGPULSE_TEST_PG_URL (default the deploy/local test database); a private schema is
created and dropped. Phases, each over the same keys: insert (new keys), update (every key one
version newer), replay (the update messages again: the version guard turns them into no-ops)."""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlalchemy
from sqlalchemy import MetaData, Table, insert, text

from sinks import db
from sinks.models import TABLES
from sinks.upsert import collapse, to_change, write

PG_URL = os.environ.get(
    "BLOGPULSE_TEST_PG_URL",
    "postgresql+psycopg://blogpulse:blogpulse@127.0.0.1:5432/blogpulse_test",
)


def messages(n: int, version: int) -> list:
    """n output messages, 1/3 of each kind, distinct keys, all at `version`."""
    out = []
    for i in range(n):
        post_id, kind = 1 + i // 3, ("posts", "threads", "windows")[i % 3]
        head = {
            "schema_version": 1,
            "site": "bench.example",
            "post_id": post_id,
            "version": version,
        }
        if kind == "posts":
            v = {
                **head,
                "comments": 10 + version,
                "replies": 4,
                "pingbacks": 1,
                "trackbacks": 0,
                "threads": 3,
                "participants": 7,
                "post_author_replies": 1,
                "max_depth": 2,
                "first_activity": "2012-03-01T10:00:00Z",
                "last_activity": "2012-03-02T08:30:00Z",
                "time_to_first_comment_seconds": 360,
                "waiting_replies": 0,
            }
        elif kind == "threads":
            v = {
                **head,
                "root_comment_id": 1000 + post_id,
                "replies": version,
                "depth": 2,
                "participants": 3,
                "post_author_answered": True,
                "time_to_first_reply_seconds": 90,
                "last_activity": "2012-03-02T08:30:00Z",
                "deleted": False,
            }
        else:
            v = {
                **head,
                "window": "hour",
                "window_start": "2012-03-01T10:00:00Z",
                "comments": version,
                "replies": 2,
                "pingbacks": 0,
                "trackbacks": 0,
                "deleted": False,
            }
        out.append((kind, None, v))
    return out


def batches(msgs: list, size: int) -> list:
    return [msgs[i : i + size] for i in range(0, len(msgs), size)]


def time_sink(engine, msgs: list, size: int) -> float:
    t0 = time.perf_counter()
    for batch in batches(msgs, size):
        write(engine, collapse(batch))  # decode checks + collapse + one transaction
    return time.perf_counter() - t0


def plain_tables(engine) -> dict[str, Table]:
    md = MetaData()
    plain = {}
    for kind, table in TABLES.items():
        cols = [sqlalchemy.Column(c.name, c.type, nullable=True) for c in table.columns]
        plain[kind] = Table(f"bench_plain_{table.name}", md, *cols)
    md.create_all(engine)
    return plain


def time_baseline(engine, plain: dict[str, Table], msgs: list, size: int) -> float:
    now = datetime.now(UTC)
    prepared = []
    for batch in batches(msgs, size):  # rows converted up front: the baseline times the DB only
        per_kind: dict[str, list] = {}
        for kind, _, value in batch:
            c = to_change(kind, value)
            per_kind.setdefault(c.kind, []).append(
                {**c.row, "version": c.version, "updated_at": now}
            )
        prepared.append(per_kind)
    t0 = time.perf_counter()
    for per_kind in prepared:
        with engine.begin() as conn:
            for kind, rows in per_kind.items():
                conn.execute(insert(plain[kind]), rows)
    return time.perf_counter() - t0


@contextmanager
def bench_engine(kind: str):
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            engine = db.make_engine(f"sqlite:///{tmp}/bench.db")
            db.upgrade(engine)
            yield engine
            engine.dispose()
        return
    schema = f"sink_bench_{uuid.uuid4().hex[:8]}"
    admin = db.make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = db.make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        db.upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run(kind: str, rows: int, size: int) -> list[tuple]:
    results = []
    with bench_engine(kind) as engine:
        plain = plain_tables(engine)
        first, second = messages(rows, 1), messages(rows, 2)
        base = time_baseline(engine, plain, first, size)
        for phase, msgs in (("insert", first), ("update", second), ("replay", second)):
            seconds = time_sink(engine, msgs, size)
            results.append((kind, phase, rows / seconds, rows / base, base / seconds))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=30000, help="messages per phase (default 30000)")
    p.add_argument(
        "--batch",
        type=int,
        default=int(os.environ.get("BLOGPULSE_SINK_BATCH", "500") or 500),
        help="messages per transaction (default BLOGPULSE_SINK_BATCH or 500)",
    )
    p.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    args = p.parse_args(argv)
    if args.rows < 1 or args.batch < 1:
        p.error("--rows and --batch must be at least 1")
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print(
        f"sink bench: {args.rows} rows per phase (1/3 posts, threads, windows), batch "
        f"{args.batch} rows per transaction, SQLAlchemy {sqlalchemy.__version__}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(f"{'database':<11} {'phase':<7} {'sink rows/s':>12} {'baseline rows/s':>16} {'ratio':>6}")
    for kind in kinds:
        for kind_, phase, sink_rate, base_rate, ratio in run(kind, args.rows, args.batch):
            print(f"{kind_:<11} {phase:<7} {sink_rate:>12,.0f} {base_rate:>16,.0f} {ratio:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
