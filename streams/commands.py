"""`blogpulse worker`: run the stream-processing worker."""

from __future__ import annotations

import argparse

from streams.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "worker",
        help="run the faust worker: aggregate input topics and write the results to the database",
        description="Consume blog.comments/replies/pingbacks/moderation, keep per-post state "
        "(one compacted changelog record per entry) and emit changed aggregates to "
        "engagement.posts, engagement.threads and engagement.windows; a child process (the "
        "same as `blogpulse sink`) writes those to the sink database (BLOGPULSE_DB) with "
        "version-guarded upserts. Serves /metrics on BLOGPULSE_WEB_PORT. "
        "Creates missing topics first (BLOGPULSE_PARTITIONS partitions, BLOGPULSE_REPLICATION_FACTOR "
        "replicas, BLOGPULSE_MIN_INSYNC_REPLICAS in sync).",
    )
    p.add_argument(
        "--loglevel",
        default="info",
        choices=["debug", "info", "warning", "error", "critical"],
        help="log level (default: info)",
    )
    p.set_defaults(func=_run_worker)

    p = subparsers.add_parser(
        "sink",
        help="write the output topics to the database (the worker runs one itself)",
        description="Read engagement.posts, engagement.threads and engagement.windows with "
        "batched fetches and write them to BLOGPULSE_DB: the newest version per key, one "
        "transaction per fetch, with the read positions stored in the same transaction (a new "
        "or restored database reads from where its rows stand). `blogpulse worker` starts and "
        "watches one; run it alone to write a second database from the same topics.",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=9466,
        help="serve the sink's /metrics on 127.0.0.1 at this port (default: 9466)",
    )
    p.add_argument(
        "--parent",
        type=int,
        default=None,
        metavar="PID",
        help="stop when process PID is gone (the worker passes its own)",
    )
    p.set_defaults(func=_run_sink)

    from streams.demo import register_demo

    register_demo(subparsers)


def _run_sink(args: argparse.Namespace, s: Settings) -> int:
    from sinks.db import make_engine

    make_engine(s.db_url).dispose()  # a bad BLOGPULSE_DB: one line, exit 2
    from streams.sink import main

    return main(s, args.metrics_port, args.parent)


def _run_worker(args: argparse.Namespace, s: Settings) -> int:
    from sinks.db import make_engine

    # The sink builds its engine inside the running app, where a missing driver would be a
    # traceback: check BLOGPULSE_DB now (BadDatabaseUrl -> one line, exit 2). No connection yet.
    make_engine(s.db_url).dispose()
    # Imported here: faust is slow to import, and other commands don't need it. A broker that
    # does not answer, or refuses the login or certificate, is BrokerUnavailable: one line, exit 1.
    from streams import worker

    return worker.run(s, loglevel=args.loglevel)
