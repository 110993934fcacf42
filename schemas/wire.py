"""The wire format of input events (docs/architecture.md): fast decode with validation, and encode.

decode_event runs once per consumed message, so it is plain dict checks on orjson output; it raises
InvalidEvent (field, reason) for any bad input and never anything else."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas.errors import BlogpulseError
from schemas.identity import event_id as derive_event_id
from schemas.json_bytes import dumps
from schemas.times import cached_epoch_of, epoch_of, format_utc  # noqa: F401  (re-exported)

SCHEMA_VERSION = 1
MAX_EVENT_BYTES = 64 * 1024
TYPES = ("comment", "reply", "pingback", "moderation")
STATUSES = ("approved", "hold", "spam", "trash", "delete")
KINDS = {
    "comment": ("comment",),
    "reply": ("comment",),
    "pingback": ("pingback", "trackback"),
    "moderation": ("comment", "pingback", "trackback"),
}
FIELDS = (
    "schema_version",
    "event_id",
    "type",
    "site",
    "post_id",
    "comment_id",
    "parent_id",
    "post_author",
    "author_key",
    "kind",
    "source_url",
    "event_time",
    "post_time",
    "status",
)
_FIELD_SET = frozenset(FIELDS)
EARLIEST = datetime(1995, 1, 1, tzinfo=UTC)  # before any blog engine existed
FUTURE_SLACK = timedelta(days=1)  # clock skew allowed for events "from the future"
MAX_ID = 2**63 - 1

_HEX32 = re.compile(r"[0-9a-f]{32}\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_TIME = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z\Z", re.ASCII
)  # ASCII: no other digits


class InvalidEvent(BlogpulseError, ValueError):
    """A rejected event: `field` names what is wrong (or json/utf8/schema), `reason` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


_EARLIEST_TS = EARLIEST.timestamp()
_SLACK_S = FUTURE_SLACK.total_seconds()


def check_time(field: str, value: Any, now_ts: float, cached: bool = False) -> float:
    """ISO 8601 UTC with a Z suffix ('2012-03-01T10:00:00Z'), within [1995, now + 1 day]; returns
    its epoch seconds (`cached`: for values that repeat, like post_time)."""
    if not isinstance(value, str) or not _TIME.match(value):
        raise InvalidEvent(
            field, f"must be an ISO 8601 UTC time like 2012-03-01T10:00:00Z, got {value!r:.60}"
        )
    try:
        ts = cached_epoch_of(value) if cached else epoch_of(value)
    except ValueError as exc:
        raise InvalidEvent(field, f"not a valid date/time ({exc})") from None
    if ts < _EARLIEST_TS:
        raise InvalidEvent(field, f"{value} is before 1995")
    if ts > now_ts + _SLACK_S:
        raise InvalidEvent(field, f"{value} is in the future")
    return ts


def parse_time(field: str, value: Any, now: datetime | None = None) -> datetime:
    """check_time() as an aware UTC datetime."""
    now_ts = now.timestamp() if now is not None else time.time()
    return datetime.fromtimestamp(check_time(field, value, now_ts), tz=UTC)


def _int(obj: dict, field: str, minimum: int) -> int:
    value = obj.get(field)
    if type(value) is not int:  # bool is an int subclass: rejected on purpose
        raise InvalidEvent(field, f"must be an integer, got {type(value).__name__}")
    if not minimum <= value <= MAX_ID:
        raise InvalidEvent(field, f"must be >= {minimum}, got {value}")
    return value


def _str(obj: dict, field: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str):
        raise InvalidEvent(field, f"must be a string, got {type(value).__name__}")
    return value


