"""The WordPress REST poller against a local server that answers like WordPress (paged listings with
X-WP-TotalPages, application-password auth, 404 for deleted comments) and the real broker,
restarted between cycles and after a failed delivery: every comment is published exactly once, and
an edit and a deletion are one change each."""

from __future__ import annotations

import base64
from collections import Counter

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from ingest_readback import Readback, free_port

from schemas.identity import AuthorKeyer
from streams.ingest.delivery import AsyncPublisher
from streams.ingest.poller import Poller, PollerConfig
from streams.publisher import BrokerUnavailable, ensure_topics
from streams.settings import Settings

KEYER = AuthorKeyer(b"test-author-secret")
AUTH = "Basic " + base64.b64encode(b"editor:abcd efgh ijkl mnop").decode()


def rest_comment(cid, *, post=7, parent=0, ctype="comment", status="approved", minute=0, author=0):
    return {
        "id": cid,
        "post": post,
        "parent": parent,
        "author": author,
        "author_name": f"Reader {cid}",
        "author_email": f"reader{cid}@example.org",
        "author_url": "",
        "author_ip": "192.0.2.9",
        "date": f"2012-03-01T11:{minute:02d}:00",
        "date_gmt": f"2012-03-01T10:{minute:02d}:00",
        "content": {"raw": "text", "rendered": "<p>text</p>"},
        "status": status,
        "type": ctype,
    }


class FakeWordPress:
    """Just enough of /wp-json/wp/v2 for the poller, with WordPress's quirks."""

    def __init__(self) -> None:
        self.comments: dict[int, dict] = {}
        self.requests = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/wp-json/wp/v2/comments", self.list)
        app.router.add_get("/wp-json/wp/v2/comments/{id}", self.one)
        app.router.add_get("/wp-json/wp/v2/posts/{id}", self.post)
        return app

    def _authorised(self, request) -> None:
        self.requests += 1
        if request.headers.get("Authorization") != AUTH:
            raise web.HTTPUnauthorized(
                text='{"code":"rest_not_logged_in"}', content_type="application/json"
            )

    async def list(self, request):
        self._authorised(request)
        q = request.query
        assert q["context"] == "edit" and q["status"] == "any" and q["orderby"] == "date_gmt"
        rows = [
            c
            for c in self.comments.values()
            if c["type"] == q["type"] and (not q.get("after") or c["date_gmt"] > q["after"])
        ]
        rows.sort(key=lambda c: (c["date_gmt"], c["id"]))
        per_page, page = int(q["per_page"]), int(q["page"])
        pages = max(1, -(-len(rows) // per_page))
        if page > pages:
            return web.json_response({"code": "rest_comment_invalid_page_number"}, status=400)
        return web.json_response(
            rows[(page - 1) * per_page : page * per_page],
            headers={"X-WP-Total": str(len(rows)), "X-WP-TotalPages": str(pages)},
        )

    async def one(self, request):
        self._authorised(request)
        c = self.comments.get(int(request.match_info["id"]))
        if c is None:
            return web.json_response({"code": "rest_comment_invalid_id"}, status=404)
        return web.json_response(c)

    async def post(self, request):
        self._authorised(request)
        return web.json_response({"author": 3, "date_gmt": "2012-03-01T08:00:00"})


@pytest.fixture(scope="module")
def topics(broker):
    ensure_topics(Settings(broker=broker))


async def _poll_once(config, broker) -> None:
    publisher = AsyncPublisher(Settings(broker=broker))
    try:
        async with ClientSession() as session:
            await Poller(config, publisher, KEYER).cycle(session)  # a fresh Poller: a restart
    finally:
        await publisher.close()


async def test_poller_publishes_each_comment_and_change_once(broker, topics, unique, tmp_path):
    wp = FakeWordPress()
    for cid, kw in {
        1: {},
        2: {"parent": 1, "author": 3},
        3: {"status": "hold"},
        4: {},
        5: {"parent": 4},
        6: {"ctype": "pingback"},
        7: {"ctype": "trackback"},
    }.items():
        wp.comments[cid] = rest_comment(cid, minute=cid, **kw)
    server = TestServer(wp.app())
    await server.start_server()
    site = f"poll-{unique}"
    config = PollerConfig(
        base_url=str(server.make_url("/")).rstrip("/"),
        site=site,
        state_file=tmp_path / "poll-state.json",
        user="editor",
        password="abcd efgh ijkl mnop",
        per_page=2,
    )
    readback = Readback(broker)
    try:
        # 1. the broker is away: the cycle fails after writing its events down as pending
        down = AsyncPublisher(Settings(broker=f"127.0.0.1:{free_port()}"))
        with pytest.raises(BrokerUnavailable):
            async with ClientSession() as session:
                await Poller(config, down, KEYER).cycle(session)
        await down.close()
        assert b'"pending":[{' in config.state_file.read_bytes()
        # 2. restart with the broker back: the pending events go out, nothing is found twice
        await _poll_once(config, broker)
        # 3. WordPress changes: two new comments, an approval, a content edit, a deletion
        wp.comments[8] = rest_comment(8, minute=8)
        wp.comments[9] = rest_comment(9, minute=9, parent=8)
        wp.comments[3]["status"] = "approved"
        wp.comments[4]["content"] = {"raw": "edited", "rendered": "<p>edited</p>"}
        del wp.comments[5]
        await _poll_once(config, broker)
        # 4. a restart with nothing new publishes nothing
        await _poll_once(config, broker)
        got = readback.read(site, until=12, settle=2.0)
    finally:
        readback.close()
        await server.close()
    seen = Counter((e["type"], e["comment_id"], e["status"]) for _, e, _ in got)
    assert seen == Counter(
        {
            ("comment", 1, "approved"): 1,
            ("reply", 2, "approved"): 1,
            ("comment", 3, "hold"): 1,
            ("comment", 4, "approved"): 1,
            ("reply", 5, "approved"): 1,
            ("pingback", 6, "approved"): 1,
            ("pingback", 7, "approved"): 1,
            ("comment", 8, "approved"): 1,
            ("reply", 9, "approved"): 1,
            ("moderation", 3, "approved"): 1,
            ("moderation", 5, "delete"): 1,
        }
    ), seen
    events = {(e["type"], e["comment_id"]): e for _, e, _ in got}
    assert events[("reply", 2)]["post_author"] is True  # author 3 wrote post 7
    assert events[("reply", 5)]["post_author"] is False
    assert events[("pingback", 7)]["kind"] == "trackback"
    assert events[("comment", 1)]["post_time"] == "2012-03-01T08:00:00Z"
    for _, _, raw in got:
        assert b"@example.org" not in raw and b"192.0.2.9" not in raw


async def test_poller_reports_refused_credentials(tmp_path, unique):
    wp = FakeWordPress()
    server = TestServer(wp.app())
    await server.start_server()
    config = PollerConfig(
        base_url=str(server.make_url("/")).rstrip("/"),
        site=f"auth-{unique}",
        state_file=tmp_path / "s.json",
        user="editor",
        password="wrong",
    )
    publisher = AsyncPublisher(Settings(broker=f"127.0.0.1:{free_port()}"))
    try:
        code = await Poller(config, publisher, KEYER).run(once=True)
    finally:
        await server.close()
        await publisher.close()
    assert code == 1
    assert not config.state_file.exists()
