"""streams/state_cache.py: the agent's per-post cache stays within its entry budget, dropping the
least recently stored posts first."""
from __future__ import annotations

from streams.state_cache import StateCache


def test_budget_is_kept_and_the_least_recent_post_goes_first():
    cache = StateCache(max_entries=10)
    cache.put("a", "A", 4)
    cache.put("b", "B", 4)
    cache.put("a", "A2", 4)  # stored again: now the most recent
    cache.put("c", "C", 4)  # needs room: "b" is the least recent
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("A2", None, "C")
    assert cache.entries == 8 and len(cache) == 2


def test_pop_releases_entries_and_an_oversized_post_is_not_held():
    cache = StateCache(max_entries=10)
    cache.put("a", "A", 6)
    assert cache.pop("a") == "A" and cache.entries == 0 and cache.pop("a") is None
    cache.put("big", "B", 11)
    assert cache.get("big") is None and cache.entries == 0
    cache.put("a", "A", 6)
    cache.clear()
    assert len(cache) == 0 and cache.entries == 0
