"""One test per aggregation rule of streams.engine (docs/architecture.md, issue 4)."""

from __future__ import annotations

import hashlib
import itertools
import random

import pytest

from schemas.times import epoch as parse_time
from streams import engine
from streams.engine import EventFields, derive, diff, merge_event, new_state

T0 = parse_time("2012-03-01T10:00:00Z")
POST_TIME = parse_time("2012-03-01T09:00:00Z")
TIMEOUT = 3600.0


def ev(
    cid,
    *,
    type="comment",
    parent=0,
    status="approved",
    t=0.0,
    author="a",
    post_author=False,
    kind=None,
):
    """An event `t` seconds after T0 (event_id as the contract computes it)."""
    kind = kind or ("pingback" if type == "pingback" else "comment")
    et = T0 + t
    eid = hashlib.sha256(f"s/1/{cid}/{type}/{status}/{et}".encode()).hexdigest()[:32]
    author_key = "" if type == "moderation" else hashlib.sha256(author.encode()).hexdigest()
    return EventFields(eid, type, cid, parent, post_author, author_key, kind, et, POST_TIME, status)


def mod(cid, status, t):
    return ev(cid, type="moderation", status=status, t=t)


def run(events, timeout=TIMEOUT, now=None):
    state = new_state()
    for e in events:
        merge_event(state, e)
    return derive(state, engine.now_of(state) if now is None else now, timeout)


def test_visible_counts_by_type():
    d = run(
        [
            ev(1),
            ev(2, author="b"),
            ev(3, type="reply", parent=1, author="owner", post_author=True, t=60),
            ev(4, type="pingback"),
            ev(5, type="pingback", kind="trackback"),
            ev(6, status="spam"),
            ev(7, status="hold"),
            ev(8, status="trash"),
        ]
    ).post
    assert (d["comments"], d["replies"], d["pingbacks"], d["trackbacks"]) == (2, 1, 1, 1)
    assert d["threads"] == 2
    assert d["participants"] == 3  # a, b, owner; pings excluded
    assert d["post_author_replies"] == 1
    assert d["max_depth"] == 1
    assert d["time_to_first_comment_seconds"] == 3600
    assert d["first_activity"] == "2012-03-01T10:00:00Z"
    assert d["last_activity"] == "2012-03-01T10:01:00Z"
    assert d["waiting_replies"] == 0


def test_moderation_moves_entry_in_and_out():
    base = [ev(1), ev(2, type="reply", parent=1, t=10)]
    assert run(base).post["comments"] == 1
    hidden = run(base + [mod(1, "spam", 20)])
    # the root is hidden, so its reply is hidden too and the thread is gone
    assert (hidden.post["comments"], hidden.post["replies"], hidden.post["threads"]) == (0, 0, 0)
    back = run(base + [mod(1, "spam", 20), mod(1, "approved", 30)])
    assert (back.post["comments"], back.post["replies"]) == (1, 1)
    held = run([ev(3, status="hold"), mod(3, "approved", 5)])
    assert held.post["comments"] == 1


def test_latest_status_wins_regardless_of_arrival_order():
    events = [ev(1), mod(1, "spam", 20), mod(1, "approved", 10)]
    for order in itertools.permutations(events):
        assert run(order).post["comments"] == 0


def test_moderation_at_same_time_beats_creation():
    assert run([ev(1, status="approved", t=5), mod(1, "spam", 5)]).post["comments"] == 0


def test_moderation_before_entry_applies_when_entry_arrives():
    state = new_state()
    merge_event(state, mod(1, "trash", 30))
    assert derive(state, engine.now_of(state), TIMEOUT).post["comments"] == 0
    merge_event(state, ev(1))
    assert derive(state, engine.now_of(state), TIMEOUT).post["comments"] == 0
    merge_event(state, mod(1, "approved", 40))
    assert derive(state, engine.now_of(state), TIMEOUT).post["comments"] == 1


def test_replies_ten_levels_deep():
    events = [ev(1)] + [
        ev(i, type="reply", parent=i - 1, t=i, author=f"p{i}") for i in range(2, 12)
    ]
    d = run(events)
    assert d.post["max_depth"] == 10
    assert d.post["replies"] == 10
    assert d.threads[1]["depth"] == 10
    assert d.threads[1]["replies"] == 10
    assert d.threads[1]["participants"] == 11
    # hiding level 5 hides everything below it
    hidden = run(events + [mod(5, "spam", 100)])
    assert hidden.post["max_depth"] == 3 and hidden.post["replies"] == 3


