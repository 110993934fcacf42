"""streams.observability without a broker: consumer-lag arithmetic and export, the bounded top-N
activity gauge, end-to-end latency, and install() on the real faust app object."""

from __future__ import annotations

import pytest
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from streams import observability as obs


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


class FakeConsumer:
    """The three consumer calls the lag collector makes (a stand-in for faust's consumer)."""

    def __init__(self, assignment, ends, committed, positions=None):
        self._assignment = set(assignment)
        self._ends = ends
        self._committed_offset = committed
        self._positions = positions or {}

    def assignment(self):
        return self._assignment

    async def highwaters(self, *tps):
        return {tp: self._ends[tp] for tp in tps}

    async def position(self, tp):
        return self._positions.get(tp)


def test_lag_of():
    assert obs.lag_of(100, 40) == 60
    assert obs.lag_of(10, 10) == 0
    assert obs.lag_of(5, 9) == 0  # committed past a stale end offset: never negative
    assert obs.lag_of(None, 3) is None and obs.lag_of(3, None) is None


async def test_lag_collector_exports_assigned_blogpulse_partitions_only():
    comments0, comments1 = TP("blog.comments", 0), TP("blog.comments", 1)
    posts2 = TP("engagement.posts", 2)
    changelog = TP("blogpulse-post_state-changelog", 0)
    consumer = FakeConsumer(
        [comments0, comments1, posts2, changelog],
        ends={comments0: 120, comments1: 7, posts2: 50, changelog: 999},
        committed={comments0: 100, comments1: None, changelog: 1},
        positions={comments1: 2, posts2: 50},
    )
    collector = obs.ConsumerLagCollector(obs.lag_topics(["engagement.posts"]))
    lags = await collector.refresh(consumer)
    assert lags == {("blog.comments", 0): 20, ("blog.comments", 1): 5, ("engagement.posts", 2): 0}
    assert sample("blogpulse_consumer_lag", topic="blog.comments", partition="0") == 20
    assert sample("blogpulse_consumer_lag", topic="blog.comments", partition="1") == 5
    assert (
        sample("blogpulse_consumer_lag", topic="blogpulse-post_state-changelog", partition="0")
        is None
    )

    # After a rebalance takes partition 1 away, its series disappears instead of going stale.
    consumer._assignment = {comments0}
    consumer._committed_offset = {comments0: 120}
    assert await collector.refresh(consumer) == {("blog.comments", 0): 0}
    assert sample("blogpulse_consumer_lag", topic="blog.comments", partition="1") is None
    assert sample("blogpulse_consumer_lag", topic="blog.comments", partition="0") == 0


@settings(max_examples=100)
@given(st.lists(st.integers(min_value=0, max_value=10**6), max_size=40))
def test_top_counts_is_sorted_bounded_and_padded(counts):
    top = obs.top_counts(counts, 10)
    assert len(top) == 10
    assert top == sorted(top, reverse=True)
    assert top[: min(10, len(counts))] == sorted(counts, reverse=True)[:10]


def test_post_activity_publishes_top_ranks_per_window():
    now = [0.0]
    activity = obs.PostActivity(window=60, n=10, clock=lambda: now[0])
    for i in range(15):  # 15 posts: post i gets i + 1 events
        for _ in range(i + 1):
            activity.record(f"site/{i}".encode())
    now[0] = 59.0
    assert not activity.maybe_roll()
    now[0] = 60.0
    assert activity.maybe_roll()
    assert [sample("blogpulse_top_post_events", rank=str(r)) for r in range(1, 11)] == [
        15,
        14,
        13,
        12,
        11,
        10,
        9,
        8,
        7,
        6,
    ]
    assert sample("blogpulse_top_post_events", rank="11") is None  # only 10 ranks, ever
    assert sample("blogpulse_active_posts") == 15

    activity.record(b"site/1")
    now[0] = 121.0
    assert activity.maybe_roll()
    assert sample("blogpulse_top_post_events", rank="1") == 1
    assert sample("blogpulse_top_post_events", rank="2") == 0
    assert sample("blogpulse_active_posts") == 1


def test_activity_counts_events_per_post():
    now = [0.0]
    activity = obs.PostActivity(window=1, clock=lambda: now[0])
    activity.record("s/1", 2)  # what the agent records per batch
    activity.record("s/2")
    now[0] = 2.0
    activity.maybe_roll()
    assert sample("blogpulse_top_post_events", rank="1") == 2
    assert sample("blogpulse_top_post_events", rank="2") == 1


def test_observe_end_to_end_counts_and_clamps():
    before_count = sample("blogpulse_end_to_end_latency_seconds_count") or 0
    before_le = sample("blogpulse_end_to_end_latency_seconds_bucket", le="0.05") or 0
    obs.observe_end_to_end(0.3)
    obs.observe_end_to_end(-2)  # clock skew between hosts: counts as 0, not a negative sum
    assert sample("blogpulse_end_to_end_latency_seconds_count") == before_count + 2
    assert sample("blogpulse_end_to_end_latency_seconds_bucket", le="0.05") == before_le + 1


def test_install_is_idempotent_and_installs_no_per_event_sensor():
    from faust.sensors.prometheus import PrometheusMonitor

    from streams.app import create_app
    from streams.settings import Settings

    app = create_app(Settings())
    obs.install(app, ["engagement.posts"])
    sensors, timers = len(app.sensors._sensors), len(app._app_tasks)
    obs.install(app, ["engagement.posts"])  # a second call must not register pages or timers twice
    assert (len(app.sensors._sensors), len(app._app_tasks)) == (sensors, timers)
    # faust's Prometheus sensor costs as much per event as faust itself (docs/performance.md)
    assert not isinstance(app.monitor, PrometheusMonitor)
    assert "blogpulse_rebalances" in {f.name for f in REGISTRY.collect()}


@pytest.mark.parametrize("metric", [obs.CONSUMER_LAG, obs.TOP_POST_EVENTS])
def test_labels_are_bounded(metric):
    assert set(metric._labelnames) <= {"topic", "partition", "rank"}
