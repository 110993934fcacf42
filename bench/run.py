"""`python -m bench.run`: throughput, latency, memory and scaling of blogpulse on the real broker
and PostgreSQL, against the plain-consumer baseline. Prints a table, saves JSON in bench/results/.

The matrix (docs/performance.md "Reproduce"): for each shape (--shapes, default a,b: 200,000
entries over 2,000 posts, 100,000 over 50; c = 1,000,000 over 10,000 is opt-in) the events are
published, then blogpulse (1 worker) reads them to the database, and the plain-consumer
baseline, the faust no-op floor and the Quix Streams app (bench/quix_app.py) read the same range:
events/s and CPU per event of each, all measured on a range published before they start, so that
no publisher shares the machine with any of them. Latency (publish -> database, a publisher
running at a fixed rate) at --rate and --rate-high with 1 worker and at --rate with 2 workers;
changelog bytes per event at 2,000 and at 20 entries per post; peak RSS of every worker; what
exactly_once costs: the 1-worker throughput of the first shape and the --rate latency with each
guarantee, back to back, and their eos/alo ratios. --events
N runs every shape with N entries (entries per post kept): a short check. --memory adds shape c,
--huge 5,000,000 entries over 500,000 posts."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

from kafka.errors import KafkaError
from sqlalchemy.exc import SQLAlchemyError

from bench import db, report, scenarios, shapes
from streams.settings import load_settings

DEFAULT_DB = "postgresql+psycopg://blogpulse:blogpulse@127.0.0.1:5432/blogpulse"
PHASES = (
    "throughput",
    "latency",
    "baseline",
    "floor",
    "quix",
    "changelog",
    "scaling",
    "exactly_once",
)
GUARANTEES = ("at_least_once", "exactly_once")
STORES = ("memory", "rocksdb")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    s = load_settings()
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--broker", default=s.broker, help="Kafka bootstrap servers (BLOGPULSE_BROKER)")
    p.add_argument("--db", default=DEFAULT_DB, help="sink database URL (PostgreSQL)")
    p.add_argument(
        "--shapes",
        default="a,b",
        help="comma separated shapes: a (200,000 entries / 2,000 posts), "
        "b (100,000 / 50), c (1,000,000 / 10,000; long); default a,b",
    )
    p.add_argument(
        "--events",
        type=int,
        default=None,
        help="run every shape, the changelog pair and the scaling run with "
        "this many entries, entries per post kept (a short check)",
    )
    p.add_argument("--rate", type=int, default=1_000, help="latency run: events/s (default 1000)")
    p.add_argument(
        "--rate-high",
        type=int,
        default=5_000,
        help="second 1-worker latency run: events/s (default 5000)",
    )
    p.add_argument("--latency-seconds", type=float, default=20, help="latency run length")
    p.add_argument("--latency-posts", type=int, default=200, help="posts in the latency run")
    p.add_argument(
        "--memory",
        action="store_true",
        help="also run shape c (1,000,000 entries / 10,000 posts) if not in --shapes (long)",
    )
    p.add_argument(
        "--huge",
        action="store_true",
        help="also run 5,000,000 entries over 500,000 posts (very long)",
    )
    p.add_argument(
        "--stores",
        default="memory",
        help="comma separated aggregation stores (BLOGPULSE_STORE) the shape runs and the huge "
        "run are measured with, one after the other: memory, rocksdb; default memory",
    )
    p.add_argument("--skip", default="", help=f"comma separated phases to skip: {','.join(PHASES)}")
    p.add_argument(
        "--timeout",
        type=float,
        default=600,
        help="seconds to wait for the database to show a run's events",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the 1-worker throughput run (pip install py-spy); raw profile "
        "and top functions saved with the results",
    )
    p.add_argument(
        "--stages",
        action="store_true",
        help="latency runs also time when each entry reached engagement.posts: publish -> "
        "output topic (worker) and output topic -> database (sink) percentiles",
    )
    p.add_argument("--keep-rows", action="store_true", help="leave the benchmark rows in the DB")
    args = p.parse_args(argv)
    args.skip = {x.strip() for x in args.skip.split(",") if x.strip()}
    unknown = args.skip - set(PHASES)
    if unknown:
        p.error(
            f"--skip: unknown phase(s) {', '.join(sorted(unknown))}; known: {', '.join(PHASES)}"
        )
    for name in ("events", "rate", "rate_high", "latency_posts"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be > 0")
    args.shapes = [x.strip() for x in args.shapes.split(",") if x.strip()]
    unknown = [x for x in args.shapes if x not in shapes.SHAPES]
    if unknown or not args.shapes:
        p.error(
            f"--shapes: unknown shape(s) {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(shapes.SHAPES)}"
        )
    args.stores = [x.strip() for x in args.stores.split(",") if x.strip()]
    unknown = [x for x in args.stores if x not in STORES]
    if unknown or not args.stores:
        p.error(
            f"--stores: unknown store(s) {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(STORES)}"
        )
    if args.memory and "c" not in args.shapes:
        args.shapes.append("c")
    return args


def ensure_topics(broker: str) -> None:
    """Every blogpulse topic with the configured partition count before anything is published
    (auto-created topics would get the broker's default count and break co-partitioning)."""
    from streams.publisher import ensure_topics as create_missing

    create_missing(load_settings().model_copy(update={"broker": broker}))


def drop_topics(broker: str, app_ids: list[str], extra_prefixes: list[str] = ()) -> None:
    """The benchmark apps' own topics (changelogs, leader topic, Quix's outputs and changelogs):
    nobody else reads them."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        prefixes = tuple(a + "-" for a in app_ids) + tuple(extra_prefixes)
        mine = [t for t in admin.list_topics() if t.startswith(prefixes)]
        if mine:
            admin.delete_topics(mine)
    except Exception as exc:  # best effort: leftovers only cost disk
        print(f"note: could not delete benchmark topics: {exc}")
    finally:
        admin.close()


def run(args: argparse.Namespace, results: dict) -> dict:
    """Fill `results` as the measurements go (a failure keeps what was measured)."""
    run_id = results["run_id"]
    results.update(
        {
            "machine": report.machine(),
            "command": "python -m bench.run " + " ".join(sys.argv[1:]),
            "config": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()},
        }
    )
    print(
        f"bench run {run_id}: shapes "
        + ", ".join(f"{s.name} ({s.entries:,} / {s.posts:,})" for s in _shapes(args))
    )
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
        drop_topics(args.broker, ctx.app_ids, ctx.topic_prefixes)
        results["workdir"] = str(workdir)
    return results


def _shapes(args: argparse.Namespace) -> list[shapes.Shape]:
    return [shapes.scaled(shapes.SHAPES[name], args.events) for name in args.shapes]


def _latency(ctx, procs, rate: int, args, key: str, results: dict, label: str) -> None:
    print(f"  latency, {len(procs)} worker(s): {rate:,} events/s for {args.latency_seconds:g} s")
    r = results[key] = scenarios.latency(
        ctx, procs, rate, args.latency_seconds, args.latency_posts, label=label, stages=args.stages
    )
    r["peak_rss_mb"] = [w.peak_rss_mb() for w in procs]
    print(f"  -> p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms")
    if args.stages:
        for stage, name in (("to_topic", "publish -> output topic"), ("topic_to_db", "-> db")):
            print(
                f"     {name}: p50 {r[f'{stage}_p50_ms']} p95 {r[f'{stage}_p95_ms']}"
                f" p99 {r[f'{stage}_p99_ms']} max {r[f'{stage}_max_ms']} ms"
            )
    print(
        f"     CPU µs/event worker {r['cpu_us_per_event']['worker']},"
        f" sink {r['cpu_us_per_event']['sink']};"
        f" worst per second (ms): {r['worst_ms_by_second']}"
    )


def _measure(ctx: scenarios.Context, args: argparse.Namespace, results: dict) -> None:
    skip = args.skip
    todo = _shapes(args)
    first = todo[0]
    runs = results.setdefault("shapes", [])
    if "throughput" not in skip:
        for i, shape in enumerate(todo):
            spy_out = None
            if args.profile and i == 0:
                spy_out = report.RESULTS_DIR / f"{results['run_id']}-worker.pyspy"
                spy_out.parent.mkdir(parents=True, exist_ok=True)
            if shape.name == "c":  # ~25 minutes here (~700 events/s): wait at 200 events/s
                ctx.timeout = max(ctx.timeout, shape.entries / 200)
            for j, store in enumerate(args.stores):
                # the replays (baseline, floor, Quix) once per shape: they do not use the store
                runs.append(
                    shapes.measure(
                        ctx,
                        shape,
                        skip if j == 0 else skip | {"baseline", "floor", "quix"},
                        profile_to=spy_out if j == 0 else None,
                        store=store,
                        label=f"shape-{shape.name}-{store}",
                    )
                )
            if spy_out is not None and spy_out.exists():
                from bench import profile

                results["profile"] = {"raw": str(spy_out), "top": profile.summary(spy_out)}
    if "latency" not in skip:
        print("1 worker, memory store: latency")
        procs = scenarios.start_workers(ctx, "lat", 1)
        try:
            _latency(ctx, procs, args.rate, args, "latency", results, "latency")
            _latency(ctx, procs, args.rate_high, args, "latency_high", results, "latency-high")
        finally:
            scenarios.stop_all(procs)
    if "changelog" not in skip:
        n = args.events or shapes.SHAPES["b"].entries
        print(
            f"changelog bytes per event: {n:,} events at "
            + " and at ".join(f"{p:,}" for p in shapes.CHANGELOG_PER_POST)
            + " entries per post"
        )
        results["changelog_pair"] = [
            {
                "shape": r["shape"],
                "entries": r["entries"],
                "posts": r["posts"],
                "peak_rss_mb": (r.get("e2e") or {}).get("peak_rss_mb"),
                **r.get("changelog", {}),
            }
            for r in shapes.changelog_pair(ctx, runs, n, skip)
        ]
    if "scaling" not in skip:
        print(f"2 workers, memory store: {first.entries:,} entries over {first.posts:,} posts")
        procs, r = scenarios.replay_throughput(ctx, "two", first.entries, first.posts, count=2)
        results["e2e_2_workers"] = r
        try:
            print(f"  -> {r['events_per_s']} events/s")
            if "latency" not in skip:
                _latency(ctx, procs, args.rate, args, "latency_2_workers", results, "latency-2")
        finally:
            scenarios.stop_all(procs)
    if "exactly_once" not in skip:
        results["exactly_once"] = _exactly_once(ctx, args, first)
    if args.huge:
        h = shapes.scaled(shapes.HUGE, args.events)
        ctx.timeout = max(ctx.timeout, h.entries / 200)
        results["huge"] = [
            _single_run(ctx, f"huge-{store}", h.entries, h.posts, store) for store in args.stores
        ]


def _exactly_once(ctx, args: argparse.Namespace, shape: shapes.Shape) -> dict:
    """Both guarantees in this run, one after the other on the same machine state: 1-worker
    events/s on `shape` and the latency at --rate; eos/alo ratios of events/s, CPU per event
    and latency percentiles."""
    out: dict = {}
    for guarantee in GUARANTEES:
        env = {"BLOGPULSE_PROCESSING_GUARANTEE": guarantee}
        tag = "eos" if guarantee == "exactly_once" else "alo"
        print(f"{guarantee}, 1 worker: {shape.entries:,} entries over {shape.posts:,} posts")
        procs, r = scenarios.replay_throughput(
            ctx, f"{tag}-tp", shape.entries, shape.posts, env=env
        )
        scenarios.stop_all(procs)
        print(f"  -> {r['events_per_s']} events/s")
        lat: dict = {}
        procs = scenarios.start_workers(ctx, f"{tag}-lat", 1, env=env)
        try:
            _latency(ctx, procs, args.rate, args, "latency", lat, f"{tag}-latency")
        finally:
            scenarios.stop_all(procs)
        out[guarantee] = {"throughput": r, "latency": lat["latency"]}
    alo, eos = out["at_least_once"], out["exactly_once"]

    def ratio(a, b) -> float | None:
        return round(b / a, 2) if a and b else None

    out["eos_over_alo"] = {
        "events_per_s": ratio(alo["throughput"]["events_per_s"], eos["throughput"]["events_per_s"]),
        "worker_cpu_us_per_event": ratio(
            (alo["throughput"].get("cpu_us_per_event") or {}).get("worker"),
            (eos["throughput"].get("cpu_us_per_event") or {}).get("worker"),
        ),
        **{
            f"latency_{p}": ratio(alo["latency"].get(f"{p}_ms"), eos["latency"].get(f"{p}_ms"))
            for p in ("p50", "p99")
        },
    }
    print(f"  eos/alo: {out['eos_over_alo']}")
    return out


def _single_run(ctx, label: str, n: int, posts: int, store: str = "memory") -> dict:
    print(f"1 worker, {store} store: {n:,} entries over {posts:,} posts")
    procs, r = scenarios.replay_throughput(ctx, label, n, posts, env={"BLOGPULSE_STORE": store})
    r["store"] = store
    scenarios.stop_all(procs)
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
