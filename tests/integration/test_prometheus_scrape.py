"""A real Prometheus scrapes a real `blogpulse worker`, and every alert-rule and dashboard expression
evaluates on it without error (Prometheus HTTP API, /api/v1/query).

The worker gets its own app id, web port and SQLite database; it is registered with the local
Prometheus (deploy/local/prometheus) by a file_sd targets file that is removed at the end."""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.worker_proc import running_worker
from tests.unit.test_observability_queries import alert_expressions, dashboard_expressions

pytestmark = pytest.mark.integration

STATE_DIR = Path(os.environ.get("BLOGPULSE_STATE_DIR", REPO / ".local-services"))
TARGETS_DIR = STATE_DIR / "prometheus" / "etc" / "targets"


def query(prometheus_url: str, expr: str) -> dict:
    """Evaluate one instant query; returns Prometheus's JSON answer (errors included)."""
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 400/422: bad expression, the body says why
        return json.loads(exc.read())


def _events(site: str) -> list[dict]:
    from schemas.wire import make_event

    key = "ab" * 32
    events = [
        make_event(
            type="comment",
            site=site,
            post_id=1,
            comment_id=c,
            author_key=key,
            event_time=f"2024-05-01T10:0{c}:00Z",
        )
        for c in (1, 2, 3)
    ]
    events.append(
        make_event(
            type="reply",
            site=site,
            post_id=1,
            comment_id=4,
            parent_id=1,
            author_key=key,
            post_author=True,
            event_time="2024-05-01T10:05:00Z",
        )
    )
    events.append(
        make_event(
            type="pingback",
            site=site,
            post_id=2,
            comment_id=5,
            source_url="https://example.org/a",
            event_time="2024-05-01T11:00:00Z",
        )
    )
    return events


@pytest.fixture
def scraped_worker(broker, prometheus_url, unique, tmp_path: Path):
    """A running worker that Prometheus scrapes; yields the label selector of its series."""
    if not TARGETS_DIR.is_dir():
        pytest.fail(
            f"{TARGETS_DIR} missing: start Prometheus with deploy/local/up prometheus",
            pytrace=False,
        )
    log_path = tmp_path / "worker.log"
    target = TARGETS_DIR / f"it-{unique}.json"
    with running_worker(
        broker, f"it-prom-{unique}", f"sqlite:///{tmp_path / 'sink.db'}", log_path
    ) as worker:
        try:
            tmp = target.with_suffix(
                ".tmp"
            )  # written whole, then renamed: file_sd never reads half
            tmp.write_text(
                json.dumps(
                    [
                        {
                            "targets": [f"127.0.0.1:{worker.port}"],
                            "labels": {"env": "test", "test_run": unique},
                        }
                    ]
                )
            )
            tmp.rename(target)
            yield f'test_run="{unique}"', worker.proc, log_path
        finally:
            target.unlink(missing_ok=True)


def _wait_for_series(
    prometheus_url: str, exprs: list[str], proc, log: Path, timeout: float = 180
) -> None:
    """Until every expression returns at least one series (so Prometheus scraped the worker after
    it processed the events)."""
    missing = exprs
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"worker exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        missing = [e for e in exprs if not query(prometheus_url, e).get("data", {}).get("result")]
        if not missing:
            return
        time.sleep(2)
    pytest.fail(
        f"Prometheus has no series for {missing} after {timeout}s:\n{log.read_text()[-2000:]}"
    )


def test_every_alert_and_dashboard_expression_evaluates_on_a_scraped_worker(
    broker, prometheus_url, unique, scraped_worker
):
    from streams.publisher import Publisher
    from streams.settings import Settings

    selector, proc, log = scraped_worker
    site = f"it-prom-{unique}.example"
    with Publisher(Settings(broker=broker)) as publisher:
        assert sum(publisher.publish(_events(site)).values()) == 5

    # Scraped after it consumed events (ours, or older history a new consumer group reads first:
    # on a dev machine that can be a long backlog, so no wait on our own five), with the lag and
    # activity gauges and the sink's gauge (served from its process through the worker) present.
    _wait_for_series(
        prometheus_url,
        [
            f"up{{{selector}}} == 1",
            f"sum(blogpulse_events_consumed_total{{{selector}}}) > 0",
            f"blogpulse_consumer_lag{{{selector}}}",
            f"blogpulse_top_post_events{{{selector}}}",
            f"blogpulse_sink_up{{{selector}}}",
            # rate() needs two scrapes of the counter: wait for the second before the checks below.
            f"rate(blogpulse_events_consumed_total{{{selector}}}[1m])",
        ],
        proc,
        log,
    )

    expressions = alert_expressions() + dashboard_expressions()
    assert len(expressions) > 20
    failures = {}
    for where, expr in expressions:
        answer = query(prometheus_url, expr)
        if answer.get("status") != "success":
            failures[where] = f"{answer.get('errorType')}: {answer.get('error')}"
        elif answer.get("warnings"):
            failures[where] = f"warnings: {answer['warnings']}"
    assert not failures, failures

    # Not vacuous: the dashboard's headline queries have data while this worker is scraped.
    for expr in (
        'sum(up{job="blogpulse"})',
        "sum(blogpulse_consumer_lag)",
        "sum by (type, outcome) (rate(blogpulse_events_consumed_total[1m]))",
    ):
        assert query(prometheus_url, expr)["data"]["result"], expr
