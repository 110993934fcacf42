"""bench/: the synthetic events follow the wire contract, the done signal adds up, the table shows
ratios to the baseline (no timing here: benchmarks measure, tests check the measuring code)."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import orjson
import pytest

from bench import report, scenarios
from bench.events import generate
from schemas.topic_names import INPUT_TOPICS

SITE = "bench-unit.example"


def test_events_follow_the_wire_contract():
    events = generate(2000, 50, SITE, seed=3)
    assert len(events) == 2000
    seen_ids = set()
    ordinals: dict[int, int] = Counter()
    for ev in events:
        value = orjson.loads(ev.value)
        assert ev.key == f"{SITE}/{value['post_id']}".encode()
        assert ev.topic == INPUT_TOPICS[value["type"]]
        raw = (
            f"{value['site']}/{value['post_id']}/{value['comment_id']}/{value['type']}/"
            f"{value['status']}/{value['event_time']}"
        )
        assert value["event_id"] == hashlib.sha256(raw.encode()).hexdigest()[:32]
        assert value["event_id"] not in seen_ids
        seen_ids.add(value["event_id"])
        assert len(value["author_key"]) == 64 and int(value["author_key"], 16) >= 0
        assert value["event_time"].endswith("Z") and value["status"] == "approved"
        ordinals[ev.post_id] += 1
        assert ev.ordinal == ordinals[ev.post_id] == value["comment_id"]
        if value["type"] == "reply":
            assert 0 < value["parent_id"] < value["comment_id"]  # parent published earlier
        else:
            assert value["parent_id"] == 0
    assert set(ordinals) == set(range(1, 51))  # every post gets entries
    types = Counter(orjson.loads(ev.value)["type"] for ev in events)
    assert 0.15 < types["reply"] / len(events) < 0.35


def test_events_decode_with_the_schemas_decoder_when_present():
    wire = pytest.importorskip("schemas.wire")
    for ev in generate(200, 10, SITE):
        wire.decode_event(ev.value)  # raises InvalidEvent on any contract violation


def test_generate_is_deterministic_and_rejects_empty_input():
    assert [e.value for e in generate(300, 7, SITE)] == [e.value for e in generate(300, 7, SITE)]
    with pytest.raises(ValueError):
        generate(0, 10, SITE)


def test_quantile_is_nearest_rank():
    values = [float(i) for i in range(1, 101)]
    assert scenarios._quantile(values, 0.5) == 50.0
    assert scenarios._quantile(values, 0.99) == 99.0
    assert scenarios._quantile(values, 1.0) == 100.0
    assert scenarios._quantile([7.0], 0.95) == 7.0


def test_stages_split_each_event_at_the_output_topic():
    events = generate(4, 1, SITE, seed=1)  # one post, ordinals 1..4
    sent = [10.0, 10.0, 11.0, 11.0]
    on_topic = {events[0].post_id: [10.1, 10.2, 11.3]}  # the 4th never reached the topic
    in_db = {events[0].post_id: [10.5, 10.5, 11.4, 12.0]}
    out = scenarios._stages(events, sent, on_topic, in_db)
    assert out["stage_events"] == 3
    assert out["to_topic_max_ms"] == pytest.approx(300.0)
    assert out["to_topic_p50_ms"] == pytest.approx(200.0)
    assert out["topic_to_db_max_ms"] == pytest.approx(400.0)
    assert out["topic_to_db_p50_ms"] == pytest.approx(300.0)


def test_table_gives_ratios_and_marks_failures():
    results = {
        "shapes": [
            {
                "shape": "a",
                "entries": 1000,
                "posts": 10,
                "store": "memory",
                "baseline": {"events": 1000, "events_per_s": 40_000.0},
                "floor": {"events": 1000, "events_per_s": 20_000.0, "cpu_us_per_event": 40.0},
                "quix": {
                    "events": 1000,
                    "events_per_s": 5_000.0,
                    "peak_rss_mb": 90.0,
                    "output_messages": 4000,
                    "changelog": {"bytes_per_event": 300.0},
                },
                "e2e": {
                    "events": 1000,
                    "posts": 10,
                    "events_per_s": 1_000.0,
                    "peak_rss_mb": [150.2],
                    "cpu_us_per_event": {"worker": 60.0, "sink": 20.0},
                },
            }
        ],
        "e2e_2_workers": {"events": 1000, "posts": 10, "events_per_s": None},
        "latency": {
            "rate": 1000,
            "p50_ms": 120.0,
            "p95_ms": 300.0,
            "p99_ms": 450.0,
            "max_ms": 700.0,
        },
        "changelog_pair": [
            {"entries": 1000, "posts": 1, "bytes_per_event": 5000.0},
            {"entries": 1000, "posts": 50, "bytes_per_event": 500.0},
        ],
    }
    rows = {
        re.sub(r" \([^)]*\)", "", figure): (value, ratio)
        for figure, value, ratio in report.rows(results)
    }
    assert rows["shape a: baseline, aiokafka + orjson read"] == ("40,000 events/s", "1.00")
    assert rows["shape a: blogpulse to the database, 1 worker"] == ("1,000 events/s", "0.0250")
    assert rows["shape a: blogpulse / Quix"] == ("0.20", "-")
    assert rows["shape a: blogpulse / faust floor"] == ("0.0500", "-")
    assert rows["blogpulse to the database, 2 workers"] == ("failed", "-")
    assert rows["shape a: CPU µs per event, blogpulse worker / its sink"] == ("60 / 20", "-")
    assert rows["shape a: faust floor CPU / blogpulse worker+sink CPU per event"] == ("0.50", "-")
    assert rows["latency publish -> database p99 at 1,000 events/s, 1 worker"] == ("450 ms", "-")
    assert rows["changelog bytes per event: big posts / small posts"] == ("10.0x", "-")
    assert rows["shape a: Quix changelog bytes per event / output messages per event"] == (
        "300 B / 4.00",
        "-",
    )
    assert rows["peak RSS, blogpulse worker, memory store, shape a"] == ("150 MB", "-")
    assert rows["peak RSS, Quix app, shape a"] == ("90 MB", "-")
    text = report.table(results)
    assert text.splitlines()[0].startswith("| figure")
    assert len({len(line) for line in text.splitlines()}) == 1  # aligned columns


def test_run_flags_are_checked(capsys):
    from bench import run

    args = run.parse_args(["--events", "1000", "--skip", "changelog,scaling,quix"])
    assert args.events == 1000 and args.skip == {"changelog", "scaling", "quix"}
    assert args.shapes == ["a", "b"]
    assert run.parse_args(["--shapes", "b", "--memory"]).shapes == ["b", "c"]
    with pytest.raises(SystemExit):
        run.parse_args(["--shapes", "z"])
    assert "unknown shape(s) z" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run.parse_args(["--skip", "warp"])
    assert "unknown phase(s) warp" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run.parse_args(["--events", "0"])
    assert "--events must be > 0" in capsys.readouterr().err
