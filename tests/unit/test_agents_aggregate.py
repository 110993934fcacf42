"""The aggregation agent through faust's agent.test_context(): events in, table state and output
messages out. The output/DLQ/tick topics are replaced by recorders (no broker in unit tests)."""
from __future__ import annotations

import asyncio
import hashlib
import itertools
from types import SimpleNamespace

import orjson
import pytest
from faust.types import Message

from streams import agents, engine
from streams.config import TICK_TOPIC
from streams.state_cache import StateCache
from streams.tables import post_state, waiting_replies

SITE = "unit.example"
POST = 7
KEY = f"{SITE}/{POST}"


class Recorder:
    """Stands in for a faust topic: keeps (key, value, headers) of every send."""

    def __init__(self):
        self.sent = []

    async def send(self, key=None, value=None, headers=None):
        self.sent.append((key, value, headers))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def event(cid, *, type="comment", parent=0, status="approved", minute=0, author="ann",
          post_author=False, kind=None, site=SITE, post_id=POST):
    et = f"2012-03-01T10:{minute:02d}:00Z"
    eid = hashlib.sha256(f"{site}/{post_id}/{cid}/{type}/{status}/{et}".encode()).hexdigest()[:32]
    return {
        "schema_version": 1, "event_id": eid, "type": type, "site": site, "post_id": post_id,
        "comment_id": cid, "parent_id": parent, "post_author": post_author,
        "author_key": "" if type == "moderation" else hashlib.sha256(author.encode()).hexdigest(),
        "kind": kind or ("pingback" if type == "pingback" else "comment"),
        "source_url": None, "event_time": et, "post_time": "2012-03-01T09:00:00Z", "status": status,
    }


def mod(cid, status, minute):
    return event(cid, type="moderation", status=status, minute=minute)


@pytest.fixture
def outputs(monkeypatch):
    recorders = {name: Recorder() for name in ("posts", "threads", "windows", "dlq", "tick")}
    monkeypatch.setattr(agents, "output_topics",
                        {n: recorders[n] for n in ("posts", "threads", "windows")})
    monkeypatch.setattr(agents, "dlq_topic", recorders["dlq"])
    monkeypatch.setattr(agents, "tick_topic", recorders["tick"])
    monkeypatch.setattr(agents, "_last_emitted", StateCache(10**9))
    monkeypatch.setattr(agents, "BATCH_WITHIN", 0.05)  # flush batches quickly in tests
    # Table writes send to the changelog through the producer: record them instead.
    recorders["changelog"] = []
    for table in (post_state, waiting_replies):
        monkeypatch.setattr(table, "send_changelog", _changelog_recorder(table, recorders["changelog"]))
    post_state.data.clear()
    waiting_replies.data.clear()
    yield recorders
    post_state.data.clear()
    waiting_replies.data.clear()


def _changelog_recorder(table, log):
    def send_changelog(partition, key, value, key_serializer=None, value_serializer=None):
        assert partition is None  # use_partitioner: the producer picks it from the key bytes
        # ... which must be the input key's bytes, so the state lands in the changelog partition
        # numbered like the post's input partition (streams/tables.py, co-partitioning).
        wire_key, _ = table.changelog_topic.prepare_key(key, key_serializer or table.key_serializer)
        assert wire_key == key and isinstance(key, bytes)
        log.append((table.name, key, value))
        return SimpleNamespace(message=SimpleNamespace(
            partition=agents._partition_of(key.decode(), agents._settings.partitions)))
    return send_changelog


@pytest.fixture
async def agent(outputs):
    agents.app.flow_control.resume()
    async with agents.aggregate.test_context() as a:
        yield a


async def feed(agent, events, key=KEY, topic="blog.comments"):
    """Put raw messages; return once the agent has processed them all (batch yields)."""
    before = len(agent.results)
    for i, value in enumerate(events):
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        k = key.encode() if isinstance(key, str) else key
        agent.to_message = _message_on(agent, topic)
        await agent.put(raw, key=k, wait=False)
    # the agent yields the size of each processed batch
    for _ in range(250):
        if sum(agent.results[i] for i in range(before, len(agent.results))) >= len(events):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the agent did not process the events within 5 s")


def _message_on(agent, topic):
    def to_message(key, value, *, partition=None, offset=0, timestamp=None, timestamp_type=0,
                   headers=None):
        return Message(topic=topic, partition=partition or 0, offset=offset, timestamp=0.0,
                       timestamp_type=0, headers=headers, key=key, value=value, checksum=b"",
                       serialized_key_size=0, serialized_value_size=0,
                       generation_id=agent.app.consumer_generation_id)
    return to_message


