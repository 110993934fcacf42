"""The database panels of deploy/grafana/dashboards/blogpulse-posts.json, run on the real
PostgreSQL against the real sink tables: rows are written through the sink's own write path
(sinks.upsert.write_batch) with times around now, and every panel's SQL must return exactly the rows
it promises. The panels use no Grafana macros ($__timeFilter, ...), so the SQL Grafana sends is the
SQL this test runs."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from sinks.upsert import write_batch
from tests.integration.sink_pg import pg_schema_engine
from tests.unit.test_sink_upsert import post, thread, window

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy/grafana/dashboards/blogpulse-posts.json"
DATASOURCE = REPO / "deploy/grafana/provisioning/datasources/postgres.yml"


def _now_not_near_an_hour_boundary() -> datetime:
    # The panels compare with the database's now(), seconds after the rows were made: starting in
    # the last minute of an hour could move the current hour under the test's feet.
    now = datetime.now(UTC)
    if now.minute == 59:
        time.sleep(61 - now.second)
        now = datetime.now(UTC)
    return now


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def panel_sql() -> dict[str, str]:
    panels = [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]
    return {p["title"]: p["targets"][0]["rawSql"] for p in panels}


def sink_rows() -> list:
    """Four posts of site s; each output message as the worker emits it. Times are taken when the
    rows are written, not when the module is imported: a suite that runs for minutes before this
    test could otherwise cross an hour boundary in between."""
    NOW = _now_not_near_an_hour_boundary()
    HOUR = NOW.replace(minute=0, second=0, microsecond=0)
    msgs = [
        # post 1: busy this hour (5) and 3 hours ago (50: outside the last hour, inside the day)
        window("s", 1, iso(HOUR), 1, comments=3, replies=2),
        window("s", 1, iso(HOUR - timedelta(hours=3)), 1, comments=40, replies=10),
        # post 2: 4 in the previous hour (overlaps the last 60 minutes), 1 two days ago
        window(
            "s",
            2,
            iso(HOUR - timedelta(hours=1)),
            1,
            comments=1,
            replies=1,
            pingbacks=1,
            trackbacks=1,
        ),
        window("s", 2, iso(HOUR - timedelta(days=2)), 1, comments=1),
        # post 3: only long ago; and a day window, which the hour-window panels must not add in
        window("s", 3, iso(HOUR - timedelta(hours=30)), 1, comments=9),
        window("s", 3, iso(HOUR.replace(hour=0)), 1, size="day", comments=99),
        # post 4: a window that was deleted (its entries were hidden): gone, not counted
        window("s", 4, iso(HOUR), 1, comments=7),
        window("s", 4, iso(HOUR), 2, deleted=True),
        # threads
        thread(
            "s",
            1,
            10,
            3,
            replies=3,
            participants=3,
            post_author_answered=True,
            last_activity=iso(NOW - timedelta(minutes=10)),
        ),
        thread(
            "s",
            1,
            11,
            1,
            replies=1,
            participants=2,
            post_author_answered=False,
            last_activity=iso(NOW - timedelta(minutes=20)),
        ),
        thread(
            "s",
            2,
            20,
            8,
            replies=8,
            participants=5,
            post_author_answered=False,
            last_activity=iso(NOW - timedelta(hours=5)),
        ),
        thread(
            "s",
            3,
            30,
            1,
            replies=0,
            participants=1,
            post_author_answered=False,
            last_activity=iso(NOW - timedelta(days=3)),
        ),
        thread("s", 3, 31, 2, deleted=True),
        # posts: waiting replies on 2 and 3
        post("s", 1, 5, waiting_replies=0, last_activity=iso(NOW - timedelta(minutes=10))),
        post("s", 2, 5, waiting_replies=2, last_activity=iso(NOW - timedelta(hours=5))),
        post("s", 3, 5, waiting_replies=1, last_activity=iso(NOW - timedelta(days=3))),
    ]
    return msgs


EXPECTED = {
    "Most active posts: last hour": [("s/1", 5, 3, 2, 0), ("s/2", 4, 1, 1, 2)],
    "Most active posts: last day": [("s/1", 55, 43, 12, 0), ("s/2", 4, 1, 1, 2)],
    "Most active threads: last hour": [("s/1", 10, 3, 3, 1, True), ("s/1", 11, 1, 2, 1, False)],
    "Most active threads: last day": [
        ("s/2", 20, 8, 5, 1, False),
        ("s/1", 10, 3, 3, 1, True),
        ("s/1", 11, 1, 2, 1, False),
    ],
    "Unanswered threads": [("s/1", 11, 1, 2), ("s/2", 20, 8, 5), ("s/3", 30, 0, 1)],
    "Posts with replies waiting": [("s/2", 2), ("s/3", 1)],
}


@pytest.fixture(scope="module")
def loaded(pg_url):
    with pg_schema_engine(pg_url) as engine:
        write_batch(engine, sink_rows())
        yield engine


def test_every_database_panel_has_expected_rows():
    assert set(panel_sql()) == set(EXPECTED)


@pytest.mark.parametrize("title", sorted(EXPECTED))
def test_panel_query_returns_the_expected_rows(loaded, title):
    sql = panel_sql()[title]
    assert (
        "$__" not in sql and "${" not in sql
    )  # no Grafana macro or variable: run as Grafana sends it
    with loaded.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql)).all()]
    width = len(EXPECTED[title][0])
    assert [r[:width] for r in rows] == EXPECTED[title]


def test_panels_read_the_current_views_through_the_provisioned_datasource():
    source = yaml.safe_load(DATASOURCE.read_text())["datasources"][0]
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
    pg_env = compose["postgres"]["environment"]
    assert source["type"] == "postgres" and source["url"] == "postgres:5432"
    assert (
        source["user"],
        source["jsonData"]["database"],
        source["secureJsonData"]["password"],
    ) == (pg_env["POSTGRES_USER"], pg_env["POSTGRES_DB"], pg_env["POSTGRES_PASSWORD"])
    for p in json.loads(DASHBOARD.read_text())["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == source["uid"] == p["targets"][0]["datasource"]["uid"]
        froms = {
            w
            for w in p["targets"][0]["rawSql"].split()
            if w.endswith(("_engagement", "_window", "_current"))
        }
        assert froms and all(f.endswith("_current") for f in froms), (p["title"], froms)
    mounts = dict(v.split(":")[:2] for v in compose["grafana"]["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
