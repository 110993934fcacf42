"""WordPress comments -> contract events: the one mapping used by the WXR reader (schemas/wxr.py),
the webhook and the REST poller (streams/ingest/wordpress.py). Pure: no Kafka, no database, no
environment.

- status (comment_approved of an export or a wp_comments row; status of a REST object):
  '1'/approve/approved -> approved, '0'/hold/unapprove/unapproved -> hold, spam -> spam,
  trash/trashed/post-trashed -> trash. An empty value -> hold: WordPress shows a comment only when
  comment_approved is '1' (wp_get_comment_status() gives no status for an empty one, and the
  comment queries ask for '1'), and its importer stores an empty or missing <wp:comment_approved>
  as it is, so such a comment exists and nobody sees it. (The WXR reader used to count it as
  approved; the real exports in shared/wxr/ all say 1, so no known file depended on that.)
- comment_type '' or 'comment' -> comment (comment_parent 0) or reply; 'pingback'/'trackback' ->
  pingback with that kind (never a reply); any other type ('note', custom types) is not a blog
  comment;
- source_url: a ping's author URL (the linking page); None for comments.
"""

from __future__ import annotations

from typing import Any

from schemas.wire import make_event, validate

STATUSES = {
    "1": "approved",
    "approve": "approved",
    "approved": "approved",
    "0": "hold",
    "": "hold",
    "hold": "hold",
    "unapproved": "hold",
    "unapprove": "hold",
    "spam": "spam",
    "trash": "trash",
    "post-trashed": "trash",
    "trashed": "trash",
}
PINGS = ("pingback", "trackback")
COMMENT_TYPES = ("", "comment")


def comment_status(value: Any) -> str | None:
    """The contract status of a comment_approved / REST status value; None when unknown."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return STATUSES.get(str(value).strip().lower())


def comment_kind(comment_type: Any) -> str | None:
    """comment / pingback / trackback, or None for types that are not blog comments."""
    ctype = comment_type.strip().lower() if isinstance(comment_type, str) else ""
    if ctype in COMMENT_TYPES:
        return "comment"
    return ctype if ctype in PINGS else None


def creation_event(
    *,
    site: str,
    post_id: int,
    comment_id: int,
    parent_id: int,
    kind: str,
    status: str,
    created: str,
    post_author: bool,
    author_key: str,
    author_url: str | None,
    post_time: str | None,
) -> dict[str, Any]:
    """The validated comment / reply / pingback event asserting the entry and its status at its
    creation (raises schemas.wire.InvalidEvent naming a bad field)."""
    if kind == "comment":
        type_, parent = ("reply" if parent_id else "comment"), parent_id
    else:
        type_, parent = "pingback", 0
    url = (author_url or "").strip()
    return validate(
        make_event(
            type=type_,
            site=site,
            post_id=post_id,
            comment_id=comment_id,
            parent_id=parent,
            post_author=post_author,
            author_key=author_key,
            kind=kind,
            source_url=(url or None) if kind != "comment" else None,
            event_time=created,
            post_time=post_time,
            status=status,
        )
    )
