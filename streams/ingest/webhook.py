"""Reading a WordPress webhook delivery: where the comment row, the action, the post's author and the
site are in the payloads that webhook plugins send (docs/ingest.md lists the accepted shapes).

Accepted bodies (JSON, or application/x-www-form-urlencoded with PHP-style `a[b]` keys):
- WP Webhooks style: {"comment_id": .., "comment_data": {<row>}, "current_post_id": ..,
  "current_post_data": {"post_author": "1", "post_date_gmt": ..}, ...}
- flat row (WordPress.com / HookPress style): {<row fields>, "hook": "comment_post"}
- either of these under "comment" / "data" with the action beside it.
The action comes from the X-Blogpulse-Action header, the `action` query parameter, or a body field
(action, hook, trigger, event), in that order."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from schemas.identity import AuthorKeyer
from schemas.wire import InvalidEvent, parse_time
from streams.ingest.wordpress import (
    creation_event,
    moderation_event,
    now_time,
    row_from_db,
    wp_int,
    wp_status,
    wp_time,
)

CREATE = {
    "create",
    "created",
    "new",
    "insert",
    "comment_post",
    "wp_insert_comment",
    "create_comment",
    "new_comment",
    "comment_created",
}
# Changes whose row may still show the old status (the hook fires around the update): force it.
FORCED = {
    "trash": "trash",
    "trash_comment": "trash",
    "trashed_comment": "trash",
    "comment_trashed": "trash",
    "spam": "spam",
    "spam_comment": "spam",
    "spammed_comment": "spam",
    "comment_spammed": "spam",
    "delete": "delete",
    "deleted": "delete",
    "delete_comment": "delete",
    "deleted_comment": "delete",
    "comment_deleted": "delete",
}
# Everything else naming a change takes the status from the row (edit_comment, update_comment,
# wp_set_comment_status, transition_comment_status, unspam, untrash, approve, ...).
CHANGE = {
    "edit",
    "edited",
    "update",
    "updated",
    "edit_comment",
    "update_comment",
    "comment_updated",
    "status",
    "wp_set_comment_status",
    "transition_comment_status",
    "approve",
    "approved",
    "unapprove",
    "hold",
    "unspam",
    "unspam_comment",
    "unspammed_comment",
    "untrash",
    "untrash_comment",
    "untrashed_comment",
    "change",
}
_TRANSITION = re.compile(r"comment_([a-z-]+)_to_([a-z-]+)\Z")  # comment_{old}_to_{new} hooks
ROW_KEYS = ("comment_data", "comment", "data")
ACTION_KEYS = ("action", "hook", "trigger", "event")


@dataclass
class WebhookResult:
    events: list[dict[str, Any]] = field(default_factory=list)
    ignored: str | None = (
        None  # why nothing was published (a comment type that is not a blog comment)
    )


def parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    if "application/x-www-form-urlencoded" in content_type:
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise InvalidEvent("body", "form body is not valid UTF-8") from None
        return _nest(pairs)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("body", f"malformed JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise InvalidEvent("body", f"a webhook body is a JSON object, got {type(obj).__name__}")
    return obj


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """PHP http_build_query keys (comment_data[comment_ID]=9) -> one level of nesting."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        m = re.match(r"([^\[\]]+)\[([^\[\]]*)\]\Z", key)
        if m:
            inner = out.setdefault(m.group(1), {})
            if isinstance(inner, dict):
                inner[m.group(2)] = value
        else:
            out[key] = value
    return out


def classify(action: str | None) -> tuple[str, str | None]:
    """-> ("create" | "change", forced status or None). No action: a change (always safe)."""
    name = (action or "").strip().lower()
    if name in CREATE:
        return "create", None
    if name in FORCED:
        return "change", FORCED[name]
    m = _TRANSITION.match(name)
    if m:
        new = m.group(2)
        return "change", "delete" if new == "delete" else wp_status(new, "action")
    if name in CHANGE or not name:
        return "change", None
    raise InvalidEvent(
        "action",
        f"unknown webhook action {name!r:.60} (expected e.g. comment_post, "
        "edit_comment, wp_set_comment_status, trash_comment, delete_comment)",
    )


def find_row(body: Mapping[str, Any]) -> Mapping[str, Any]:
    if "comment_ID" in body:
        return body
    for key in ROW_KEYS:
        inner = body.get(key)
        if isinstance(inner, Mapping) and "comment_ID" in inner:
            return inner
        if isinstance(inner, str) and inner.lstrip().startswith("{"):  # JSON-encoded row in a form
            try:
                decoded = orjson.loads(inner)
            except orjson.JSONDecodeError:
                continue
            if isinstance(decoded, dict) and "comment_ID" in decoded:
                return decoded
    raise InvalidEvent(
        "comment_ID",
        "no comment row in the body (expected the wp_comments row at the "
        "top level or under comment_data)",
    )


def _post_field(body: Mapping[str, Any], name: str) -> Any:
    post = body.get("current_post_data") or body.get("post")
    if name in body:
        return body[name]
    if isinstance(post, Mapping):
        return post.get(name)
    return None


def read_webhook(
    body: Mapping[str, Any],
    *,
    site: str,
    action: str | None,
    keyer: AuthorKeyer,
    received_at: str | None = None,
) -> WebhookResult:
    """One delivery -> its events. A create is one creation event; a change is the creation event
    (idempotent: the row is complete, so a lost create is repaired) plus a moderation event."""
    if action is None:
        action = next(
            (str(body[k]) for k in ACTION_KEYS if isinstance(body.get(k), (str, int))), None
        )
    what, forced = classify(action)
    row = row_from_db(find_row(body), keyer)
    if row.kind is None:
        return WebhookResult(ignored=f"comment_type {row.comment_type!r:.40} is not a blog comment")
    author = _post_field(body, "post_author")
    post_author_id = wp_int(author, "post_author") if author not in (None, "") else None
    post_date = _post_field(body, "post_date_gmt")
    post_time = None
    if post_date not in (None, "", "0000-00-00 00:00:00"):
        post_time = wp_time(post_date, "post_date_gmt")
    events = [creation_event(row, site, post_author_id, post_time)]
    if what == "change":
        changed_at = body.get("event_time") or received_at or now_time()
        parse_time("event_time", changed_at)
        events.append(moderation_event(row, site, forced or row.status, changed_at))
    return WebhookResult(events=events)
