"""`blogpulse ingest` (HTTP endpoint) and `blogpulse poll` (WordPress REST poller)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tomllib
from pathlib import Path

from streams.settings import Settings

INGEST_SECRET_ENV = "BLOGPULSE_INGEST_SECRET"
MAX_BYTES_ENV = "BLOGPULSE_INGEST_MAX_BYTES"
SITE_ENV = "BLOGPULSE_SITE"
WP_PASSWORD_ENV = "BLOGPULSE_WP_APP_PASSWORD"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ingest",
        help="HTTP endpoint: WordPress webhooks and JSON events -> Kafka (202 after the broker acked)",
        description="Serve POST /ingest/wordpress (WordPress webhook plugin deliveries) and POST "
        "/ingest/events (blogpulse JSON events: object, array or JSON lines). Requests are signed: "
        f"X-Blogpulse-Signature: sha256=<hex HMAC-SHA256 of the body with {INGEST_SECRET_ENV}>. "
        "See docs/ingest.md.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8088, help="port (default: 8088)")
    p.add_argument(
        "--site",
        default=None,
        help=f"site of WordPress deliveries without a site field or X-Blogpulse-Site "
        f"header (default: ${SITE_ENV})",
    )
    p.add_argument(
        "--max-bytes",
        type=int,
        default=None,
        help=f"largest accepted body (default: ${MAX_BYTES_ENV} or 262144)",
    )
    p.set_defaults(func=_run_ingest)

    q = subparsers.add_parser(
        "poll",
        help="poll the WordPress REST API for new, changed and deleted comments -> Kafka",
        description="List /wp-json/wp/v2/comments (context=edit, status=any) with an application "
        "password, publish new comments, status changes and deletions once each, and remember the "
        "position in a state file. Options override the [wordpress] table of --config.",
    )
    q.add_argument(
        "--config", type=Path, help="TOML file with a [wordpress] table (docs/ingest.md)"
    )
    q.add_argument("--base-url", help="blog address, e.g. https://blog.example.org")
    q.add_argument("--site", help=f"site name in the events (default: ${SITE_ENV})")
    q.add_argument("--user", help="WordPress user of the application password")
    q.add_argument("--state-file", type=Path, help="where the position is kept")
    q.add_argument("--interval", type=float, help="seconds between polls (default 60)")
    q.add_argument(
        "--lookback-days", type=float, help="recent comments re-read each poll (default 14)"
    )
    q.add_argument(
        "--full-scan-hours",
        type=float,
        help="re-read every comment this often (default 24; 0: every poll)",
    )
    q.add_argument("--per-page", type=int, help="page size, at most 100 (default 100)")
    q.add_argument("--once", action="store_true", help="poll once and exit (exit 1 if it failed)")
    q.set_defaults(func=_run_poll)


def _fail(command: str, message: str) -> int:
    print(f"blogpulse {command}: {message}", file=sys.stderr)
    return 2


def _run_ingest(args: argparse.Namespace, s: Settings) -> int:
    from aiohttp import web

    from streams.ingest.delivery import AsyncPublisher
    from streams.ingest.http import IngestConfig, build_app
    from streams.publisher import BrokerUnavailable, ensure_topics

    secret = s.ingest_secret
    if not secret:
        return _fail(
            "ingest", f"set {INGEST_SECRET_ENV}: requests are verified with it (HMAC-SHA256)"
        )
    max_bytes = args.max_bytes if args.max_bytes is not None else s.ingest_max_bytes
    if max_bytes <= 0:
        return _fail("ingest", "--max-bytes must be a positive number of bytes")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        created = ensure_topics(s)
        if created:
            print(f"blogpulse ingest: created topics {', '.join(created)}")
    except BrokerUnavailable as exc:
        # Serve anyway: requests get 503 + Retry-After until the broker is back.
        print(
            f"blogpulse ingest: warning: {exc}; answering 503 until it is reachable",
            file=sys.stderr,
        )
    config = IngestConfig(secret=secret.encode(), max_bytes=max_bytes, site=args.site or s.site)
    app = build_app(config, AsyncPublisher(s), s.author_keyer())
    print(
        f"blogpulse ingest: listening on http://{args.host}:{args.port}/ingest/ (broker {s.broker})",
        flush=True,
    )
    # No %a in the access log: client addresses are personal data and stay out of logs.
    web.run_app(
        app, host=args.host, port=args.port, print=None, access_log_format='"%r" %s %b %Tfs'
    )
    return 0


def _poll_config(args: argparse.Namespace, settings: Settings):
    from streams.ingest.poller import DEFAULT_TYPES, PollerConfig

    table: dict = {}
    if args.config:
        try:
            table = tomllib.loads(args.config.read_text()).get("wordpress", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"cannot read {args.config}: {exc}") from None

    def pick(name: str, default=None):
        value = getattr(args, name.replace("-", "_"), None)
        return value if value is not None else table.get(name.replace("-", "_"), default)

    base_url = pick("base_url")
    site = pick("site") or settings.site
    if not base_url:
        raise ValueError("base_url is required (--base-url or [wordpress] base_url)")
    if not site:
        raise ValueError(f"site is required (--site, [wordpress] site or {SITE_ENV})")
    user = pick("user")
    password = settings.wp_app_password or table.get("application_password")
    if user and not password:
        raise ValueError(f"user {user!r} needs an application password in {WP_PASSWORD_ENV}")
    per_page = int(pick("per_page", 100))
    if not 1 <= per_page <= 100:
        raise ValueError("per_page must be 1..100 (WordPress caps it at 100)")
    return PollerConfig(
        base_url=base_url,
        site=site,
        user=user,
        password=password,
        state_file=Path(pick("state_file", f"blogpulse-poll-{site}.json")),
        interval=float(pick("interval", 60)),
        per_page=per_page,
        lookback_days=float(pick("lookback_days", 14)),
        full_scan_seconds=float(pick("full_scan_hours", 24)) * 3600,
        types=tuple(table.get("types", DEFAULT_TYPES)),
    )


def _run_poll(args: argparse.Namespace, s: Settings) -> int:
    from streams.ingest.delivery import AsyncPublisher
    from streams.ingest.poller import Poller, PollError
    from streams.publisher import BrokerUnavailable, ensure_topics

    try:
        config = _poll_config(args, s)
    except ValueError as exc:
        return _fail("poll", str(exc))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        ensure_topics(s)
        poller = Poller(config, AsyncPublisher(s), s.author_keyer())
    except (BrokerUnavailable, PollError) as exc:
        print(f"blogpulse poll: {exc}", file=sys.stderr)
        return 1

    async def main() -> int:
        try:
            return await poller.run(once=args.once)
        finally:
            await poller.publisher.close()

    return asyncio.run(main())
