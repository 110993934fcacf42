"""The pure aggregation engine: per-post state, merge, derive, diff. No faust, no I/O.

State of one post (plain JSON types, so it serialises compactly to the table changelog):
    {"v": version of the last emitted change set,
     "wm": event-time watermark (max event_time seen, epoch seconds),
     "clk": worker clock (max tick time seen, epoch seconds),
     "pt": post publish time or None,
     "e": {comment_id: [type, kind, parent_id, author_key, post_author, created, event_id]},
     "s": {comment_id: [event_time, is_moderation, event_id, status]}}
Creation fields come from the creation event with the least (event_time, event_id) and the status is
the one with the greatest (event_time, is_moderation, event_id): both are a max/min over a set, so
merging is commutative, associative and idempotent by construction. A moderation for an entry that
has not arrived only fills "s" and applies once the entry is created.

derive() is a pure function of (state, now, timeout): it recomputes every aggregate from the entries.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, NamedTuple

import orjson

APPROVED = "approved"
HOUR = 3600
DAY = 86400
WINDOWS = (("hour", HOUR), ("day", DAY))

# positions in an entry list
_TYPE, _KIND, _PARENT, _AUTHOR, _POST_AUTHOR, _CREATED, _CEID = range(7)


class EventFields(NamedTuple):
    """The event fields the engine needs, as plain values (times are epoch seconds)."""

    event_id: str
    type: str  # comment | reply | pingback | moderation
    comment_id: int
    parent_id: int
    post_author: bool
    author_key: str
    kind: str
    event_time: float
    post_time: float | None
    status: str


class Derived(NamedTuple):
    post: dict[str, Any]
    threads: dict[int, dict[str, Any]]
    windows: dict[tuple[str, str], dict[str, Any]]
    # earliest event_time of a waiting reply: the worker clock must pass it + timeout to matter
    waiting_since: float | None = None


class Change(NamedTuple):
    """One aggregate to emit. aggregate: posts | threads | windows; ident: None (post), root_id
    (thread) or (window, start) (window); deleted: the thread/window no longer exists."""

    aggregate: str
    ident: Any
    value: dict[str, Any]
    deleted: bool


# ---------------------------------------------------------------------------- time helpers
def parse_time(text: str) -> float:
    """ISO 8601 UTC ('2012-03-01T10:00:00Z') -> epoch seconds."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def format_time(ts: float | None) -> str | None:
    if ts is None:
        return None
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(delta: float) -> float | int:
    return int(delta) if float(delta).is_integer() else round(delta, 6)


# ---------------------------------------------------------------------------- state and merge
def new_state() -> dict[str, Any]:
    return {"v": 0, "wm": None, "clk": None, "pt": None, "e": {}, "s": {}}


def dumps_state(state: dict[str, Any]) -> bytes:
    return orjson.dumps(state)


def loads_state(raw: bytes | None) -> dict[str, Any]:
    return new_state() if raw is None else orjson.loads(raw)


