"""faust tables (changelog-backed), keyed by the input key b"<site>/<post_id>".

Co-partitioning: a post's state must live in the changelog partition with the number of the post's
input partition, because a worker recovers (and faust's memory store keeps) only the changelog
partitions of the input partitions it owns. Two settings make that so:
- use_partitioner=True: the producer's murmur2 partitioner picks the changelog partition from the
  key, as the publisher does for the input, instead of faust taking it from current_event() (which
  inside a take_events batch may belong to another partition, and is None in a timer);
- key_type=bytes: the key is written raw. With key_type=str faust JSON-encodes it (quotes added),
  the hash changes, and most posts' state landed in another worker's changelog partition: after a
  rebalance the owner of a post read a missing or stale state and wrote it back (docs/reliability.md).
"""
from __future__ import annotations

import asyncio
from typing import Any

import faust

from streams.app import app
from streams.config import settings

_partitions = settings().partitions


class DeliveredTable(faust.Table):
    """A faust Table whose changelog writes can be awaited (`await table.delivered()`).

    faust puts table changes in a producer buffer and never waits for them, so a batch's offsets
    can be committed, or its partitions handed to another worker, while its new state is still in
    that buffer. On revocation faust flushes the buffer, but the flush gives up as soon as no
    message leaves it for 0.1 s (faust/transport/producer.py, ProducerBuffer.flush_atmost): the new
    owner then recovers an older state, and the old owner's late write lands in the changelog after
    the new owner's writes, so the next recovery goes back to it. The agent awaits delivered()
    before a batch ends, so a batch is acknowledged only once its state is in Kafka."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._undelivered: list[asyncio.Future] = []

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        fut = super().send_changelog(*args, **kwargs)
        self._undelivered.append(fut)
        return fut

    async def delivered(self) -> None:
        """Wait until every change made so far is acknowledged by the broker (raises if one
        failed: the batch then stays unacknowledged and is processed again)."""
        pending, self._undelivered = self._undelivered, []
        if pending:
            await asyncio.gather(*pending)


def _table(name: str, help: str) -> DeliveredTable:
    # What app.Table() does, with our class.
    return app.tables.add(DeliveredTable(
        app, name=name, beacon=app.tables.beacon, key_type=bytes, value_type=bytes,
        partitions=_partitions, use_partitioner=True, help=help))


# value: engine state (orjson bytes, see streams.engine)
post_state = _table("post-state", "Per-post aggregation state: entries, statuses, watermark, version.")
# value: orjson [earliest waiting reply event_time, waiting count]; absent when nothing waits.
# Small, so the orphan timer scans it instead of the state table.
waiting_replies = _table("waiting-replies", "Posts with replies waiting for their parent.")
