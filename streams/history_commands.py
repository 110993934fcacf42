"""`blogpulse replay` and `blogpulse reprocess start|repartition|switch|cleanup|status`
(docs/replay.md)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from streams.settings import Settings


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {raw!r}")
    return value


def parse_time(raw: str) -> datetime:
    """--from: ISO 8601 with a zone (2012-03-01T10:00:00Z or +01:00)."""
    try:
        dt = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith("Z") else raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {raw!r} (e.g. 2012-03-01T10:00:00Z)"
        ) from None
    if dt.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{raw!r} has no zone: add Z for UTC (e.g. 2012-03-01T10:00:00Z)"
        )
    return dt.astimezone(UTC)


def _generation(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {raw!r}")
    return int(raw)


def register(subparsers: argparse._SubParsersAction) -> None:
    rp = subparsers.add_parser(
        "replay",
        help="publish a history (WXR or JSONL) in event-time order",
        description="Read a WordPress export (WXR) or JSONL events, sort them by event time "
        "(stable) and publish them to the input topics, as fast as possible (default) or at "
        "--speed X times the original pace. Progress on stderr, a count per type at the end.",
    )
    rp.add_argument("file", help="WXR (.xml) or JSONL file")
    pace = rp.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed",
        type=_positive_float,
        metavar="X",
        help="X times the original pace (event-time gaps / X)",
    )
    pace.add_argument(
        "--as-fast-as-possible", action="store_true", help="no waiting between events (the default)"
    )
    rp.add_argument("--site", help="site name for WXR input (default: from the export's link)")
    rp.set_defaults(func=_run_replay)

    re = subparsers.add_parser(
        "reprocess",
        help="rebuild the aggregates from the input topics into a new generation",
        description="Rebuild every aggregate from the input topics into fresh tables while the "
        "live worker keeps running, then switch readers over atomically (docs/replay.md).",
    )
    sub = re.add_subparsers(dest="reprocess_command", metavar="ACTION")
    sub.required = True
    st = sub.add_parser(
        "start",
        help="build the next generation until it has caught up",
        description="Run a worker for the next generation (own app id, output "
        "topics and tables) from the earliest offsets (or --from) until it has "
        "read the input topics' end offsets and written every result.",
    )
    st.add_argument(
        "--from",
        dest="from_time",
        type=parse_time,
        metavar="ISO-TIME",
        help="start at the first offsets written at or after this time",
    )
    st.add_argument(
        "--partitions",
        type=_generation,
        metavar="P",
        help="build the generation on new input topics with P partitions (more than today's), "
        "filled with a copy of the current inputs; keep them filled with `reprocess "
        "repartition N --follow` until publishers write them (docs/replay.md)",
    )
    st.add_argument(
        "--timeout",
        type=float,
        default=24 * 3600,
        metavar="SECONDS",
        help="give up after this long (default one day)",
    )
    st.add_argument(
        "--log", type=Path, metavar="FILE", help="the worker's log (default reprocess-g<N>.log)"
    )
    st.set_defaults(func=_run_start)
    cp = sub.add_parser(
        "repartition",
        help="copy the current input topics into generation N's (made by start --partitions)",
        description="Copy the records of the input topics of BLOGPULSE_INPUT_GENERATION into "
        "those of input generation N, keyed as published (so murmur2(key) % N's partition "
        "count places them), resuming from the positions of the last confirmed copy. Stops "
        "at the end offsets as of its start, or with --follow when stopped (SIGTERM, Ctrl-C).",
    )
    cp.add_argument("generation", type=_generation, metavar="N")
    cp.add_argument("--follow", action="store_true", help="keep copying new records until stopped")
    cp.set_defaults(func=_run_repartition)
    sw = sub.add_parser("switch", help="make generation N the one readers see (atomic)")
    sw.add_argument("generation", type=_generation, metavar="N")
    sw.set_defaults(func=_run_switch)
    cl = sub.add_parser("cleanup", help="delete an inactive generation's rows (and topics)")
    cl.add_argument("generation", type=_generation, metavar="N")
    cl.add_argument(
        "--topics",
        action="store_true",
        help="also delete its output and changelog topics and consumer group",
    )
    cl.set_defaults(func=_run_cleanup)
    ss = sub.add_parser("status", help="generations, the active one and their row counts")
    ss.set_defaults(func=_run_status)


def _fail(message: str, code: int = 1) -> int:
    print(f"blogpulse: {message}", file=sys.stderr)
    return code


def _reason(exc: Exception) -> str:
    """One line for the user: the driver's message without SQL or parameters (they may hold
    data), and what to do when the generation tables are missing."""
    text = str(getattr(exc, "orig", None) or exc).splitlines()
    line = text[0] if text else type(exc).__name__
    if (
        "active_generation" in line
        or "sink_generation" in line
        or "no such table" in line
        or "does not exist" in line
        and "generation" not in line
    ):
        line += " (run `blogpulse db upgrade`)"
    return line


def _run_replay(args: argparse.Namespace, settings: Settings) -> int:
    from schemas.readers import ReadError
    from streams.publisher import BrokerUnavailable
    from streams.replay import replay

    try:
        counts = replay(args.file, settings, site=args.site, speed=args.speed)
    except ReadError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{args.file}: {exc.strerror or exc}")
    except BrokerUnavailable as exc:
        return _fail(str(exc))
    total = sum(counts.values())
    print(f"replayed {total} events: " + ", ".join(f"{t} {n}" for t, n in sorted(counts.items())))
    return 0


def _db_errors():
    from sqlalchemy.exc import SQLAlchemyError

    from sinks.generations import GenerationError

    return (SQLAlchemyError, GenerationError)


def _engine(settings: Settings):
    from sinks.db import make_engine

    return make_engine(settings.db_url)


def _run_start(args: argparse.Namespace, s: Settings) -> int:
    from kafka.errors import KafkaError

    from streams import reprocess
    from streams.publisher import BrokerUnavailable

    if s.generation != 1:
        return _fail(
            "reprocess start picks the next generation itself: unset BLOGPULSE_GENERATION", 2
        )
    try:
        generation = reprocess.start(
            s,
            from_time=args.from_time,
            timeout=args.timeout,
            log_path=args.log,
            partitions=args.partitions,
        )
    except (reprocess.ReprocessError, BrokerUnavailable, KafkaError, *_db_errors()) as exc:
        return _fail(f"reprocess start: {_reason(exc)}")
    if args.partitions:
        print(
            f"generation {generation} has caught up on {args.partitions} partitions. Keep its "
            f"inputs filled with `blogpulse reprocess repartition {generation} --follow` and it "
            f"current with `BLOGPULSE_GENERATION={generation} BLOGPULSE_INPUT_GENERATION="
            f"{generation} BLOGPULSE_PARTITIONS={args.partitions} blogpulse worker`; move "
            f"publishers to BLOGPULSE_INPUT_GENERATION={generation}, then "
            f"`blogpulse reprocess switch {generation}` (docs/replay.md)."
        )
        return 0
    print(
        f"generation {generation} has caught up. Keep it current with "
        f"`BLOGPULSE_GENERATION={generation} blogpulse worker`, then "
        f"`blogpulse reprocess switch {generation}`."
    )
    return 0


def _run_repartition(args: argparse.Namespace, s: Settings) -> int:
    from kafka.errors import KafkaError

    from streams import repartition
    from streams.publisher import BrokerUnavailable

    try:
        n = repartition.copy(s, args.generation, follow=args.follow)
    except (repartition.RepartitionError, BrokerUnavailable, KafkaError) as exc:
        return _fail(f"reprocess repartition: {exc}")
    print(f"copied {n:,} records into input generation {args.generation}")
    return 0


def _run_switch(args: argparse.Namespace, settings: Settings) -> int:
    from sinks import generations

    try:
        previous = generations.switch(_engine(settings), args.generation)
    except _db_errors() as exc:
        return _fail(f"reprocess switch: {_reason(exc)}")
    print(f"readers now see generation {args.generation} (was {previous})")
    return 0


def _run_cleanup(args: argparse.Namespace, settings: Settings) -> int:
    from sinks import generations
    from streams import reprocess
    from streams.publisher import BrokerUnavailable

    if args.topics and args.generation == 1:
        return _fail("the plain topics of generation 1 are the live contract: not deleted", 2)
    try:
        tables = generations.cleanup(_engine(settings), args.generation)
    except _db_errors() as exc:
        return _fail(f"reprocess cleanup: {_reason(exc)}")
    print(f"generation {args.generation}: removed tables {', '.join(tables)}")
    if args.topics:
        from kafka.errors import KafkaError

        try:
            topics = reprocess.delete_generation_topics(settings, args.generation)
        except (BrokerUnavailable, KafkaError) as exc:
            return _fail(f"reprocess cleanup --topics: {exc}")
        print(f"deleted topics: {', '.join(topics) or 'none'}")
    return 0


def _partition_counts(settings: Settings, generations: list[int]) -> dict[int, int]:
    """Partitions of each generation's output topics (created with its inputs' count); empty
    when the broker does not answer: status still shows the database's view."""
    from kafka.errors import KafkaError

    from schemas.topic_names import output_topics
    from streams.group_offsets import admin_client
    from streams.publisher import BrokerUnavailable
    from streams.repartition import RepartitionError, partition_count

    try:
        admin = admin_client(settings, "blogpulse-reprocess")
    except BrokerUnavailable:
        return {}
    try:
        found = {}
        for n in generations:
            try:
                count = partition_count(admin, output_topics(n).values())
            except RepartitionError:
                count = None
            if count:
                found[n] = count
        return found
    except KafkaError:
        return {}
    finally:
        admin.close()


def _run_status(args: argparse.Namespace, settings: Settings) -> int:
    from sinks import generations

    try:
        engine = _engine(settings)
        with engine.connect() as conn:
            active = generations.active(conn)
            known = generations.registered(conn)
        print(f"active generation: {active}")
        parts = _partition_counts(settings, list(known))
        for n, info in known.items():
            counts = generations.row_counts(engine, n)
            if info["dropped_at"] is not None:
                print(f"  {n}: app id {info['app_id']}, cleaned up")
                continue
            caught = info["caught_up_at"]
            state = (
                f"caught up at {caught:%Y-%m-%d %H:%M:%S}Z"
                if caught
                else "building (or stopped before catching up)"
            )
            rows = ", ".join(f"{k} {'-' if v is None else v}" for k, v in counts.items())
            mark = "*" if n == active else " "
            print(
                f"{mark} {n}: app id {info['app_id']}, {state}; rows: {rows}; "
                f"partitions: {parts.get(n, '?')}"
            )
    except _db_errors() as exc:
        return _fail(f"reprocess status: {_reason(exc)}")
    return 0
