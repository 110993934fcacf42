"""streams/state_cache.py: the agent's per-post cache stays within its entry budget, dropping the
least recently stored posts first, but not posts used within MIN_IDLE seconds."""

from __future__ import annotations

from streams.state_cache import MIN_IDLE, POST_ENTRIES, StateCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_is_kept_and_the_least_recent_idle_post_goes_first():
    clock = Clock()
    cache = StateCache(max_entries=10, clock=clock, post_entries=0)
    cache.put("a", "A", 4)
    cache.put("b", "B", 4)
    cache.put("a", "A2", 4)  # stored again: now the most recent
    clock.now += MIN_IDLE
    cache.put("c", "C", 4)  # needs room: "b" is the least recent (and idle long enough)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("A2", None, "C")
    assert cache.entries == 8 and len(cache) == 2


def test_pop_releases_entries_and_an_oversized_post_is_not_held():
    cache = StateCache(max_entries=10, post_entries=0)
    cache.put("a", "A", 6)
    assert cache.pop("a") == "A" and cache.entries == 0 and cache.pop("a") is None
    cache.put("big", "B", 11)
    assert cache.get("big") is None and cache.entries == 0
    cache.put("a", "A", 6)
    cache.clear()
    assert len(cache) == 0 and cache.entries == 0


def test_a_cyclic_scan_keeps_what_is_held_instead_of_evicting_the_next_post():
    """Every post touched once per round (a backlog), twice as many entries as the budget: LRU
    would miss on every access; the held half stays held."""
    clock = Clock()
    cache = StateCache(max_entries=50, clock=clock, post_entries=0)
    posts = [f"p{i}" for i in range(10)]
    hits = 0
    for _round in range(5):
        for post in posts:
            held = cache.pop(post)  # as the agent does: take it, derive, put it back
            hits += held is not None
            cache.put(post, post, 10)
            clock.now += 0.1
    assert hits == 4 * 5  # rounds 2-5: the five posts held from round 1
    assert cache.entries <= 50


def test_with_an_idle_time_posts_unused_that_long_go_at_the_next_put():
    clock = Clock()
    cache = StateCache(max_entries=100, idle_seconds=60, clock=clock, post_entries=0)
    cache.put("quiet", "Q", 5)
    clock.now += 30
    cache.put("busy", "B", 5)
    clock.now += 29
    cache.put("busy", "B2", 5)  # "quiet" unused for 59 s: kept
    assert cache.get("quiet") == "Q"
    clock.now += 1
    cache.put("busy", "B3", 5)  # 60 s: dropped, though there is room
    assert (cache.get("quiet"), cache.get("busy")) == (None, "B3") and cache.entries == 5
    clock.now += 600
    cache.put("new", "N", 5)  # everything else idle: only the post just put stays
    assert len(cache) == 1 and cache.entries == 5


def test_without_an_idle_time_a_post_stays_while_there_is_room():
    clock = Clock()
    cache = StateCache(max_entries=100, clock=clock, post_entries=0)
    cache.put("quiet", "Q", 5)
    clock.now += 10_000
    cache.put("busy", "B", 5)
    assert cache.get("quiet") == "Q"


def test_a_post_costs_its_entries_plus_its_fixed_part():
    """Many one-entry posts: the budget holds budget / (1 + POST_ENTRIES) of them, not one per
    entry of the budget (a derivation's fixed part is most of a small post's cost)."""
    clock = Clock()
    budget = 10 * (1 + POST_ENTRIES)
    cache = StateCache(max_entries=budget, clock=clock)
    for i in range(50):
        cache.put(f"p{i}", i, 1)
    assert len(cache) == 10 and cache.entries == budget
    assert cache.pop("p3") == 3 and cache.entries == budget - 1 - POST_ENTRIES