def latest(recorder, key):
    values = [orjson.loads(v) for k, v, _ in recorder.sent if k == key]
    return values[-1] if values else None


def sent_count(outputs):
    return sum(len(r.sent) for n, r in outputs.items() if n != "changelog") + len(outputs["changelog"])


def state_of(key=KEY):
    return engine.loads_state(post_state.get(key.encode()))


async def test_counts_visible_entries_and_emits_versioned_post(agent, outputs):
    await feed(agent, [event(1), event(2, author="bob"), event(3, type="reply", parent=1, minute=5,
                                                               author="owner", post_author=True),
                       event(4, type="pingback"), event(5, type="pingback", kind="trackback"),
                       event(6, status="spam")])
    post = latest(outputs["posts"], KEY)
    assert {k: post[k] for k in ("site", "post_id", "comments", "replies", "pingbacks",
                                 "trackbacks", "threads", "participants", "post_author_replies",
                                 "max_depth", "waiting_replies")} == {
        "site": SITE, "post_id": POST, "comments": 2, "replies": 1, "pingbacks": 1,
        "trackbacks": 1, "threads": 2, "participants": 3, "post_author_replies": 1,
        "max_depth": 1, "waiting_replies": 0}
    assert post["version"] == state_of()["v"] >= 1
    thread = latest(outputs["threads"], f"{KEY}/1")
    assert thread["root_comment_id"] == 1 and thread["replies"] == 1
    assert thread["post_author_answered"] is True and thread["deleted"] is False
    window = latest(outputs["windows"], f"{KEY}/hour/2012-03-01T10:00:00Z")
    assert window["comments"] == 2 and window["replies"] == 1 and window["pingbacks"] == 1


async def test_moderation_flips_out_and_in_with_growing_versions(agent, outputs):
    await feed(agent, [event(1), event(2, type="reply", parent=1, minute=1)])
    v1 = latest(outputs["posts"], KEY)["version"]
    await feed(agent, [mod(1, "spam", 10)])
    post = latest(outputs["posts"], KEY)
    assert (post["comments"], post["replies"], post["threads"]) == (0, 0, 0)
    assert latest(outputs["threads"], f"{KEY}/1")["deleted"] is True
    assert post["version"] > v1
    await feed(agent, [mod(1, "approved", 20)])
    post2 = latest(outputs["posts"], KEY)
    assert (post2["comments"], post2["replies"]) == (1, 1) and post2["version"] > post["version"]


async def test_replies_ten_levels_deep_arriving_before_parents(agent, outputs):
    chain = [event(i, type="reply", parent=i - 1, minute=i, author=f"p{i}") for i in range(2, 12)]
    await feed(agent, list(reversed(chain)))
    waiting = latest(outputs["posts"], KEY)
    assert waiting["waiting_replies"] == 10 and waiting["replies"] == 0
    assert waiting_replies.get(KEY.encode()) is not None
    await feed(agent, [event(1)])
    post = latest(outputs["posts"], KEY)
    assert (post["replies"], post["max_depth"], post["threads"], post["waiting_replies"]) == (
        10, 10, 1, 0)
    assert latest(outputs["threads"], f"{KEY}/1")["depth"] == 10
    assert waiting_replies.get(KEY.encode()) is None


async def test_duplicates_change_nothing_and_emit_nothing(agent, outputs):
    events = [event(1), event(2, type="reply", parent=1, minute=3)]
    await feed(agent, events)
    sent = sent_count(outputs)
    snapshot = post_state.get(KEY.encode())
    await feed(agent, events + events)
    assert sent_count(outputs) == sent
    assert post_state.get(KEY.encode()) == snapshot


async def test_arrival_order_does_not_change_the_result(outputs):
    events = [event(1), event(2, type="reply", parent=1, minute=2), mod(1, "hold", 3),
              mod(1, "approved", 4), event(3, type="reply", parent=2, minute=5, post_author=True)]
    finals = set()
    for order in itertools.islice(itertools.permutations(events), 0, 120, 17):
        post_state.data.clear()
        agents._last_emitted.clear()
        outputs["posts"].sent.clear()
        agents.app.flow_control.resume()
        async with agents.aggregate.test_context() as a:
            for e in order:  # one event per batch: worst case for ordering
                await feed(a, [e])
        post = latest(outputs["posts"], KEY)
        post.pop("version")
        finals.add(orjson.dumps(post, option=orjson.OPT_SORT_KEYS))
    assert len(finals) == 1
    assert orjson.loads(finals.pop())["replies"] == 2


