"""Replay tolerates events older than any window and histories in any order: the engine keeps
windows forever and its result does not depend on arrival order. Shown on a generated WXR export
with 10-level threads and pings (tests/fixtures/replay_wxr.py), checked against a count made
directly from the XML with ElementTree."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from schemas import times
from schemas.identity import AuthorKeyer
from schemas.readers import read_events
from streams import engine
from streams.replay import in_event_time_order
from tests.fixtures.replay_wxr import generate, independent_count

SITE = "deep.example.org"
POST_FIELDS = (
    "comments",
    "replies",
    "pingbacks",
    "trackbacks",
    "threads",
    "participants",
    "max_depth",
)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    path = tmp_path_factory.mktemp("wxr") / "deep.xml"
    path.write_text(generate(SITE, posts=3, seed=11))
    return path


def fields(event: dict) -> engine.EventFields:
    t = times.epoch
    return engine.EventFields(
        event["event_id"],
        event["type"],
        event["comment_id"],
        event.get("parent_id") or 0,
        event["post_author"],
        event["author_key"],
        event["kind"],
        t(event["event_time"]),
        t(event["post_time"]) if event.get("post_time") else None,
        event["status"],
    )


def aggregate(events: list[dict], batch: int) -> dict[int, engine.Derived]:
    """Feed events in the given order, in batches per post like the agent, and derive."""
    states: dict[int, dict] = defaultdict(engine.new_state)
    for i in range(0, len(events), batch):
        for e in events[i : i + batch]:
            engine.merge_event(states[e["post_id"]], fields(e))
    return {
        pid: engine.derive(s, engine.now_of(s), orphan_timeout=3600) for pid, s in states.items()
    }


def test_any_order_gives_the_independent_count(export, monkeypatch):
    monkeypatch.setenv("BLOGPULSE_AUTHOR_SECRET", "replay-test")
    events = list(read_events(export, site=SITE, keyer=AuthorKeyer(b"replay-test")))
    want_posts, want_threads = independent_count(export.read_text())

    ordered = [e for _, e in in_event_time_order(events)]
    rng = random.Random(5)
    shuffled = events + rng.sample(events, len(events) // 3)  # duplicates too
    rng.shuffle(shuffled)
    results = [
        aggregate(ordered, 50),
        aggregate(list(reversed(ordered)), 7),
        aggregate(shuffled, 13),
    ]
    for got in results:
        assert got == results[0]  # every aggregate, thread and window, not just the counts

    got = results[0]
    assert {pid: {k: d.post[k] for k in POST_FIELDS} for pid, d in got.items()} == want_posts
    got_threads = {
        (pid, root): {
            "replies": t["replies"],
            "depth": t["depth"],
            "participants": t["participants"],
        }
        for pid, d in got.items()
        for root, t in d.threads.items()
    }
    assert got_threads == want_threads
    assert min(p["max_depth"] for p in want_posts.values()) >= 10  # every post is 10+ deep


def test_events_older_than_any_window_still_count(export, monkeypatch):
    """A history from 2012 replayed after newer events: its hour/day windows are created, none is
    closed or dropped for being old."""
    monkeypatch.setenv("BLOGPULSE_AUTHOR_SECRET", "replay-test")
    old = list(read_events(export, site=SITE, keyer=AuthorKeyer(b"replay-test")))
    state = engine.new_state()
    newer = dict(
        old[0],
        event_id="f" * 32,
        comment_id=999999,
        parent_id=0,
        type="comment",
        event_time="2026-11-26T10:00:00Z",
        status="approved",
    )
    engine.merge_event(state, fields(newer))
    for e in (e for e in old if e["post_id"] == old[0]["post_id"]):
        engine.merge_event(state, fields(e))
    derived = engine.derive(state, engine.now_of(state), orphan_timeout=3600)
    starts = sorted(start for (_size, start) in derived.windows)
    assert starts[0].startswith("2012-03-01") and starts[-1].startswith("2026-11-26")
    day_2012 = sum(
        w["comments"] + w["replies"]
        for (size, start), w in derived.windows.items()
        if size == "day" and start.startswith("2012")
    )
    assert day_2012 == derived.post["comments"] + derived.post["replies"] - 1  # all but `newer`
