"""When `reprocess start` calls a generation caught up (streams.reprocess.measure), with stand-ins
for the two Kafka clients (only their offset answers matter here)."""

from __future__ import annotations

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from streams import reprocess

A0, A1 = TopicPartition("blog.comments", 0), TopicPartition("blog.comments", 1)
OUT = TopicPartition("engagement.posts.g2", 0)


class Admin:
    def __init__(self, committed: dict) -> None:
        self.offsets = committed

    def list_group_offsets(self, spec):
        (group,) = spec
        return {group: {tp: OffsetAndMetadata(o, "", -1) for tp, o in self.offsets.items()}}

    def list_topics(self):
        return ["blog.comments", "engagement.posts.g2"]

    def describe_topics(self, names):
        return [{"name": n, "partitions": [{"partition_index": 0}]} for n in names]


class Consumer:
    def __init__(self, ends: dict) -> None:
        self.ends = ends

    def end_offsets(self, parts):
        return {tp: self.ends[tp] for tp in parts}


def measure(committed: dict, out_end: int):
    begin, target = {A0: 10, A1: 0}, {A0: 110, A1: 50}  # 150 events to read
    return reprocess.measure(
        Admin(committed), Consumer({OUT: out_end}), "g", begin, target, ["engagement.posts.g2"]
    )


def test_nothing_committed_yet():
    state = measure({}, out_end=0)
    assert (state.consumed, state.target, state.done) == (0, 150, False)


def test_inputs_read_but_sink_behind_is_not_done():
    state = measure({A0: 110, A1: 50, OUT: 30}, out_end=45)
    assert state.inputs_done and state.sink_pending == 15 and not state.done


def test_events_published_after_the_start_do_not_move_the_target():
    state = measure({A0: 200, A1: 50, OUT: 45}, out_end=45)  # live traffic beyond the target
    assert (state.consumed, state.done) == (150, True)