def test_very_deep_chain_does_not_recurse():
    events = [ev(1)] + [ev(i, type="reply", parent=i - 1, t=i) for i in range(2, 5002)]
    random.Random(1).shuffle(events)
    assert run(events).post["max_depth"] == 5000


def test_replies_before_parents_wait_then_attach():
    reply = ev(2, type="reply", parent=1, t=10)
    waiting = run([reply])
    assert waiting.post["waiting_replies"] == 1
    assert (waiting.post["replies"], waiting.post["threads"]) == (0, 0)
    grandchild = ev(3, type="reply", parent=2, t=20)
    assert run([grandchild, reply]).post["waiting_replies"] == 2
    done = run([grandchild, reply, ev(1)])
    assert done.post["waiting_replies"] == 0
    assert (done.post["replies"], done.post["threads"], done.post["max_depth"]) == (2, 1, 2)


def test_orphan_timeout_by_watermark_promotes_to_own_thread():
    orphan = ev(2, type="reply", parent=99, t=0)
    child = ev(3, type="reply", parent=2, t=10, post_author=True)
    before = run([orphan, child, ev(4, t=TIMEOUT - 1)])
    assert before.post["waiting_replies"] == 2 and before.post["threads"] == 1
    after = run([orphan, child, ev(4, t=TIMEOUT)])
    assert after.post["waiting_replies"] == 0
    assert after.post["threads"] == 2 and after.post["replies"] == 2
    assert after.threads[2] == {
        "replies": 1,
        "depth": 1,
        "participants": 1,
        "post_author_answered": True,
        "time_to_first_reply_seconds": 10,
        "last_activity": "2012-03-01T10:00:10Z",
    }
    # the parent arriving later still wins: the reply joins the parent's thread
    joined = run([orphan, child, ev(4, t=TIMEOUT), ev(99, t=-5)])
    assert (
        joined.post["threads"] == 2 and 2 not in joined.threads and joined.threads[99]["depth"] == 2
    )


def test_orphan_timeout_by_worker_clock():
    state = new_state()
    merge_event(state, ev(2, type="reply", parent=99))
    before = derive(state, engine.now_of(state), TIMEOUT)
    assert before.post["waiting_replies"] == 1 and before.waiting_since == T0
    assert engine.merge_tick(state, T0 + TIMEOUT)
    assert not engine.merge_tick(state, T0 + 5)  # an older tick changes nothing
    d = derive(state, engine.now_of(state), TIMEOUT)
    assert d.post["waiting_replies"] == 0 and d.post["threads"] == 1
    assert d.waiting_since is None


def test_cycles_and_self_replies_wait_then_become_roots():
    cycle = [
        ev(1, type="reply", parent=2),
        ev(2, type="reply", parent=1, t=5),
        ev(3, type="reply", parent=3, t=5),
        ev(4, type="reply", parent=1, t=6),
    ]
    d = run(cycle)
    assert d.post["waiting_replies"] == 4 and d.post["threads"] == 0
    late = run(cycle, now=T0 + TIMEOUT + 10)
    # each cycle member and the self-reply become roots; 4 hangs under 1
    assert late.post["waiting_replies"] == 0
    assert set(late.threads) == {1, 2, 3}
    assert late.threads[1]["replies"] == 1


def test_duplicates_change_nothing():
    events = [ev(1), ev(2, type="reply", parent=1, t=3), mod(2, "spam", 9)]
    state = new_state()
    for e in events:
        merge_event(state, e)
    snapshot = engine.dumps_state(state)
    for e in events:
        assert not merge_event(state, e)
    assert engine.dumps_state(state) == snapshot


