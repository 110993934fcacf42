"""The pure aggregation engine: per-post state, merge, derive, diff. No faust, no I/O.

State of one post:
    {"v": version of the last emitted change set,
     "wm": event-time watermark (max event_time seen, epoch seconds),
     "clk": worker clock (max tick time seen, epoch seconds),
     "pt": post publish time or None,
     "e": {comment_id: (type, kind, parent_id, author_key, post_author, created, event_id,
                        status[, status_time, is_moderation, status_event_id])},
     "s": {comment_id: (status_time, is_moderation, status_event_id, status)}}
One flat tuple per entry, int keys and event ids as ints (the 32 hex digits, same order): the
state of every post of a worker's partitions is held, so its size per entry is the worker's memory
(docs/performance.md). An entry whose status is its creation event's (status_time = created,
not a moderation, same event id: most entries) holds 8 fields, any other 11; entry_row() makes
the one form for given values, so equal states hold equal tuples. "s" holds only statuses of
entries not created yet (a moderation that came first); the creation merges them into the
entry's tuple.
Creation fields come from the creation event with the least (event_time, event_id) and the status is
the one with the greatest (event_time, is_moderation, event_id): both are a max/min over a set, so
merging is commutative, associative and idempotent by construction.
The changelog (streams/post_store.py) and dumps_state() use the JSON form: entry
[type, kind, parent_id, author_key, post_author, created, event_id] and status
[event_time, is_moderation, event_id, status], ids as hex strings.

derive() is a pure function of (state, now, timeout): it recomputes every aggregate from the entries.
derive_more() is its incremental twin for the common batch (only new approved entries under visible
parents, nothing waiting): it continues the running totals of the previous derivation and returns
the same Derived and the same changes as derive() + diff(), in O(new entries).
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from schemas.aggregates import PostValue, ThreadValue
from schemas.times import format_epoch

APPROVED = "approved"
HOUR = 3600
DAY = 86400
WINDOWS = (("hour", HOUR), ("day", DAY))

# positions in an entry tuple: its creation fields, its status word, then (long form only) the
# status's time, moderation flag and event id
_TYPE, _KIND, _PARENT, _AUTHOR, _POST_AUTHOR, _CREATED, _CEID, _STATUS = range(8)
_STIME, _SMOD, _SEID = range(8, 11)
_CREATION = slice(0, 7)


def entry_row(creation: tuple, status: tuple) -> tuple:
    """The held tuple of creation fields (7) and a status (time, is_moderation, event id, word)."""
    stime, smod, seid, word = status
    if seid == creation[_CEID] and not smod and stime == creation[_CREATED]:
        return (*creation, word)
    return (*creation, word, stime, smod, seid)


def status_of(row: tuple) -> tuple:
    """The (time, is_moderation, event id, word) status of a held entry tuple."""
    if len(row) == 8:
        return (row[_CREATED], 0, row[_CEID], row[_STATUS])
    return (row[_STIME], row[_SMOD], row[_SEID], row[_STATUS])


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
    post: PostValue
    threads: Mapping[int, ThreadValue]
    windows: Mapping[tuple[str, str], Mapping[str, Any]]  # (window, start) -> WindowValue counts
    # earliest event_time of a waiting reply: the worker clock must pass it + timeout to matter
    waiting_since: float | None = None


class Derivation(NamedTuple):
    """A post's last derivation as the agent caches it (streams/state_cache.py): what derive()
    returned and the running totals derive_more() continues from."""

    derived: Derived
    totals: _Totals


class AggregateChange(NamedTuple):
    """One aggregate to emit (the value is a schemas.aggregates PostValue, ThreadValue or
    WindowValue; streams/agents.py render() wraps it in the message fields). aggregate: posts | threads | windows; ident: None (post), root_id
    (thread) or (window, start) (window); deleted: the thread/window no longer exists."""

    aggregate: str
    ident: Any
    value: Mapping[str, Any]
    deleted: bool


# Window starts repeat across entries and batches; last-activity times repeat across batches.
_format_start = lru_cache(maxsize=1 << 16)(format_epoch)


def _window_start(created: float, size: int) -> str:
    """Start of the window of `size` seconds that holds `created` (the window's key)."""
    return _format_start(math.floor(created / size) * size)  # type: ignore[return-value]  # never None for a number


_ZERO_WINDOW: dict[str, int] = {
    "comments": 0,
    "replies": 0,
    "pingbacks": 0,
    "trackbacks": 0,
}  # a WindowValue


def _seconds(delta: float) -> float | int:
    return int(delta) if float(delta).is_integer() else round(delta, 6)


# ---------------------------------------------------------------------------- state and merge
def new_state() -> dict[str, Any]:
    return {"v": 0, "wm": None, "clk": None, "pt": None, "e": {}, "s": {}}


def entry_of_json(entry: list) -> tuple:
    """A changelog entry (JSON form) as held: shared words, interned author, int event id."""
    typ, kind, parent, author, post_author, created, eid = entry
    return (
        _WORD(typ, typ),
        _WORD(kind, kind),
        parent,
        sys.intern(author),
        post_author,
        created,
        int(eid, 16),
    )


def status_of_json(status: list) -> tuple:
    event_time, is_mod, eid, word = status
    return (event_time, is_mod, int(eid, 16), _WORD(word, word))


def entry_json(row: tuple) -> list:
    return [*row[:_CEID], format(row[_CEID], "032x")]


def status_json(status: tuple) -> list:
    return [status[0], status[1], format(status[2], "032x"), status[3]]


def json_of(state: dict[str, Any], cid: int) -> list:
    """[entry or null, status or null] of one comment id, in the JSON form."""
    row = state["e"].get(cid)
    if row is not None:
        return [entry_json(row), status_json(status_of(row))]
    status = state["s"].get(cid)
    return [None, None if status is None else status_json(status)]


def dumps_state(state: dict[str, Any]) -> bytes:
    """The state in the JSON form (sorted keys): what the changelog holds, as one document."""
    cids = sorted({*state["e"], *state["s"]})
    entries = {str(c): json_of(state, c) for c in cids}
    return orjson.dumps(
        {
            **{k: state[k] for k in ("v", "wm", "clk", "pt")},
            "e": {c: ej for c, (ej, _) in entries.items() if ej is not None},
            "s": {c: sj for c, (_, sj) in entries.items()},
        },
        option=orjson.OPT_SORT_KEYS,
    )


def loads_state(raw: bytes | None) -> dict[str, Any]:
    state = new_state()
    if raw is None:
        return state
    doc = orjson.loads(raw)
    for k in ("v", "wm", "clk", "pt"):
        state[k] = doc[k]
    for c, status in doc["s"].items():
        entry = doc["e"].get(c)
        merge_entry(
            state,
            int(c),
            None if entry is None else entry_of_json(entry),
            status_of_json(status),
        )
    return state


def max_opt(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def min_opt(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


# The words of the contract (types, kinds, statuses) as one shared object each, and author keys
# interned: every held entry would otherwise carry its own copies of the decoded strings.
_WORD = {
    w: w
    for w in (
        "comment",
        "reply",
        "pingback",
        "trackback",
        "moderation",
        "approved",
        "hold",
        "spam",
        "trash",
        "delete",
    )
}.get


def merge_event(state: dict[str, Any], ev: EventFields) -> bool:
    """Merge one event into state in place; True when the state changed."""
    before = (state["wm"], state["pt"])
    state["wm"] = max_opt(state["wm"], ev.event_time)
    state["pt"] = min_opt(state["pt"], ev.post_time)
    is_mod = ev.type == "moderation"
    eid = int(ev.event_id, 16)
    entry = (
        None
        if is_mod
        else (
            _WORD(ev.type, ev.type),
            _WORD(ev.kind, ev.kind),
            ev.parent_id,
            sys.intern(ev.author_key),
            bool(ev.post_author),
            ev.event_time,
            eid,
        )
    )
    status = (ev.event_time, 1 if is_mod else 0, eid, _WORD(ev.status, ev.status))
    changed = merge_entry(state, ev.comment_id, entry, status)
    return changed or before != (state["wm"], state["pt"])


def merge_entry(state: dict[str, Any], cid: int, entry: tuple | None, status: tuple | None) -> bool:
    """Merge an entry's creation fields (least (created, event_id) wins) and status (greatest
    (event_time, is_moderation, event_id) wins) into state; True when either changed. Used for
    events (merge_event) and for stored changelog records (streams/post_store.py). An entry
    always comes with a status (its creation event's, or a stored one)."""
    held = state["e"]
    row = held.get(cid)
    if row is not None:
        creation, current = row[_CREATION], status_of(row)
        changed = False
        if entry is not None and (entry[_CREATED], entry[_CEID]) < (row[_CREATED], row[_CEID]):
            creation, changed = entry, True
        if status is not None and status[:3] > current[:3]:
            current, changed = status, True
        if changed:
            held[cid] = entry_row(creation, current)
        return changed
    waiting_status = state["s"].get(cid)
    if status is not None and (waiting_status is None or status[:3] > waiting_status[:3]):
        best, changed = status, True
    else:
        best, changed = waiting_status, False
    if entry is None:
        if changed:
            state["s"][cid] = best
        return changed
    if best is None:
        raise ValueError(f"entry {cid} without a status")
    state["s"].pop(cid, None)
    held[cid] = entry_row(entry, best)
    return True


def merge_batch(
    state: dict[str, Any], events: Sequence[EventFields]
) -> tuple[list[bool], list[int] | None]:
    """Merge a post's batch in order: (applied flag per event, ids of the entries it created)
    where the ids are None unless every event created a brand-new approved entry (none of them
    known to the state before, no id twice): the case derive_more() handles."""
    known_e, known_s = state["e"], state["s"]
    new_ids: list[int] | None = []
    applied: list[bool] = []
    for ev in events:
        if new_ids is not None:
            cid = ev.comment_id
            if ev.type == "moderation" or ev.status != APPROVED or cid in known_e or cid in known_s:
                new_ids = None
            else:
                new_ids.append(ev.comment_id)
        applied.append(merge_event(state, ev))
    return applied, new_ids


def merge_tick(state: dict[str, Any], clock: float) -> bool:
    """Advance the post's worker clock (ticks carry wall-clock time); max, so idempotent."""
    new = max_opt(state["clk"], clock)
    if new != state["clk"]:
        state["clk"] = new
        return True
    return False


def now_of(state: dict[str, Any]) -> float | None:
    """The time the orphan timeout is measured on: event-time watermark or worker clock."""
    return max_opt(state["wm"], state["clk"])


# ---------------------------------------------------------------------------- derive
def _resolve(
    entries: dict[int, tuple], now: float | None, timeout: float
) -> tuple[dict[int, tuple[int, int]], list[int]]:
    """Place every entry: visible ones -> (root_id, depth); also return the waiting replies.

    Iterative walk up the parent chain with memoisation, so 10 000-deep chains and cycles are fine:
    a reply whose parent is unknown, or that sits on a cycle (a->b->a, a->a), is an orphan; it
    becomes the root of its own thread once now >= its event_time + timeout, else it waits and so
    does every approved reply below it.
    """
    VISIBLE, HIDDEN, WAITING = 0, 1, 2
    result: dict[int, tuple] = {}  # cid -> (VISIBLE, root, depth) | (HIDDEN,) | (WAITING,)

    def own_state(cid: int, entry: tuple) -> tuple | None:
        """State when it does not depend on the parent; None when it follows the parent."""
        if entry[_STATUS] != APPROVED:
            return (HIDDEN,)
        parent = entry[_PARENT]
        if parent <= 0:
            return (VISIBLE, cid, 0)
        if parent not in entries:
            return _orphan(cid, entry)
        return None

    def _orphan(cid: int, entry: tuple) -> tuple:
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


class _Totals:
    """Running aggregates over visible entries; derive() and derive_more() share add() so the
    incremental path cannot drift from the full one. derive_more() changes them in place and
    records what it touched, so its cost follows the new entries, not the post."""

    __slots__ = (
        "counts",
        "participants",
        "post_author_replies",
        "max_depth",
        "first",
        "last",
        "first_comment",
        "threads",
        "windows",
        "placed",
        "orphan_parents",
        "waiting",
        "waiting_by_parent",
        "touched_threads",
        "touched_windows",
    )

    def __init__(self) -> None:
        self.counts = {"comment": 0, "reply": 0, "pingback": 0, "trackback": 0}
        # distinct authors as a sorted list (bisect): a set costs ~8 KB per 100 authors, a list
        # ~0.9 KB, and the cache holds one per post (docs/performance.md)
        self.participants: list[str] = []
        self.post_author_replies = 0
        self.max_depth = 0
        self.first = self.last = self.first_comment = None
        # root -> its entry tuple while the thread has no replies (most threads: nothing more to
        # hold), then [replies, depth, authors, answered, first_reply, last, root_created]; authors
        # is "" (none), the one author key, or a sorted list once there are two: most threads
        # have one participant, and a set per thread was the largest part of the totals
        self.threads: dict[int, tuple | list] = {}
        self.windows: dict[tuple[str, str], dict[str, int]] = {}
        self.placed: dict[int, int | tuple[int, int]] = {}  # visible cid -> _place(...)
        # missing parents of promoted orphans: if one arrives, the orphan moves under it
        self.orphan_parents: frozenset[int] = frozenset()
        # waiting replies: cid -> created; and parent id -> its waiting replies
        self.waiting: dict[int, float] = {}
        self.waiting_by_parent: dict[int, list[int]] = {}
        self.touched_threads: dict[int, None] | None = None  # None: everything is new
        self.touched_windows: dict[tuple[str, str], None] | None = None

    def open_thread(self, cid: int, e: tuple) -> None:
        self.threads[cid] = e
        if self.touched_threads is not None:
            self.touched_threads[cid] = None

    def add(self, cid: int, root: int, depth: int, e: tuple) -> None:
        """Count one visible entry (its thread must be open already when it is a reply)."""
        self.placed[cid] = _place(cid, root, depth)
        typ, created, author = e[_TYPE], e[_CREATED], e[_AUTHOR]
        label = e[_KIND] if typ == "pingback" else typ
        counts = self.counts
        if label not in counts:
            label = "pingback" if typ == "pingback" else "comment"
        counts[label] += 1
        if typ != "pingback":
            if author:
                _add_author(self.participants, author)
            if self.first_comment is None or created < self.first_comment:
                self.first_comment = created
        if typ == "reply" and e[_POST_AUTHOR]:
            self.post_author_replies += 1
        if depth > self.max_depth:
            self.max_depth = depth
        if self.first is None or created < self.first:
            self.first = created
        if self.last is None or created > self.last:
            self.last = created
        if root != cid:
            held = self.threads.get(root)
            acc: list | None = None if held is None else _open_thread_acc(self.threads, root, held)
            if acc is not None:
                if self.touched_threads is not None:
                    self.touched_threads[root] = None
                acc[0] += 1
                if depth > acc[1]:
                    acc[1] = depth
                if author:
                    authors = acc[2]
                    if type(authors) is list:
                        _add_author(authors, author)
                    elif not authors:
                        acc[2] = author
                    elif authors != author:
                        acc[2] = sorted((authors, author))
                if e[_POST_AUTHOR]:
                    acc[3] = True
                if acc[4] is None or created < acc[4]:
                    acc[4] = created
                if created > acc[5]:
                    acc[5] = created
        field = _WINDOW_FIELD[label]
        windows = self.windows
        touched_w = self.touched_windows
        for window, size in WINDOWS:
            wkey = (window, _window_start(created, size))
            w = windows.get(wkey)
            if w is None:
                w = windows[wkey] = dict(_ZERO_WINDOW)
            if touched_w is not None:
                touched_w[wkey] = None
            w[field] += 1

    def post(self, post_time: float | None, waiting: int) -> PostValue:
        counts, first_comment = self.counts, self.first_comment
        return {
            "comments": counts["comment"],
            "replies": counts["reply"],
            "pingbacks": counts["pingback"],
            "trackbacks": counts["trackback"],
            "threads": len(self.threads),
            "participants": len(self.participants),
            "post_author_replies": self.post_author_replies,
            "max_depth": self.max_depth,
            "first_activity": format_epoch(self.first),
            "last_activity": format_epoch(self.last),
            "time_to_first_comment_seconds": (
                None
                if first_comment is None or post_time is None
                else _seconds(first_comment - post_time)
            ),
            "waiting_replies": waiting,
        }


def _add_author(authors: list[str], author: str) -> None:
    """Add to a sorted list of distinct author keys (an exact set in a fraction of the memory)."""
    i = bisect_left(authors, author)
    if i == len(authors) or authors[i] != author:
        authors.insert(i, author)


def _open_acc(root: tuple) -> list:
    return [0, 0, root[_AUTHOR], False, None, root[_CREATED], root[_CREATED]]


def _open_thread_acc(threads: dict[int, tuple | list], root: int, held: tuple | list) -> list:
    """The thread's accumulator, made from its root's entry at its first reply."""
    if type(held) is tuple:
        acc = threads[root] = _open_acc(held)
        return acc
    return held  # type: ignore[return-value]  # a list


def _place(cid: int, root: int, depth: int) -> int | tuple[int, int]:
    """A visible entry's (root, depth) as held in _Totals.placed: 0 for a root (most entries: no
    object held), one int for a reply, a tuple only below depth 65,535."""
    if root == cid:
        return 0
    return root << 16 | depth if depth < 0x10000 else (root, depth)


def _placement(cid: int, held: int | tuple[int, int]) -> tuple[int, int]:
    if type(held) is tuple:
        return held
    return (cid, 0) if held == 0 else (held >> 16, held & 0xFFFF)  # type: ignore[operator]


def _thread_value(acc: tuple | list) -> ThreadValue:
    if type(acc) is tuple:
        acc = _open_acc(acc)
    replies, depth, authors, answered, first_reply, last_act, root_created = acc
    return {
        "replies": replies,
        "depth": depth,
        "participants": len(authors) if type(authors) is list else (1 if authors else 0),
        "post_author_answered": answered,
        "time_to_first_reply_seconds": (
            None if first_reply is None else _seconds(first_reply - root_created)
        ),
        "last_activity": _format_start(last_act),  # type: ignore[typeddict-item]  # a number: never None
    }


class ThreadValues(Mapping):
    """Derived.threads: each thread's output value, computed from the running totals when asked.
    The agent holds the last derivation of many posts: a value dict per thread held next to the
    totals it comes from would be the largest part of that (docs/performance.md). A view over
    totals that derive_more() changes in place changes with them (the old derivation is consumed
    there, as documented)."""

    __slots__ = ("_threads",)

    def __init__(self, threads: dict[int, tuple | list]) -> None:
        self._threads = threads

    def __getitem__(self, root: int) -> ThreadValue:
        return _thread_value(self._threads[root])

    def __iter__(self) -> Iterator[int]:
        return iter(self._threads)

    def __len__(self) -> int:
        return len(self._threads)

    def __contains__(self, root: object) -> bool:
        return root in self._threads


def derive_with_totals(
    state: dict[str, Any], now_watermark: float | None, orphan_timeout: float
) -> Derivation:
    """derive() plus the running totals derive_more() continues from."""
    entries = state["e"]
    placed, waiting = _resolve(entries, now_watermark, orphan_timeout)
    totals = _Totals()
    # roots that are threads: visible comments and promoted orphan replies (pings are not threads)
    for cid, (root, _depth) in placed.items():
        if root == cid and entries[cid][_TYPE] != "pingback":
            totals.open_thread(cid, entries[cid])
    for cid, (root, depth) in placed.items():
        totals.add(cid, root, depth, entries[cid])
    totals.orphan_parents = frozenset(
        entries[cid][_PARENT]
        for cid, (root, _) in placed.items()
        if root == cid and entries[cid][_PARENT] > 0
    )
    for c in waiting:
        totals.waiting[c] = entries[c][_CREATED]
        totals.waiting_by_parent.setdefault(entries[c][_PARENT], []).append(c)
    since = min(totals.waiting.values(), default=None)
    return Derivation(
        Derived(
            totals.post(state["pt"], len(waiting)),
            ThreadValues(totals.threads),
            totals.windows,
            since,
        ),
        totals,
    )


def derive(state: dict[str, Any], now_watermark: float | None, orphan_timeout: float) -> Derived:
    """All aggregates of one post from its state (see docs/architecture.md)."""
    return derive_with_totals(state, now_watermark, orphan_timeout)[0]


def derive_more(
    state: dict[str, Any],
    old: Derived,
    totals: _Totals,
    new_ids: list[int],
    orphan_timeout: float | None = None,
) -> tuple[Derived, _Totals, list[AggregateChange]] | None:
    """The fast path for the common batch: only brand-new, approved entries. Returns (derived,
    totals, changes) equal to derive() + diff() of the merged state, or None when the batch needs
    the full derive (moderation, re-sent entries, an entry under a hidden parent, the missing
    parent of a promoted orphan, or a watermark that reaches the orphan timeout of a waiting
    reply); the caller checks that every id in new_ids was absent from the state before the merge.

    New entries are placed in creation order. A new reply whose parent is unknown (or waiting)
    waits; a new entry that is the parent of waiting replies brings them, and the replies below
    them, into its thread. Without orphan_timeout, a batch on a post with waiting replies (or one
    that would add some) is refused.

    `old` and `totals` are updated in place and returned (the previous derivation is consumed);
    None means nothing was changed. So the cost is O(new entries + the replies they release): no
    copy of the post's threads, windows or placements."""
    entries = state["e"]
    placed, waiting = totals.placed, totals.waiting
    planned: dict[int, tuple[int, int]] = {}
    pending: list[tuple[int, tuple, int, int]] = []
    released: list[int] = []  # waiting replies that become visible
    new_waiting: dict[int, float] = {}
    new_waiting_by_parent: dict[int, list[int]] = {}
    new = []
    for cid in new_ids:  # check everything before changing anything
        if cid in totals.orphan_parents:
            return None
        e = entries.get(cid)
        if e is None or e[_STATUS] != APPROVED or (len(e) > 8 and e[_SMOD]):
            return None
        new.append((e[_CREATED], cid, e))
    new.sort(key=lambda item: (item[0], item[1]))  # parents were created before their replies

    def release(parent: int, root: int, depth: int) -> None:
        """The waiting replies below `parent` (now visible at `depth` in `root`'s thread)."""
        stack = [(parent, depth)]
        while stack:
            node, d = stack.pop()
            for child in totals.waiting_by_parent.get(node, ()):
                if child in waiting and child not in planned:
                    released.append(child)
                    place(child, root, d + 1)
                    stack.append((child, d + 1))
            for child in new_waiting_by_parent.pop(node, ()):
                del new_waiting[child]
                place(child, root, d + 1)
                stack.append((child, d + 1))

    def place(cid: int, root: int, depth: int) -> None:
        planned[cid] = (root, depth)
        pending.append((cid, entries[cid], root, depth))

    for _, cid, e in new:
        parent = e[_PARENT]
        if parent <= 0:
            root, depth = cid, 0
        else:
            held = placed.get(parent)
            up = planned.get(parent) if held is None else _placement(parent, held)
            if up is None:
                if parent in waiting or parent in new_waiting or parent not in entries:
                    new_waiting[cid] = e[_CREATED]  # its parent is missing or waits: it waits
                    new_waiting_by_parent.setdefault(parent, []).append(cid)
                    continue
                return None  # hidden parent (or a cycle): full derive decides
            root, depth = up[0], up[1] + 1
        place(cid, root, depth)
        release(cid, root, depth)
    still = [c for c in waiting if c not in planned]
    if new_waiting or still:
        if orphan_timeout is None:
            return None
        now = now_of(state)
        earliest = min([*new_waiting.values(), *(waiting[c] for c in still)])
        if now is not None and now >= earliest + orphan_timeout:
            return None  # a waiting reply is promoted to its own thread: full derive
    totals.touched_threads, totals.touched_windows = {}, {}
    for cid, e, root, depth in pending:
        if root == cid and e[_TYPE] != "pingback":
            totals.open_thread(cid, e)
        totals.add(cid, root, depth, e)
    for cid in released:
        del waiting[cid]
    for cid, created in new_waiting.items():
        waiting[cid] = created
        totals.waiting_by_parent.setdefault(entries[cid][_PARENT], []).append(cid)
    if released:
        totals.waiting_by_parent = {
            parent: kids
            for parent, kids in (
                (p, [c for c in ks if c in waiting]) for p, ks in totals.waiting_by_parent.items()
            )
            if kids
        }
    since = min(waiting.values(), default=None)
    post = totals.post(state["pt"], len(waiting))
    changes: list[AggregateChange] = []
    if post != old.post:
        changes.append(AggregateChange("posts", None, post, False))
    for root in totals.touched_threads:
        changes.append(AggregateChange("threads", root, _thread_value(totals.threads[root]), False))
    windows = totals.windows
    for wkey in totals.touched_windows:
        changes.append(AggregateChange("windows", wkey, dict(windows[wkey]), False))
    return Derived(post, ThreadValues(totals.threads), windows, since), totals, changes


_WINDOW_FIELD = {
    "comment": "comments",
    "reply": "replies",
    "pingback": "pingbacks",
    "trackback": "trackbacks",
}


# ---------------------------------------------------------------------------- diff
def absent(state: dict[str, Any], new: Derived) -> list[AggregateChange]:
    """Tombstones for every thread and window the post could ever have had (a thread per entry,
    the hour and day of each entry's creation) that `new` does not have: what may be left in the
    sink by outputs this worker cannot see (streams/agents.py, after a load). Zero values: a
    deletion is keyed, its values are not stored."""
    changes: list[AggregateChange] = []
    windows: set[tuple[str, str]] = set()
    for cid, e in state["e"].items():
        if cid not in new.threads and e[_TYPE] != "pingback":
            changes.append(
                AggregateChange(
                    "threads",
                    cid,
                    {
                        "replies": 0,
                        "depth": 0,
                        "participants": 0,
                        "post_author_answered": False,
                        "time_to_first_reply_seconds": None,
                        "last_activity": _format_start(e[_CREATED]),
                    },
                    True,
                )
            )
        for window, size in WINDOWS:
            windows.add((window, _window_start(e[_CREATED], size)))
    changes.extend(
        AggregateChange("windows", wkey, dict(_ZERO_WINDOW), True)
        for wkey in sorted(windows)
        if wkey not in new.windows
    )
    return changes


def diff(old: Derived | None, new: Derived) -> list[AggregateChange]:
    """Changed aggregates between two derivations; threads/windows that disappeared come back
    with deleted=True (carrying their last values)."""
    changes: list[AggregateChange] = []
    if old is None or old.post != new.post:
        changes.append(AggregateChange("posts", None, new.post, False))
    old_threads = {} if old is None else old.threads
    old_windows = {} if old is None else old.windows
    pairs: tuple[tuple[str, Mapping[Any, Any], Mapping[Any, Any]], ...] = (
        ("threads", old_threads, new.threads),
        ("windows", old_windows, new.windows),
    )
    for aggregate, before, after in pairs:
        for ident, value in after.items():
            if before.get(ident) != value:
                changes.append(AggregateChange(aggregate, ident, value, False))
        for ident, value in before.items():
            if ident not in after:
                changes.append(AggregateChange(aggregate, ident, value, True))
    return changes
