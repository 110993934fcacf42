"""The aggregation agent through faust's agent.test_context(): events in, state, changelog and
output records out. The producer and the DLQ/tick topics are replaced by recorders, and loading a
partition reads the recorded changelog back (no broker in unit tests). Every test runs with each
store (the `outputs` fixture)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time

import orjson
import pytest
from aiokafka.structs import RecordMetadata, TopicPartition
from faust.types import Message

from schemas import times
from schemas.topic_names import BASE_OUTPUT_TOPICS, DLQ_TOPIC, TICK_TOPIC
from streams import agents, engine
from streams.app import create_app
from streams.rocks_store import RocksStore
from streams.settings import Settings
from streams.state_cache import StateCache

if agents.app is None:  # what the worker does (streams/worker.py build()), once per process
    agents.register_agents(create_app(Settings()), Settings())

SITE = "unit.example"
POST = 7
KEY = f"{SITE}/{POST}"


def event(
    cid,
    *,
    type="comment",
    parent=0,
    status="approved",
    minute=0,
    author="ann",
    post_author=False,
    kind=None,
    site=SITE,
    post_id=POST,
):
    et = f"2012-03-01T10:{minute:02d}:00Z"
    eid = hashlib.sha256(f"{site}/{post_id}/{cid}/{type}/{status}/{et}".encode()).hexdigest()[:32]
    return {
        "schema_version": 1,
        "event_id": eid,
        "type": type,
        "site": site,
        "post_id": post_id,
        "comment_id": cid,
        "parent_id": parent,
        "post_author": post_author,
        "author_key": "" if type == "moderation" else hashlib.sha256(author.encode()).hexdigest(),
        "kind": kind or ("pingback" if type == "pingback" else "comment"),
        "source_url": None,
        "event_time": et,
        "post_time": "2012-03-01T09:00:00Z",
        "status": status,
    }


def mod(cid, status, minute):
    return event(cid, type="moderation", status=status, minute=minute)


class RecordingProducer:
    """Stands in for the app's aiokafka producer (streams/kafka_batches.py uses create_batch and
    send_batch, the ticks send): keeps (topic, partition, key, value, timestamp) of every record,
    and the headers of each by its index in `records`."""

    def __init__(self):
        self.records = []
        self.headers = {}

    def create_batch(self):
        return _Batch()

    async def send_batch(self, batch, topic, partition):
        base = sum(1 for r in self.records if r[:2] == (topic, partition))
        for (key, value, ts), headers in zip(batch.items, batch.headers):
            self.headers[len(self.records)] = headers
            self.records.append((topic, partition, key, value, ts))
        return _done(topic, partition, base)

    async def send(self, topic, value, *, key, partition):
        base = sum(1 for r in self.records if r[:2] == (topic, partition))
        self.records.append((topic, partition, key, value, None))
        return _done(topic, partition, base)


def _done(topic, partition, offset):
    """A delivered future as aiokafka's: RecordMetadata with the (base) offset."""
    fut = asyncio.get_running_loop().create_future()
    tp = TopicPartition(topic, partition)
    fut.set_result(RecordMetadata(topic, partition, tp, offset, None, 0, 0))
    return fut


class _Batch:
    def __init__(self):
        self.items = []
        self.headers = []

    def append(self, *, key, value, timestamp, headers=()):
        self.items.append((key, value, timestamp))
        self.headers.append(list(headers))
        return True

    def record_count(self):
        return len(self.items)

    def close(self):
        pass


class DeadLetterView:
    """The dead-letter records as (key bytes, value bytes, headers)."""

    def __init__(self, producer):
        self.producer = producer

    @property
    def sent(self):
        return [
            (k, v, self.producer.headers[i])
            for i, (t, _, k, v, _) in enumerate(self.producer.records)
            if t == DLQ_TOPIC
        ]


class TopicView:
    """The records of one output topic, as (key str, value bytes, None) like a topic recorder."""

    def __init__(self, producer, topic):
        self.producer, self.topic = producer, topic

    @property
    def sent(self):
        return [(k.decode(), v, None) for t, _, k, v, _ in self.producer.records if t == self.topic]