def test_windows_hour_and_day_by_event_time():
    d = run(
        [
            ev(1, t=0),
            ev(2, t=1800),
            ev(3, type="reply", parent=1, t=3700),
            ev(4, type="pingback", t=86400),
            ev(5, status="spam", t=10),
        ]
    ).windows
    assert d[("hour", "2012-03-01T10:00:00Z")] == {
        "comments": 2,
        "replies": 0,
        "pingbacks": 0,
        "trackbacks": 0,
    }
    assert d[("hour", "2012-03-01T11:00:00Z")]["replies"] == 1
    assert d[("day", "2012-03-01T00:00:00Z")] == {
        "comments": 2,
        "replies": 1,
        "pingbacks": 0,
        "trackbacks": 0,
    }
    assert d[("day", "2012-03-02T00:00:00Z")]["pingbacks"] == 1
    assert len(d) == 5


def test_thread_fields():
    d = run(
        [
            ev(1, author="root"),
            ev(2, type="reply", parent=1, t=30, author="x"),
            ev(3, type="reply", parent=2, t=90, author="root"),
        ]
    ).threads[1]
    assert d == {
        "replies": 2,
        "depth": 2,
        "participants": 2,
        "post_author_answered": False,
        "time_to_first_reply_seconds": 30,
        "last_activity": "2012-03-01T10:01:30Z",
    }
    lone = run([ev(1)]).threads[1]
    assert lone["depth"] == 0 and lone["time_to_first_reply_seconds"] is None


def test_diff_emits_only_changes_and_deletions():
    old = run([ev(1), ev(2, t=4000)])
    assert len(diff(None, old)) == 1 + 2 + 3  # post, 2 threads, 2 hours + 1 day
    assert diff(old, old) == []
    new = run([ev(1), ev(2, t=4000), mod(2, "spam", 4001)])
    changes = {(c.aggregate, c.ident): c for c in diff(old, new)}
    assert set(changes) == {
        ("posts", None),
        ("threads", 2),
        ("windows", ("hour", "2012-03-01T11:00:00Z")),
        ("windows", ("day", "2012-03-01T00:00:00Z")),
    }
    assert changes[("threads", 2)].deleted
    assert changes[("windows", ("hour", "2012-03-01T11:00:00Z"))].deleted
    assert not changes[("windows", ("day", "2012-03-01T00:00:00Z"))].deleted


def test_state_round_trips_through_json():
    state = new_state()
    for e in [ev(1), ev(2, type="reply", parent=1, t=3), mod(7, "spam", 1)]:
        merge_event(state, e)
    again = engine.loads_state(engine.dumps_state(state))
    assert derive(again, engine.now_of(again), TIMEOUT) == derive(
        state, engine.now_of(state), TIMEOUT
    )


@pytest.mark.parametrize(
    "text,expected", [("2012-03-01T10:00:00Z", T0), ("2012-03-01T10:00:00+00:00", T0)]
)
def test_parse_time(text, expected):
    assert parse_time(text) == expected


def test_entry_held_short_until_its_status_is_another_events():
    """An entry whose status is its creation's holds 8 fields; a moderation makes it 11, and the
    changelog's JSON form loads back to the same tuples (equal states hold equal tuples)."""
    state = new_state()
    merge_event(state, ev(1))
    merge_event(state, ev(2, type="reply", parent=1, t=3))
    assert {len(row) for row in state["e"].values()} == {8}
    merge_event(state, mod(2, "spam", 9))
    assert len(state["e"][1]) == 8 and len(state["e"][2]) == 11
    assert engine.status_of(state["e"][2])[1:] == (1, int(mod(2, "spam", 9).event_id, 16), "spam")
    assert engine.loads_state(engine.dumps_state(state))["e"] == state["e"]
    # a short row's status, read back and held again, gives the same short row
    row = state["e"][1]
    assert engine.entry_row(row[:7], engine.status_of(row)) == row


def test_participants_are_distinct_authors_in_any_order():
    """Post and thread participants count each author once, whatever the arrival order and however
    many (the totals hold sorted lists, not sets)."""
    authors = [f"p{i % 37}" for i in range(300)]
    events = [ev(1, author="root")] + [
        ev(10 + i, type="reply", parent=1, t=i + 1, author=a) for i, a in enumerate(authors)
    ]
    expected_thread = len(set(authors) | {"root"})
    for seed in range(3):
        random.Random(seed).shuffle(events)
        d = run(events)
        assert d.post["participants"] == expected_thread
        assert d.threads[1]["participants"] == expected_thread
