"""Every metric the dashboard and the alerts use is recorded by a real worker: after the sample set
(and one bad event) ran through the worker and its sink into the database, each has a non-empty
series on the worker's /metrics, and publish -> database latency was observed for written rows."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO
from tests.integration.worker_proc import running_worker, wait_until
from tests.unit.test_observability_queries import (
    alert_expressions,
    dashboard_expressions,
    metric_names_in,
)

SAMPLE = REPO / "schemas" / "sample" / "sample-export.xml"
# Written by Prometheus itself, not by the worker.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def _series(text: str) -> dict[str, float]:
    """Sample name -> summed value, over every label set."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def test_dashboard_and_alert_metrics_have_series_after_the_sample(broker, unique, tmp_path: Path):
    from kafka import KafkaProducer

    from streams.publisher import ensure_topics, publish_file
    from streams.settings import Settings

    site = f"metrics-{unique}.example"
    db_url = f"sqlite:///{tmp_path / 'sink.db'}"
    with running_worker(broker, f"it-metrics-{unique}", db_url, tmp_path / "worker.log") as worker:
        settings = Settings(broker=broker)
        ensure_topics(settings)
        assert publish_file(SAMPLE, site=site, settings=settings) == 24
        producer = KafkaProducer(bootstrap_servers=broker)  # a bad event: the dead-letter metrics
        producer.send("blog.comments", key=f"{site}/42".encode(), value=b"{bad").get(30)
        producer.close()
        engine = sa.create_engine(db_url)

        def written():
            with engine.connect() as conn:
                n = conn.execute(
                    sa.text("select comments from post_engagement where site = :s"), {"s": site}
                ).scalar()
            return n if n == 10 else None

        wait_until(written, 120, "the sample's post row", worker)
        engine.dispose()

        def recorded():
            series = _series(worker.metrics())
            return series if series.get("blogpulse_end_to_end_latency_seconds_count") else None

        series = wait_until(recorded, 30, "end-to-end latency on /metrics", worker)
    assert series["blogpulse_end_to_end_latency_seconds_count"] >= 1
    assert series["blogpulse_dead_letters_total"] >= 1
    used = {
        name
        for _, expr in alert_expressions() + dashboard_expressions()
        for name in metric_names_in(expr)
    } - PROMETHEUS_SERIES
    assert len(used) > 10
    missing = sorted(name for name in used if name not in series)
    assert not missing, f"no series on a real worker's /metrics for {missing}"