@pytest.fixture(params=["memory", "rocksdb"])
def outputs(monkeypatch, request, tmp_path):
    """Parametrized over the store; the RocksDB one holds 3 entries decoded, so that nearly every
    post is spilled before its flush and decoded from its database again."""
    if request.param == "rocksdb":
        rocks = RocksStore(
            agents.store.partitions, tmp_path, held_entries=3, idle_seconds=60, post_entries=0
        )
        monkeypatch.setattr(agents, "store", rocks)
    producer = RecordingProducer()
    recorders = {
        name: TopicView(producer, BASE_OUTPUT_TOPICS[name])
        for name in ("posts", "threads", "windows")
    }
    recorders.update(
        dlq=DeadLetterView(producer), tick=TopicView(producer, TICK_TOPIC), producer=producer
    )
    monkeypatch.setattr(agents, "_derived", StateCache(10**9))
    monkeypatch.setattr(agents, "BATCH_WITHIN", 0.05)  # flush batches quickly in tests

    async def the_producer(app):
        return producer

    async def load_from_records(store, topic, partitions, config):
        """The changelog is what the producer recorded (offsets as its send_batch gives them): a
        restart reads it back from where the store resumes, as streams/post_store.load does."""
        for partition in partitions:
            log = [(k, v) for t, p, k, v, _ in producer.records if (t, p) == (topic, partition)]
            for key, value in log[store.resume_offset(partition, len(log)) :]:
                store.apply(key, value, partition)
            store.loaded_to(partition, len(log))
        store.loaded.update(partitions)
        return 0

    monkeypatch.setattr(agents, "aiokafka_producer", the_producer)
    monkeypatch.setattr(agents, "load", load_from_records)
    agents.store.clear()
    agents.pending.__init__()
    yield recorders
    agents.store.clear()
    agents.pending.__init__()
    if request.param == "rocksdb":
        rocks.close()


def changelog(outputs):
    return [(k, v) for t, _, k, v, _ in outputs["producer"].records if t == agents.CHANGELOG_TOPIC]


def restart():
    """What a new worker process has: nothing in memory."""
    agents.store.clear()
    agents._derived.clear()


@pytest.fixture
async def agent(outputs):
    agents.app.flow_control.resume()
    async with agents.aggregate.test_context() as a:
        yield a


async def feed(agent, events, key=KEY, topic="blog.comments", timestamp=None):
    """Put raw messages; return once the agent has processed them all (batch yields)."""
    before = len(agent.results)
    for _i, value in enumerate(events):
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        k = key.encode() if isinstance(key, str) else key
        agent.to_message = _message_on(agent, topic, timestamp)
        await agent.put(raw, key=k, wait=False)
    # the agent yields the size of each processed batch
    for _ in range(250):
        if sum(agent.results[i] for i in range(before, len(agent.results))) >= len(events):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the agent did not process the events within 5 s")


def _message_on(agent, topic, timestamp=None):
    def to_message(key, value, *, partition=None, offset=0, timestamp_type=0, headers=None, **_):
        return Message(
            topic=topic,
            partition=agents.store.partition_of(key.decode()),
            offset=offset,
            timestamp=time.time() if timestamp is None else timestamp,
            timestamp_type=0,
            headers=headers,
            key=key,
            value=value,
            checksum=b"",
            serialized_key_size=0,
            serialized_value_size=0,
            generation_id=agent.app.consumer_generation_id,
        )

    return to_message


def latest(recorder, key):
    values = [orjson.loads(v) for k, v, _ in recorder.sent if k == key]
    return values[-1] if values else None


def sent_count(outputs):
    return len(outputs["producer"].records)


def state_of(key=KEY):
    return agents.store.states[key]


async def test_counts_visible_entries_and_emits_versioned_post(agent, outputs):
    await feed(
        agent,
        [
            event(1),
            event(2, author="bob"),
            event(3, type="reply", parent=1, minute=5, author="owner", post_author=True),
            event(4, type="pingback"),
            event(5, type="pingback", kind="trackback"),
            event(6, status="spam"),
        ],
    )
    post = latest(outputs["posts"], KEY)
    assert {
        k: post[k]
        for k in (
            "site",
            "post_id",
            "comments",
            "replies",
            "pingbacks",
            "trackbacks",
            "threads",
            "participants",
            "post_author_replies",
            "max_depth",
            "waiting_replies",
        )
    } == {
        "site": SITE,
        "post_id": POST,
        "comments": 2,
        "replies": 1,
        "pingbacks": 1,
        "trackbacks": 1,
        "threads": 2,
        "participants": 3,
        "post_author_replies": 1,
        "max_depth": 1,
        "waiting_replies": 0,
    }
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
    assert agents.store.waiting[KEY][1] == 10
    await feed(agent, [event(1)])
    post = latest(outputs["posts"], KEY)
    assert (post["replies"], post["max_depth"], post["threads"], post["waiting_replies"]) == (
        10,
        10,
        1,
        0,
    )
    assert latest(outputs["threads"], f"{KEY}/1")["depth"] == 10
    assert KEY not in agents.store.waiting


