"""bench/: the synthetic events follow the wire contract, the done signal adds up, the table shows
ratios to the baseline (no timing here: benchmarks measure, tests check the measuring code)."""
from __future__ import annotations

import hashlib
from collections import Counter

import orjson
import pytest

from bench import report, scenarios
from bench.events import generate
from streams.config import INPUT_TOPICS

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
        raw = (f"{value['site']}/{value['post_id']}/{value['comment_id']}/{value['type']}/"
               f"{value['status']}/{value['event_time']}")
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


def test_table_gives_ratio_to_baseline_and_marks_failures():
    results = {
        "baseline": {"events": 1000, "events_per_s": 40_000.0},
        "e2e_1_worker": {"events": 1000, "posts": 10, "events_per_s": 10_000.0},
        "e2e_2_workers": {"events": 1000, "posts": 10, "events_per_s": None},
        "latency": {"rate": 1000, "p50_ms": 120.0, "p95_ms": 300.0, "p99_ms": 450.0,
                    "max_ms": 700.0},
        "memory": [{"store": "memory", "events": 1000, "posts": 10, "peak_rss_mb": 150.2}],
    }
    rows = {figure.split(" (")[0]: (value, ratio) for figure, value, ratio in report.rows(results)}
    assert rows["baseline: aiokafka + orjson read"] == ("40,000 events/s", "1.00")
    assert rows["blogpulse publish -> PostgreSQL, 1 worker"] == ("10,000 events/s", "0.25")
    assert rows["blogpulse publish -> PostgreSQL, 2 workers"] == ("failed", "-")
    assert rows["latency publish -> PostgreSQL p99 at 1,000 events/s, 1 worker"] == ("450 ms", "-")
    assert rows["worker peak RSS, memory store"] == ("150 MB", "-")
    text = report.table(results)
    assert text.splitlines()[0].startswith("| figure")
    assert len({len(line) for line in text.splitlines()}) == 1  # aligned columns


def test_run_flags_are_checked(capsys):
    from bench import run

    args = run.parse_args(["--events", "1000", "--skip", "rocksdb,scaling"])
    assert args.events == 1000 and args.skip == {"rocksdb", "scaling"}
    with pytest.raises(SystemExit):
        run.parse_args(["--skip", "warp"])
    assert "unknown phase(s) warp" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run.parse_args(["--events", "0"])
    assert "--events must be > 0" in capsys.readouterr().err
