"""`blogpulse db upgrade` and `blogpulse stats` on a SQLite file (BLOGPULSE_DB)."""

from __future__ import annotations

import orjson
import pytest

from sinks import db
from sinks.upsert import write_batch
from streams.cli import main
from tests.unit.test_sink_upsert import post, thread, window


@pytest.fixture
def db_url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'stats.db'}"
    monkeypatch.setenv("BLOGPULSE_DB", url)
    return url


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_stats_before_migration_says_what_to_run(db_url, capsys):
    code, out, err = run(capsys, "stats")
    assert code == 1 and "blogpulse db upgrade" in err and "Traceback" not in err


def test_upgrade_then_empty_database(db_url, capsys):
    code, out, _ = run(capsys, "db", "upgrade")
    assert code == 0 and "upgraded" in out
    code, out, _ = run(capsys, "db", "upgrade")
    assert code == 0 and "already at revision" in out
    code, out, _ = run(capsys, "stats")
    assert code == 0 and "no posts yet" in out
    code, out, _ = run(capsys, "stats", "--json")
    assert orjson.loads(out) == {"posts": 0, "threads": 0, "windows": 0, "top_posts": []}


def test_stats_table_json_and_one_post(db_url, capsys):
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    write_batch(
        engine,
        [
            post("blog.example", 7, 4, replies=2),
            post("other", 1, 1),
            thread("blog.example", 7, 70, 3),
            thread("blog.example", 7, 71, 1),
            window("blog.example", 7, "2012-03-01T00:00:00Z", 4, size="day"),
        ],
    )
    engine.dispose()
    code, out, _ = run(capsys, "stats")
    assert code == 0 and "2 posts, 2 threads, 1 windows" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("site"))
    assert lines[header + 2].split()[:4] == ["blog.example", "7", "4", "2"]  # most comments first

    code, out, _ = run(capsys, "stats", "--json", "--limit", "1")
    data = orjson.loads(out)
    assert (data["posts"], len(data["top_posts"])) == (2, 1)
    assert data["top_posts"][0]["first_activity"] == "2012-03-01T10:00:00Z"

    code, out, _ = run(capsys, "stats", "--post", "blog.example/7")
    assert code == 0 and "threads: 2" in out and "day windows: 1" in out
    code, out, _ = run(capsys, "stats", "--post", "blog.example/7", "--json")
    detail = orjson.loads(out)
    assert [t["root_comment_id"] for t in detail["threads"]] == [70, 71]
    assert detail["post"]["comments"] == 4 and detail["windows"][0]["comments"] == 4


@pytest.mark.parametrize(
    "argv, message",
    [
        (("stats", "--post", "nosuchformat"), "--post"),
        (("stats", "--post", "blog/0"), "--post"),
        (("stats", "--limit", "0"), "--limit"),
    ],
)
def test_bad_arguments_get_a_clear_error(db_url, capsys, argv, message):
    db.upgrade(db_url)
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err


def test_unknown_post(db_url, capsys):
    db.upgrade(db_url)
    code, _, err = run(capsys, "stats", "--post", "blog/5")
    assert code == 1 and "no post blog/5" in err


def test_bad_database_url(monkeypatch, capsys):
    monkeypatch.setenv("BLOGPULSE_DB", "not a url")
    code, _, err = run(capsys, "stats")
    assert code == 2 and "BLOGPULSE_DB" in err
