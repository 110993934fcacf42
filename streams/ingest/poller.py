"""Polling the WordPress REST API for comments: new ones, status changes and deletions.

WordPress keeps no modification time for comments, and `after=` only finds new ones, so each cycle
lists (status=any, context=edit, orderby=date_gmt asc, paged by X-WP-TotalPages, one listing per
comment type) every comment written after min(position, now - lookback) and, every
full_scan_seconds, all of them. Each comment is compared with the fingerprint kept in the state file:
- unknown comment                  -> creation event (its current status at date_gmt);
- known, another status            -> moderation event (new status, at the time it was noticed);
- known, inside the listed range, not listed, GET /comments/<id> says 404 -> moderation 'delete'.
Other edits (content, author fields) change no aggregate and no event can express them: the
fingerprint is updated, nothing is published.

Durability: the events of a cycle are written to the state file as `pending` (atomically: temp file,
fsync, rename) before they are published, and cleared once the broker confirmed them. A crash in
between republishes the same events (same event_ids: duplicates change nothing), so nothing is lost
and nothing counts twice."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from schemas.errors import BlogpulseError
from schemas.identity import AuthorKeyer
from schemas.times import parse_utc
from schemas.wire import InvalidEvent
from streams.ingest.delivery import AsyncPublisher
from streams.ingest.wordpress import (
    CommentRow,
    creation_event,
    moderation_event,
    now_time,
    row_from_rest,
    wp_time,
)
from streams.publisher import BrokerUnavailable

log = logging.getLogger("blogpulse.poll")
STATE_VERSION = 1
DEFAULT_TYPES = ("comment", "pingback", "trackback")
# `after=` is compared with the comment's local date by some WordPress versions: list a day more.
AFTER_OVERLAP = timedelta(days=1)


class PollError(BlogpulseError, RuntimeError):
    """A cycle could not complete (WordPress unreachable, refused credentials, bad answer)."""


@dataclass
class PollerConfig:
    base_url: str
    site: str
    state_file: Path
    user: str | None = None
    password: str | None = (
        None  # an application password (Users -> Profile -> Application Passwords)
    )
    interval: float = 60.0
    per_page: int = 100
    lookback_days: float = 14.0
    full_scan_seconds: float = 86400.0  # 0: every cycle
    types: tuple[str, ...] = DEFAULT_TYPES
    timeout: float = 30.0

    @property
    def api(self) -> str:
        return self.base_url.rstrip("/") + "/wp-json/wp/v2"


@dataclass
class PollState:
    """What the poller remembers between runs (JSON file)."""

    base_url: str = ""
    site: str = ""
    position: str | None = None  # greatest date_gmt seen (contract time)
    last_full_scan: float | None = None  # epoch seconds
    comments: dict[str, list] = field(default_factory=dict)  # id -> [post_id, *fingerprint]
    posts: dict[str, list] = field(default_factory=dict)  # post id -> [author id, date_gmt or None]
    pending: list[dict[str, Any]] = field(default_factory=list)  # events not yet confirmed

    @classmethod
    def load(cls, path: Path) -> PollState:
        if not path.exists():
            return cls()
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise PollError(
                f"cannot read the state file {path} ({exc}); move it away to start over"
            ) from exc
        if doc.get("version") != STATE_VERSION:
            raise PollError(
                f"state file {path} has version {doc.get('version')!r}, expected {STATE_VERSION}"
            )
        return cls(
            base_url=doc.get("base_url", ""),
            site=doc.get("site", ""),
            position=doc.get("position"),
            last_full_scan=doc.get("last_full_scan"),
            comments=doc.get("comments", {}),
            posts=doc.get("posts", {}),
            pending=doc.get("pending", []),
        )

    def save(self, path: Path) -> None:
        """Atomic replace: a reader (or a crash) sees the old file or the new one, never half."""
        doc = {
            "version": STATE_VERSION,
            "base_url": self.base_url,
            "site": self.site,
            "position": self.position,
            "last_full_scan": self.last_full_scan,
            "comments": self.comments,
            "posts": self.posts,
            "pending": self.pending,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(orjson.dumps(doc))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@dataclass
class CycleReport:
    listed: int = 0
    created: int = 0
    changed: int = 0
    deleted: int = 0
    skipped: int = 0  # comments WordPress returned that are not valid blog comments
    full_scan: bool = False

    def __str__(self) -> str:
        scope = "full scan" if self.full_scan else "recent"
        return (
            f"{scope}: {self.listed} listed, {self.created} new, {self.changed} changed, "
            f"{self.deleted} deleted, {self.skipped} skipped"
        )


class WordPressClient:
    """The few REST calls the poller makes."""

    def __init__(self, config: PollerConfig, session: aiohttp.ClientSession) -> None:
        self.config, self.session = config, session
        # Application passwords are HTTP basic auth.
        self.headers = (
            {"Authorization": aiohttp.encode_basic_auth(config.user, config.password or "")}
            if config.user
            else {}
        )

    async def _get(self, path: str, params: dict[str, Any]) -> tuple[int, Any, Any]:
        url = self.config.api + path
        try:
            async with self.session.get(url, params=params, headers=self.headers) as resp:
                body = await resp.read()
                if resp.status in (401, 403):
                    raise PollError(
                        f"WordPress refused the credentials for {url} (HTTP {resp.status}): "
                        "check the user and application password"
                    )
                data = None
                if body:
                    try:
                        data = orjson.loads(body)
                    except orjson.JSONDecodeError:
                        raise PollError(
                            f"{url} answered HTTP {resp.status} with a body that is not "
                            "JSON (is this the WordPress REST API?)"
                        ) from None
                return resp.status, resp.headers, data
        except aiohttp.ClientError as exc:
            raise PollError(f"cannot reach {url} ({exc})") from None
        except TimeoutError:
            raise PollError(f"{url} did not answer within {self.config.timeout:.0f} s") from None

    async def list_comments(self, type_: str, after: str | None) -> list[dict[str, Any]]:
        """Every page of one listing, oldest first."""
        out: list[dict[str, Any]] = []
        page, total = 1, 1
        while page <= total:
            params = {
                "context": "edit",
                "status": "any",
                "type": type_,
                "orderby": "date_gmt",
                "order": "asc",
                "per_page": self.config.per_page,
                "page": page,
            }
            if after:
                params["after"] = after
            status, headers, data = await self._get("/comments", params)
            if (
                status == 400
                and isinstance(data, dict)
                and data.get("code") == "rest_comment_invalid_page_number"
            ):
                break  # the listing shrank while we paged (deletions): what is missing is checked below
            if status != 200 or not isinstance(data, list):
                raise PollError(f"listing comments answered HTTP {status}: {_code(data)}")
            out.extend(data)
            try:
                total = int(headers.get("X-WP-TotalPages", "1"))
            except ValueError:
                raise PollError("X-WP-TotalPages is not a number") from None
            page += 1
        return out

    async def get_comment(self, comment_id: int) -> dict[str, Any] | None:
        """The comment, or None when WordPress says it does not exist (deleted)."""
        status, _, data = await self._get(f"/comments/{comment_id}", {"context": "edit"})
        if status == 404:
            return None
        if status != 200 or not isinstance(data, dict):
            raise PollError(f"reading comment {comment_id} answered HTTP {status}: {_code(data)}")
        return data

    async def post_info(self, post_id: int) -> tuple[int | None, str | None]:
        """(author user id, publish time) of a post or page; (None, None) when not readable."""
        for kind in ("posts", "pages"):
            status, _, data = await self._get(
                f"/{kind}/{post_id}", {"context": "edit", "_fields": "author,date_gmt"}
            )
            if status == 200 and isinstance(data, dict):
                author = data.get("author") if isinstance(data.get("author"), int) else None
                try:
                    published = (
                        wp_time(data.get("date_gmt"), "date_gmt") if data.get("date_gmt") else None
                    )
                except InvalidEvent:
                    published = None  # drafts have no GMT date
                return author, published
        return None, None


def _code(data: Any) -> str:
    if isinstance(data, dict):
        return f"{data.get('code', '')} {str(data.get('message', ''))[:200]}".strip()
    return "unexpected answer"


def _after_param(position: str | None, lookback_days: float, now: datetime) -> str | None:
    """Start of the listed range: the earlier of (position, now - lookback), minus the overlap."""
    start = now - timedelta(days=lookback_days)
    if position:
        start = min(start, parse_utc(position))
    return (start - AFTER_OVERLAP).strftime("%Y-%m-%dT%H:%M:%S")


class Poller:
    def __init__(self, config: PollerConfig, publisher: AsyncPublisher, keyer: AuthorKeyer) -> None:
        self.config, self.publisher, self.keyer = config, publisher, keyer
        self.state = PollState.load(config.state_file)
        if self.state.base_url and self.state.base_url != config.base_url:
            raise PollError(
                f"state file {config.state_file} belongs to {self.state.base_url}, not "
                f"{config.base_url}: use one state file per blog"
            )
        self.state.base_url, self.state.site = config.base_url, config.site

    async def _flush_pending(self) -> None:
        if self.state.pending:
            await self.publisher.publish(self.state.pending)
            self.state.pending = []
            self.state.save(self.config.state_file)

    async def _post(self, client: WordPressClient, post_id: int) -> tuple[int | None, str | None]:
        key = str(post_id)
        if key not in self.state.posts:
            self.state.posts[key] = list(await client.post_info(post_id))
        author, published = self.state.posts[key]
        return author, published

    async def _compare(
        self,
        client: WordPressClient,
        row: CommentRow,
        events: list,
        report: CycleReport,
        comments: dict[str, list],
    ) -> None:
        key = str(row.comment_id)
        known = comments.get(key)
        fingerprint = [row.post_id, *row.fingerprint()]
        if known is None:
            author, published = await self._post(client, row.post_id)
            events.append(creation_event(row, self.config.site, author, published))
            report.created += 1
        elif known[1] != row.status:
            events.append(moderation_event(row, self.config.site, row.status, now_time()))
            report.changed += 1
        elif known != fingerprint:
            log.info(
                "comment %s edited (author/date/parent): the contract keeps its first creation "
                "fields, nothing to publish",
                row.comment_id,
            )
        comments[key] = fingerprint

    async def cycle(self, session: aiohttp.ClientSession) -> CycleReport:
        """One poll: list, compare, publish (confirmed), remember."""
        await self._flush_pending()  # events a previous run wrote down but may not have delivered
        client = WordPressClient(self.config, session)
        now = datetime.now(UTC)
        full = (
            self.state.last_full_scan is None
            or self.config.full_scan_seconds <= 0
            or time.time() - self.state.last_full_scan >= self.config.full_scan_seconds
        )
        after = None if full else _after_param(self.state.position, self.config.lookback_days, now)
        report = CycleReport(full_scan=full)
        comments = dict(self.state.comments)  # replaced only once this cycle's events are delivered
        events: list[dict[str, Any]] = []
        seen: set[str] = set()
        position = self.state.position
        for type_ in self.config.types:
            for obj in await client.list_comments(type_, after):
                report.listed += 1
                try:
                    row = row_from_rest(obj, self.keyer)
                except InvalidEvent as exc:
                    report.skipped += 1
                    log.warning(
                        "skipping comment %r: %s",
                        obj.get("id") if isinstance(obj, dict) else None,
                        exc,
                    )
                    continue
                if row.kind is None or str(row.comment_id) in seen:
                    continue
                seen.add(str(row.comment_id))
                await self._compare(client, row, events, report, comments)
                position = max(position or row.created, row.created)
        # Known comments inside the listed range that were not listed: deleted, or moved out of view.
        floor = None if after is None else after + "Z"
        for key, known in list(comments.items()):
            if key in seen or (floor is not None and known[4] < floor):
                continue
            found = await client.get_comment(int(key))
            if found is None:
                row = CommentRow(
                    int(key), known[0], known[2], known[3], known[1], known[4], 0, "", None
                )
                events.append(moderation_event(row, self.config.site, "delete", now_time()))
                del comments[key]
                report.deleted += 1
            else:
                try:
                    await self._compare(
                        client, row_from_rest(found, self.keyer), events, report, comments
                    )
                except InvalidEvent as exc:
                    log.warning("skipping comment %s: %s", key, exc)
        # Write-ahead: the new position and the events go down together; publishing clears them.
        self.state.comments, self.state.position, self.state.pending = comments, position, events
        if full:
            self.state.last_full_scan = time.time()
        self.state.save(self.config.state_file)
        await self._flush_pending()
        return report

    async def run(self, once: bool = False, stop: asyncio.Event | None = None) -> int:
        stop = stop or asyncio.Event()
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        async with aiohttp.ClientSession(
            timeout=timeout, headers={"User-Agent": "blogpulse-poller"}
        ) as session:
            while True:
                try:
                    report = await self.cycle(session)
                    log.info("poll %s: %s", self.config.base_url, report)
                    print(f"blogpulse poll: {report}", flush=True)
                    failed = False
                except (PollError, BrokerUnavailable) as exc:
                    # nothing advanced: undelivered events stay pending in the state file
                    log.error("poll %s failed: %s", self.config.base_url, exc)
                    print(f"blogpulse poll: {exc}", flush=True)
                    failed = True
                if once:
                    return 1 if failed else 0
                try:
                    await asyncio.wait_for(stop.wait(), self.config.interval)
                    return 0
                except TimeoutError:
                    pass
