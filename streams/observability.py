"""Worker observability that no single agent owns: the /metrics page, consumer lag per partition,
end-to-end latency (publish -> database commit), rebalances and a bounded "hottest posts" view.

`install(app)` is called once by the worker before it starts. Every metric lives in
prometheus-client's default registry, which faust's sensor serves at /metrics on the web port.

Labels stay bounded: topic and partition come from a fixed set of blogpulse topics, rank is 1..10.
No post, site or person is ever a label value (docs/observability.md)."""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
import weakref
from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from schemas.topic_names import INPUT_TOPICS, TICK_TOPIC
from streams.faust_compat import committed_offsets

log = logging.getLogger(__name__)

FAUST_PREFIX = "faust"  # fixed, not the app id (tests vary it): dashboards query faust_*
TOP_N = 10
LAG_INTERVAL = 5.0  # seconds between consumer-lag refreshes (the scrape interval)
ACTIVITY_WINDOW = 60.0  # seconds of consumed input counted per post for the top-N gauge


def lag_topics(
    output_topics: Iterable[str], inputs: Iterable[str] = (*INPUT_TOPICS.values(), TICK_TOPIC)
) -> frozenset[str]:
    """Topics whose lag matters to users: what the aggregation agent and the sink read. Changelog
    topics are left out (their lag is recovery progress, and their names carry the app id)."""
    return frozenset({*inputs, *output_topics})


CONSUMER_LAG = Gauge(
    "blogpulse_consumer_lag",
    "Messages not yet committed by this worker: partition end offset minus committed offset "
    "(or position when nothing was committed yet), for each assigned blogpulse topic partition.",
    ["topic", "partition"],
)
END_TO_END_LATENCY = Histogram(
    "blogpulse_end_to_end_latency_seconds",
    "Time from an input event's publication (Kafka timestamp) to the database commit of the "
    "aggregate rows it changed (observed by the sink).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
)
TOP_POST_EVENTS = Gauge(
    "blogpulse_top_post_events",
    "Input events consumed in the last completed activity window (60 s) by the rank-th most "
    "active post of this worker (rank 1..10; 0 when fewer posts were active). Which post it is "
    "is deliberately not exported: use the database for that.",
    ["rank"],
)
ACTIVE_POSTS = Gauge(
    "blogpulse_active_posts",
    "Distinct posts with at least one input event consumed by this worker in the last completed "
    "activity window (60 s).",
)


def observe_end_to_end(seconds: float) -> None:
    """Record one publish -> database-commit latency. Called by the sink after each commit, once
    per input event it can time (negative values from clock skew count as 0)."""
    END_TO_END_LATENCY.observe(max(0.0, float(seconds)))


# --- consumer lag ---------------------------------------------------------------------------------


def lag_of(end_offset: int | None, committed: int | None) -> int | None:
    """Kafka lag of one partition: messages between the committed offset (next offset to read)
    and the end offset. None when either is unknown."""
    if end_offset is None or committed is None:
        return None
    return max(0, int(end_offset) - int(committed))


