"""streams/rocks_store.py against streams/post_store.py's memory store: the same calls give the
same states, the same drained records and the same loaded state, whatever the RocksDB store
holds decoded (budgets of a few entries make it spill and decode again nearly every post)."""

from __future__ import annotations

import random

import orjson
import pytest

from streams import engine
from streams.post_store import PostStore
from streams.rocks_store import RocksStore

PARTITIONS = 4
POSTS = [f"s.example/{p}" for p in range(1, 13)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def rocks(tmp_path, clock):
    def make(held_entries=5, idle_seconds=60.0):
        store = RocksStore(PARTITIONS, tmp_path, held_entries, idle_seconds, clock=clock)
        made.append(store)
        return store

    made: list[RocksStore] = []
    yield make
    for store in made:
        store.close()


def comment(cid: int, minute: int, status: str = "approved") -> engine.EventFields:
    return engine.EventFields(
        f"{cid * 1000 + minute:032x}",
        "comment",
        cid,
        0,
        False,
        f"{cid % 3:064x}",
        "comment",
        1_300_000_000.0 + minute * 60,
        1_299_990_000.0,
        status,
    )


def moderation(cid: int, minute: int, status: str) -> engine.EventFields:
    return comment(cid, minute, status)._replace(type="moderation", author_key="")


def flush_round(store: PostStore, rng: random.Random, next_cid: dict[str, int]) -> list:
    """What a flush does to the store: fold some posts (get, merge, changed), set the version of
    those that changed, drain."""
    changed = []
    for post in rng.sample(POSTS, rng.randint(1, len(POSTS))):
        events = []
        for _ in range(rng.randint(1, 4)):
            if next_cid[post] > 1 and rng.random() < 0.3:  # a moderation, maybe a stale one
                cid = rng.randrange(1, next_cid[post])
                events.append(moderation(cid, rng.randint(0, 90), rng.choice(["spam", "approved"])))
            else:
                events.append(comment(next_cid[post], rng.randint(0, 90)))
                next_cid[post] += 1
        state = store.get(post)
        applied, _ = engine.merge_batch(state, events)
        ids = {e.comment_id for e, ok in zip(events, applied) if ok}
        if ids:
            store.set_waiting(post, None, 0)
            store.changed(post, ids)
            changed.append(post)
    for post in changed:
        state = store.states[post]
        state["v"] = state["v"] + 1
        store.changed(post, ())
    return sorted(store.drain(len(changed) + 1))  # same flush id in both stores


def test_same_calls_give_the_same_records_and_states(rocks):
    memory, rocksdb = PostStore(PARTITIONS), rocks(held_entries=5)
    rng_m, rng_r = random.Random(4), random.Random(4)
    cids_m, cids_r = dict.fromkeys(POSTS, 1), dict.fromkeys(POSTS, 1)
    spilled = 0
    for _ in range(30):
        records = flush_round(memory, rng_m, cids_m)
        spilled += len(rocksdb._spilled)
        assert flush_round(rocksdb, rng_r, cids_r) == records
    for post in POSTS:
        assert engine.dumps_state(rocksdb.get(post)) == engine.dumps_state(memory.get(post))
    assert rocksdb.entries() <= 5 + max(len(memory.states[p]["e"]) for p in POSTS)


def test_a_changed_post_dropped_before_its_flush_keeps_its_version_and_entries(rocks):
    store = rocks(held_entries=1)
    a, b = POSTS[0], POSTS[1]
    engine.merge_batch(store.get(a), [comment(1, 0), comment(2, 1)])
    store.changed(a, {1, 2})
    engine.merge_batch(store.get(b), [comment(1, 0)])  # a does not fit: spilled
    store.changed(b, {1})
    assert a in store._spilled and a not in dict(store.states)
    store.states[a]["v"] = 77  # what the flush does to a changed post
    records = {key: value for _, key, value in store.drain(5)}
    assert orjson.loads(records[a.encode()])[0] == 77
    assert {f"{a}/1".encode(), f"{a}/2".encode()} <= records.keys()
    state = store.get(a)  # decoded from its database
    assert state["v"] == 77 and sorted(state["e"]) == [1, 2]


def test_loading_merges_like_the_memory_store_whatever_the_order(rocks):
    """A changelog with stale records after newer ones (a zombie writer): both stores end up
    with the same state, waiting replies and last flush."""
    source = PostStore(PARTITIONS)
    rng = random.Random(9)
    cids = dict.fromkeys(POSTS, 1)
    records = []
    for _ in range(12):
        records += flush_round(source, rng, cids)
    rng.shuffle(records)
    memory, rocksdb = PostStore(PARTITIONS), rocks(held_entries=5)
    for partition, key, value in records:
        memory.apply(key, value)
        rocksdb.apply(key, value, partition)
    for post in POSTS:
        assert engine.dumps_state(rocksdb.get(post)) == engine.dumps_state(memory.get(post))
        assert engine.dumps_state(memory.get(post)) == engine.dumps_state(source.get(post))
    assert rocksdb.waiting == memory.waiting
    every = range(PARTITIONS)
    assert rocksdb.last_flush(every) == memory.last_flush(every) != set()
    assert rocksdb.newest_flush == memory.newest_flush


def test_a_post_unused_for_the_idle_time_is_dropped_at_the_next_flush(rocks, clock):
    store = rocks(held_entries=1000, idle_seconds=30)
    quiet, busy = POSTS[0], POSTS[1]
    for post in (quiet, busy):
        engine.merge_batch(store.get(post), [comment(1, 0)])
        store.changed(post, {1})
    list(store.drain(1))
    clock.now += 20
    store.get(busy)
    list(store.drain(2))
    assert set(dict(store.states)) == {quiet, busy}
    clock.now += 15  # quiet: 35 s, busy: 15 s
    list(store.drain(3))
    assert set(dict(store.states)) == {busy}
    assert list(store.get(quiet)["e"]) == [1]  # decoded again


def test_posts_in_use_are_not_dropped_to_make_room(rocks):
    """Every post touched at every flush (a backlog): the posts held stay held, the others are
    decoded for one use."""
    store = rocks(held_entries=4)
    for post in POSTS:
        engine.merge_batch(store.get(post), [comment(1, 0), comment(2, 0)])
        store.changed(post, {1, 2})
    list(store.drain(1))
    held = set(dict(store.states))
    assert held == set(POSTS[:2])
    for post in POSTS:
        store.get(post)
    list(store.drain(2))
    assert set(dict(store.states)) == held


def test_forget_deletes_the_partition_databases_and_a_reload_starts_empty(rocks):
    store = rocks()
    for post in POSTS:
        engine.merge_batch(store.get(post), [comment(1, 0)])
        store.changed(post, {1})
    list(store.drain(1))
    gone = store.partition_of(POSTS[0])
    store.forget({gone})
    assert not (store.directory / f"p{gone}").exists()
    for post in POSTS:
        expected = [] if store.partition_of(post) == gone else [1]
        assert list(store.get(post)["e"]) == expected
    store.clear()
    assert all(not store.get(post)["e"] for post in POSTS)


def test_the_databases_of_dead_workers_are_removed(tmp_path, clock):
    dead = tmp_path / "worker-999999999"
    (dead / "p0").mkdir(parents=True)
    store = RocksStore(PARTITIONS, tmp_path, 10, 60.0, clock=clock)
    try:
        assert not dead.exists() and store.directory.parent == tmp_path
    finally:
        store.close()
    assert not tmp_path.exists()  # nothing left of this app id


def test_the_store_setting_chooses_the_store(tmp_path):
    from streams.post_store import open_store
    from streams.settings import Settings

    assert type(open_store(Settings(store="memory"))) is PostStore
    store = open_store(
        Settings(store="rocksdb", store_dir=str(tmp_path), store_held_entries=7, app_id="app")
    )
    try:
        assert isinstance(store, RocksStore) and store.held_entries == 7
        assert store.directory.parent == tmp_path / "app"
    finally:
        store.close()
