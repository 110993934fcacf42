"""faust topics of the aggregation agent. All input topics and the tick topic share one partition
count (BLOGPULSE_INPUT_GENERATION picks the set) and the key "<site>/<post_id>" (raw UTF-8 bytes,
murmur2 partitioner), so a post's events, ticks, state changelog and post output land on the same
partition number. Ticks and dead letters are written by the flush's own producers
(streams/agents.py, streams/transactions.py), not through faust topics."""

from __future__ import annotations

from typing import Any

from streams.settings import Settings


def source_topic(app: Any, settings: Settings) -> Any:
    """The agent's one source: the four input topics and the tick topic."""
    # Keys stay bytes here: a key that is not UTF-8 must reach the dead-letter topic, not crash
    # the stream in faust's key decoder.
    return app.topic(
        *settings.input_topics.values(),
        settings.tick_topic,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
    )