async def test_bad_events_go_to_dead_letter_topic_and_processing_continues(agent, outputs):
    await feed(agent, [b"\xff\xfe not utf-8", b"{not json", orjson.dumps({"type": "comment"}),
                       event(1)])
    await feed(agent, [event(2, post_id=8)])  # key says post 7, event says post 8
    dlq = outputs["dlq"].sent
    assert len(dlq) == 4
    key, value, headers = dlq[0]
    assert value == b"\xff\xfe not utf-8" and key == KEY.encode()
    names = dict(headers)
    assert set(names) == {"blogpulse.reason", "blogpulse.source_topic",
                          "blogpulse.source_partition", "blogpulse.source_offset"}
    assert names["blogpulse.source_topic"] == b"blog.comments"
    assert dict(dlq[3][2])["blogpulse.reason"].startswith(b"key:")
    assert latest(outputs["posts"], KEY)["comments"] == 1


async def test_orphan_timeout_on_worker_clock_through_a_tick(agent, outputs, monkeypatch):
    monkeypatch.setattr(agents, "ORPHAN_TIMEOUT", 600.0)
    mine = agents._partition_of(KEY, agents._settings.partitions)
    monkeypatch.setattr(agents, "_active_partitions", lambda: {mine})
    await feed(agent, [event(2, type="reply", parent=99, minute=0)])
    assert latest(outputs["posts"], KEY)["waiting_replies"] == 1
    t0 = engine.parse_time("2012-03-01T10:00:00Z")
    assert await agents.orphan_tick(now=t0 + 599) == 0
    assert agents.metrics.REPLIES_WAITING._value.get() == 1
    monkeypatch.setattr(agents, "_active_partitions", lambda: {mine + 1})  # standby copy only
    assert await agents.orphan_tick(now=t0 + 600) == 0
    assert agents.metrics.REPLIES_WAITING._value.get() == 0
    monkeypatch.setattr(agents, "_active_partitions", lambda: {mine})
    assert await agents.orphan_tick(now=t0 + 600) == 1
    key, value, _ = outputs["tick"].sent[0]
    assert key == KEY
    await feed(agent, [value], key=KEY, topic=TICK_TOPIC)
    post = latest(outputs["posts"], KEY)
    assert (post["waiting_replies"], post["threads"], post["replies"]) == (0, 1, 1)
    assert waiting_replies.get(KEY.encode()) is None
    assert await agents.orphan_tick(now=t0 + 10_000) == 0
    assert agents.metrics.REPLIES_WAITING._value.get() == 0


def test_reason_codes_are_bounded():
    assert agents.reason_code("post_id") == "post_id"
    assert agents.reason_code("json") == "json"
    assert agents.reason_code("anything <user@example.org>") == "other"
    assert agents.reason_code(None) == "other"


async def test_same_outputs_whether_the_cache_holds_every_post_or_none(outputs, monkeypatch):
    """The decoded-state cache only saves work: with a budget too small for any post every batch
    decodes and derives from the table, and emits the same aggregates."""
    batches = [[event(1), event(2, type="reply", parent=1, minute=1)],
               [event(3, minute=2), event(4, type="reply", parent=2, minute=3, author="bob")],
               [mod(1, "spam", 4)], [event(5, type="reply", parent=9, minute=5)],
               [event(9, minute=6), event(6, type="pingback", minute=7)]]
    emitted = {}
    for budget in (10**9, 0):
        monkeypatch.setattr(agents, "_last_emitted", StateCache(budget))
        post_state.data.clear()
        waiting_replies.data.clear()
        for recorder in outputs.values():
            getattr(recorder, "sent", recorder).clear()
        agents.app.flow_control.resume()
        async with agents.aggregate.test_context() as a:
            for batch in batches:
                await feed(a, batch)
        # Per key in emission order (a batch may emit different keys in another order).
        emitted[budget] = {name: sorted(((k, {f: v for f, v in orjson.loads(value).items()
                                              if f != "version"})
                                         for k, value, _ in outputs[name].sent), key=lambda kv: kv[0])
                           for name in ("posts", "threads", "windows")}
        assert len(agents._last_emitted) == (1 if budget else 0)
    assert emitted[10**9] == emitted[0]
    assert emitted[0]["threads"]  # something was emitted
