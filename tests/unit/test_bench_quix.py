"""bench/quix_app.py's aggregation (no broker, no Quix runtime: a dict stands in for Quix's
per-key State) and bench/shapes.py's scaling: small histories counted by hand."""

from __future__ import annotations

import orjson
import pytest

from bench import quix_app, shapes
from bench.events import generate
from schemas.wire import make_event

SITE = "quix-unit.example"


class DictState:
    """Quix's State for one message key: get/set/exists on string keys, JSON-serialized values
    (so the aggregation cannot depend on object identity)."""

    def __init__(self):
        self.data: dict[str, bytes] = {}

    def get(self, key, default=None):
        raw = self.data.get(key)
        return default if raw is None else orjson.loads(raw)

    def set(self, key, value):
        self.data[key] = orjson.dumps(value)

    def exists(self, key):
        return key in self.data


def ev(cid, typ="comment", parent=0, status="approved", minute=0, kind="comment", post=1):
    return make_event(
        type=typ,
        site=SITE,
        post_id=post,
        comment_id=cid,
        parent_id=parent,
        post_author=False,
        author_key="" if typ == "moderation" else "a" * 64,
        kind=kind,
        event_time=f"2024-01-01T0{minute // 60}:{minute % 60:02d}:00Z",
        post_time=None,
        status=status,
    )


def run(events):
    """Latest row per output key after feeding `events` through aggregate(), and the state of the
    first post. Quix scopes State by message key ("<site>/<post_id>"): one DictState per post."""
    states: dict[str, DictState] = {}
    latest: dict[str, dict] = {}
    for e in events:
        state = states.setdefault(f"{e['site']}/{e['post_id']}", DictState())
        for row in quix_app.aggregate(e, state):
            latest[quix_app.output_key(row)] = row
    return latest, next(iter(states.values()))


def test_counts_a_history_with_a_duplicate_and_a_moderation_flip():
    c1, c2 = ev(1), ev(2, minute=70)
    r3 = ev(3, "reply", 1, minute=71)
    r4 = ev(4, "reply", 3, minute=72)  # reply to a reply: thread of 1, resolved through 3
    ping = ev(5, "pingback", kind="trackback", minute=73)
    spam = ev(3, "moderation", status="spam", minute=80)
    back = ev(3, "moderation", status="approved", minute=90)
    latest, _ = run([c1, c2, r3, r3, r4, ping, spam])  # r3 twice: the duplicate changes nothing
    post = latest[f"{SITE}/1"]
    assert (post["comments"], post["replies"], post["pingbacks"], post["trackbacks"]) == (
        2,
        1,
        0,
        1,
    )
    assert latest[f"{SITE}/1/1"]["replies"] == 1  # r4 only: r3 is spam
    assert latest[f"{SITE}/1/2"] == {
        "site": SITE,
        "post_id": 1,
        "root_comment_id": 2,
        "replies": 0,
        "deleted": False,
    }
    assert f"{SITE}/1/5" not in latest  # a ping is never a thread root
    hour1 = latest[f"{SITE}/1/hour/2024-01-01T01:00:00Z"]
    assert (hour1["comments"], hour1["replies"], hour1["trackbacks"]) == (1, 1, 1)
    assert latest[f"{SITE}/1/hour/2024-01-01T00:00:00Z"]["comments"] == 1
    day = latest[f"{SITE}/1/day/2024-01-01T00:00:00Z"]
    assert (day["comments"], day["replies"], day["trackbacks"]) == (2, 1, 1)

    latest, _ = run([c1, c2, r3, r3, r4, ping, spam, back, spam])  # spam again: older, no effect
    assert latest[f"{SITE}/1"]["replies"] == 2
    assert latest[f"{SITE}/1/1"]["replies"] == 2


def test_order_within_a_post_does_not_matter_for_status():
    c1 = ev(1)
    hold = ev(1, "moderation", status="hold", minute=5)
    late_first, _ = run([hold, c1])  # moderation before the creation it changes
    assert late_first == {}  # the entry never became visible: nothing to count
    in_order, _ = run([c1, hold])
    assert in_order[f"{SITE}/1"]["comments"] == 0
    assert in_order[f"{SITE}/1/1"]["deleted"] is True
    assert in_order[f"{SITE}/1/hour/2024-01-01T00:00:00Z"]["deleted"] is True


def test_state_uses_one_key_per_entry_and_no_post_blob():
    _, state = run([ev(1), ev(2, "reply", 1, minute=1), ev(3, "reply", 2, minute=2)])
    keys = set(state.data)
    assert {"e/1", "e/2", "e/3", "p", "t/1"} <= keys
    assert sum(k.startswith("d/") for k in keys) == 3  # one dedupe key per event id
    assert orjson.loads(state.data["e/3"])["root"] == 1
    assert max(len(v) for v in state.data.values()) < 200  # small values, none grows with the post


def test_benchmark_events_sum_to_their_entries():
    latest, _ = run([orjson.loads(e.value) for e in generate(3000, 20, SITE)])
    posts = [v for k, v in latest.items() if quix_app.output_kind(v) == "posts"]
    assert len(posts) == 20 and sum(p["comments"] + p["replies"] for p in posts) == 3000
    hours = [v for v in latest.values() if v.get("window") == "hour"]
    assert sum(h["comments"] + h["replies"] for h in hours) == 3000


def test_progress_counts_only_the_offset_range(tmp_path):
    path = tmp_path / "progress"
    p = quix_app.Progress(str(path), {"t:0": 10, "t:1": 0}, {"t:0": 12, "t:1": 1}, every=2)
    assert p.expected == 3
    for topic, part, off in (("t", 0, 10), ("t", 0, 11), ("t", 0, 12), ("u", 0, 0), ("t", 1, 0)):
        p(topic, part, off)
    assert [int(line.split()[1]) for line in path.read_text().splitlines()] == [1, 2, 3]


@pytest.mark.parametrize("events, want", [(None, (200_000, 2_000)), (20_000, (20_000, 200))])
def test_shapes_scale_keeping_entries_per_post(events, want):
    s = shapes.scaled(shapes.SHAPES["a"], events)
    assert (s.entries, s.posts) == want
    assert shapes.scaled(shapes.SHAPES["b"], 20_000).posts == 10
