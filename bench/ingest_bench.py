"""`python -m bench.ingest_bench`: requests/s of the HTTP ingest endpoint with confirmed delivery
(202 = broker acknowledged, acks=all, idempotent producer) on the real broker, loopback only,
against same-process kafka-python baselines publishing the same events:
  - batched: Publisher.publish(all events) = send all, one flush (the producer's ceiling);
  - per-event: send + flush for each event in turn (what one synchronous confirmed request costs).
Each request is one WordPress webhook delivery (signature check, row mapping, author key, one
creation event). A bounded number of requests (--requests, default 2000) at --concurrency."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import orjson
from aiohttp import ClientSession, web

from schemas.identity import AuthorKeyer
from streams.ingest.delivery import AsyncPublisher
from streams.ingest.http import IngestConfig, build_app, sign
from streams.ingest.webhook import read_webhook
from streams.publisher import Publisher, ensure_topics
from streams.settings import load_settings

SECRET = b"bench-secret"


def delivery(i: int) -> dict:
    return {
        "hook": "comment_post",
        "comment_ID": str(i + 1),
        "comment_post_ID": str(i % 100 + 1),
        "comment_parent": "0",
        "comment_type": "",
        "comment_approved": "1",
        "comment_date_gmt": "2012-03-01 10:00:00",
        "comment_author": f"Reader {i % 500}",
        "comment_author_email": f"reader{i % 500}@example.org",
        "comment_author_url": "",
        "user_id": "0",
    }


async def endpoint_rate(broker_settings, site: str, n: int, concurrency: int) -> float:
    app = build_app(
        IngestConfig(secret=SECRET, max_bytes=256 * 1024, site=site),
        AsyncPublisher(broker_settings),
        AuthorKeyer(b"bench-author"),
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/ingest/wordpress"
    bodies = [orjson.dumps(delivery(i)) for i in range(n)]
    queue: asyncio.Queue = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)

    async def worker(session: ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            async with session.post(
                url,
                data=body,
                headers={
                    "X-Blogpulse-Signature": sign(SECRET, body),
                    "Content-Type": "application/json",
                },
            ) as r:
                if r.status != 202:
                    raise SystemExit(f"request refused: HTTP {r.status} {await r.text()}")

    try:
        async with ClientSession() as session:
            await worker_once(session, url)  # warm-up: producer connected, metadata known
            start = time.perf_counter()
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
            elapsed = time.perf_counter() - start
    finally:
        await runner.cleanup()
    return n / elapsed


async def worker_once(session: ClientSession, url: str) -> None:
    body = orjson.dumps(delivery(10**9))
    async with session.post(
        url, data=body, headers={"X-Blogpulse-Signature": sign(SECRET, body)}
    ) as r:
        assert r.status == 202, await r.text()


def baseline_rates(broker_settings, site: str, n: int) -> tuple[float, float]:
    keyer = AuthorKeyer(b"bench-author")
    events = [
        read_webhook(delivery(i), site=site, action="comment_post", keyer=keyer).events[0]
        for i in range(n)
    ]
    with Publisher(broker_settings) as pub:
        pub.publish(events[:1])  # warm-up
        start = time.perf_counter()
        pub.publish(events)
        batched = n / (time.perf_counter() - start)
        m = min(n, 500)  # per-event flushes are slow: a bounded sample
        start = time.perf_counter()
        for e in events[:m]:
            pub.publish([e])
        per_event = m / (time.perf_counter() - start)
    return batched, per_event


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.ingest_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--requests", type=int, default=2000, help="requests to send (default 2000)")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    args = p.parse_args(argv)
    s = load_settings()
    ensure_topics(s)
    site = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    rate = asyncio.run(endpoint_rate(s, site, args.requests, args.concurrency))
    batched, per_event = baseline_rates(s, site + "-baseline", args.requests)
    print(
        f"ingest endpoint : {rate:9.0f} requests/s confirmed ({args.requests} requests, "
        f"concurrency {args.concurrency}, 1 event each)"
    )
    print(f"baseline batched: {batched:9.0f} events/s (kafka-python send all + one flush)")
    print(f"baseline 1-by-1 : {per_event:9.0f} events/s (send + flush per event)")
    print(
        f"ratio endpoint/batched = {rate / batched:.2f}, endpoint/1-by-1 = {rate / per_event:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
