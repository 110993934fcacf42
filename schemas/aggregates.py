"""Output aggregates (docs/architecture.md, output topics): the values of engagement.posts,
engagement.threads and engagement.windows. The stream engine emits them as plain dicts; these
Records name and type the fields, and schemas.jsonschema_gen turns them into the shipped JSON Schema
files (schemas/jsonschema/engagement.*.json) that consumers validate against."""
from __future__ import annotations

from typing import Optional, Union

import faust

from schemas.wire import SCHEMA_VERSION

UtcTime = str  # ISO 8601 UTC with Z, as on the wire ("2012-03-01T10:00:00Z"); typed str on purpose


class _Aggregate(faust.Record, abstract=True, serializer="json", include_metadata=False):
    schema_version: int
    site: str
    post_id: int
    version: int  # grows by one per change of this key


class PostEngagement(_Aggregate):
    """engagement.posts, key "<site>/<post_id>"."""

    comments: int
    replies: int
    pingbacks: int
    trackbacks: int
    threads: int
    participants: int
    post_author_replies: int
    max_depth: int
    first_activity: Optional[UtcTime]
    last_activity: Optional[UtcTime]
    time_to_first_comment_seconds: Optional[Union[int, float]]
    waiting_replies: int


class ThreadEngagement(_Aggregate):
    """engagement.threads, key "<site>/<post_id>/<root_comment_id>"; deleted: the row goes away."""

    root_comment_id: int
    replies: int
    depth: int
    participants: int
    post_author_answered: bool
    time_to_first_reply_seconds: Optional[Union[int, float]]
    last_activity: Optional[UtcTime]
    deleted: bool


class WindowEngagement(_Aggregate):
    """engagement.windows, key "<site>/<post_id>/<hour|day>/<window_start>"."""

    window: str
    window_start: UtcTime
    comments: int
    replies: int
    pingbacks: int
    trackbacks: int
    deleted: bool


# Constraints beyond the Python type, per field name, shared by all three (JSON Schema keywords).
COUNT_FIELDS = {"comments", "replies", "pingbacks", "trackbacks", "threads", "participants",
                "post_author_replies", "max_depth", "waiting_replies", "depth"}
TIME_FIELDS = {"first_activity", "last_activity", "window_start"}
CONSTRAINTS: dict[str, dict] = {
    "schema_version": {"const": SCHEMA_VERSION},
    "post_id": {"minimum": 1},
    "root_comment_id": {"minimum": 1},
    "version": {"minimum": 0},
    "window": {"enum": ["hour", "day"]},
    **{name: {"minimum": 0} for name in COUNT_FIELDS},
}

AGGREGATES = {
    "engagement.posts": PostEngagement,
    "engagement.threads": ThreadEngagement,
    "engagement.windows": WindowEngagement,
}
