"""streams/rocks_store.py against streams/post_store.py's memory store: the same calls give the
same states, the same drained records and the same loaded state, whatever the RocksDB store
holds decoded (budgets of a few entries make it spill and decode again nearly every post). And
its databases kept across processes: a new store in the same directory resumes from the
checkpoint and, with the changelog's rest, has the state a full load would give; what was never
delivered never reaches a database."""

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
    def make(held_entries=5, idle_seconds=60.0, post_entries=0):
        store = RocksStore(
            PARTITIONS, tmp_path, held_entries, idle_seconds, clock=clock, post_entries=post_entries
        )
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


class Changelog:
    """The changelog partitions as lists of (key, value): a flush's drained records are
    delivered to it, then the store is told (persist, as streams/agents.py does); load() reads a
    partition into a store from where the store resumes, as streams/post_store.load does."""

    def __init__(self) -> None:
        self.partitions: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(PARTITIONS)}

    def deliver(self, records: list, store: PostStore | None = None) -> None:
        for partition, key, value in records:
            self.partitions[partition].append((key, value))
        if store is not None:
            store.persist({p: len(self.partitions[p]) for p, _, _ in records})

    def load(self, store: PostStore, partition: int) -> int:
        log = self.partitions[partition]
        start = store.resume_offset(partition, len(log))
        for key, value in log[start:]:
            store.apply(key, value, partition)
        store.loaded_to(partition, len(log))
        return len(log) - start


def flush_round(
    store: PostStore,
    rng: random.Random,
    next_cid: dict[str, int],
    changelog: Changelog | None = None,
    delivered: bool = True,
) -> list:
    """What a flush does to the store: fold some posts (get, merge, changed), set the version of
    those that changed, drain, deliver to the changelog and persist (unless not `delivered`:
    the worker died before its outputs were)."""
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
            # some posts with replies waiting (in the header; the RocksDB store keeps them too)
            waiting = (1_300_000_000.0, rng.randint(1, 3)) if rng.random() < 0.3 else (None, 0)
            store.set_waiting(post, *waiting)
            store.changed(post, ids)
            changed.append(post)
    for post in changed:
        state = store.states[post]
        state["v"] = state["v"] + 1
        store.changed(post, ())
    records = sorted(store.drain(len(changed) + 1))  # same flush id in both stores
    changelog = changelog or Changelog()
    changelog.deliver(records)
    if delivered:
        store.persist({p: len(changelog.partitions[p]) for p, _, _ in records})
    return records


class Twins:
    """The memory store and a RocksDB store fed the same flush rounds (one seed each), the
    RocksDB store's flushes delivered to `changelog`."""

    def __init__(self, rocksdb: RocksStore, seed: int) -> None:
        self.memory, self.rocksdb, self.changelog = PostStore(PARTITIONS), rocksdb, Changelog()
        self._rng = {"memory": random.Random(seed), "rocksdb": random.Random(seed)}
        self._cids = {"memory": dict.fromkeys(POSTS, 1), "rocksdb": dict.fromkeys(POSTS, 1)}

    def memory_round(self) -> list:
        return flush_round(self.memory, self._rng["memory"], self._cids["memory"])

    def rocksdb_round(self, changelog: Changelog | None = None, delivered: bool = True) -> list:
        changelog = self.changelog if changelog is None else changelog
        rng, cids = self._rng["rocksdb"], self._cids["rocksdb"]
        return flush_round(self.rocksdb, rng, cids, changelog, delivered)

    def rounds(self, n: int) -> None:
        for _ in range(n):
            self.memory_round()
            self.rocksdb_round()


def assert_same_states(store: PostStore, expected: PostStore) -> None:
    for post in POSTS:
        assert engine.dumps_state(store.get(post)) == engine.dumps_state(expected.get(post))