async def test_duplicates_change_nothing_and_emit_nothing(agent, outputs):
    events = [event(1), event(2, type="reply", parent=1, minute=3)]
    await feed(agent, events)
    sent = sent_count(outputs)
    snapshot = engine.dumps_state(state_of())
    await feed(agent, events + events)
    assert sent_count(outputs) == sent
    assert engine.dumps_state(state_of()) == snapshot


async def test_arrival_order_does_not_change_the_result(outputs):
    events = [
        event(1),
        event(2, type="reply", parent=1, minute=2),
        mod(1, "hold", 3),
        mod(1, "approved", 4),
        event(3, type="reply", parent=2, minute=5, post_author=True),
    ]
    finals = set()
    for order in itertools.islice(itertools.permutations(events), 0, 120, 17):
        restart()
        outputs["producer"].records.clear()
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
    await feed(
        agent, [b"\xff\xfe not utf-8", b"{not json", orjson.dumps({"type": "comment"}), event(1)]
    )
    await feed(agent, [event(2, post_id=8)])  # key says post 7, event says post 8
    dlq = outputs["dlq"].sent
    assert len(dlq) == 4
    key, value, headers = dlq[0]
    assert value == b"\xff\xfe not utf-8" and key == KEY.encode()
    names = dict(headers)
    assert set(names) == {
        "blogpulse.reason",
        "blogpulse.source_topic",
        "blogpulse.source_partition",
        "blogpulse.source_offset",
    }
    assert names["blogpulse.source_topic"] == b"blog.comments"
    assert dict(dlq[3][2])["blogpulse.reason"].startswith(b"key:")
    assert latest(outputs["posts"], KEY)["comments"] == 1


async def test_orphan_timeout_on_worker_clock_through_a_tick(agent, outputs, monkeypatch):
    monkeypatch.setattr(agents, "ORPHAN_TIMEOUT", 600.0)
    mine = agents.store.partition_of(KEY)
    monkeypatch.setattr(agents, "_active_partitions", lambda: {mine})
    await feed(agent, [event(2, type="reply", parent=99, minute=0)])
    assert latest(outputs["posts"], KEY)["waiting_replies"] == 1
    t0 = times.epoch("2012-03-01T10:00:00Z")
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
    assert KEY not in agents.store.waiting
    assert await agents.orphan_tick(now=t0 + 10_000) == 0
    assert agents.metrics.REPLIES_WAITING._value.get() == 0


async def test_orphan_ticks_wait_while_the_partition_has_a_backlog(agent, outputs, monkeypatch):
    monkeypatch.setattr(agents, "ORPHAN_TIMEOUT", 600.0)
    mine = agents.store.partition_of(KEY)
    monkeypatch.setattr(agents, "_active_partitions", lambda: {mine})
    await feed(agent, [event(2, type="reply", parent=99, minute=0)])
    t0 = times.epoch("2012-03-01T10:00:00Z")

    async def behind():
        return {mine}

    monkeypatch.setattr(agents, "_partitions_behind", behind)
    assert await agents.orphan_tick(now=t0 + 10_000) == 0
    assert agents.metrics.REPLIES_WAITING._value.get() == 1  # still counted as waiting

    async def caught_up():
        return set()

    monkeypatch.setattr(agents, "_partitions_behind", caught_up)
    assert await agents.orphan_tick(now=t0 + 10_000) == 1


class _Consumer:
    """highwater/position of a faust consumer, per TopicPartition (a revoked one raises)."""

    def __init__(self, offsets):
        self.offsets = offsets

    def assignment(self):
        return set(self.offsets)

    def highwater(self, tp):
        return self.offsets[tp][0]

    async def position(self, tp):
        if self.offsets[tp][1] is None:
            raise AssertionError("Partition is not assigned")
        return self.offsets[tp][1]


