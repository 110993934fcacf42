"""Synthetic input events in the wire format of docs/architecture.md, pre-encoded for publishing.

N entries (top-level comments and replies) across P posts of one site; a share of them are replies
to an earlier entry of the same post, a few of those by the post's author. Every entry is approved,
so once all are processed the sink shows sum(comments + replies) == N for the site: the benchmark's
"done" signal. Entries of a post are numbered in publish order (ordinal), which the latency probe
uses to tell which events a row reflects.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas.identity import AuthorKeyer
from schemas.topic_names import INPUT_TOPICS
from schemas.wire import encode_event, make_event

BENCH_SECRET = b"blogpulse-bench"  # pseudonymous author keys of invented people; no real data
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class BenchEvent:
    topic: str
    key: bytes  # "<site>/<post_id>"
    value: bytes  # wire JSON
    post_id: int
    ordinal: int  # 1-based position among the post's entries in publish order


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _author_key(keyer: AuthorKeyer, person: int) -> str:
    return keyer.key(email=f"reader{person}@bench.invalid")


def generate(
    n: int, posts: int, site: str, reply_share: float = 0.25, seed: int = 7, readers: int = 5000
) -> list[BenchEvent]:
    """n entries spread round-robin-at-random over `posts` posts (interleaved, as live traffic
    would be). Deterministic for a given seed."""
    if n <= 0 or posts <= 0:
        raise ValueError("n and posts must be > 0")
    rng = random.Random(seed)
    keyer = AuthorKeyer(BENCH_SECRET)
    authors = [_author_key(keyer, i) for i in range(readers)]
    post_author_key = _author_key(keyer, readers + 1)
    post_times = {p: _EPOCH + timedelta(hours=p % 1000) for p in range(1, posts + 1)}
    per_post: dict[int, int] = {}
    out: list[BenchEvent] = []
    for i in range(n):
        post_id = 1 + (i % posts if i < posts else rng.randrange(posts))
        ordinal = per_post.get(post_id, 0) + 1
        per_post[post_id] = ordinal
        comment_id = ordinal  # unique within the post
        is_reply = ordinal > 1 and rng.random() < reply_share
        by_post_author = is_reply and rng.random() < 0.1
        type_ = "reply" if is_reply else "comment"
        event_time = _iso(post_times[post_id] + timedelta(minutes=ordinal))
        value = make_event(
            type=type_,
            site=site,
            post_id=post_id,
            comment_id=comment_id,
            parent_id=rng.randrange(1, ordinal) if is_reply else 0,
            post_author=by_post_author,
            author_key=post_author_key if by_post_author else rng.choice(authors),
            kind="comment",
            event_time=event_time,
            post_time=_iso(post_times[post_id]),
            status="approved",
        )
        out.append(
            BenchEvent(
                INPUT_TOPICS[type_],
                f"{site}/{post_id}".encode(),
                encode_event(value),
                post_id,
                ordinal,
            )
        )
    return out
