"""WXR and JSONL reading, through the `events` command where the issue asks for the command.

Counts are checked against counts taken independently from the XML with minidom (DOM, whole file),
not with the streaming reader under test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from xml.dom import minidom
from xml.parsers.expat import ExpatError

import orjson
import pytest

from schemas.identity import AuthorKeyer
from schemas.readers import read_events
from schemas.wire import decode_event
from schemas.wxr import WxrError, read_wxr, site_from_url

REPO = Path(__file__).resolve().parents[2]
WXR_DIR = Path(__file__).parents[2].parent / "shared" / "wxr"
SAMPLE = REPO / "schemas" / "sample" / "sample-export.xml"
KEYER = AuthorKeyer(b"unit-secret")
ENV = {
    **os.environ,
    "BLOGPULSE_AUTHOR_SECRET": "unit-secret",
    "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
}
WXR_NAMESPACES = [
    f"{scheme}://wordpress.org/export/1.{n}/" for scheme in ("http", "https") for n in range(3)
]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        timeout=60,
    )


def _texts(parent, name: str) -> list[str]:
    out = []
    for ns in WXR_NAMESPACES:
        for node in parent.getElementsByTagNameNS(ns, name):
            if node.parentNode is parent:
                out.append("".join(c.data for c in node.childNodes if c.nodeType in (3, 4)).strip())
    return out


def dom_counts(path: Path) -> Counter | None:
    """Per-type counts from the DOM (None when the file is not a WXR file a reader should accept)."""
    try:
        doc = minidom.parse(str(path))
    except ExpatError:
        return None
    versions = [
        t
        for ns in WXR_NAMESPACES
        for t in (
            "".join(c.data for c in n.childNodes)
            for n in doc.getElementsByTagNameNS(ns, "wxr_version")
        )
    ]
    if not versions or not re.fullmatch(r"\d+\.\d+", versions[0].strip()):
        return None
    channel = doc.getElementsByTagName("channel")[0]
    export_dated = any(n.parentNode is channel for n in doc.getElementsByTagName("pubDate"))
    counts: Counter = Counter()
    for ns in WXR_NAMESPACES:
        for comment in doc.getElementsByTagNameNS(ns, "comment"):
            if comment.parentNode.tagName != "item":
                continue
            ctype = (_texts(comment, "comment_type") or [""])[0]
            item = comment.parentNode
            dated = [
                d
                for d in _texts(comment, "comment_date_gmt")
                + _texts(comment, "comment_date")
                + _texts(item, "post_date_gmt")
                + _texts(item, "post_date")
                if d and d != "0000-00-00 00:00:00"
            ]
            if not dated and not export_dated:
                continue  # no time at all: skipped on purpose (documented in schemas/wxr.py)
            parent = int((_texts(comment, "comment_parent") or ["0"])[0] or 0)
            if ctype in ("", "comment"):
                counts["reply" if parent else "comment"] += 1
            elif ctype in ("pingback", "trackback"):
                counts["pingback"] += 1
    return counts


ALL_FILES = sorted(WXR_DIR.glob("*.xml"))
VALID = [p for p in ALL_FILES if dom_counts(p) is not None]
BROKEN = [p for p in ALL_FILES if dom_counts(p) is None]


def test_shared_files_are_there():
    assert len(ALL_FILES) >= 16, f"expected the WXR test files in {WXR_DIR}"
    assert {p.name for p in BROKEN} == {
        "crazy-cdata.xml",
        "invalid-version-tag.xml",
        "malformed-simple.xml",
        "malformed.xml",
        "missing-version-tag.xml",
    }


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_events_counts_match_the_xml(path):
    result = cli("events", "--site", "test-site", str(path))
    assert result.returncode == 0, result.stderr.decode()
    events = [decode_event(line) for line in result.stdout.splitlines()]
    assert Counter(e["type"] for e in events) == dom_counts(path)
    assert b"Traceback" not in result.stderr


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_https_namespace_variants_count_the_same(path, tmp_path):
    """The importer's own test files as WordPress.com writes them (https export namespace)."""
    https = tmp_path / path.name
    https.write_bytes(
        path.read_bytes().replace(b"http://wordpress.org/export/", b"https://wordpress.org/export/")
    )
    assert dom_counts(https) == dom_counts(path)
    result = cli("events", "--site", "test-site", str(https))
    assert result.returncode == 0, result.stderr.decode()
    assert Counter(decode_event(line)["type"] for line in result.stdout.splitlines()) == dom_counts(
        path
    )


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.name)
def test_broken_files_give_a_clear_error(path):
    result = cli("events", str(path))
    err = result.stderr.decode()
    assert result.returncode in (1, 2)
    assert "Traceback" not in err
    assert re.search(re.escape(str(path)) + r":\d+: ", err), err  # names file and line
    assert re.search(r"malformed XML|wxr_version", err), err


