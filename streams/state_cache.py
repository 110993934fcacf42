"""The aggregation agent's per-post cache of its last derivation, bounded by entries.

Per post: its engine.Derivation (Derived, running totals) as last derived. It saves deriving the post again on its
next batch and is what makes engine.derive_more possible (O(new entries)). The running totals
hold a placement per visible entry and an author set per thread, so the cache is bounded by the
number of entries it covers (BLOGPULSE_STATE_CACHE_ENTRIES), a post counting as its entries plus
POST_ENTRIES: the fixed part of a derivation (the post's derived values, the totals' dicts and
its windows) costs as much as ~20 entries' placements, and with many small posts it is most of
the cache (docs/performance.md). The cache drops the least recently changed
posts first, but never one used within the last MIN_IDLE seconds: then the new post is not held.
Under a backlog every post is touched at every flush, and plain LRU would evict exactly the post
needed next (no hits at all once the posts outgrow the budget); this way the posts held stay
held and the hit rate is the share of the budget. A miss is always safe: the agent derives the
post in full from its state.

With an idle time (the RocksDB store's BLOGPULSE_STORE_IDLE_SECONDS) a post unused that long is
dropped at the next put, like the store drops its decoded state: a quiet post holds nothing
decoded, so memory follows the active posts rather than all the posts ever seen."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple, cast

MIN_IDLE = 30.0  # seconds: a post used more recently is not evicted to make room
POST_ENTRIES = 20  # what a post's derivation costs besides its entries, in entries


class Held(NamedTuple):
    item: Any
    entries: int  # entries of the post's decoded state, plus post_entries
    stored_at: float  # clock() when it was put


class StateCache:
    def __init__(
        self,
        max_entries: int,
        idle_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        post_entries: int = POST_ENTRIES,
    ) -> None:
        self.max_entries, self.idle_seconds = max_entries, idle_seconds
        self.post_entries = post_entries
        self.entries = 0  # entries of the decoded states held, plus post_entries per post
        # insertion order = least recent first; an OrderedDict finds its first item at once,
        # where a dict scans the slots its deletions left at the front
        self._items: OrderedDict[str, Held] = OrderedDict()
        self._clock = clock

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> Any:
        held = self._items.get(key)
        return None if held is None else held.item

    def pop(self, key: str) -> Any:
        held = self._items.pop(key, None)
        if held is None:
            return None
        self.entries -= held.entries
        return held.item

    def put(self, key: str, item: Any, entries: int) -> None:
        """Hold `item` (whose decoded state has `entries` entries) as the most recent, dropping the
        least recent posts idle for MIN_IDLE until it fits; if that is not enough (or the post is
        bigger than the whole budget) it is not held."""
        self.pop(key)
        entries += self.post_entries
        if entries > self.max_entries:
            return
        now = self._clock()
        while self.entries + entries > self.max_entries:
            oldest = next(iter(self._items))
            if now - self._items[oldest].stored_at < MIN_IDLE:
                return
            self.pop(oldest)
        self._items[key] = Held(item, entries, now)
        self.entries += entries
        if self.idle_seconds is not None:
            self._drop_idle(now)

    def _drop_idle(self, now: float) -> None:
        """Drop the posts unused for idle_seconds, least recent first (the dict's order); the post
        just put is recent, so the loop stops there at the latest."""
        idle = cast(float, self.idle_seconds)
        while now - next(iter(self._items.values())).stored_at >= idle:
            self.pop(next(iter(self._items)))

    def clear(self) -> None:
        self._items.clear()
        self.entries = 0
