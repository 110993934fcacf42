"""The endpoint's refusals, with a stand-in publisher (the real broker is in tests/integration)."""

from __future__ import annotations

import orjson
from aiohttp.test_utils import TestClient, TestServer

from schemas.identity import AuthorKeyer
from schemas.topic_names import input_topics
from streams.ingest.http import IngestConfig, build_app, sign
from streams.publisher import BrokerUnavailable

SECRET = b"s"
ROW = {
    "comment_ID": "1",
    "comment_post_ID": "2",
    "comment_approved": "1",
    "comment_date_gmt": "2012-03-01 10:00:00",
    "comment_author_email": "a@example.org",
}


class StubPublisher:
    def __init__(self, error: Exception | None = None, input_generation: int = 0) -> None:
        self.error, self.published = error, []
        self.input_topics = input_topics(input_generation)

    async def publish(self, events):
        if self.error:
            raise self.error
        self.published.extend(events)

    async def close(self):
        pass


async def _client(publisher, max_bytes=1024):
    app = build_app(
        IngestConfig(secret=SECRET, max_bytes=max_bytes, site="blog"), publisher, AuthorKeyer(b"k")
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def _post(client, raw, secret=SECRET, **kw):
    resp = await client.post(
        "/ingest/wordpress", data=raw, headers={"X-Blogpulse-Signature": sign(secret, raw)}, **kw
    )
    return resp.status, await resp.json()


async def test_202_only_after_publish_and_refusals():
    pub = StubPublisher()
    client = await _client(pub)
    try:
        assert (await _post(client, orjson.dumps(ROW)))[0] == 202
        assert len(pub.published) == 2  # no action: creation + moderation
        assert (await _post(client, orjson.dumps(ROW), secret=b"other"))[0] == 401
        status, body = await _post(client, b"[1]")
        assert status == 400 and body["field"] == "body"

        async def chunked():  # no Content-Length: the bound holds while streaming
            for _ in range(5):
                yield b" " * 400

        resp = await client.post(
            "/ingest/wordpress", data=chunked(), headers={"X-Blogpulse-Signature": "x"}
        )
        assert resp.status == 413
        assert len(pub.published) == 2
    finally:
        await client.close()


async def test_202_names_the_topics_of_the_input_generation():
    pub = StubPublisher(input_generation=2)
    client = await _client(pub)
    try:
        status, body = await _post(client, orjson.dumps(ROW))
        assert status == 202
        assert body["topics"] == {"blog.comments.g2": 1, "blog.moderation.g2": 1}
    finally:
        await client.close()


async def test_broker_unavailable_is_503_and_surprises_are_opaque_500():
    client = await _client(StubPublisher(BrokerUnavailable("gone")))
    try:
        resp = await client.post(
            "/ingest/wordpress",
            data=orjson.dumps(ROW),
            headers={"X-Blogpulse-Signature": sign(SECRET, orjson.dumps(ROW))},
        )
        assert resp.status == 503 and resp.headers["Retry-After"] == "5"
    finally:
        await client.close()
    client = await _client(StubPublisher(KeyError("secret internals")))
    try:
        status, body = await _post(client, orjson.dumps(ROW))
        assert status == 500 and body == {"error": "internal error"}
    finally:
        await client.close()