def _max_opt(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def _min_opt(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def merge_event(state: dict[str, Any], ev: EventFields) -> bool:
    """Merge one event into state in place; True when the state changed."""
    before = (state["wm"], state["pt"])
    state["wm"] = _max_opt(state["wm"], ev.event_time)
    state["pt"] = _min_opt(state["pt"], ev.post_time)
    changed = before != (state["wm"], state["pt"])
    cid = str(ev.comment_id)
    is_mod = ev.type == "moderation"
    if not is_mod:
        entry = [ev.type, ev.kind, ev.parent_id, ev.author_key, bool(ev.post_author),
                 ev.event_time, ev.event_id]
        old = state["e"].get(cid)
        if old is None or (entry[_CREATED], entry[_CEID]) < (old[_CREATED], old[_CEID]):
            state["e"][cid] = entry
            changed = True
    status = [ev.event_time, 1 if is_mod else 0, ev.event_id, ev.status]
    old_status = state["s"].get(cid)
    if old_status is None or status[:3] > old_status[:3]:
        state["s"][cid] = status
        changed = True
    return changed


def merge_tick(state: dict[str, Any], clock: float) -> bool:
    """Advance the post's worker clock (ticks carry wall-clock time); max, so idempotent."""
    new = _max_opt(state["clk"], clock)
    if new != state["clk"]:
        state["clk"] = new
        return True
    return False


def now_of(state: dict[str, Any]) -> float | None:
    """The time the orphan timeout is measured on: event-time watermark or worker clock."""
    return _max_opt(state["wm"], state["clk"])


# ---------------------------------------------------------------------------- derive
def _resolve(entries: dict[int, list], statuses: dict[int, list], now: float | None,
             timeout: float) -> tuple[dict[int, tuple[int, int]], list[int]]:
    """Place every entry: visible ones -> (root_id, depth); also return the waiting replies.

    Iterative walk up the parent chain with memoisation, so 10 000-deep chains and cycles are fine:
    a reply whose parent is unknown, or that sits on a cycle (a->b->a, a->a), is an orphan; it
    becomes the root of its own thread once now >= its event_time + timeout, else it waits and so
    does every approved reply below it.
    """
    VISIBLE, HIDDEN, WAITING = 0, 1, 2
    result: dict[int, tuple] = {}  # cid -> (VISIBLE, root, depth) | (HIDDEN,) | (WAITING,)

    def own_state(cid: int, entry: list) -> tuple | None:
        """State when it does not depend on the parent; None when it follows the parent."""
        if statuses[cid][3] != APPROVED:
            return (HIDDEN,)
        parent = entry[_PARENT]
        if parent <= 0:
            return (VISIBLE, cid, 0)
        if parent not in entries:
            return _orphan(cid, entry)
        return None

    def _orphan(cid: int, entry: list) -> tuple:
        if now is not None and now >= entry[_CREATED] + timeout:
            return (VISIBLE, cid, 0)
        return (WAITING,)

    for start, start_entry in entries.items():
        if start in result:
            continue
        path: list[int] = []  # nodes that follow their parent, resolved after the walk
        on_path: set[int] = set()
        cid, entry = start, start_entry
        while cid not in result:
            own = own_state(cid, entry)
            if own is not None:
                result[cid] = own
                break
            if cid in on_path:
                # Cycle (a->b->a, a->a): every member is an orphan; the nodes before it follow.
                at = path.index(cid)
                for member in path[at:]:
                    result[member] = _orphan(member, entries[member])
                del path[at:]
                break
            path.append(cid)
            on_path.add(cid)
            cid = entry[_PARENT]
            entry = entries[cid]
        for node in reversed(path):
            up = result[entries[node][_PARENT]]
            result[node] = (VISIBLE, up[1], up[2] + 1) if up[0] == VISIBLE else up

    visible = {cid: (r[1], r[2]) for cid, r in result.items() if r[0] == VISIBLE}
    waiting = [cid for cid, r in result.items() if r[0] == WAITING]
    return visible, waiting


def derive(state: dict[str, Any], now_watermark: float | None, orphan_timeout: float) -> Derived:
    """All aggregates of one post from its state (see docs/architecture.md)."""
    entries = {int(k): v for k, v in state["e"].items()}
    statuses = {int(k): state["s"][k] for k in state["e"]}
    placed, waiting = _resolve(entries, statuses, now_watermark, orphan_timeout)
    post_time = state["pt"]

    counts = {"comment": 0, "reply": 0, "pingback": 0, "trackback": 0}
    participants: set[str] = set()
    post_author_replies = 0
    max_depth = 0
    first = last = None
    first_comment = None
    threads: dict[int, dict[str, Any]] = {}
    thread_acc: dict[int, list] = {}  # root -> [replies, depth, authors, answered, first_reply, last]
    windows: dict[tuple[str, str], dict[str, Any]] = {}

    # roots that are threads: visible comments and promoted orphan replies (pings are not threads)
    for cid, (root, depth) in placed.items():
        if root == cid and entries[cid][_TYPE] != "pingback":
            e = entries[cid]
            thread_acc[cid] = [0, 0, {e[_AUTHOR]} if e[_AUTHOR] else set(), False, None,
                               e[_CREATED]]

    for cid, (root, depth) in placed.items():
        e = entries[cid]
        typ, created = e[_TYPE], e[_CREATED]
        label = e[_KIND] if typ == "pingback" else typ
        if label not in counts:
            label = "pingback" if typ == "pingback" else "comment"
        counts[label] += 1
        if typ != "pingback":
            if e[_AUTHOR]:
                participants.add(e[_AUTHOR])
            first_comment = _min_opt(first_comment, created)
        if typ == "reply" and e[_POST_AUTHOR]:
            post_author_replies += 1
        max_depth = max(max_depth, depth)
        first = _min_opt(first, created)
        last = _max_opt(last, created)
        acc = thread_acc.get(root)
        if acc is not None and root != cid:
            acc[0] += 1
            acc[1] = max(acc[1], depth)
            if e[_AUTHOR]:
                acc[2].add(e[_AUTHOR])
            if e[_POST_AUTHOR]:
                acc[3] = True
            acc[4] = _min_opt(acc[4], created)
            acc[5] = max(acc[5], created)
        for window, size in WINDOWS:
            start = format_time(math.floor(created / size) * size)
            w = windows.get((window, start))
            if w is None:
                w = windows[(window, start)] = {"comments": 0, "replies": 0, "pingbacks": 0,
                                                "trackbacks": 0}
            w[_WINDOW_FIELD[label]] += 1

    for root, (replies, depth, authors, answered, first_reply, last_act) in thread_acc.items():
        root_created = entries[root][_CREATED]
        threads[root] = {
            "replies": replies,
            "depth": depth,
            "participants": len(authors),
            "post_author_answered": answered,
            "time_to_first_reply_seconds": (
                None if first_reply is None else _seconds(first_reply - root_created)
            ),
            "last_activity": format_time(last_act),
        }

    post = {
        "comments": counts["comment"],
        "replies": counts["reply"],
        "pingbacks": counts["pingback"],
        "trackbacks": counts["trackback"],
        "threads": len(thread_acc),
        "participants": len(participants),
        "post_author_replies": post_author_replies,
        "max_depth": max_depth,
        "first_activity": format_time(first),
        "last_activity": format_time(last),
        "time_to_first_comment_seconds": (
            None if first_comment is None or post_time is None
            else _seconds(first_comment - post_time)
        ),
        "waiting_replies": len(waiting),
    }
    since = min((entries[c][_CREATED] for c in waiting), default=None)
    return Derived(post, threads, windows, since)


_WINDOW_FIELD = {"comment": "comments", "reply": "replies", "pingback": "pingbacks",
                 "trackback": "trackbacks"}


# ---------------------------------------------------------------------------- diff
def diff(old: Derived | None, new: Derived) -> list[Change]:
    """Changed aggregates between two derivations; threads/windows that disappeared come back
    with deleted=True (carrying their last values)."""
    changes: list[Change] = []
    if old is None or old.post != new.post:
        changes.append(Change("posts", None, new.post, False))
    old_threads = {} if old is None else old.threads
    old_windows = {} if old is None else old.windows
    for aggregate, before, after in (("threads", old_threads, new.threads),
                                     ("windows", old_windows, new.windows)):
        for ident, value in after.items():
            if before.get(ident) != value:
                changes.append(Change(aggregate, ident, value, False))
        for ident, value in before.items():
            if ident not in after:
                changes.append(Change(aggregate, ident, value, True))
    return changes
