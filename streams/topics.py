"""faust topics. All input topics and the tick topic share one partition count and the key
"<site>/<post_id>" (raw UTF-8 bytes, murmur2 partitioner), so a post's events, ticks, state changelog
and post output land on the same partition number."""
from __future__ import annotations

from streams.app import app
from streams.config import DLQ_TOPIC, INPUT_TOPICS, OUTPUT_TOPICS, TICK_TOPIC, settings

_partitions = settings().partitions

# Keys stay bytes here: a key that is not UTF-8 must reach the dead-letter topic, not crash the
# stream in faust's key decoder.
source_topic = app.topic(
    *INPUT_TOPICS.values(), TICK_TOPIC, key_type=bytes, value_type=bytes, partitions=_partitions
)
tick_topic = app.topic(TICK_TOPIC, key_type=str, value_type=bytes, partitions=_partitions)
dlq_topic = app.topic(DLQ_TOPIC, key_type=bytes, value_type=bytes, partitions=_partitions)
output_topics = {
    name: app.topic(topic, key_type=str, value_type=bytes, partitions=_partitions, compacting=True)
    for name, topic in OUTPUT_TOPICS.items()
}
