"""streams/sink.py: a rebalance of the sink group during a database write does not crash the sink.
The rows and positions are in the database; the Kafka commit after them is for lag monitoring
only, and a partition that moved away meanwhile is left out of it (two sinks crashed each other
in turn before: each crash rejoined the group and rebalanced the other's write)."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError
from sqlalchemy import func, select

from sinks import db
from sinks.models import TABLES
from sinks.upsert import read_offsets
from streams.settings import load_settings
from streams.sink import DatabaseSink
from tests.unit.test_sink_upsert import post


class RebalancedConsumer:
    """Owns only `kept`; a commit fails as aiokafka's does when the group rebalanced."""

    def __init__(self, kept: set[TopicPartition], fail: bool) -> None:
        self.kept, self.fail, self.committed = kept, fail, None

    def assignment(self) -> set[TopicPartition]:
        return self.kept

    async def commit(self, offsets):
        if self.fail:
            raise CommitFailedError("the group has already rebalanced")
        self.committed = dict(offsets)

    def highwater(self, tp):
        assert tp in self.kept  # aiokafka asserts the partition is assigned
        return 10


def record(offset: int, post_id: int):
    _, key, value = post("blog.example", post_id, 1)
    return SimpleNamespace(
        key=key.encode(), value=orjson.dumps(value), offset=offset, timestamp=1_700_000_000_000
    )


@pytest.mark.parametrize("fail", [False, True], ids=["partition-moved", "commit-failed"])
async def test_a_write_during_a_rebalance_keeps_the_sink_running(tmp_path, monkeypatch, fail):
    url = f"sqlite:///{tmp_path / 'sink.db'}"
    db.upgrade(url)
    monkeypatch.setenv("BLOGPULSE_DB", url)
    sink = DatabaseSink(load_settings())
    kept, moved = TopicPartition("engagement.posts", 0), TopicPartition("engagement.posts", 1)
    sink.consumer = RebalancedConsumer({kept}, fail)
    await sink.write({kept: [record(4, 1)], moved: [record(7, 2)]})
    # both rows and positions are in the database whatever happened to the commit
    with db.make_engine(url).connect() as conn:
        assert conn.scalar(select(func.count()).select_from(TABLES["posts"])) == 2
    assert read_offsets(db.make_engine(url), ["engagement.posts"]) == {
        ("engagement.posts", 0): 5,
        ("engagement.posts", 1): 8,
    }
    assert sink.consumer.committed == (None if fail else {kept: 5})


class MarkerConsumer(RebalancedConsumer):
    """Its position is past a transaction's commit marker: one beyond the last record + 1."""

    def __init__(self, kept: set[TopicPartition], positions: dict[TopicPartition, int]) -> None:
        super().__init__(kept, fail=False)
        self.positions = positions

    async def position(self, tp):
        return self.positions[tp]


async def test_an_idle_fetch_commits_the_position_past_a_commit_marker(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'sink.db'}"
    db.upgrade(url)
    monkeypatch.setenv("BLOGPULSE_DB", url)
    sink = DatabaseSink(load_settings())
    tp = TopicPartition("engagement.posts", 0)
    sink.consumer = MarkerConsumer({tp}, {tp: 6})  # record 4, marker 5
    await sink.write({tp: [record(4, 1)]})
    assert sink.consumer.committed == {tp: 5}
    await sink.commit_idle_positions()
    assert sink.consumer.committed == {tp: 6}  # lag 0 once the marker is passed
    sink.consumer.committed = None
    await sink.commit_idle_positions()
    assert sink.consumer.committed is None  # nothing moved: no commit
