"""Streaming reader of WordPress exports (WXR 1.0, 1.1, 1.2) -> wire events (schemas.wire dicts).

Constant memory: the file is fed to an incremental parser line by line (so errors know their line),
and every element is dropped from its parent as soon as it has been read; comments are turned into
events as each <wp:comment> closes, using the post fields read before it (WordPress writes post_id,
dates and dc:creator before an item's comments).

Mapping (docs/architecture.md, input events):
- only elements in a WXR namespace count: http:// or https://wordpress.org/export/1.N/ (1.0 to 1.2
  exist; WordPress.com writes https://). The importer takes whatever the `wp:` prefix is bound to;
  we take these URIs only, so a `wp:` prefix bound to another namespace (namespace-edge-cases.xml)
  is someone else's element and is ignored;
- comment type, status and the event itself: schemas/wordpress.py, the mapping the webhook and
  the REST poller use too ('note' and other custom types are skipped; an empty or absent
  comment_approved is hold: WordPress shows only comments whose comment_approved is 1);
- event_time = comment_date_gmt; when that is missing or 0000-00-00 00:00:00, comment_date taken as
  UTC (an export does not say the blog's timezone; the error is at most the UTC offset). post_time
  the same from wp:post_date_gmt / wp:post_date. A comment with neither date is counted, as the
  importer imports it, at its post's time, else at the export's channel <pubDate> (the importer
  would stamp it with the import time, which would differ on every run); a warning says which time
  it got. Only with none of these dates is it skipped;
- post_author: the comment's comment_user_id equals the post author's user id (dc:creator login ->
  wp:author_id from the wp:author list), else its e-mail equals that author's wp:author_email;
- author_key: schemas.identity.AuthorKeyer of e-mail / name / URL. E-mails, names, URLs (except a
  ping's source URL) and IPs never leave this module.
- site: the `site` argument, else the host (and path) of wp:base_blog_url, wp:base_site_url or the
  channel link, without scheme, '/' -> '_'.

Like the WordPress importer, a file without a valid wp:wxr_version (missing, or not N.N) is not a
WordPress export: WxrError. Malformed XML is a WxrError at the line the parser stopped, after every
event that closed before it was yielded. Comments that cannot become a valid event (no date at all,
bad id, unknown status) are skipped. Every warning (a skipped comment, a comment given a stand-in
time) goes to `on_skip` (default: a logging warning), without personal data.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

from schemas.errors import BlogpulseError
from schemas.identity import AuthorKeyer, normalise_email
from schemas.times import rfc822_time, wordpress_time
from schemas.wire import InvalidEvent, parse_time
from schemas.wordpress import comment_kind, comment_status, creation_event

log = logging.getLogger(__name__)

_WXR_NS = re.compile(r"https?://wordpress\.org/export/1\.\d+/\Z")
_VERSION = re.compile(r"\d+\.\d+\Z")
_DC_CREATOR = "{http://purl.org/dc/elements/1.1/}creator"
_CHUNK = 1 << 16  # longest piece of one line fed at once (a minified file has one huge line)


class ReadError(BlogpulseError, ValueError):
    """An input file that cannot be read to the end: names the file, line and problem."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


class WxrError(ReadError):
    """A broken WordPress export."""


def _local(tag: str) -> str | None:
    """'{wxr-ns}name' -> 'name' for WXR elements; None for any other namespace."""
    if tag[:1] != "{":
        return None
    ns, _, name = tag[1:].partition("}")
    return name if _WXR_NS.match(ns) else None


def site_from_url(url: str) -> str:
    """'https://Example.org/blog/' -> 'example.org_blog' (a site name has no '/')."""
    url = url.strip()
    url = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", url).strip("/")
    host, _, path = url.partition("/")
    return (host.lower() + ("/" + path if path else "")).replace("/", "_")


def _wxr_time(value: str | None) -> str | None:
    """'2012-03-01 10:00:00' -> '2012-03-01T10:00:00Z'; None for missing or zero dates. A date that
    is no date stays as it is, so that the event's validation names it."""
    try:
        return wordpress_time(value or "")
    except ValueError:
        return value.strip() if value is not None else None


def _text(elem: ET.Element | None) -> str:
    return (elem.text or "") if elem is not None else ""


