"""faust tables (changelog-backed). Keys are the input key "<site>/<post_id>" and
use_partitioner=True: the changelog partition is then chosen by the producer's murmur2 partitioner
from the key, i.e. it equals the input partition, instead of being taken from current_event() --
which inside a take_events batch may belong to another partition, and is None in a timer."""
from __future__ import annotations

from streams.app import app
from streams.config import settings

_partitions = settings().partitions

# value: engine state (orjson bytes, see streams.engine)
post_state = app.Table(
    "post-state", key_type=str, value_type=bytes, partitions=_partitions, use_partitioner=True,
    help="Per-post aggregation state: entries, statuses, watermark, version.",
)
# value: orjson [earliest waiting reply event_time, waiting count]; absent when nothing waits.
# Small, so the orphan timer scans it instead of the state table.
waiting_replies = app.Table(
    "waiting-replies", key_type=str, value_type=bytes, partitions=_partitions,
    use_partitioner=True, help="Posts with replies waiting for their parent.",
)