async def test_partitions_behind_are_those_with_a_backlog_of_unfetched_input(agent, monkeypatch):
    hold = agents.TICK_HOLD_BACKLOG
    tp = TopicPartition
    consumer = _Consumer(
        {
            tp("blog.comments", 0): (hold + 10, 10),  # exactly the limit: not behind
            tp("blog.replies", 0): (hold + 10, 9),  # one more: partition 0 is behind
            tp("blog.comments", 1): (5, 5),
            tp("blog.comments", 2): (hold * 2, None),  # revoked while asked: skipped
            tp(TICK_TOPIC, 3): (hold * 2, 0),  # ticks themselves never hold ticks
            tp("blog.comments", 4): (None, 0),  # nothing fetched yet
        }
    )
    monkeypatch.setattr(type(agents.app), "consumer", property(lambda self: consumer))
    assert await agents._partitions_behind() == {0}


def test_reason_codes_are_bounded():
    assert agents.reason_code("post_id") == "post_id"
    assert agents.reason_code("json") == "json"
    assert agents.reason_code("anything <user@example.org>") == "other"
    assert agents.reason_code(None) == "other"


async def test_same_outputs_whether_the_cache_holds_every_post_or_none(outputs, monkeypatch):
    """The derivation cache only saves work: with a budget too small for any post every batch
    derives the post in full, and emits the same aggregates. Compared after each fed batch (the
    latest value of every key): how a fed batch is cut into the agent's batches depends on the
    machine's timing, so the sequence of emissions within one may differ, its outcome may not."""
    batches = [
        [event(1), event(2, type="reply", parent=1, minute=1)],
        [event(3, minute=2), event(4, type="reply", parent=2, minute=3, author="bob")],
        [mod(1, "spam", 4)],
        [event(5, type="reply", parent=9, minute=5)],
        [event(9, minute=6), event(6, type="pingback", minute=7)],
    ]
    after_each: dict[int, list[dict]] = {}
    for budget in (10**9, 0):
        monkeypatch.setattr(agents, "_derived", StateCache(budget))
        restart()
        outputs["producer"].records.clear()
        agents.app.flow_control.resume()
        after_each[budget] = []
        async with agents.aggregate.test_context() as a:
            for batch in batches:
                await feed(a, batch)
                after_each[budget].append(
                    {
                        name: {
                            k: {f: v for f, v in orjson.loads(value).items() if f != "version"}
                            for k, value, _ in outputs[name].sent  # later values replace earlier
                        }
                        for name in ("posts", "threads", "windows")
                    }
                )
        assert len(agents._derived) == (1 if budget else 0)
    assert after_each[10**9] == after_each[0]
    assert after_each[0][-1]["threads"]  # something was emitted


async def test_a_restart_rebuilds_the_state_from_the_changelog(outputs):
    """The changelog holds everything: a new process loads it and continues as if nothing
    happened (same state, and a late moderation of an early entry is applied to it)."""
    agents.app.flow_control.resume()
    async with agents.aggregate.test_context() as a:
        await feed(
            a,
            [
                event(1),
                event(2, type="reply", parent=1, minute=1),
                mod(2, "hold", 2),
                event(3, type="reply", parent=9, minute=3),
            ],
        )
        await feed(a, [event(4, minute=4)])
    before = engine.dumps_state(state_of())
    waiting = dict(agents.store.waiting)
    restart()
    agents.app.flow_control.resume()
    async with agents.aggregate.test_context() as a:
        await feed(a, [mod(1, "spam", 10)])
    state = orjson.loads(engine.dumps_state(state_of()))
    assert state["s"]["1"][3] == "spam"
    # the rest is the loaded state: entries, statuses, publish time
    loaded = orjson.loads(before)
    state["s"]["1"] = loaded["s"]["1"]
    assert (state["e"], state["s"], state["pt"]) == (loaded["e"], loaded["s"], loaded["pt"])
    assert state["v"] > loaded["v"]
    assert agents.store.waiting == waiting
    post = latest(outputs["posts"], KEY)
    assert (post["comments"], post["threads"], post["waiting_replies"]) == (1, 1, 1)


async def test_changelog_records_grow_with_the_change_not_with_the_post(agent, outputs):
    await feed(agent, [event(i, minute=i % 60, author=f"a{i}") for i in range(1, 201)])
    records = changelog(outputs)
    written = len(records)
    # one record per entry, and a header per flush (the 200 events may take more than one batch)
    entries = [k for k, _ in records if k != KEY.encode()]
    assert sorted(entries) == sorted(f"{KEY}/{i}".encode() for i in range(1, 201))
    await feed(agent, [event(500, minute=30)])
    added = changelog(outputs)[written:]
    assert sorted(k for k, _ in added) == [KEY.encode(), f"{KEY}/500".encode()]
    assert all(len(v) < 400 for _, v in added)


