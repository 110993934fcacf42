"""The ingest endpoint against the real broker: WordPress deliveries and our own events arrive on the
right topics, pseudonymised; refused requests publish nothing; a broker that is away gives 503."""

from __future__ import annotations

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from ingest_readback import Readback, free_port

from schemas.identity import AuthorKeyer
from schemas.wire import make_event
from streams.ingest.delivery import AsyncPublisher
from streams.ingest.http import IngestConfig, build_app, sign
from streams.publisher import ensure_topics
from streams.settings import Settings

SECRET = b"test-ingest-secret"
KEYER = AuthorKeyer(b"test-author-secret")
POST = {"ID": 375, "post_author": "1", "post_date_gmt": "2012-03-01 08:00:00", "post_type": "post"}


def row(
    cid, *, parent=0, ctype="", approved="1", email="reader@example.org", user_id="0", author_url=""
):
    """A wp_comments row as plugins send it: every value a string."""
    return {
        "comment_ID": str(cid),
        "comment_post_ID": "375",
        "comment_author": "A Reader",
        "comment_author_email": email,
        "comment_author_url": author_url,
        "comment_author_IP": "192.0.2.7",
        "comment_date": "2012-03-01 11:00:00",
        "comment_date_gmt": "2012-03-01 10:00:00",
        "comment_content": "Nice post",
        "comment_karma": "0",
        "comment_approved": approved,
        "comment_agent": "Mozilla/5.0",
        "comment_type": ctype,
        "comment_parent": str(parent),
        "user_id": user_id,
    }


def wp_webhooks(trigger, comment):
    """The WP Webhooks plugin's trigger body (comment_data + current_post_data)."""
    return {
        "comment_id": int(comment["comment_ID"]),
        "comment_data": comment,
        "comment_meta": {},
        "current_post_id": 375,
        "current_post_data": POST,
        "user_id": 0,
        "user_data": {},
        "trigger": trigger,
    }


@pytest.fixture(scope="module")
def topics(broker):
    ensure_topics(Settings(broker=broker))