def test_unreadable_and_unknown_files_exit_1(tmp_path):
    result = cli("events", str(tmp_path / "missing.xml"))
    assert result.returncode == 1 and b"No such file" in result.stderr
    (tmp_path / "notes.txt").write_text("hello\n")
    result = cli("events", str(tmp_path / "notes.txt"))
    assert result.returncode == 1 and b"neither a WordPress export" in result.stderr
    assert b"Traceback" not in result.stderr


def test_usage_errors_exit_2():
    assert cli("events").returncode == 2
    result = cli("events", "--site", "a/b", str(SAMPLE))
    assert result.returncode == 2 and b"--site" in result.stderr


def test_missing_tags_file_is_an_export_without_comments():
    # missing-tags.xml lacks authors and dates but has a valid wp:wxr_version; the WordPress importer
    # imports it, and nothing the pipeline needs is missing: no events, no error.
    assert list(read_wxr(WXR_DIR / "missing-tags.xml", keyer=KEYER)) == []


def test_no_input_email_reaches_the_output():
    files = [SAMPLE, *VALID]
    emails = set()
    for path in files:
        emails |= set(re.findall(rb"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", path.read_bytes()))
    assert len(emails) >= 20
    for path in files:
        result = cli("events", "--site", "s", str(path))
        assert result.returncode == 0
        text = (result.stdout + result.stderr).lower()
        for email in emails:
            assert email.lower() not in text, (path.name, email)
        assert b"@" not in result.stdout
        assert b"192.0.2." not in result.stdout  # nor an IP address


def test_sample_set_has_the_seed_structure():
    events = list(read_wxr(SAMPLE, keyer=KEYER))
    assert len(events) == 24  # "24 thoughts"
    visible = [e for e in events if e["status"] == "approved"]
    assert len(visible) == 16  # 14 numbered entries + 2 replies
    kinds = Counter(e["kind"] for e in visible if e["type"] == "pingback")
    assert Counter(e["type"] for e in visible) == {"comment": 10, "reply": 2, "pingback": 4}
    assert kinds == {"pingback": 4} and kinds["trackback"] == 0
    assert {e["site"] for e in events} == {"solberg-blog.example.org"}
    assert len({e["post_id"] for e in events}) == 1
    replies = [e for e in visible if e["type"] == "reply"]
    assert all(e["post_author"] for e in replies)
    assert sum(e["post_author"] for e in events) == 2
    numbered = [e for e in visible if e["type"] != "reply"]
    assert [e["type"][0] for e in numbered] == list("ccccccccpcppcp")
    by_id = {e["comment_id"]: e for e in events}
    assert [numbered.index(by_id[r["parent_id"]]) + 1 for r in replies] == [5, 13]
    # depth 1: replies answer top-level comments only; distinct commenters
    assert all(by_id[r["parent_id"]]["parent_id"] == 0 for r in replies)
    commenters = [e["author_key"] for e in events if not e["post_author"]]
    assert len(set(commenters)) == len(commenters) == 22
    assert Counter(e["status"] for e in events if e["status"] != "approved") == {
        "hold": 3,
        "spam": 3,
        "trash": 2,
    }
    assert all(e["post_time"] == "2012-03-01T09:00:00Z" for e in events)