class _Channel:
    """What the reader knows so far: channel-level fields and the current item."""

    def __init__(self) -> None:
        self.version: str | None = None
        self.site_urls: dict[str, str] = {}
        self.pub_date: str | None = None  # the channel's <pubDate>: when the export was written
        self.authors: dict[str, tuple[int, str]] = {}  # login -> (user id, normalised e-mail)
        self.item: dict[str, str] = {}


def read_wxr(
    path: str | Path,
    site: str | None = None,
    *,
    keyer: AuthorKeyer,
    on_skip: Callable[[str], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the wire events of a WXR file in file order. Raises WxrError for a broken file (after
    yielding every event before the break), OSError when it cannot be opened."""
    path = Path(path)
    skip = on_skip or (lambda msg: log.warning("%s", msg))
    state = _Channel()
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    stack: list[ET.Element] = []
    line = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.readline(_CHUNK)
            if not chunk:
                break
            if chunk.endswith(b"\n"):
                line += 1
            try:
                parser.feed(chunk)
                # start/end events carry elements (only start-ns/end-ns would carry tuples)
                ready = cast(list[tuple[str, ET.Element]], list(parser.read_events()))
            except ET.ParseError as exc:
                raise WxrError(
                    path, exc.position[0] or line, f"malformed XML: {_parse_problem(exc)}"
                ) from None
            except LookupError as exc:  # <?xml encoding="..."?> names a codec Python lacks
                raise WxrError(path, line, f"unsupported XML encoding ({exc})") from None
            for event, elem in ready:
                if event == "start":
                    stack.append(elem)
                    if elem.tag == "item" and len(stack) == 3:
                        _check_version(state, path, line)
                        state.item = {}
                    continue
                stack.pop()
                out = _on_end(elem, stack, state, path, line, site, keyer, skip)
                if out is not None:
                    yield out
                # children of rss, channel and item have been read: drop them (constant memory)
                if stack and (len(stack) <= 2 or (len(stack) == 3 and stack[-1].tag == "item")):
                    stack[-1].remove(elem)
        try:
            parser.close()
        except LookupError as exc:
            raise WxrError(path, line, f"unsupported XML encoding ({exc})") from None
        except ET.ParseError as exc:
            raise WxrError(
                path, exc.position[0] or line, f"malformed XML: {_parse_problem(exc)}"
            ) from None
    _check_version(state, path, line)


def _parse_problem(exc: ET.ParseError) -> str:
    return re.sub(r": line \d+, column \d+$", "", str(exc))


def _check_version(state: _Channel, path: Path, line: int) -> None:
    if state.version is None:
        raise WxrError(path, line, "missing <wp:wxr_version>: not a WordPress export (WXR) file")


def _on_end(
    elem: ET.Element,
    stack: list[ET.Element],
    state: _Channel,
    path: Path,
    line: int,
    site: str | None,
    keyer: AuthorKeyer,
    skip: Callable[[str], None],
) -> dict | None:
    depth = len(stack)  # of the parent: rss=0 -> channel=1 -> item/author=2 -> their children=3
    name = _local(elem.tag)
    if depth == 2:  # a child of <channel>
        if name == "wxr_version":
            version = _text(elem).strip()
            if not _VERSION.match(version):
                raise WxrError(
                    path, line, f"invalid <wp:wxr_version> {version[:20]!r}: expected N.N"
                )
            state.version = version
        elif name in ("base_blog_url", "base_site_url"):
            state.site_urls[name] = _text(elem)
        elif elem.tag == "link":
            state.site_urls["link"] = _text(elem)
        elif elem.tag == "pubDate":
            state.pub_date = rfc822_time(_text(elem))
        elif name == "author":
            _read_author(elem, state)
    elif depth == 3 and stack[-1].tag == "item":
        if name == "comment":
            return _comment_event(elem, state, path, line, site, keyer, skip)
        if name in ("post_id", "post_date_gmt", "post_date"):
            state.item[name] = _text(elem).strip()
        elif elem.tag == _DC_CREATOR:
            state.item["creator"] = _text(elem).strip()
    return None


def _read_author(elem: ET.Element, state: _Channel) -> None:
    fields = {_local(c.tag): _text(c).strip() for c in elem}
    login = fields.get("author_login")
    if login:
        try:
            user_id = int(fields.get("author_id") or 0)
        except ValueError:
            user_id = 0
        state.authors[login] = (user_id, normalise_email(fields.get("author_email")))


def _site(state: _Channel, site: str | None, path: Path, line: int) -> str:
    if site:
        return site
    for key in ("base_blog_url", "base_site_url", "link"):
        if state.site_urls.get(key, "").strip():
            found = site_from_url(state.site_urls[key])
            if found:
                return found
    raise WxrError(
        path,
        line,
        "no site name: the export has no wp:base_blog_url, wp:base_site_url "
        "or channel link; give one with --site",
    )


def _comment_event(
    elem: ET.Element,
    state: _Channel,
    path: Path,
    line: int,
    site: str | None,
    keyer: AuthorKeyer,
    skip: Callable[[str], None],
) -> dict | None:
    c = {}
    for child in elem:
        key = _local(child.tag)
        if key and key not in c:
            c[key] = _text(child)
    kind = comment_kind(c.get("comment_type", ""))
    if kind is None:
        return None  # 'note' and custom types are not reader comments
    cid = c.get("comment_id", "").strip()
    where = (
        f"{path}:{line}: comment {cid[:20] or '?'} of post {state.item.get('post_id', '?')[:20]}"
    )
    status = comment_status(c.get("comment_approved", ""))
    if status is None:
        skip(
            f"{where} skipped: comment_approved {c['comment_approved'][:20]!r} is not 1, 0, spam, "
            "trash or post-trashed"
        )
        return None
    post_time = _wxr_time(state.item.get("post_date_gmt")) or _wxr_time(state.item.get("post_date"))
    event_time = _wxr_time(c.get("comment_date_gmt")) or _wxr_time(c.get("comment_date"))
    if event_time is None:
        event_time = _undated_comment_time(post_time, state.pub_date, where, skip)
        if event_time is None:
            return None
    try:
        post_id = int(state.item.get("post_id", ""))
        comment_id = int(cid)
        parent_id = int(c.get("comment_parent", "").strip() or 0) if kind == "comment" else 0
        user_id = int(c.get("comment_user_id", "").strip() or 0)
    except ValueError:
        skip(
            f"{where} skipped: post_id, comment_id, comment_parent or comment_user_id is not a number"
        )
        return None
    email = c.get("comment_author_email")
    author_id, author_email = state.authors.get(state.item.get("creator", ""), (0, ""))
    post_author = bool(author_id and user_id == author_id) or bool(
        author_email and normalise_email(email) == author_email
    )
    url = c.get("comment_author_url", "").strip()
    fields: dict[str, Any] = dict(
        site=_site(state, site, path, line),
        post_id=post_id,
        comment_id=comment_id,
        parent_id=parent_id,
        kind=kind,
        status=status,
        created=event_time,
        post_author=post_author,
        author_key=keyer.key(email, c.get("comment_author"), url),
        author_url=url,
        post_time=post_time,
    )
    try:
        return creation_event(**fields)
    except InvalidEvent as exc:
        if post_time and exc.field == "post_time":  # a bad post date should not cost the comment
            fields["post_time"] = None
            return _created_or_skip(fields, where, skip)
        skip(f"{where} skipped: {exc}")
        return None


def _undated_comment_time(
    post_time: str | None, pub_date: str | None, where: str, skip: Callable[[str], None]
) -> str | None:
    """A stand-in time for a comment without comment_date_gmt and comment_date (the importer imports
    it): its post's time, else the export's pubDate. None (and a skip) when neither is known."""
    post_time, pub_date = _valid_time(post_time), _valid_time(pub_date)
    if post_time:
        skip(
            f"{where} has no comment_date_gmt or comment_date: counted at its post's date {post_time}"
        )
        return post_time
    if pub_date:
        skip(
            f"{where} has no comment_date_gmt or comment_date, nor its post a date: counted at the "
            f"export's pubDate {pub_date}"
        )
        return pub_date
    skip(
        f"{where} skipped: no comment_date_gmt or comment_date, and neither its post nor the export "
        "has a date to count it at"
    )
    return None


def _valid_time(value: str | None) -> str | None:
    try:
        return value if value and parse_time("time", value) else None
    except InvalidEvent:
        return None


def _created_or_skip(fields: dict, where: str, skip: Callable[[str], None]) -> dict | None:
    try:
        return creation_event(**fields)
    except InvalidEvent as exc:
        skip(f"{where} skipped: {exc}")
        return None
