"""Property: for random histories of one post (shuffled, duplicated, with moderation changes) the
engine's aggregates equal a straightforward recount written independently here."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from streams import engine
from streams.engine import EventFields

T0 = 1330596000.0  # 2012-03-01T10:00:00Z
STATUSES = ["approved", "approved", "approved", "hold", "spam", "trash", "delete"]


def iso(ts):
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def histories(draw):
    n = draw(st.integers(1, 12))
    events = []
    for cid in range(1, n + 1):
        typ = draw(st.sampled_from(["comment", "reply", "reply", "pingback"]))
        # parents: another entry, itself (self-reply) or one that never arrives (99)
        parent = draw(st.integers(1, n + 1)) if typ == "reply" else 0
        parent = 99 if parent == n + 1 else parent
        kind = draw(st.sampled_from(["pingback", "trackback"])) if typ == "pingback" else "comment"
        t = draw(st.integers(0, 4 * 3600))
        status = draw(st.sampled_from(STATUSES))
        author = draw(st.sampled_from(["ann", "bob", "cy", "owner"]))
        for _ in range(
            draw(st.integers(1, 2))
        ):  # sometimes the creation is re-sent with a new status
            events.append(make(cid, typ, parent, kind, t, status, author))
            status = draw(st.sampled_from(STATUSES))
        for _ in range(draw(st.integers(0, 2))):
            events.append(
                make(
                    cid,
                    "moderation",
                    0,
                    "comment",
                    draw(st.integers(0, 5 * 3600)),
                    draw(st.sampled_from(STATUSES)),
                    "",
                )
            )
    dups = draw(st.lists(st.sampled_from(events), max_size=5))
    order = draw(st.permutations(events + dups))
    timeout = draw(st.sampled_from([0.0, 60.0, 3600.0, 10**9]))
    return order, timeout


def make(cid, typ, parent, kind, t, status, author):
    et = T0 + t
    eid = hashlib.sha256(f"s/1/{cid}/{typ}/{status}/{et}".encode()).hexdigest()[:32]
    key = hashlib.sha256(author.encode()).hexdigest() if author else ""
    return EventFields(eid, typ, cid, parent, author == "owner", key, kind, et, T0 - 600, status)


def recount(events, timeout):
    """Sort by time, replay: last status per entry, first creation per entry; then walk trees."""
    created, status = {}, {}
    for e in sorted(events, key=lambda e: (e.event_time, e.type == "moderation", e.event_id)):
        status[e.comment_id] = e.status  # later in this order wins
        if e.type != "moderation" and e.comment_id not in created:
            created[e.comment_id] = e
    now = max(e.event_time for e in events)

    def place(cid):
        """(root, depth) when visible, 'waiting' or 'hidden'."""
        chain = []
        node = cid
        while True:
            if status[node] != "approved":
                return "hidden"
            e = created[node]
            if e.parent_id == 0:
                anchor, orphan = node, False
                break
            if node in chain:  # cycle: the first member reached is an orphan
                anchor, orphan = node, True
                chain = chain[: chain.index(node)]
                break
            if e.parent_id not in created:  # parent never arrived: an orphan
                anchor, orphan = node, True
                break
            chain.append(node)
            node = e.parent_id
        if orphan and now < created[anchor].event_time + timeout:
            return "waiting"
        return anchor, len(chain)

    places = {cid: place(cid) for cid in created}
    visible = {c: p for c, p in places.items() if isinstance(p, tuple)}
    kinds = Counter(
        created[c].kind if created[c].type == "pingback" else created[c].type for c in visible
    )
    people = {created[c].author_key for c in visible if created[c].type != "pingback"}
    roots = [c for c, (root, _) in visible.items() if root == c and created[c].type != "pingback"]
    times = [created[c].event_time for c in visible]
    talk = [created[c].event_time for c in visible if created[c].type != "pingback"]
    post = {
        "comments": kinds["comment"],
        "replies": kinds["reply"],
        "pingbacks": kinds["pingback"],
        "trackbacks": kinds["trackback"],
        "threads": len(roots),
        "participants": len(people),
        "post_author_replies": sum(
            1 for c in visible if created[c].type == "reply" and created[c].post_author
        ),
        "max_depth": max((d for _, d in visible.values()), default=0),
        "first_activity": iso(min(times, default=None)),
        "last_activity": iso(max(times, default=None)),
        "time_to_first_comment_seconds": (int(min(talk) - (T0 - 600)) if talk else None),
        "waiting_replies": sum(1 for p in places.values() if p == "waiting"),
    }
    threads = {}
    for r in roots:
        members = [c for c, (root, _) in visible.items() if root == r and c != r]
        reply_times = [created[c].event_time for c in members]
        threads[r] = {
            "replies": len(members),
            "depth": max((visible[c][1] for c in members), default=0),
            "participants": len({created[c].author_key for c in members + [r]}),
            "post_author_answered": any(created[c].post_author for c in members),
            "time_to_first_reply_seconds": (
                int(min(reply_times) - created[r].event_time) if members else None
            ),
            "last_activity": iso(max(reply_times + [created[r].event_time])),
        }
    windows = defaultdict(Counter)
    names = {
        "comment": "comments",
        "reply": "replies",
        "pingback": "pingbacks",
        "trackback": "trackbacks",
    }
    for c in visible:
        e = created[c]
        label = names[e.kind if e.type == "pingback" else e.type]
        windows[("hour", iso(e.event_time // 3600 * 3600))][label] += 1
        windows[("day", iso(e.event_time // 86400 * 86400))][label] += 1
    windows = {k: {n: v[n] for n in names.values()} for k, v in windows.items()}
    return post, threads, windows


@settings(max_examples=150, deadline=None)
@given(histories())
def test_engine_equals_recount(history):
    events, timeout = history
    state = engine.new_state()
    for e in events:
        engine.merge_event(state, e)
    state = engine.loads_state(engine.dumps_state(state))  # through the changelog encoding
    got = engine.derive(state, engine.now_of(state), timeout)
    post, threads, windows = recount(events, timeout)
    assert got.post == post
    assert got.threads == threads
    assert got.windows == windows


@settings(max_examples=60, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_merge_is_order_and_grouping_independent(history, rnd):
    """Merging in any order, in any split into batches, gives byte-identical state."""
    events, _ = history
    a = engine.new_state()
    for e in events:
        engine.merge_event(a, e)
    shuffled = list(events)
    rnd.shuffle(shuffled)
    b = engine.new_state()
    for e in shuffled + shuffled[: len(shuffled) // 2]:
        engine.merge_event(b, e)
    a["e"] = dict(sorted(a["e"].items()))
    a["s"] = dict(sorted(a["s"].items()))
    b["e"] = dict(sorted(b["e"].items()))
    b["s"] = dict(sorted(b["s"].items()))
    assert engine.dumps_state(a) == engine.dumps_state(b)