def test_same_calls_give_the_same_records_and_states(rocks):
    twins = Twins(rocks(held_entries=5), 4)
    memory, rocksdb = twins.memory, twins.rocksdb
    for _ in range(30):
        assert twins.rocksdb_round() == twins.memory_round()
    assert_same_states(rocksdb, memory)
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
    drained = list(store.drain(5))
    Changelog().deliver(drained, store)
    records = {key: value for _, key, value in drained}
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
    changelog = Changelog()
    changelog.deliver(list(store.drain(1)), store)
    clock.now += 20
    store.get(busy)
    changelog.deliver(list(store.drain(2)), store)
    assert set(dict(store.states)) == {quiet, busy}
    clock.now += 15  # quiet: 35 s, busy: 15 s
    changelog.deliver(list(store.drain(3)), store)
    assert set(dict(store.states)) == {busy}
    assert list(store.get(quiet)["e"]) == [1]  # decoded again


def test_posts_in_use_are_not_dropped_to_make_room(rocks):
    """Every post touched at every flush (a backlog): the posts held stay held, the others are
    decoded for one use."""
    store = rocks(held_entries=4)
    for post in POSTS:
        engine.merge_batch(store.get(post), [comment(1, 0), comment(2, 0)])
        store.changed(post, {1, 2})
    changelog = Changelog()
    changelog.deliver(list(store.drain(1)), store)
    held = set(dict(store.states))
    assert held == set(POSTS[:2])
    for post in POSTS:
        store.get(post)
    changelog.deliver(list(store.drain(2)), store)
    assert set(dict(store.states)) == held


def test_a_held_post_costs_its_entries_plus_its_fixed_part(rocks):
    """One-entry posts with a fixed part of 3 entries: a budget of 8 holds two of them, not 8;
    entries() still counts the entries only (of the two and of the one decoded for this use)."""
    store = rocks(held_entries=8, post_entries=3)
    for post in POSTS:
        engine.merge_batch(store.get(post), [comment(1, 0)])
        store.changed(post, {1})
    assert store.held == 8 and store.entries() == 3
    Changelog().deliver(list(store.drain(1)), store)
    assert set(dict(store.states)) == set(POSTS[:2])


def test_forget_keeps_the_databases_for_the_next_load(rocks):
    store, changelog = rocks(), Changelog()
    for post in POSTS:
        engine.merge_batch(store.get(post), [comment(1, 0)])
        store.changed(post, {1})
    changelog.deliver(list(store.drain(1)), store)
    gone = store.partition_of(POSTS[0])
    store.forget({gone})
    assert gone not in store._dbs and (store.directory / f"p{gone}").is_dir()
    assert changelog.load(store, gone) == 0  # all there: nothing to read
    for post in POSTS:
        assert list(store.get(post)["e"]) == [1]


def test_a_new_store_resumes_from_the_checkpoint_with_the_same_state(rocks, tmp_path):
    """A worker stopped and started again: its partitions' databases are read from their
    checkpoints, and nothing of the changelog before them is read again."""
    twins = Twins(rocks(held_entries=5), 5)
    memory, first = twins.memory, twins.rocksdb
    twins.rounds(20)
    first.close()
    second = rocks(held_entries=5)
    assert second.directory == first.directory
    for partition in range(PARTITIONS):
        assert twins.changelog.load(second, partition) == 0
    assert_same_states(second, memory)
    assert second.waiting == memory.waiting != {}
    assert second.newest_flush == memory.newest_flush


def test_a_flush_never_persisted_is_read_from_the_changelog_and_emitted_again(rocks):
    """Killed after the changelog was delivered and before the outputs were: the database does
    not have that flush, so the next load reads it and names its posts for a refresh (the
    records of a flush reach the database only after its outputs were delivered)."""
    twins = Twins(rocks(held_entries=5), 6)
    twins.rounds(10)
    twins.memory_round()
    last = twins.rocksdb_round(delivered=False)
    twins.rocksdb.close()
    second = rocks(held_entries=5)
    read = sum(twins.changelog.load(second, p) for p in range(PARTITIONS))
    assert read == len(last)
    assert_same_states(second, twins.memory)
    headers = {key.decode() for _, key, _ in last if key.count(b"/") == 1}
    assert second.last_flush(range(PARTITIONS)) == headers


