"""The aggregation agent's per-post cache of its last derivation, bounded by entries.

Per post: (Derived, running totals) as last derived. It saves deriving the post again on its
next batch and is what makes engine.derive_more possible (O(new entries)). The running totals
hold a placement per visible entry and an author set per thread, so the cache is bounded by the
number of entries it covers (BLOGPULSE_STATE_CACHE_ENTRIES) and drops the least recently changed
posts first. A miss is always safe: the agent derives the post in full from its state."""
from __future__ import annotations

from typing import Any


class StateCache:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries = 0  # entries of the decoded states held
        self._items: dict[str, tuple[Any, int]] = {}  # insertion order = least recent first

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> Any:
        held = self._items.get(key)
        return None if held is None else held[0]

    def pop(self, key: str) -> Any:
        held = self._items.pop(key, None)
        if held is None:
            return None
        self.entries -= held[1]
        return held[0]

    def put(self, key: str, item: Any, entries: int) -> None:
        """Hold `item` (whose decoded state has `entries` entries) as the most recent, dropping the
        least recent posts until it fits; a post bigger than the whole budget is not held."""
        self.pop(key)
        if entries > self.max_entries:
            return
        while self.entries + entries > self.max_entries:
            self.pop(next(iter(self._items)))
        self._items[key] = (item, entries)
        self.entries += entries

    def clear(self) -> None:
        self._items.clear()
        self.entries = 0
