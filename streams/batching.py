"""Batches whose offsets are released only after the batch body succeeded.

faust's Stream.take_events acknowledges a batch's events when the consumer's loop body ends -- in
a `finally`, so also when the body raised or was cancelled -- and acknowledged offsets get
committed. A batch that failed half-way would then never be read again. processed_batches() holds
one extra reference on every event of the batch while the body runs and releases it only when the
body has finished normally: a failed batch stays unacknowledged, the committed offset stops before
it, and a restarted worker (or the partition's next owner) reads it again."""
from __future__ import annotations

from typing import Any, AsyncIterator, Sequence


async def processed_batches(stream: Any, max_: int, within: float) -> AsyncIterator[Sequence[Any]]:
    """`async for events in processed_batches(stream, max_, within):` -- take_events(max_, within)
    whose events are acknowledged only after the loop body completed."""
    async for events in stream.take_events(max_, within):
        for event in events:
            event.message.incref()
        yield events  # the body runs here; an exception ends the generator before the release
        for event in events:
            event.ack()  # releases our reference; take_events' own ack completes it
