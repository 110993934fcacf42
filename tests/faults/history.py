"""The published history of a fault test and its independent recount.

generate() makes a deterministic mix of comments, replies (to any earlier entry), pingbacks,
trackbacks, moderation changes and exact duplicates, spread over many posts. recount() computes
the expected per-post numbers straight from those events with plain loops: deduplicate, take each
entry's latest status, walk up the parent chain; recount_threads() and recount_windows() the
expected thread and window rows the same way. It shares no code with streams/engine.py."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from schemas.wire import make_event

BASE = datetime(2024, 3, 1, tzinfo=UTC)
COMPARED = (
    "comments",
    "replies",
    "pingbacks",
    "trackbacks",
    "threads",
    "participants",
    "max_depth",
    "waiting_replies",
)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def generate(n: int, tag: str, seed: int = 8, events_per_post: int = 40) -> list[dict]:
    """About n events over n/events_per_post posts on 3 sites, in shuffled order (order must not
    matter). A post's events lie within 40 minutes, so no reply reaches the orphan timeout by
    event time; tests also raise BLOGPULSE_ORPHAN_TIMEOUT so the worker clock does not either."""
    rng = random.Random(seed)
    authors = [f"{i:064x}" for i in range(1, 40)]
    events: list[dict] = []
    posts = max(1, n // events_per_post)
    for p in range(posts):
        site, post_id = f"fault-{tag}-{p % 3}.example", p + 1
        start = BASE + timedelta(minutes=p)
        entries: list[int] = []  # comment/reply ids, candidates for parents and moderation
        next_id = 1
        for k in range(events_per_post):
            t = _iso(start + timedelta(seconds=k * 50))
            roll = rng.random()
            if roll < 0.05 and events:
                events.append(dict(rng.choice(events[-k:] if k else events)))  # exact duplicate
                continue
            if roll < 0.15 and entries:
                events.append(
                    make_event(
                        type="moderation",
                        site=site,
                        post_id=post_id,
                        comment_id=rng.choice(entries),
                        event_time=t,
                        status=rng.choice(["spam", "trash", "approved", "hold"]),
                    )
                )
                continue
            cid, next_id = next_id, next_id + 1
            if roll < 0.25:
                kind = rng.choice(["pingback", "trackback"])
                events.append(
                    make_event(
                        type="pingback",
                        kind=kind,
                        site=site,
                        post_id=post_id,
                        comment_id=cid,
                        author_key=rng.choice(authors),
                        source_url=f"https://ping.example/{cid}",
                        event_time=t,
                    )
                )
                continue
            common = dict(
                site=site,
                post_id=post_id,
                comment_id=cid,
                event_time=t,
                author_key=rng.choice(authors),
                post_author=rng.random() < 0.1,
                status="approved" if rng.random() < 0.93 else "hold",
            )
            if roll < 0.55 or not entries:
                events.append(make_event(type="comment", **common))
            else:
                events.append(make_event(type="reply", parent_id=rng.choice(entries), **common))
            entries.append(cid)
    rng.shuffle(events)
    return events


def _latest(events: list[dict]) -> tuple[dict, dict, dict]:
    """Deduplicated by event_id: (unique events, creation event per entry, (rank, status) of
    each entry's latest status)."""
    unique = {e["event_id"]: e for e in events}
    created: dict[tuple, dict] = {}
    status_of: dict[tuple, tuple] = {}
    for e in unique.values():
        entry = (e["site"], e["post_id"], e["comment_id"])
        if e["type"] != "moderation":
            created[entry] = e
        rank = (e["event_time"], e["type"] == "moderation", e["event_id"])
        if entry not in status_of or rank > status_of[entry][0]:
            status_of[entry] = (rank, e["status"])
    return unique, created, status_of


def _visible_entries(events: list[dict]) -> tuple[dict, dict]:
    """(created event per visible entry, root comment id of each visible entry or None for an
    entry under a pingback), deduplicated, each entry at its latest status."""
    _, created, status_of = _latest(events)
    visible: dict[tuple, dict] = {}
    roots: dict[tuple, int | None] = {}
    for entry, e in created.items():
        node, seen = entry, set()
        while True:
            c = created.get(node)
            if c is None or node in seen or status_of[node][1] != "approved":
                break  # missing, a reply cycle, or hidden: not visible
            seen.add(node)
            if c["type"] != "reply":
                visible[entry] = e
                roots[entry] = node[2] if c["type"] == "comment" else None
                break
            node = (node[0], node[1], c["parent_id"])
    return visible, roots


def recount_threads(events: list[dict]) -> dict[tuple[str, int, int], int]:
    """Expected thread_engagement replies per (site, post_id, root_comment_id)."""
    visible, roots = _visible_entries(events)
    threads: dict[tuple, int] = {}
    for entry, e in visible.items():
        if e["type"] == "comment":
            threads.setdefault((*entry[:2], entry[2]), 0)
    for entry, e in visible.items():
        if e["type"] == "reply" and roots[entry] is not None:
            threads[(*entry[:2], roots[entry])] += 1
    return threads


def recount_windows(events: list[dict]) -> dict[tuple[str, int, str, float], dict[str, int]]:
    """Expected engagement_window counts per (site, post_id, window, start as epoch seconds)."""
    visible, _ = _visible_entries(events)
    windows: dict[tuple, dict] = defaultdict(
        lambda: {"comments": 0, "replies": 0, "pingbacks": 0, "trackbacks": 0}
    )
    for entry, e in visible.items():
        t = datetime.strptime(e["event_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        field = (
            e["kind"] + "s"
            if e["type"] == "pingback"
            else {"comment": "comments", "reply": "replies"}[e["type"]]
        )
        for window, size in (("hour", 3600), ("day", 86400)):
            windows[(*entry[:2], window, t // size * size)][field] += 1
    return dict(windows)


def recount(events: list[dict]) -> dict[tuple[str, int], dict[str, int]]:
    """Expected post_engagement numbers per (site, post_id) from the published events."""
    unique, created, status_of = _latest(events)

    def depth_if_visible(entry: tuple) -> int | None:
        """Depth of a visible entry (0 = top level), None when it or an ancestor is not visible."""
        depth, seen = 0, set()
        while True:
            e = created.get(entry)
            if e is None or entry in seen or status_of[entry][1] != "approved":
                return None  # missing, a reply cycle (no root), or hidden
            seen.add(entry)
            if e["type"] != "reply":
                return depth
            entry, depth = (entry[0], entry[1], e["parent_id"]), depth + 1

    posts: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(COMPARED, 0))
    participants: dict[tuple, set] = defaultdict(set)
    for e in unique.values():
        posts[(e["site"], e["post_id"])]  # every post that had an event has a row
    for entry, e in created.items():
        depth = depth_if_visible(entry)
        if depth is None:
            continue
        row = posts[entry[:2]]
        if e["type"] == "pingback":
            row[e["kind"] + "s"] += 1
            continue
        participants[entry[:2]].add(e["author_key"])
        row["max_depth"] = max(row["max_depth"], depth)
        if e["type"] == "comment":
            row["comments"] += 1
            row["threads"] += 1
        else:
            row["replies"] += 1
    for post, keys in participants.items():
        posts[post]["participants"] = len(keys)
    return dict(posts)
