"""`blogpulse replay`: event-time ordering, pacing, progress and the command's errors (no services)."""

from __future__ import annotations

import io
import random

import pytest

from streams.cli import main
from streams.replay import Progress, event_seconds, in_event_time_order, paced


def ev(n: int, t: str) -> dict:
    return {"n": n, "event_time": t, "type": "comment"}


def test_sorted_by_event_time_and_stable_for_equal_times():
    events = [
        ev(0, "2012-03-01T10:00:05Z"),
        ev(1, "2012-03-01T10:00:00Z"),
        ev(2, "2012-03-01T10:00:05Z"),
        ev(3, "2011-12-31T23:59:59Z"),
        ev(4, "2012-03-01T10:00:00Z"),
    ]
    order = [e["n"] for _, e in in_event_time_order(events)]
    assert order == [3, 1, 4, 0, 2]  # equal times keep file order (1 before 4, 0 before 2)


def test_stable_sort_on_many_random_events_matches_a_reference():
    rng = random.Random(3)
    events = [
        ev(i, f"2012-03-0{rng.randint(1, 3)}T1{rng.randint(0, 2)}:00:00Z") for i in range(5000)
    ]
    got = [e["n"] for _, e in in_event_time_order(events)]
    # reference: sort by (time text, position); the fixed-width ...Z format sorts like the time
    want = [e["n"] for e in sorted(events, key=lambda e: (e["event_time"], e["n"]))]
    assert got == want


def test_event_seconds_reads_z_and_offsets():
    assert event_seconds(ev(0, "1970-01-01T00:01:00Z")) == 60.0
    assert event_seconds(ev(0, "1970-01-01T01:01:00+01:00")) == 60.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_speed_divides_event_time_gaps():
    fake = FakeClock()
    timed = [(0.0, "a"), (10.0, "b"), (10.0, "c"), (70.0, "d")]
    released = []
    for e in paced(timed, speed=10, sleep=fake.sleep, clock=fake.clock):
        released.append((e, fake.now - 1000.0))
    assert released == [("a", 0.0), ("b", 1.0), ("c", 1.0), ("d", 7.0)]


def test_slow_sends_do_not_accumulate_drift():
    fake = FakeClock()
    timed = [(float(i), i) for i in range(5)]
    times = []
    for _ in paced(timed, speed=1, sleep=fake.sleep, clock=fake.clock):
        times.append(fake.now - 1000.0)
        fake.now += 0.4  # sending takes 0.4 s: the next wait is shorter, not 1 s
    assert times == pytest.approx([0, 1, 2, 3, 4])


def test_as_fast_as_possible_never_sleeps():
    fake = FakeClock()
    out = list(paced([(0.0, 1), (1e6, 2)], speed=None, sleep=fake.sleep, clock=fake.clock))
    assert out == [1, 2] and fake.sleeps == []


def test_speed_must_be_positive():
    with pytest.raises(ValueError, match="speed"):
        list(paced([(0.0, 1)], speed=0))


def test_progress_lines_are_rate_limited_and_final():
    fake = FakeClock()
    buf = io.StringIO()
    progress = Progress(4, out=buf, every=1.0, clock=fake.clock)
    for _e in progress.track([ev(i, "2012-03-01T10:00:00Z") for i in range(4)]):
        fake.now += 0.4
    progress.line()
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("replay: 1/4 events (25%)")
    assert len(lines) == 3  # events 1 and 4 (0.4 s apart each: one more line after 1 s), final
    assert lines[-1].startswith("replay: 4/4 events (100%)")


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", "f", "--speed", "0"],
        ["replay", "f", "--speed", "x"],
        ["replay", "f", "--speed", "2", "--as-fast-as-possible"],
    ],
)
def test_bad_replay_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_unreadable_or_broken_file_exits_1_without_traceback(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "missing.jsonl")]) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"schema_version": 1, "type": "comment"\n')
    assert main(["replay", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "missing.jsonl" in err and "bad.jsonl" in err and "Traceback" not in err
