"""The sink's Prometheus metrics (prometheus-client default REGISTRY, served on the worker's
/metrics with streams.metrics). Labels are bounded: table names and error kinds only."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SINK_UP = Gauge(
    "blogpulse_sink_up",
    "1 while the sink's last database write succeeded, 0 while it is retrying after a failure.",
)
SINK_ERRORS = Counter(
    "blogpulse_sink_errors_total",
    "Sink failures. kind: database (a write failed, retried), invalid (an output message that "
    "could not be decoded or checked, skipped).",
    ["kind"],
)
for _kind in ("database", "invalid"):  # series at 0 from the start, so rate() and alerts see them
    SINK_ERRORS.labels(kind=_kind)
BATCH_SIZE = Histogram(
    "blogpulse_sink_batch_size",
    "Rows written per sink batch (after collapsing to the newest version per key).",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
BATCH_SECONDS = Histogram(
    "blogpulse_sink_batch_duration_seconds",
    "Time of one successful sink database transaction (retries not included).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ROWS_WRITTEN = Counter(
    "blogpulse_sink_rows_written_total",
    "Upserts and deletes sent to the database, per table (a version-guarded statement that changed "
    "nothing still counts).",
    ["table"],
)
