"""Output aggregates (docs/architecture.md, output topics): the values of engagement.posts,
engagement.threads and engagement.windows, defined once.

The stream engine builds each aggregate's value as a plain dict typed by PostValue, ThreadValue or
WindowValue (streams/engine.py); the agent wraps it in the message fields of OUTPUTS (head, the
aggregate's identity, version, and `deleted` for threads and windows; streams/agents.py render()).
schemas.jsonschema_gen turns OUTPUTS into the shipped JSON Schema files
(schemas/jsonschema/engagement.*.json) that consumers validate against; unit tests check that
what the engine and render() emit has exactly these fields, and the integration tests validate
real output messages against the shipped files."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, TypedDict

from schemas.wire import SCHEMA_VERSION

UtcTime = str  # ISO 8601 UTC with Z, as on the wire ("2012-03-01T10:00:00Z"); typed str on purpose
Seconds = int | float  # whole seconds as an integer, else rounded to microseconds


class PostValue(TypedDict):
    """engagement.posts, key "<site>/<post_id>"."""

    comments: int
    replies: int
    pingbacks: int
    trackbacks: int
    threads: int
    participants: int
    post_author_replies: int
    max_depth: int
    first_activity: UtcTime | None
    last_activity: UtcTime | None
    time_to_first_comment_seconds: Seconds | None
    waiting_replies: int


class ThreadValue(TypedDict):
    """engagement.threads, key "<site>/<post_id>/<root_comment_id>"; deleted: the row goes away."""

    replies: int
    depth: int
    participants: int
    post_author_answered: bool
    time_to_first_reply_seconds: Seconds | None
    last_activity: UtcTime


class WindowValue(TypedDict):
    """engagement.windows, key "<site>/<post_id>/<hour|day>/<window_start>"; deleted: the row goes
    away."""

    comments: int
    replies: int
    pingbacks: int
    trackbacks: int


# Every output message starts with these, then the aggregate's identity, then its version.
HEAD: dict[str, Any] = {"schema_version": int, "site": str, "post_id": int}


@dataclass(frozen=True)
class Output:
    topic: str  # generation 1's topic name (generation N adds ".gN")
    ident: dict[str, Any]  # fields naming the aggregate within its post
    value: type  # the TypedDict of the engine's value
    deletable: bool  # carries `deleted` (the aggregate can disappear)

    def fields(self) -> dict[str, Any]:
        """Every field of a message, in the order render() writes them, with its type."""
        return {
            **HEAD,
            **self.ident,
            "version": int,
            **typing.get_type_hints(self.value),
            **({"deleted": bool} if self.deletable else {}),
        }


OUTPUTS = {
    "posts": Output("engagement.posts", {}, PostValue, deletable=False),
    "threads": Output("engagement.threads", {"root_comment_id": int}, ThreadValue, deletable=True),
    "windows": Output(
        "engagement.windows", {"window": str, "window_start": UtcTime}, WindowValue, deletable=True
    ),
}

# Constraints beyond the Python type, per field name, shared by all three (JSON Schema keywords).
COUNT_FIELDS = {
    "comments",
    "replies",
    "pingbacks",
    "trackbacks",
    "threads",
    "participants",
    "post_author_replies",
    "max_depth",
    "waiting_replies",
    "depth",
}
TIME_FIELDS = {"first_activity", "last_activity", "window_start"}
CONSTRAINTS: dict[str, dict] = {
    "schema_version": {"const": SCHEMA_VERSION},
    "post_id": {"minimum": 1},
    "root_comment_id": {"minimum": 1},
    "version": {"minimum": 0},
    "window": {"enum": ["hour", "day"]},
    **{name: {"minimum": 0} for name in COUNT_FIELDS},
}