def _wxr(body: str, channel: str = "", ns: str = "1.2") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:wp="http://wordpress.org/export/{ns}/">
<channel><link>http://Blog.Example.org/news/</link><wp:wxr_version>{ns}</wp:wxr_version>
<wp:author><wp:author_id>7</wp:author_id><wp:author_login>boss</wp:author_login>
<wp:author_email>Boss@Example.org</wp:author_email></wp:author>{channel}
<item><dc:creator>boss</dc:creator><wp:post_id>5</wp:post_id>
<wp:post_date>2012-01-01 12:00:00</wp:post_date><wp:post_date_gmt>0000-00-00 00:00:00</wp:post_date_gmt>
{body}</item></channel></rss>"""


def _comment(cid, **f) -> str:
    fields = {
        "comment_date_gmt": "2012-01-02 10:00:00",
        "comment_approved": "1",
        "comment_type": "",
        "comment_parent": "0",
        "comment_user_id": "0",
        "comment_author_email": "x@y.example",
        **f,
    }
    inner = "".join(f"<wp:{k}>{v}</wp:{k}>" for k, v in fields.items() if v is not None)
    return f"<wp:comment><wp:comment_id>{cid}</wp:comment_id>{inner}</wp:comment>"


def _read(tmp_path, text: str, **kw):
    path = tmp_path / "t.xml"
    path.write_text(text, encoding="utf-8")
    skipped: list[str] = []
    return list(read_wxr(path, keyer=KEYER, on_skip=skipped.append, **kw)), skipped


@pytest.mark.parametrize("ns", ["1.0", "1.1", "1.2"])
def test_mapping_of_types_statuses_dates_and_post_author(tmp_path, ns):
    body = "".join(
        [
            _comment(1),
            _comment(
                2,
                comment_parent="1",
                comment_user_id="7",
                comment_date_gmt="0000-00-00 00:00:00",
                comment_date="2012-01-02 11:00:00",
            ),
            _comment(
                3,
                comment_type="pingback",
                comment_author_url="http://a.example/p?x=1&amp;y=2",
                comment_approved="0",
                comment_author_email="",
            ),
            _comment(
                4,
                comment_type="trackback",
                comment_approved="spam",
                comment_author_url="http://t.example/",
            ),
            _comment(5, comment_approved="trash", comment_author_email=" BOSS@example.org "),
            _comment(6, comment_approved="post-trashed", comment_type="comment"),
            _comment(7, comment_type="note"),
            _comment(8, comment_type="woocommerce_order_note"),
            _comment(9, comment_date_gmt=None, comment_date=None),
            _comment(10, comment_approved="maybe"),
        ]
    )
    events, skipped = _read(tmp_path, _wxr(body, ns=ns))
    got = {e["comment_id"]: e for e in events}
    assert sorted(got) == [1, 2, 3, 4, 5, 6, 9]
    assert (
        got[1]["type"] == "comment" and got[1]["status"] == "approved" and not got[1]["post_author"]
    )
    assert (
        got[2]["type"] == "reply" and got[2]["parent_id"] == 1 and got[2]["post_author"]
    )  # user id
    assert got[2]["event_time"] == "2012-01-02T11:00:00Z"  # comment_date taken as UTC
    assert (
        got[3]["type"] == "pingback" and got[3]["kind"] == "pingback" and got[3]["status"] == "hold"
    )
    assert got[3]["source_url"] == "http://a.example/p?x=1&y=2"  # entity unescaped
    assert got[4]["kind"] == "trackback" and got[4]["status"] == "spam"
    assert got[5]["status"] == "trash" and got[5]["post_author"]  # e-mail of the post's author
    assert got[6]["status"] == "trash" and got[6]["type"] == "comment"
    assert all(e["site"] == "blog.example.org_news" for e in events)
    assert all(e["post_time"] == "2012-01-01T12:00:00Z" for e in events)  # post_date fallback
    assert got[9]["event_time"] == "2012-01-01T12:00:00Z"  # undated: at its post's date
    assert len(skipped) == 2 and "comment 9" in skipped[0] and "comment 10" in skipped[1]
    assert "counted at its post's date 2012-01-01T12:00:00Z" in skipped[0]
    assert "skipped" in skipped[1]
    assert not any("@" in m for m in skipped)


def _undated_post(
    body: str, pub_date: str = "", post_date: str = "0000-00-00 00:00:00", scheme: str = "http"
) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:wp="{scheme}://wordpress.org/export/1.2/"><channel>
<link>http://blog.example.org/</link>{pub_date}<wp:wxr_version>1.2</wp:wxr_version>
<item><wp:post_id>5</wp:post_id><wp:post_date>{post_date}</wp:post_date>{body}</item></channel></rss>"""