class ConsumerLagCollector:
    """Refreshes blogpulse_consumer_lag from a faust consumer's assignment.

    End offsets come from `consumer.highwaters()` (a ListOffsets request: exact, also for partitions
    that nothing was fetched from yet); committed offsets from the consumer's own record of what it
    committed, falling back to its position before the first commit."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = frozenset(topics)
        self._exported: set[tuple[str, str]] = set()

    async def refresh(self, consumer: Any) -> dict[tuple[str, int], int]:
        tps = sorted(
            (tp for tp in consumer.assignment() if tp.topic in self.topics),
            key=lambda tp: (tp.topic, tp.partition),
        )
        lags: dict[tuple[str, int], int] = {}
        if tps:
            ends: Mapping[Any, int] = await consumer.highwaters(*tps)
            committed_map = committed_offsets(consumer)
            for tp in tps:
                committed = committed_map.get(tp)
                if committed is None:
                    committed = await consumer.position(tp)
                lag = lag_of(ends.get(tp), committed)
                if lag is not None:
                    lags[(tp.topic, tp.partition)] = lag
        self._export(lags)
        return lags

    def _export(self, lags: Mapping[tuple[str, int], int]) -> None:
        current = {(topic, str(partition)) for topic, partition in lags}
        for labels in self._exported - current:  # revoked partitions: drop their series
            try:
                CONSUMER_LAG.remove(*labels)
            except KeyError:
                pass
        for (topic, partition), lag in lags.items():
            CONSUMER_LAG.labels(topic=topic, partition=str(partition)).set(lag)
        self._exported = current


# --- top-N post activity --------------------------------------------------------------------------


def top_counts(counts: Iterable[int], n: int = TOP_N) -> list[int]:
    """The n largest counts, largest first, padded with zeros to length n."""
    top = heapq.nlargest(n, counts)
    return top + [0] * (n - len(top))


class PostActivity:
    """Counts consumed input events per post key for one window, then publishes only the counts of
    the top N posts by rank. Memory is bounded by the posts active in one window; the keys are
    dropped at every roll and never leave the process."""

    def __init__(
        self, window: float = ACTIVITY_WINDOW, n: int = TOP_N, clock=time.monotonic
    ) -> None:
        self.window = window
        self.n = n
        self._clock = clock
        self._counts: Tally = Tally()
        self._started = clock()
        self.publish([])

    def record(self, post_key: bytes | str | None, events: int = 1) -> None:
        if post_key is not None:
            self._counts[post_key] += events

    def maybe_roll(self) -> bool:
        """Publish and reset when the window has passed. Returns True when it rolled."""
        now = self._clock()
        if now - self._started < self.window:
            return False
        self.publish(self._counts.values())
        self._counts = Tally()
        self._started = now
        return True

    def publish(self, counts: Iterable[int]) -> None:
        counts = list(counts)
        for rank, value in enumerate(top_counts(counts, self.n), start=1):
            TOP_POST_EVENTS.labels(rank=str(rank)).set(value)
        ACTIVE_POSTS.set(len(counts))


# --- wiring ---------------------------------------------------------------------------------------

REBALANCES = Counter(
    "blogpulse_rebalances_total",
    "Consumer-group rebalances this worker took part in (partitions revoked).",
)
# Input events per post in the current activity window (recorded per batch by the agent).
activity = PostActivity()


def serve_metrics(app: Any) -> None:
    """/metrics on the worker's web port: prometheus-client's default registry. faust's own
    Prometheus sensor is not installed: it updates ~10 metrics for every event, which cost as
    much per event as faust's whole message path (docs/performance.md)."""
    from aiohttp.web import Response
    from faust import web
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    @app.page("/metrics")
    async def metrics_page(self: web.View, request: web.Request) -> Response:
        # as faust's own handler: the content type carries a charset, which aiohttp wants in a
        # header rather than in content_type
        return Response(
            body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


_installed: weakref.WeakSet = weakref.WeakSet()  # apps install() has wired


def install(
    app: Any,
    output_topics: Iterable[str],
    inputs: Iterable[str] = (*INPUT_TOPICS.values(), TICK_TOPIC),
) -> None:
    """Call once, before the worker starts: /metrics, the lag and activity timer, rebalances."""
    if app in _installed:
        return
    _installed.add(app)
    serve_metrics(app)

    @app.on_partitions_revoked.connect
    async def count_rebalance(app_: Any, revoked: Any, **kwargs: Any) -> None:
        REBALANCES.inc()

    lag = ConsumerLagCollector(lag_topics(output_topics, inputs))

    @app.timer(interval=LAG_INTERVAL)
    async def refresh_observability() -> None:
        activity.maybe_roll()
        try:
            await asyncio.wait_for(lag.refresh(app.consumer), timeout=LAG_INTERVAL)
        except Exception as exc:  # noqa: BLE001 - lag is best effort; never stop the worker
            # Before the first assignment, during a rebalance or a broker outage: keep the last
            # values and say why at debug level (an outage already shows in other metrics).
            log.debug("consumer lag not refreshed: %r", exc)