async def _client(settings: Settings, max_bytes: int = 4096, site=None) -> TestClient:
    app = build_app(
        IngestConfig(secret=SECRET, max_bytes=max_bytes, site=site), AsyncPublisher(settings), KEYER
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def _post(client, path, body, secret=SECRET, headers=None):
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    h = {
        "Content-Type": "application/json",
        "X-Blogpulse-Signature": sign(secret, raw),
        **(headers or {}),
    }
    resp = await client.post(path, data=raw, headers=h)
    return resp.status, await resp.json(), resp.headers


async def test_wordpress_deliveries_land_on_their_topics(broker, topics, unique):
    site = f"wp-{unique}"
    readback = Readback(broker)
    client = await _client(Settings(broker=broker), site=site)
    try:
        author_reply = row(11, parent=10, email="owner@example.org", user_id="1")
        deliveries = [
            wp_webhooks("create_comment", row(10)),
            wp_webhooks("create_comment", author_reply),
            # WordPress.com / HookPress shape: the flat row with "hook", site in a header
            {
                **row(12, ctype="pingback", email="", author_url="https://other.example.net/p/1"),
                "hook": "comment_post",
            },
            wp_webhooks("update_comment", row(10, approved="spam")),
        ]
        for body in deliveries:
            status, answer, _ = await _post(
                client, "/ingest/wordpress", body, headers={"X-Blogpulse-Site": site}
            )
            assert status == 202, answer
        got = readback.read(site, until=5)
    finally:
        await client.close()
        readback.close()
    by = sorted((topic, e["type"], e["comment_id"], e["status"]) for topic, e, _ in got)
    assert by == [
        ("blog.comments", "comment", 10, "approved"),
        ("blog.comments", "comment", 10, "spam"),  # the change re-asserts the entry (idempotent)
        ("blog.moderation", "moderation", 10, "spam"),
        ("blog.pingbacks", "pingback", 12, "approved"),
        ("blog.replies", "reply", 11, "approved"),
    ]
    events = {(e["type"], e["comment_id"]): e for _, e, _ in got}
    assert events[("reply", 11)]["parent_id"] == 10 and events[("reply", 11)]["post_author"] is True
    assert events[("comment", 10)]["post_author"] is False
    assert events[("comment", 10)]["post_time"] == "2012-03-01T08:00:00Z"
    assert events[("pingback", 12)]["source_url"] == "https://other.example.net/p/1"
    assert events[("comment", 10)]["author_key"] == KEYER.key(email="reader@example.org")
    for _, _, raw in got:  # pseudonymised: no e-mail, no IP on the topic
        assert b"@example.org" not in raw and b"192.0.2.7" not in raw


async def test_own_events_array_and_json_lines(broker, topics, unique):
    site = f"ev-{unique}"
    evs = [
        make_event(
            type="comment",
            site=site,
            post_id=1,
            comment_id=i,
            author_key="a" * 64,
            event_time="2012-03-01T10:00:00Z",
        )
        for i in (1, 2, 3)
    ]
    readback = Readback(broker)
    client = await _client(Settings(broker=broker))
    try:
        status, answer, _ = await _post(client, "/ingest/events", evs[:2])
        assert status == 202 and answer["accepted"] == 2
        status, answer, _ = await _post(
            client, "/ingest/events", b"\n".join(orjson.dumps(e) for e in evs[2:] * 2)
        )
        assert status == 202 and answer["accepted"] == 2
        got = readback.read(site, until=4)
    finally:
        await client.close()
        readback.close()
    assert sorted(e["comment_id"] for _, e, _ in got) == [1, 2, 3, 3]
    assert {t for t, _, _ in got} == {"blog.comments"}


async def test_refused_requests_publish_nothing(broker, topics, unique):
    site = f"bad-{unique}"
    readback = Readback(broker)
    client = await _client(Settings(broker=broker), max_bytes=4096, site=site)
    try:
        good = wp_webhooks("create_comment", row(20))
        status, answer, _ = await _post(client, "/ingest/wordpress", good, secret=b"wrong")
        assert status == 401, answer
        raw = orjson.dumps(good)
        resp = await client.post("/ingest/wordpress", data=raw)  # no signature at all
        assert resp.status == 401
        status, answer, _ = await _post(
            client, "/ingest/wordpress", b'{"comment_data": {"comment_ID": '
        )
        assert status == 400 and "malformed JSON" in answer["error"]
        bad_date = wp_webhooks("create_comment", {**row(21), "comment_date_gmt": "yesterday"})
        status, answer, _ = await _post(client, "/ingest/wordpress", bad_date)
        assert status == 400 and answer["field"] == "comment_date_gmt"
        big = wp_webhooks("create_comment", {**row(22), "comment_content": "x" * 5000})
        status, answer, _ = await _post(client, "/ingest/wordpress", big)
        assert status == 413, answer
        # A valid delivery last: once it is on the topic, anything refused earlier would be too.
        status, _, _ = await _post(
            client, "/ingest/wordpress", wp_webhooks("create_comment", row(23))
        )
        assert status == 202
        got = readback.read(site, until=1)
    finally:
        await client.close()
        readback.close()
    assert [e["comment_id"] for _, e, _ in got] == [23]


async def test_broker_down_gives_503_with_retry_after(unique):
    client = await _client(Settings(broker=f"127.0.0.1:{free_port()}"), site=f"down-{unique}")
    try:
        status, answer, headers = await _post(
            client, "/ingest/wordpress", wp_webhooks("create_comment", row(30))
        )
    finally:
        await client.close()
    assert status == 503, answer
    assert headers["Retry-After"].isdigit()
    assert "Traceback" not in orjson.dumps(answer).decode()