async def test_records_go_to_the_posts_partition_with_the_input_timestamp(agent, outputs):
    published = int(time.time()) + 0.25  # fresh: written at once
    await feed(agent, [event(1)], timestamp=published)
    mine = agents.store.partition_of(KEY)
    records = outputs["producer"].records
    assert records and {p for _, p, *_ in records} == {mine}
    assert {ts for t, _, _, _, ts in records if t in BASE_OUTPUT_TOPICS.values()} == {
        int(published * 1000)
    }


async def test_while_catching_up_a_post_is_written_once_per_flush(agent, outputs, monkeypatch):
    """Events published long ago (a backlog): changes coalesce over batches, and each changed
    aggregate is written once when the flush comes."""
    monkeypatch.setattr(agents, "FLUSH_MAX_SECONDS", 0.3)
    old = time.time() - 600
    await feed(agent, [event(1)], timestamp=old)
    await feed(agent, [event(2, minute=1)], timestamp=old)
    assert outputs["producer"].records == [] and agents.pending  # held, unacknowledged
    assert not await agents.flush_if_stale()  # not yet: held for FLUSH_MAX_SECONDS
    await asyncio.sleep(0.3)
    assert await agents.flush_if_stale()  # what the flush timer calls
    assert not agents.pending
    posts = [orjson.loads(v) for _, v, _ in outputs["posts"].sent]
    assert len(posts) == 1 and posts[0]["comments"] == 2


def test_while_catching_up_a_flush_is_due_once_it_holds_flush_max_posts_posts(monkeypatch):
    """The posts bound (memory): a backlog over many small posts flushes every FLUSH_MAX_POSTS
    posts, not only every FLUSH_MAX_SECONDS."""
    monkeypatch.setattr(agents, "FLUSH_MAX_POSTS", 3)
    pending = agents.Pending()
    pending.hold([])
    pending.newest_input = time.time() - 600  # a backlog
    for post in range(1, 4):
        assert not pending.due()
        pending.events.append(object())  # one held event per post
        pending.unfolded[f"unit.example/{post}"].append(None)
    assert pending.due()


def test_the_posts_bound_does_not_cut_a_flush_whose_posts_repeat(monkeypatch):
    """Where the held events share posts, a bigger flush derives each post once for more events:
    the posts bound waits for FLUSH_MAX_SECONDS or FLUSH_MAX_EVENTS."""
    monkeypatch.setattr(agents, "FLUSH_MAX_POSTS", 3)
    pending = agents.Pending()
    pending.hold([])
    pending.newest_input = time.time() - 600  # a backlog
    for post in range(1, 4):
        pending.events += [object(), object()]  # two held events per post
        pending.unfolded[f"unit.example/{post}"] += [None, None]
    assert not pending.due()
    for post in range(4, 7):  # then the backlog spreads over new posts
        pending.events.append(object())
        pending.unfolded[f"unit.example/{post}"].append(None)
    assert len(pending.events) / len(pending.unfolded) == 1.5 and not pending.due()
    for post in range(7, 13):
        pending.events.append(object())
        pending.unfolded[f"unit.example/{post}"].append(None)
    assert len(pending.events) / len(pending.unfolded) == 1.25 and pending.due()


def test_ticks_count_as_posts_for_the_posts_bound(monkeypatch):
    """A tick's post is decoded and derived by the flush like a post with events; counting only
    the posts with events, a backlog with many ticks looked like repeating posts (more held events
    than posts) and the bound never cut it."""
    monkeypatch.setattr(agents, "FLUSH_MAX_POSTS", 4)
    pending = agents.Pending()
    pending.hold([])
    pending.newest_input = time.time() - 600  # a backlog
    for post in range(1, 3):
        pending.events.append(object())
        pending.unfolded[f"unit.example/{post}"].append(None)
    for post in range(3, 5):  # ticks of two other posts, three each (a timer that ran ahead)
        pending.events += [object(), object(), object()]
        pending.ticks[f"unit.example/{post}"] = 1.0
    assert pending.due()
