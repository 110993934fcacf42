"""`python -m bench.run`: throughput, latency, memory and scaling of blogpulse on the real broker
and PostgreSQL, against the plain-consumer baseline. Prints a table, saves JSON in bench/results/.

Default run (~3-5 minutes on 2 cores): 50,000 entries over 1,000 posts per throughput run,
1,000 events/s for 20 s for latency, peak RSS at that count; --memory adds the 1,000,000-entry /
10,000-post runs with the memory and RocksDB stores (long: several minutes each)."""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

from kafka.errors import KafkaError
from sqlalchemy.exc import SQLAlchemyError

from bench import baseline, db, report, scenarios
from streams.config import settings

DEFAULT_DB = "postgresql+psycopg://blogpulse:blogpulse@127.0.0.1:5432/blogpulse"
PHASES = ("throughput", "latency", "baseline", "floor", "rocksdb", "scaling")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    s = settings()
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker", default=s.broker, help="Kafka bootstrap servers (BLOGPULSE_BROKER)")
    p.add_argument("--db", default=DEFAULT_DB, help="sink database URL (PostgreSQL)")
    p.add_argument("--events", type=int, default=50_000,
                   help="entries per throughput run (default 50000)")
    p.add_argument("--posts", type=int, default=1_000, help="posts per throughput run")
    p.add_argument("--rate", type=int, default=1_000, help="latency run: events/s (default 1000)")
    p.add_argument("--latency-seconds", type=float, default=20, help="latency run length")
    p.add_argument("--latency-posts", type=int, default=200, help="posts in the latency run")
    p.add_argument("--memory", action="store_true",
                   help="also run the big memory runs (--memory-events over --memory-posts, "
                        "memory and RocksDB stores)")
    p.add_argument("--memory-events", type=int, default=1_000_000)
    p.add_argument("--memory-posts", type=int, default=10_000)
    p.add_argument("--skip", default="", help=f"comma separated phases to skip: {','.join(PHASES)}")
    p.add_argument("--timeout", type=float, default=600,
                   help="seconds to wait for the database to show a run's events")
    p.add_argument("--profile", action="store_true",
                   help="py-spy the 1-worker throughput run (pip install py-spy); raw profile "
                        "and top functions saved with the results")
    p.add_argument("--keep-rows", action="store_true", help="leave the benchmark rows in the DB")
    args = p.parse_args(argv)
    args.skip = {x.strip() for x in args.skip.split(",") if x.strip()}
    unknown = args.skip - set(PHASES)
    if unknown:
        p.error(f"--skip: unknown phase(s) {', '.join(sorted(unknown))}; known: {', '.join(PHASES)}")
    for name in ("events", "posts", "rate", "latency_posts", "memory_events", "memory_posts"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be > 0")
    return args


def ensure_topics(broker: str) -> None:
    """Every blogpulse topic with the configured partition count before anything is published
    (auto-created topics would get the broker's default count and break co-partitioning)."""
    from dataclasses import replace

    from schemas.publisher import ensure_topics as create_missing

    create_missing(replace(settings(), broker=broker))


def drop_topics(broker: str, app_ids: list[str]) -> None:
    """The benchmark apps' own topics (changelogs, leader topic): nobody else reads them."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        mine = [t for t in admin.list_topics() if any(t.startswith(a + "-") for a in app_ids)]
        if mine:
            admin.delete_topics(mine)
    except Exception as exc:  # best effort: leftovers only cost disk
        print(f"note: could not delete benchmark topics: {exc}")
    finally:
        admin.close()


def run(args: argparse.Namespace, results: dict) -> dict:
    """Fill `results` as the measurements go (a failure keeps what was measured)."""
    run_id = results["run_id"]
    results.update({"machine": report.machine(),
                    "command": "python -m bench.run " + " ".join(sys.argv[1:]),
                    "config": {k: (sorted(v) if isinstance(v, set) else v)
                               for k, v in vars(args).items()}})
    print(f"bench run {run_id}: {args.events:,} entries over {args.posts:,} posts per throughput run"
          f"{'; memory runs: ' + format(args.memory_events, ',') if args.memory else ''}")
    ensure_topics(args.broker)
    db.upgrade(args.db)
    workdir = Path(tempfile.mkdtemp(prefix=f"blogpulse-bench-{run_id}-"))
    ctx = scenarios.Context(args.broker, args.db, run_id, workdir, args.timeout)
    try:
        _measure(ctx, args, results)
    finally:
        if not args.keep_rows:
            for site in ctx.sites:
                db.cleanup(ctx.engine, site)
        drop_topics(args.broker, ctx.app_ids)
        results["workdir"] = str(workdir)
    return results


def _measure(ctx: scenarios.Context, args: argparse.Namespace, results: dict) -> None:
    skip = args.skip
    one_needed = {"throughput", "latency", "baseline", "floor"} - skip
    if one_needed:
        print("1 worker, memory store: starting")
        procs = scenarios.start_workers(ctx, "one", 1)
        try:
            print(f"  throughput: publishing {args.events:,} entries")
            spy_out = report.RESULTS_DIR / f"{results['run_id']}-worker.pyspy"
            if args.profile:
                spy_out.parent.mkdir(parents=True, exist_ok=True)
            r = scenarios.throughput(ctx, procs, "one", args.events, args.posts,
                                     profile_to=spy_out if args.profile else None)
            results["e2e_1_worker"] = r
            if args.profile and spy_out.exists():
                from bench import profile

                results["profile"] = {"raw": str(spy_out), "top": profile.summary(spy_out)}
            results.setdefault("memory", []).append(
                {"store": "memory", "events": args.events, "posts": args.posts,
                 "peak_rss_mb": r["peak_rss_mb"][0]})
            print(f"  -> {r['events_per_s']} events/s")
            if "latency" not in skip:
                print(f"  latency: {args.rate:,} events/s for {args.latency_seconds:g} s")
                results["latency"] = scenarios.latency(ctx, procs, args.rate,
                                                       args.latency_seconds, args.latency_posts)
                print(f"  -> p50 {results['latency']['p50_ms']} ms, "
                      f"p99 {results['latency']['p99_ms']} ms")
        finally:
            scenarios.stop_all(procs)
        if "baseline" not in skip:
            offsets = results["e2e_1_worker"]["offsets"]
            print("baseline: plain aiokafka consumer + orjson over the same events")
            results["baseline"] = baseline.measure(ctx.broker, scenarios.unplain(offsets["start"]),
                                                   scenarios.unplain(offsets["end"]))
            print(f"  -> {results['baseline']['events_per_s']} events/s")
        if "floor" not in skip:
            offsets = results["e2e_1_worker"]["offsets"]
            print("faust floor: a no-op faust agent (take_events + orjson) over the same events")
            results["faust_floor"] = scenarios.faust_floor(
                ctx, scenarios.unplain(offsets["start"]), scenarios.unplain(offsets["end"]))
            print(f"  -> {results['faust_floor']['events_per_s']} events/s")
    if "rocksdb" not in skip:
        results["e2e_rocksdb"] = _store_run(ctx, "rocks", "rocksdb", args.events, args.posts,
                                            results)
    if "scaling" not in skip:
        print("2 workers, memory store: starting")
        procs = scenarios.start_workers(ctx, "two", 2)
        try:
            r = scenarios.throughput(ctx, procs, "two", args.events, args.posts)
            results["e2e_2_workers"] = r
            print(f"  -> {r['events_per_s']} events/s")
            if "latency" not in skip:
                print(f"  latency, 2 workers: {args.rate:,} events/s for {args.latency_seconds:g} s")
                results["latency_2_workers"] = scenarios.latency(
                    ctx, procs, args.rate, args.latency_seconds, args.latency_posts,
                    label="latency-2")
                print(f"  -> p50 {results['latency_2_workers']['p50_ms']} ms, "
                      f"p99 {results['latency_2_workers']['p99_ms']} ms")
        finally:
            scenarios.stop_all(procs)
    if args.memory:
        # A run of this size takes ~25 minutes here (~700 events/s): wait for it at 200 events/s.
        ctx.timeout = max(ctx.timeout, args.memory_events / 200)
        for store in ("memory", "rocksdb"):
            r = _store_run(ctx, f"mem-{store[:4]}", store, args.memory_events, args.memory_posts,
                           results)
            results[f"memory_run_{store}"] = r


def _store_run(ctx, label: str, store: str, n: int, posts: int, results: dict) -> dict:
    print(f"1 worker, {store} store: {n:,} entries over {posts:,} posts")
    procs = scenarios.start_workers(ctx, label, 1, store=store)
    try:
        r = scenarios.throughput(ctx, procs, label, n, posts)
    finally:
        scenarios.stop_all(procs)
    results.setdefault("memory", []).append(
        {"store": store, "events": n, "posts": posts, "peak_rss_mb": r["peak_rss_mb"][0]})
    print(f"  -> {r['events_per_s']} events/s, peak RSS {r['peak_rss_mb'][0]} MB")
    return r


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict = {"run_id": time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:4]}
    status = 0
    try:
        run(args, results)
    except (RuntimeError, TimeoutError, OSError, SQLAlchemyError, KafkaError) as exc:
        print(f"bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        results["error"] = str(exc)[-3000:]
        status = 1
    except KeyboardInterrupt:
        results["error"] = "interrupted"
        status = 130
    print()
    print(report.table(results))
    path = report.save(results, results["run_id"])
    print(f"\nraw results: {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
