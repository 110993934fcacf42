"""One WordPress comment -> event mapping (schemas/wordpress.py): the same comment read from a WXR
export, delivered by the webhook as a wp_comments row, and polled as a REST object gives the same
event, for each comment_approved value, including the empty one (hold: WordPress shows only '1')."""

from __future__ import annotations

import pytest

from schemas.identity import AuthorKeyer
from schemas.wxr import read_wxr
from streams.ingest.webhook import read_webhook
from streams.ingest.wordpress import creation_event, row_from_rest

KEYER = AuthorKeyer(b"test-secret")
SITE = "blog.example"

WXR = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:wp="http://wordpress.org/export/1.2/"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
  <wp:wxr_version>1.2</wp:wxr_version>
  <wp:base_blog_url>https://blog.example</wp:base_blog_url>
  <wp:author><wp:author_id>3</wp:author_id><wp:author_login>ann</wp:author_login>
    <wp:author_email>ann@blog.example</wp:author_email></wp:author>
  <item>
    <dc:creator>ann</dc:creator>
    <wp:post_id>7</wp:post_id>
    <wp:post_date_gmt>2024-04-30 08:00:00</wp:post_date_gmt>
    <wp:comment>
      <wp:comment_id>42</wp:comment_id>
      <wp:comment_author>Reader</wp:comment_author>
      <wp:comment_author_email>reader@example.org</wp:comment_author_email>
      <wp:comment_author_url>{url}</wp:comment_author_url>
      <wp:comment_date_gmt>2024-05-01 09:30:00</wp:comment_date_gmt>
      <wp:comment_approved>{approved}</wp:comment_approved>
      <wp:comment_type>{ctype}</wp:comment_type>
      <wp:comment_parent>{parent}</wp:comment_parent>
      <wp:comment_user_id>{user}</wp:comment_user_id>
    </wp:comment>
  </item>
</channel>
</rss>
"""


def _three_ways(
    tmp_path, *, approved: str, ctype: str = "", parent: int = 0, user: int = 0, url: str = ""
) -> list[dict]:
    path = tmp_path / "export.xml"
    path.write_text(WXR.format(approved=approved, ctype=ctype, parent=parent, user=user, url=url))
    from_wxr = list(read_wxr(path, site=SITE, keyer=KEYER))
    row = {
        "comment_ID": "42",
        "comment_post_ID": "7",
        "comment_parent": str(parent),
        "comment_type": ctype,
        "comment_approved": approved,
        "comment_date_gmt": "2024-05-01 09:30:00",
        "comment_author": "Reader",
        "comment_author_email": "reader@example.org",
        "comment_author_url": url,
        "user_id": str(user),
        "post_author": "3",
        "post_date_gmt": "2024-04-30 08:00:00",
    }
    webhook = read_webhook(row, site=SITE, action="comment_post", keyer=KEYER)
    rest = {
        "id": 42,
        "post": 7,
        "parent": parent,
        "type": ctype or "comment",
        "status": approved,
        "date_gmt": "2024-05-01T09:30:00",
        "author": user,
        "author_name": "Reader",
        "author_email": "reader@example.org",
        "author_url": url,
    }
    polled = creation_event(row_from_rest(rest, KEYER), SITE, 3, "2024-04-30T08:00:00Z")
    assert len(from_wxr) == 1 and len(webhook.events) == 1
    return [from_wxr[0], webhook.events[0], polled]


@pytest.mark.parametrize(
    "approved, status",
    [("1", "approved"), ("0", "hold"), ("", "hold"), ("spam", "spam"), ("trash", "trash")],
)
def test_the_same_comment_gives_the_same_event_on_every_path(tmp_path, approved, status):
    events = _three_ways(tmp_path, approved=approved)
    assert events[0] == events[1] == events[2]
    assert events[0]["status"] == status and events[0]["type"] == "comment"


def test_a_reply_by_the_post_author_and_a_ping_agree_too(tmp_path):
    reply = _three_ways(tmp_path, approved="1", parent=41, user=3)
    assert reply[0] == reply[1] == reply[2]
    assert reply[0]["type"] == "reply" and reply[0]["post_author"] is True
    ping = _three_ways(
        tmp_path, approved="1", ctype="pingback", parent=41, url="https://other.example/post"
    )
    assert ping[0] == ping[1] == ping[2]
    assert ping[0]["type"] == "pingback" and ping[0]["parent_id"] == 0
    assert ping[0]["source_url"] == "https://other.example/post"
