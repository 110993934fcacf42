"""`blogpulse worker`: run the stream-processing worker."""
from __future__ import annotations

import argparse
import sys

from streams.config import settings


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "worker",
        help="run the faust worker: aggregate input topics and write the results to the database",
        description="Consume blog.comments/replies/pingbacks/moderation, keep per-post state in "
        "changelog-backed tables and emit changed aggregates to engagement.posts, "
        "engagement.threads and engagement.windows, and write those to the sink database "
        "(BLOGPULSE_DB) with version-guarded upserts. Serves /metrics on BLOGPULSE_WEB_PORT. "
        "Creates missing topics first (BLOGPULSE_PARTITIONS partitions, BLOGPULSE_REPLICATION_FACTOR "
        "replicas, BLOGPULSE_MIN_INSYNC_REPLICAS in sync).",
    )
    p.add_argument("--loglevel", default="info",
                   choices=["debug", "info", "warning", "error", "critical"],
                   help="log level (default: info)")
    p.set_defaults(func=_run_worker)

    from streams.demo import register_demo

    register_demo(subparsers)


def _run_worker(args: argparse.Namespace) -> int:
    s = settings()
    if s.processing_guarantee not in ("at_least_once", "exactly_once"):
        print(f"blogpulse worker: BLOGPULSE_PROCESSING_GUARANTEE must be at_least_once or "
              f"exactly_once, not {s.processing_guarantee!r}")
        return 2
    # Imported here: building the faust app reads the environment; other commands don't need it.
    from schemas.publisher import BrokerUnavailable
    from streams import worker

    try:
        return worker.run(s, loglevel=args.loglevel)
    except BrokerUnavailable as exc:  # unreachable, or a refused login/certificate: one line
        print(f"blogpulse worker: {exc}", file=sys.stderr)
        return 1