def validate(obj: Any, now: datetime | None = None) -> dict[str, Any]:
    """Check a decoded JSON value against the contract; returns the event as a dict of wire values."""
    if not isinstance(obj, dict):
        raise InvalidEvent("schema", f"an event is a JSON object, got {type(obj).__name__}")
    if not _FIELD_SET.issuperset(obj):
        unknown = set(obj) - _FIELD_SET
        raise InvalidEvent("schema", f"unknown fields {sorted(unknown)[:5]}")
    if obj.get("schema_version") != SCHEMA_VERSION or type(obj.get("schema_version")) is not int:
        raise InvalidEvent(
            "schema_version", f"must be {SCHEMA_VERSION}, got {obj.get('schema_version')!r:.40}"
        )
    type_ = obj.get("type")
    if type_ not in TYPES:
        raise InvalidEvent("type", f"must be one of {', '.join(TYPES)}, got {type_!r:.40}")
    site = _str(obj, "site")
    if not site or "/" in site or len(site) > 200 or not site.isprintable():
        raise InvalidEvent("site", "must be 1-200 printable characters without '/'")
    post_id = _int(obj, "post_id", 1)
    comment_id = _int(obj, "comment_id", 1)
    parent_id = obj.get("parent_id", 0)
    if type(parent_id) is not int or not 0 <= parent_id <= MAX_ID:
        raise InvalidEvent("parent_id", f"must be an integer >= 0, got {parent_id!r:.40}")
    if type_ == "reply":
        if parent_id == 0:
            raise InvalidEvent("parent_id", "a reply needs its parent's comment_id")
        if parent_id == comment_id:
            raise InvalidEvent("parent_id", "a reply cannot be its own parent")
    elif type_ == "comment" and parent_id != 0:
        raise InvalidEvent("parent_id", "a top-level comment has parent_id 0 (use type 'reply')")
    post_author = obj.get("post_author", False)
    if type(post_author) is not bool:
        raise InvalidEvent("post_author", "must be true or false")
    author_key = obj.get("author_key", "")
    if not isinstance(author_key, str) or not (
        _HEX64.match(author_key) or (author_key == "" and type_ == "moderation")
    ):
        raise InvalidEvent("author_key", "must be 64 lowercase hex characters (HMAC-SHA256)")
    kind = obj.get("kind", "comment" if type_ != "pingback" else None)
    if kind not in KINDS[type_]:
        raise InvalidEvent(
            "kind", f"for type {type_} must be one of {', '.join(KINDS[type_])}, got {kind!r:.40}"
        )
    source_url = obj.get("source_url")
    if source_url is not None and (not isinstance(source_url, str) or len(source_url) > 2000):
        raise InvalidEvent("source_url", "must be null or a string of at most 2000 characters")
    status = obj.get("status")
    if status not in STATUSES:
        raise InvalidEvent("status", f"must be one of {', '.join(STATUSES)}, got {status!r:.40}")
    now_ts = now.timestamp() if now is not None else time.time()
    check_time("event_time", obj.get("event_time"), now_ts)
    post_time = obj.get("post_time")
    if post_time is not None:
        check_time("post_time", post_time, now_ts, cached=True)
    eid = _str(obj, "event_id")
    if not _HEX32.match(eid):
        raise InvalidEvent("event_id", "must be 32 lowercase hex characters")
    expected = derive_event_id(site, post_id, comment_id, type_, status, obj["event_time"])
    if eid != expected:
        raise InvalidEvent(
            "event_id", "does not match sha256(site/post_id/comment_id/type/status/event_time)"
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": eid,
        "type": type_,
        "site": site,
        "post_id": post_id,
        "comment_id": comment_id,
        "parent_id": parent_id,
        "post_author": post_author,
        "author_key": author_key,
        "kind": kind,
        "source_url": source_url,
        "event_time": obj["event_time"],
        "post_time": post_time,
        "status": status,
    }


def decode_event(raw: bytes, now: datetime | None = None) -> dict[str, Any]:
    """Bytes of one Kafka message -> validated event dict (wire values). Raises InvalidEvent, never
    anything else."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise InvalidEvent(
            "schema", "message value is empty" if raw is None else "message value must be bytes"
        )
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent("schema", f"event is {len(raw)} bytes, more than {MAX_EVENT_BYTES}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent("utf8", "message is not valid UTF-8") from None
        raise InvalidEvent("json", f"malformed JSON ({exc})") from None
    try:
        return validate(obj, now)
    except InvalidEvent:
        raise
    except Exception as exc:  # a validator bug must not stop the worker: report it as schema
        raise InvalidEvent("schema", f"could not validate event ({type(exc).__name__})") from None


def make_event(**fields: Any) -> dict[str, Any]:
    """Build a wire event dict with defaults and the derived event_id (readers and tests use it)."""
    type_ = fields["type"]
    event = {
        "schema_version": SCHEMA_VERSION,
        "type": type_,
        "site": fields["site"],
        "post_id": fields["post_id"],
        "comment_id": fields["comment_id"],
        "parent_id": fields.get("parent_id", 0),
        "post_author": fields.get("post_author", False),
        "author_key": fields.get("author_key", ""),
        "kind": fields.get("kind") or ("pingback" if type_ == "pingback" else "comment"),
        "source_url": fields.get("source_url"),
        "event_time": fields["event_time"],
        "post_time": fields.get("post_time"),
        "status": fields.get("status", "approved"),
    }
    event["event_id"] = derive_event_id(
        event["site"],
        event["post_id"],
        event["comment_id"],
        type_,
        event["status"],
        event["event_time"],
    )
    return event


def encode_event(event: Any) -> bytes:
    """Event dict (or schemas.events Record) -> compact wire JSON (only contract fields, in
    contract order; no faust metadata)."""
    if not isinstance(event, dict):
        event = event.to_wire()
    return dumps(
        {k: event.get(k) for k in FIELDS if k in event or k in ("source_url", "post_time")}
    )
