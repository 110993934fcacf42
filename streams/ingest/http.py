"""The HTTP ingest endpoint (aiohttp): WordPress webhook deliveries and our own JSON events in,
confirmed Kafka deliveries out.

    POST /ingest/wordpress   one webhook delivery (webhook.py lists the accepted shapes)
    POST /ingest/events      contract events: one JSON object, a JSON array, or JSON lines
    GET  /healthz            200 while the server runs

Every POST carries X-Blogpulse-Signature: sha256=<hex HMAC-SHA256 of the raw body with
BLOGPULSE_INGEST_SECRET>. Answers: 202 after the broker acknowledged every event; 400 bad input
(which field, why); 401 missing or wrong signature; 413 body over the bound; 503 broker unavailable
(Retry-After); 500 {"error": "internal error"} for anything unexpected (logged, never shown)."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from schemas.errors import BlogpulseError
from schemas.identity import AuthorKeyer
from schemas.wire import InvalidEvent, validate
from streams.ingest.delivery import AsyncPublisher
from streams.ingest.webhook import parse_body, read_webhook
from streams.ingest.wordpress import now_time
from streams.publisher import BrokerUnavailable, topic_for

log = logging.getLogger("blogpulse.ingest")

SIGNATURE_HEADER = "X-Blogpulse-Signature"
SITE_HEADER = "X-Blogpulse-Site"
ACTION_HEADER = "X-Blogpulse-Action"
DEFAULT_MAX_BYTES = 256 * 1024


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value a sender computes: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    # compare_digest over ASCII bytes: constant time, and no exception on non-ASCII input
    return hmac.compare_digest(
        sign(secret, body).encode(), header.strip().encode("utf-8", "replace")
    )


@dataclass(frozen=True)
class IngestConfig:
    secret: bytes
    max_bytes: int = DEFAULT_MAX_BYTES
    site: str | None = None  # default site of WordPress deliveries
    retry_after: int = 5  # seconds, sent with 503


class Refused(BlogpulseError):
    """A request answered with an error status; message is safe to show."""

    def __init__(self, status: int, message: str, field: str | None = None, headers=None) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers


def _json(status: int, body: dict[str, Any], headers=None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


async def read_bounded(request: web.Request, max_bytes: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed max_bytes (declared length first,
    then while streaming for chunked bodies): an oversized body is never held in memory."""
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise Refused(413, f"body is {declared} bytes, the limit is {max_bytes}")
    chunks, size = [], 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise Refused(413, f"body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_events(raw: bytes) -> list[dict[str, Any]]:
    """One event object, a JSON array of them, or JSON lines -> validated events (all or none)."""
    try:
        doc = orjson.loads(raw)
        items = doc if isinstance(doc, list) else [doc]
    except orjson.JSONDecodeError as whole_error:
        lines = [line for line in raw.splitlines() if line.strip()]
        if len(lines) < 2:
            raise InvalidEvent("body", f"malformed JSON ({whole_error})") from None
        items = []
        for n, line in enumerate(lines, 1):
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise InvalidEvent(f"line {n}", f"malformed JSON ({exc})") from None
    if not items:
        raise InvalidEvent("body", "no events")
    events = []
    for i, item in enumerate(items):
        try:
            events.append(validate(item))
        except InvalidEvent as exc:
            raise InvalidEvent(f"events[{i}].{exc.field}", exc.reason) from None
    return events


class IngestHandlers:
    def __init__(self, config: IngestConfig, publisher: AsyncPublisher, keyer: AuthorKeyer) -> None:
        self.config, self.publisher, self.keyer = config, publisher, keyer

    async def _signed_body(self, request: web.Request) -> bytes:
        raw = await read_bounded(request, self.config.max_bytes)
        if not signature_ok(self.config.secret, raw, request.headers.get(SIGNATURE_HEADER)):
            raise Refused(
                401, f"missing or wrong {SIGNATURE_HEADER} (sha256=<hex HMAC of the body>)"
            )
        return raw

    async def _publish(self, events: list[dict[str, Any]]) -> web.Response:
        try:
            await self.publisher.publish(events)
        except BrokerUnavailable as exc:
            log.warning("ingest: broker unavailable, %d events refused: %s", len(events), exc)
            raise Refused(
                503,
                "the event broker is unavailable; retry later",
                headers={"Retry-After": str(self.config.retry_after)},
            ) from None
        topics = Counter(topic_for(e, self.publisher.input_topics) for e in events)
        return _json(
            202,
            {
                "accepted": len(events),
                "topics": dict(topics),
                "event_ids": [e["event_id"] for e in events],
            },
        )

    async def wordpress(self, request: web.Request) -> web.Response:
        raw = await self._signed_body(request)
        received_at = now_time()
        body = parse_body(raw, request.headers.get("Content-Type", ""))
        site = body.get("site") if isinstance(body.get("site"), str) else None
        site = site or request.headers.get(SITE_HEADER) or self.config.site
        if not site:
            raise InvalidEvent(
                "site",
                f"no site: send a `site` field or the {SITE_HEADER} header, or "
                "start the endpoint with --site / BLOGPULSE_SITE",
            )
        action = request.headers.get(ACTION_HEADER) or request.query.get("action")
        result = read_webhook(
            body, site=site, action=action, keyer=self.keyer, received_at=received_at
        )
        if result.ignored:
            return _json(202, {"accepted": 0, "ignored": result.ignored})
        return await self._publish(result.events)

    async def events(self, request: web.Request) -> web.Response:
        raw = await self._signed_body(request)
        return await self._publish(parse_events(raw))


@web.middleware
async def errors_as_json(request: web.Request, handler):
    """Known refusals keep their status and reason; anything else is a logged, opaque 500."""
    try:
        return await handler(request)
    except Refused as exc:
        body = {"error": exc.message}
        if exc.field:
            body["field"] = exc.field
        return _json(exc.status, body, exc.headers)
    except InvalidEvent as exc:
        return _json(400, {"error": f"{exc.field}: {exc.reason}", "field": exc.field})
    except web.HTTPException:
        raise
    except Exception:  # noqa: BLE001 - the sender sees no internals
        log.exception("ingest: unexpected error on %s %s", request.method, request.path)
        return _json(500, {"error": "internal error"})


async def _health(request: web.Request) -> web.Response:
    return _json(200, {"status": "ok"})


def build_app(
    config: IngestConfig, publisher: AsyncPublisher, keyer: AuthorKeyer
) -> web.Application:
    handlers = IngestHandlers(config, publisher, keyer)
    # client_max_size backs up read_bounded for any code path that reads the body another way
    app = web.Application(middlewares=[errors_as_json], client_max_size=config.max_bytes + 1)
    app.router.add_post("/ingest/wordpress", handlers.wordpress)
    app.router.add_post("/ingest/events", handlers.events)
    app.router.add_get("/healthz", _health)

    async def close_publisher(app: web.Application) -> None:
        await publisher.close()

    app.on_cleanup.append(close_publisher)
    return app
