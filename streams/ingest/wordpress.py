"""WordPress comments -> contract events (docs/architecture.md).

Two sources carry the same comment: the raw `wp_comments` row that webhook plugins send
(comment_ID, comment_post_ID, comment_approved = "1"/"0"/"spam"/"trash", comment_date_gmt
"2012-03-01 10:00:00", ...) and the REST API object (id, post, status = "approved"/"hold"/...,
date_gmt "2012-03-01T10:00:00"). Both are reduced to a CommentRow at once: the author's e-mail,
name and URL go straight into the HMAC author key (schemas.identity.AuthorKeyer) and are dropped.

The comment -> event mapping (status, type, the creation event) is schemas/wordpress.py, shared
with the WXR reader. Rules (documented in docs/ingest.md):
- a creation event (comment / reply / pingback) asserts the entry with its current status at
  comment_date_gmt; its event_id is deterministic, so re-sending a row changes nothing;
- a change (status change, edit, trash, spam, delete) is a moderation event asserting the new status
  at the time of the change; WordPress has no modification time for comments, so that is the time
  the change was reported (or an explicit `event_time` in the payload);
- post_author is true when the comment's user_id is non-zero and equals the post's author id, which
  must come with the payload (post_author / current_post_data.post_author) or, for the poller, from
  the post itself; without it the flag is false.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas import wordpress
from schemas.identity import AuthorKeyer
from schemas.times import now_utc, wordpress_time
from schemas.wire import InvalidEvent, make_event, validate
from schemas.wordpress import PINGS, comment_kind, comment_status


@dataclass(frozen=True)
class CommentRow:
    """One comment, pseudonymised: what the events need and nothing more."""

    comment_id: int
    post_id: int
    parent_id: int
    comment_type: str  # "" / "comment" / "pingback" / "trackback" / anything else WordPress stores
    status: str  # contract status
    created: str  # contract time (comment_date_gmt)
    user_id: int
    author_key: str
    source_url: str | None  # the linking page, pings only

    @property
    def kind(self) -> str | None:
        """comment / pingback / trackback, or None for types that are not blog comments."""
        return comment_kind(self.comment_type)

    def fingerprint(self) -> list:
        """What a change is measured against: status and the fields that define the entry."""
        return [self.status, self.parent_id, self.comment_type, self.created, self.author_key]


def wp_int(value: Any, field: str, minimum: int = 0) -> int:
    """WordPress sends ids as strings ("375") in rows and as numbers in REST objects."""
    if isinstance(value, bool):
        raise InvalidEvent(field, "must be an integer, got a boolean")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise InvalidEvent(field, f"must be an integer, got {value!r:.40}")
    if value < minimum:
        raise InvalidEvent(field, f"must be >= {minimum}, got {value}")
    return value


def wp_status(value: Any, field: str) -> str:
    status = comment_status(value)
    if status is None:
        raise InvalidEvent(
            field,
            f"unknown comment status {value!r:.40} (expected 1, 0, spam, trash, approved or hold)",
        )
    return status


def wp_time(value: Any, field: str) -> str:
    """'2012-03-01 10:00:00' (row, GMT) or '2012-03-01T10:00:00' (REST date_gmt) -> contract time."""
    try:
        text = wordpress_time(value) if isinstance(value, str) else None
    except ValueError as exc:
        reason = str(exc) if str(exc).startswith("must be") else f"not a valid date/time ({exc})"
        raise InvalidEvent(field, reason) from None
    if text is None:
        raise InvalidEvent(field, f"must be a GMT date like 2012-03-01 10:00:00, got {value!r:.40}")
    return text


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _row(
    *,
    comment_id,
    post_id,
    parent_id,
    comment_type,
    status,
    created,
    user_id,
    email,
    name,
    url,
    keyer: AuthorKeyer,
    names: Mapping[str, str],
) -> CommentRow:
    ctype = _text(comment_type).strip().lower()
    return CommentRow(
        comment_id=wp_int(comment_id, names["comment_id"], 1),
        post_id=wp_int(post_id, names["post_id"], 1),
        parent_id=wp_int(parent_id if parent_id not in (None, "") else 0, names["parent_id"]),
        comment_type=ctype,
        status=wp_status(status, names["status"]),
        created=wp_time(created, names["created"]),
        user_id=wp_int(user_id if user_id not in (None, "") else 0, names["user_id"]),
        author_key=keyer.key(email=_text(email), name=_text(name), url=_text(url)),
        source_url=(_text(url).strip() or None) if ctype in PINGS else None,
    )


_DB_NAMES = {
    "comment_id": "comment_ID",
    "post_id": "comment_post_ID",
    "parent_id": "comment_parent",
    "status": "comment_approved",
    "created": "comment_date_gmt",
    "user_id": "user_id",
}
_REST_NAMES = {
    "comment_id": "id",
    "post_id": "post",
    "parent_id": "parent",
    "status": "status",
    "created": "date_gmt",
    "user_id": "author",
}


def row_from_db(row: Mapping[str, Any], keyer: AuthorKeyer) -> CommentRow:
    """A raw wp_comments row as webhook plugins send it."""
    if not isinstance(row, Mapping):
        raise InvalidEvent(
            "comment", f"the comment row must be a JSON object, got {type(row).__name__}"
        )
    for name in ("comment_ID", "comment_post_ID", "comment_approved", "comment_date_gmt"):
        if name not in row:
            raise InvalidEvent(name, "missing from the comment row")
    return _row(
        comment_id=row["comment_ID"],
        post_id=row["comment_post_ID"],
        parent_id=row.get("comment_parent"),
        comment_type=row.get("comment_type"),
        status=row["comment_approved"],
        created=row["comment_date_gmt"],
        user_id=row.get("user_id"),
        email=row.get("comment_author_email"),
        name=row.get("comment_author"),
        url=row.get("comment_author_url"),
        keyer=keyer,
        names=_DB_NAMES,
    )


def row_from_rest(obj: Mapping[str, Any], keyer: AuthorKeyer) -> CommentRow:
    """A /wp-json/wp/v2/comments object (context=edit carries author_email)."""
    if not isinstance(obj, Mapping):
        raise InvalidEvent(
            "comment", f"a REST comment must be a JSON object, got {type(obj).__name__}"
        )
    for name in ("id", "post", "status", "date_gmt"):
        if name not in obj:
            raise InvalidEvent(name, "missing from the REST comment")
    return _row(
        comment_id=obj["id"],
        post_id=obj["post"],
        parent_id=obj.get("parent"),
        comment_type=obj.get("type"),
        status=obj["status"],
        created=obj["date_gmt"],
        user_id=obj.get("author"),
        email=obj.get("author_email"),
        name=obj.get("author_name"),
        url=obj.get("author_url"),
        keyer=keyer,
        names=_REST_NAMES,
    )


def creation_event(
    row: CommentRow, site: str, post_author_id: int | None = None, post_time: str | None = None
) -> dict[str, Any]:
    """The comment / reply / pingback event asserting the entry and its status at its creation."""
    kind = row.kind
    if kind is None:
        raise InvalidEvent("comment_type", f"{row.comment_type!r:.40} is not a blog comment")
    return wordpress.creation_event(
        site=site,
        post_id=row.post_id,
        comment_id=row.comment_id,
        parent_id=row.parent_id,
        kind=kind,
        status=row.status,
        created=row.created,
        post_author=bool(row.user_id and post_author_id and row.user_id == post_author_id),
        author_key=row.author_key,
        author_url=row.source_url,
        post_time=post_time,
    )


def moderation_event(row: CommentRow, site: str, status: str, changed_at: str) -> dict[str, Any]:
    """A status change (or deletion: status 'delete') of the entry at changed_at."""
    event = make_event(
        type="moderation",
        site=site,
        post_id=row.post_id,
        comment_id=row.comment_id,
        kind=row.kind or "comment",
        event_time=changed_at,
        status=status,
    )
    return validate(event)


now_time = now_utc
