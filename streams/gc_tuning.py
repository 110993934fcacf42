"""Garbage-collector settings for the worker process.

CPython's cyclic collector runs a full (generation 2) collection once the objects promoted since
the last one reach a quarter of the long-lived heap. faust allocates several container objects per
message (Message, Event, futures, callbacks) that live as long as a batch, so at a backlog full
collections come often, and each one walks every long-lived container: above all the aggregation
agent's per-post cache (decoded entries and running totals), so it blocks the event loop longer
as the heap grows (measured with gc.callbacks: docs/performance.md, "garbage collection").

Larger young generations (fewer, bigger young collections) still free the short-lived cycles;
a full collection then needs many more allocations before it is considered. gc.freeze() moves
everything alive at start-up (faust, aiokafka, SQLAlchemy, their module state) out of the
collector's sight for good: it is never garbage.
"""

from __future__ import annotations

import gc

# (young, middle, old): a young collection every 50,000 net container allocations, a middle one
# every 20 young ones, a full one considered after 100 middle ones (defaults: 700, 10, 10).
THRESHOLDS = (50_000, 20, 100)


def tune() -> None:
    """Call once, after the imports and before the worker starts processing."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