def test_undated_comment_counts_at_the_post_date_else_the_export_pubdate(tmp_path):
    undated = _comment(1, comment_date_gmt=None, comment_date=None)
    events, skipped = _read(tmp_path, _undated_post(undated, post_date="2012-01-01 12:00:00"))
    assert [e["event_time"] for e in events] == ["2012-01-01T12:00:00Z"]
    assert "counted at its post's date" in skipped[0]

    channel_date = "<pubDate>Wed, 07 Mar 2012 15:30:00 +0100</pubDate>"
    events, skipped = _read(tmp_path, _undated_post(undated, pub_date=channel_date))
    assert [e["event_time"] for e in events] == ["2012-03-07T14:30:00Z"]  # in UTC
    assert events[0]["post_time"] is None
    assert (
        len(skipped) == 1 and "counted at the export's pubDate 2012-03-07T14:30:00Z" in skipped[0]
    )

    events, skipped = _read(tmp_path, _undated_post(undated, pub_date="<pubDate>soon</pubDate>"))
    assert events == [] and "skipped" in skipped[0] and "comment 1 of post 5" in skipped[0]

    # the warning reaches the user of `blogpulse events`, the event reaches stdout
    path = tmp_path / "undated.xml"
    path.write_text(_undated_post(undated, pub_date=channel_date))
    result = cli("events", str(path))
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 1
    assert b"warning: " in result.stderr and b"counted at the export's pubDate" in result.stderr


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_every_export_namespace_is_read(tmp_path, scheme, version):
    text = _undated_post(_comment(1), post_date="2012-01-01 12:00:00", scheme=scheme)
    text = text.replace("export/1.2/", f"export/{version}/")
    events, skipped = _read(tmp_path, text)
    assert [e["comment_id"] for e in events] == [1] and skipped == []


def test_site_argument_and_site_from_base_blog_url(tmp_path):
    channel = (
        "<wp:base_site_url>https://example.org</wp:base_site_url>"
        "<wp:base_blog_url>https://example.org/blog/</wp:base_blog_url>"
    )
    events, _ = _read(tmp_path, _wxr(_comment(1), channel))
    assert events[0]["site"] == "example.org_blog"
    events, _ = _read(tmp_path, _wxr(_comment(1), channel), site="mine")
    assert events[0]["site"] == "mine"
    assert site_from_url("http://localhost/") == "localhost"


def test_foreign_namespace_is_not_wxr(tmp_path):
    body = f'<wp:comment xmlns:wp="http://example.com/fake/">{_comment(1)[12:]}'
    events, _ = _read(tmp_path, _wxr(body))
    assert events == []


def test_valid_events_before_a_break_are_kept(tmp_path):
    text = _wxr(_comment(1) + _comment(2) + "\n<wp:comment><wp:comment_id>3</oops>\n" + _comment(4))
    path = tmp_path / "t.xml"
    path.write_text(text)
    seen = []
    with pytest.raises(WxrError) as info:
        for event in read_wxr(path, keyer=KEYER):
            seen.append(event["comment_id"])
    assert seen == [1, 2]
    assert str(info.value).startswith(f"{path}:9: malformed XML: mismatched tag")
    result = cli("events", str(path))
    assert result.returncode == 1 and len(result.stdout.splitlines()) == 2


def test_reader_memory_stays_flat_on_a_large_export(tmp_path):
    path = tmp_path / "big.xml"
    body = "\n".join(
        _comment(i, comment_author_email=f"user{i}@big.example") for i in range(1, 20001)
    )
    path.write_text(_wxr(body))
    assert path.stat().st_size > 4_000_000
    tracemalloc.start()
    count = sum(1 for _ in read_wxr(path, keyer=KEYER))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 20000
    assert peak < 2_000_000, peak  # a DOM of this file would take far more than its 4 MB


def test_jsonl_round_trip_and_errors(tmp_path):
    events = list(read_wxr(SAMPLE, keyer=KEYER))
    path = tmp_path / "events.jsonl"
    lines = [orjson.dumps(e) for e in events]
    path.write_bytes(b"\n".join(lines[:3]) + b"\n\n" + b"\n".join(lines[3:]) + b"\n")
    assert list(read_events(path)) == events
    path.write_bytes(lines[0] + b"\n" + b'{"type": "comment"}\n' + lines[1] + b"\n")
    result = cli("events", str(path))
    assert result.returncode == 1 and len(result.stdout.splitlines()) == 1
    assert f"{path}:2: invalid event: schema_version".encode() in result.stderr
