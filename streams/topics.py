"""faust topics of the aggregation agent. All input topics and the tick topic share one partition
count (BLOGPULSE_INPUT_GENERATION picks the set) and the key "<site>/<post_id>" (raw UTF-8 bytes, murmur2 partitioner), so a post's events,
ticks, state changelog and post output land on the same partition number."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.topic_names import DLQ_TOPIC
from streams.settings import Settings


@dataclass(frozen=True)
class AgentTopics:
    source: Any  # the four input topics and the tick topic, read by the aggregation agent
    tick: Any
    dlq: Any


def create_topics(app: Any, settings: Settings) -> AgentTopics:
    partitions = settings.partitions
    # Keys stay bytes here: a key that is not UTF-8 must reach the dead-letter topic, not crash
    # the stream in faust's key decoder.
    return AgentTopics(
        source=app.topic(
            *settings.input_topics.values(),
            settings.tick_topic,
            key_type=bytes,
            value_type=bytes,
            partitions=partitions,
        ),
        tick=app.topic(settings.tick_topic, key_type=str, value_type=bytes, partitions=partitions),
        dlq=app.topic(DLQ_TOPIC, key_type=bytes, value_type=bytes, partitions=partitions),
    )
