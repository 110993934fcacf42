"""`blogpulse events FILE` and `blogpulse publish FILE`: the input side of the pipeline.

Exit codes: 0 done, 1 the file is broken or unreadable or the broker failed, 2 usage error (argparse
also uses 2). Errors are one line on stderr, never a traceback; no e-mail address is ever printed."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

from schemas.wire import TYPES, encode_event
from schemas.wxr import ReadError
from streams.settings import Settings

EXIT_OK, EXIT_BROKEN, EXIT_USAGE = 0, 1, 2


def register(subparsers) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "file",
        metavar="FILE",
        help="WordPress or WordPress.com export (WXR 1.0-1.2) or JSONL events",
    )
    common.add_argument(
        "--site",
        help="site name for every event (default: from the export's base_blog_url / link); no '/'",
    )
    p = subparsers.add_parser(
        "events",
        parents=[common],
        help="print the normalised events of a WXR or JSONL file as JSONL",
        description="Print the events of FILE as JSONL (the wire format of docs/architecture.md) on "
        "stdout. Author keys are HMAC-SHA256 with BLOGPULSE_AUTHOR_SECRET (else a per-user secret "
        "file). Errors go to stderr; exit 1 for a broken file, 2 for a usage error.",
    )
    p.set_defaults(func=run_events)
    p = subparsers.add_parser(
        "publish",
        parents=[common],
        help="publish the events of a WXR or JSONL file to Kafka",
        description="Create the blogpulse topics if missing and publish the events of FILE, keyed "
        "<site>/<post_id>, with delivery confirmed; prints the count per type.",
    )
    p.set_defaults(func=run_publish)


def _err(msg: str) -> None:
    print(f"blogpulse: {msg}", file=sys.stderr)


def _check_site(site: str | None) -> bool:
    if site is not None and (
        not site.strip() or "/" in site or not site.isprintable() or len(site) > 200
    ):
        _err(f"--site must be 1-200 printable characters without '/', got {site!r}")
        return False
    return True


def _events(args, settings: Settings):
    from schemas.readers import read_events

    return read_events(
        args.file,
        site=args.site,
        keyer=settings.author_keyer,
        on_skip=lambda m: _err(f"warning: {m}"),
    )


def run_events(args: argparse.Namespace, settings: Settings) -> int:
    if not _check_site(args.site):
        return EXIT_USAGE
    out = sys.stdout.buffer
    count = 0
    try:
        for event in _events(args, settings):
            out.write(encode_event(event) + b"\n")
            count += 1
    except BrokenPipeError:  # the reader of stdout left (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except ReadError as exc:
        out.flush()
        _err(str(exc))
        return EXIT_BROKEN
    except OSError as exc:
        out.flush()
        _err(f"cannot read {args.file}: {exc.strerror or exc}")
        return EXIT_BROKEN
    out.flush()
    return EXIT_OK


def run_publish(args: argparse.Namespace, s: Settings) -> int:
    from schemas.readers import sniff_format
    from streams.publisher import BrokerUnavailable, Publisher, ensure_topics

    if not _check_site(args.site):
        return EXIT_USAGE
    try:
        sniff_format(args.file)  # a missing or unknown file is reported before touching the broker
        ensure_topics(s)
        with Publisher(s) as publisher:
            counts: Counter = publisher.publish(_events(args, s))
    except ReadError as exc:
        _err(f"{exc} (events before this point were published)")
        return EXIT_BROKEN
    except OSError as exc:
        _err(f"cannot read {args.file}: {exc.strerror or exc}")
        return EXIT_BROKEN
    except (BrokerUnavailable, RuntimeError) as exc:
        _err(str(exc))
        return EXIT_BROKEN
    total = sum(counts.values())
    for type_ in TYPES:
        print(f"{type_}: {counts.get(type_, 0)}")
    print(f"total: {total} events published to {s.broker}")
    return EXIT_OK
