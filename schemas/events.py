"""Versioned input event models (faust Records) for the contract in docs/architecture.md.

The stream worker's hot path works on the plain dicts of schemas.wire (cheaper than building a
Record per message); these Records are the typed view for code that wants one and the source of
the field list the JSON Schema files are generated from (schemas.jsonschema_gen). Conversion both
ways goes through the wire dict, so a Record and its JSON always agree:

    record = event_from_wire(decode_event(raw))      # bytes -> Record
    raw = encode_event(record)                        # Record -> bytes (encode_event accepts both)
"""

from __future__ import annotations

import typing
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar, cast

import faust

from schemas.identity import event_id as derive_event_id
from schemas.times import format_utc, parse_utc
from schemas.wire import SCHEMA_VERSION, make_event, validate

__all__ = [
    "BlogEvent",
    "Comment",
    "Reply",
    "Pingback",
    "ModerationChange",
    "SCHEMA_VERSION",
    "event_from_wire",
    "record_fields",
    "RECORD_TYPES",
]


def _utc(value: Any) -> datetime | None:
    """Wire time string or datetime -> aware UTC datetime (naive datetimes are taken as UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return parse_utc(value)


def record_fields(cls: type) -> dict[str, Any]:
    """A Record's fields and their types (its annotations without the ClassVars), by name."""
    return _record_fields(cls)


@cache
def _record_fields(cls: type) -> dict[str, Any]:
    return {
        name: hint
        for name, hint in typing.get_type_hints(cls).items()
        if typing.get_origin(hint) is not ClassVar
    }


class BlogEvent(
    faust.Record, abstract=True, serializer="json", include_metadata=False, coerce=False
):
    """Every wire field; `type` is fixed per subclass (EVENT_TYPE) and `kind` defaults per subclass.
    Fields the contract leaves empty for a type keep their defaults (0, False, "", None)."""

    EVENT_TYPE: ClassVar[str] = ""

    site: str
    post_id: int
    comment_id: int
    event_time: datetime  # aware, UTC
    status: str = "approved"  # approved | hold | spam | trash | delete
    parent_id: int = 0
    post_author: bool = False
    author_key: str = ""  # 64 hex HMAC-SHA256 (schemas.identity.AuthorKeyer); "" for moderation
    source_url: str | None = None  # pings only
    post_time: datetime | None = None  # aware, UTC
    event_id: str = ""  # derived from the other fields when left empty (__post_init__)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        self.event_time = cast(datetime, _utc(self.event_time))  # a required field
        self.post_time = _utc(self.post_time)
        if not self.event_id:
            self.event_id = derive_event_id(
                self.site,
                self.post_id,
                self.comment_id,
                self.EVENT_TYPE,
                self.status,
                format_utc(self.event_time),
            )

    def to_wire(self) -> dict[str, Any]:
        """The validated wire dict (raises schemas.wire.InvalidEvent when a field is wrong)."""
        fields = {k: getattr(self, k) for k in record_fields(type(self))}
        fields["type"] = self.EVENT_TYPE
        fields["event_time"] = format_utc(self.event_time)
        if fields["post_time"] is not None:
            fields["post_time"] = format_utc(fields["post_time"])
        event = make_event(**fields)
        event["event_id"] = self.event_id  # as given: validate() checks it matches the fields
        return validate(event)


class Comment(BlogEvent):
    """A top-level comment (parent_id 0)."""

    EVENT_TYPE: ClassVar[str] = "comment"
    kind: str = "comment"


class Reply(BlogEvent):
    """A threaded reply: parent_id is the comment_id it answers."""

    EVENT_TYPE: ClassVar[str] = "reply"
    kind: str = "comment"


class Pingback(BlogEvent):
    """A pingback or trackback (kind), with the linking page in source_url."""

    EVENT_TYPE: ClassVar[str] = "pingback"
    kind: str = "pingback"


class ModerationChange(BlogEvent):
    """A new status for an existing entry (comment_id), as of event_time; kind is the entry's kind."""

    EVENT_TYPE: ClassVar[str] = "moderation"
    kind: str = "comment"


RECORD_TYPES: dict[str, type[BlogEvent]] = {
    cls.EVENT_TYPE: cls for cls in (Comment, Reply, Pingback, ModerationChange)
}


def event_from_wire(event: dict[str, Any]) -> BlogEvent:
    """A validated wire dict (schemas.wire.decode_event/validate) -> its Record."""
    cls = RECORD_TYPES[event["type"]]
    names = record_fields(cls)
    return cls(**{k: v for k, v in event.items() if k in names})