def test_a_flush_killed_before_its_changelog_was_delivered_leaves_nothing(rocks):
    """Records in a database that the changelog never got would make the replayed events look
    like duplicates, and their outputs would never be emitted."""
    twins = Twins(rocks(held_entries=5), 7)
    twins.rounds(10)
    twins.rocksdb_round(Changelog(), delivered=False)  # lost with the worker
    twins.rocksdb.close()
    second = rocks(held_entries=5)
    assert sum(twins.changelog.load(second, p) for p in range(PARTITIONS)) == 0
    assert_same_states(second, twins.memory)


def test_what_a_dropped_post_spilled_never_reaches_the_database(rocks):
    """Spilled changes are not the changelog's yet: a worker killed before its flush leaves its
    database as the last delivered flush left it."""
    first, changelog = rocks(held_entries=1), Changelog()
    a, b = POSTS[0], POSTS[1]
    engine.merge_batch(first.get(a), [comment(1, 0)])
    first.changed(a, {1})
    changelog.deliver(list(first.drain(1)), first)
    engine.merge_batch(first.get(a), [comment(2, 1)])
    first.changed(a, {2})
    engine.merge_batch(first.get(b), [comment(1, 0)])  # a does not fit: spilled
    first.changed(b, {1})
    assert a in first._spilled
    first.close()  # no drain: killed before the flush
    second = rocks(held_entries=1)
    for partition in range(PARTITIONS):
        changelog.load(second, partition)
    assert sorted(second.get(a)["e"]) == [1] and not second.get(b)["e"]


def test_a_database_without_a_usable_checkpoint_is_rebuilt_from_the_beginning(rocks):
    first, changelog = rocks(), Changelog()
    engine.merge_batch(first.get(POSTS[0]), [comment(1, 0)])
    first.changed(POSTS[0], {1})
    changelog.deliver(list(first.drain(1)), first)
    partition = first.partition_of(POSTS[0])
    first.close()
    changelog.partitions[partition] = []  # the topic deleted and created again
    second = rocks()
    assert changelog.load(second, partition) == 0
    assert not second.get(POSTS[0])["e"]


def test_a_database_another_store_has_open_is_not_shared(rocks):
    """Two workers of one machine during a rebalance: the second builds a private database
    from the changelog, deleted when it is done with it."""
    first, changelog = rocks(), Changelog()
    for post in POSTS:
        engine.merge_batch(first.get(post), [comment(1, 0)])
        first.changed(post, {1})
    changelog.deliver(list(first.drain(1)), first)
    partition = first.partition_of(POSTS[0])
    second = rocks()
    assert changelog.load(second, partition) == len(changelog.partitions[partition])
    private = second._private / f"p{partition}"
    assert private.is_dir() and list(second.get(POSTS[0])["e"]) == [1]
    second.forget({partition})
    assert not private.exists()
    first.forget({partition})
    assert changelog.load(second, partition) == 0  # free now: the shared one, at its checkpoint


def test_the_private_databases_of_dead_workers_are_removed(tmp_path, clock):
    dead = tmp_path / "worker-999999999"
    (dead / "p0").mkdir(parents=True)
    store = RocksStore(PARTITIONS, tmp_path, 10, 60.0, clock=clock)
    try:
        assert not dead.exists() and store.directory == tmp_path
    finally:
        store.close()
    assert not store._private.exists()


def test_the_store_setting_chooses_the_store(tmp_path):
    from streams.post_store import open_store
    from streams.settings import Settings

    assert type(open_store(Settings(store="memory"))) is PostStore
    store = open_store(
        Settings(store="rocksdb", store_dir=str(tmp_path), store_held_entries=7, app_id="app")
    )
    try:
        assert isinstance(store, RocksStore) and store.held_entries == 7
        assert store.directory == tmp_path / "app"
    finally:
        store.close()
