"""The product's own Prometheus metrics (prometheus-client default REGISTRY; served with faust's
metrics on the worker web port at /metrics). Labels are bounded: no post, site or person labels."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "blogpulse_events_consumed_total",
    "Input events consumed by the aggregation agent.",
    # type: comment|reply|pingback|moderation|invalid; outcome: applied|unchanged|dead_letter
    ["type", "outcome"],
)
DEAD_LETTERS = Counter(
    "blogpulse_dead_letters_total",
    "Events sent to the dead-letter topic, by reason code (see streams.agents.reason_code).",
    ["reason"],
)
REPLIES_WAITING = Gauge(
    "blogpulse_replies_waiting",
    "Replies on this worker's partitions whose parent has not arrived and whose orphan timeout "
    "has not passed.",
)
EVENT_LAG = Histogram(
    "blogpulse_event_lag_seconds",
    "Event time to processing time. Replays of old history land in the top buckets.",
    buckets=(
        0.1,
        0.5,
        1,
        2.5,
        5,
        10,
        30,
        60,
        300,
        900,
        3600,
        6 * 3600,
        86400,
        7 * 86400,
        30 * 86400,
        365 * 86400,
        5 * 365 * 86400,
        20 * 365 * 86400,
    ),
)
AGGREGATES_EMITTED = Counter(
    "blogpulse_aggregates_emitted_total",
    "Aggregate changes written to the output topics.",
    ["aggregate"],  # posts|threads|windows
)
BATCH_SECONDS = Histogram(
    "blogpulse_batch_duration_seconds",
    "Time to process one batch of input events: decode, and when the batch ends a flush, merge, "
    "derive, and the delivery of outputs and changelog records.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TICKS_SENT = Counter(
    "blogpulse_orphan_ticks_sent_total",
    "Worker-clock ticks sent for posts whose waiting replies reached the orphan timeout (none "
    "while the post's input partition has more than a batch of events not fetched yet).",
)
