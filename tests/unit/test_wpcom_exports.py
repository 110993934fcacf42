"""WordPress.com exports (xmlns:wp="https://wordpress.org/export/1.2/"): `blogpulse events` reads
every comment of them, and what it prints equals a count made independently from the XML with
ElementTree (tests/fixtures/wpcom_wxr.py), entry by entry; the engine's per-post counts of those
events equal the independent count of visible entries."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from schemas import times
from schemas.wire import decode_event
from streams import engine
from tests.fixtures.wpcom_wxr import generate, independent_count

REPO = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "BLOGPULSE_AUTHOR_SECRET": "wpcom-test",
    "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
}
POST_FIELDS = (
    "comments",
    "replies",
    "pingbacks",
    "trackbacks",
    "threads",
    "participants",
    "max_depth",
)


def events_command(path: Path) -> tuple[list[dict], str]:
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "events", str(path)],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    return [decode_event(line) for line in result.stdout.splitlines()], result.stderr.decode()


@pytest.fixture(scope="module", params=[1, 2, 3], ids=lambda s: f"file{s}")
def export(request, tmp_path_factory) -> Path:
    """One file of a WordPress.com export (a large blog's export comes as several files)."""
    path = (
        tmp_path_factory.mktemp("wpcom") / f"tomjerry.wordpress.2024-05-01.{request.param:03}.xml"
    )
    path.write_text(generate(seed=request.param), encoding="utf-8")
    return path


def test_events_equal_the_independent_count(export):
    events, stderr = events_command(export)
    want, _ = independent_count(export.read_bytes())
    got = {
        (
            e["post_id"],
            e["comment_id"],
            e["type"],
            e["kind"],
            e["status"],
            e["parent_id"],
            e["event_time"],
        )
        for e in events
    }
    assert len(events) == len(got)  # one event per comment, none twice
    assert Counter(e[2] for e in got) == Counter(e[2] for e in want)
    assert got == want
    assert {e["site"] for e in events} == {
        "tomjerry.wordpress.com"
    }  # base_blog_url, not wordpress.com
    assert min(Counter(e[2] for e in want).values()) >= 5  # comments, replies and pings all present
    # the one undated comment is counted, and the warning says at which time
    assert stderr.count("warning: ") == 1 and "counted at its post's date" in stderr, stderr
    assert "@" not in stderr


def test_engine_counts_equal_the_independent_visible_count(export):
    events, _ = events_command(export)
    _, want = independent_count(export.read_bytes())
    states: dict[int, dict] = defaultdict(engine.new_state)
    for e in events:
        t = times.epoch
        engine.merge_event(
            states[e["post_id"]],
            engine.EventFields(
                e["event_id"],
                e["type"],
                e["comment_id"],
                e["parent_id"],
                e["post_author"],
                e["author_key"],
                e["kind"],
                t(e["event_time"]),
                t(e["post_time"]) if e["post_time"] else None,
                e["status"],
            ),
        )
    got = {
        pid: {
            k: engine.derive(s, engine.now_of(s), orphan_timeout=3600).post[k] for k in POST_FIELDS
        }
        for pid, s in states.items()
    }
    assert got == want
    assert max(p["max_depth"] for p in want.values()) >= 2  # nested replies, not only top level


def test_post_author_replies_are_recognised(export):
    events, _ = events_command(export)
    text = export.read_text()
    by_author = text.count("<wp:comment_user_id>9021")  # user ids of the two blog authors
    assert by_author > 0
    assert sum(e["post_author"] for e in events) == by_author
