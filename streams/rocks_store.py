"""The aggregation state in RocksDB (BLOGPULSE_STORE=rocksdb): PostStore's interface, with one
RocksDB database per input partition and only the posts used recently held decoded.

Each partition database holds the partition's changelog records merged by key (same keys and
values as the changelog, streams/post_store.py), the waiting counts of its posts and a
checkpoint: the changelog offset below which the database holds every record. A post not held
is decoded on its next get() from its header and a prefix scan of "<site>/<post_id>/".

The databases outlive the process, as Kafka Streams' state directory does: a worker that gets a
partition again (restarted on the same machine, or after a rebalance) reads the changelog from
the checkpoint on, not from the beginning. What makes that safe is that a database only ever
holds records of the changelog: a flush's records are written to it after the flush was
delivered (streams/agents.py calls persist()), in one write batch with the new checkpoint, and
a changed post dropped before its flush keeps its changed records in memory (spilled), not in
the database. Written without a write-ahead log, a database that a SIGKILL cut short opens at
an earlier write batch, so with an earlier checkpoint: the changelog read from there brings the
rest (records merged with the engine's rules as they are read, so a record read twice or a stale
one read after a newer one changes nothing). A database without a checkpoint, or with one past
the changelog's end (a topic created again), is emptied and rebuilt from the beginning. The
changelog stays the source of truth.

A partition's database is locked by the process using it (a lock file beside it); if another
live worker of the machine still has it (a rebalance in flight), this one builds a private
database from the beginning, deleted when it is done with it.

Held decoded: at most BLOGPULSE_STORE_HELD_ENTRIES entries (a post counting as its entries plus
HELD_POST_ENTRIES, the fixed part of its state), and a post unused for
BLOGPULSE_STORE_IDLE_SECONDS is dropped at the next flush. Like streams/state_cache.py, a post
used within that time is never dropped to make room: a post that does not fit is decoded for
one use (transient) and dropped at the next miss. Under a backlog every post is touched at every
flush, and dropping the least recent would drop the one needed next. A changed post that is
dropped before its flush (transient, or to make room) is spilled: its header fields and its
changed entries, encoded, stay in memory until the flush (or its next decode) takes them.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import shutil
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import orjson
import rocksdict

from schemas.json_bytes import dumps
from streams import engine
from streams.post_store import (
    PostStore,
    Record,
    entry_value,
    flush_of,
    header_value,
    merge_entry_record,
    merge_header,
    post_records,
)

# Sized for a worker next to its Python heap (docs/architecture.md, "Aggregation state").
BLOCK_CACHE_BYTES = 16 << 20  # shared by the worker's partition databases
WRITE_BUFFER_BYTES = 4 << 20  # per database; at most MAX_WRITE_BUFFERS of them
MAX_WRITE_BUFFERS = 2
ALL_WRITE_BUFFERS_BYTES = 16 << 20  # memtables of all the worker's databases together
PARTITION_CACHE_POSTS = 200_000  # murmur2 results kept (posts seen recently)
# What a held post costs besides its entries, in entries (its state's dicts: docs/performance.md)
HELD_POST_ENTRIES = 3

_HEAD = ("v", "wm", "clk", "pt")
# Keys of the store's own records sort before every post key (a site name is not empty).
CHECKPOINT = b"\x00checkpoint"  # [changelog offset, newest flush id]
WAITING = b"\x00waiting/"  # + post key: [earliest waiting event_time, count]
_WAITING_END = b"\x00waiting0"  # "0" follows "/"

log = logging.getLogger(__name__)


class _Held(dict[str, dict[str, Any]]):
    """The held decoded states. The agent reads `store.states[key]` after the fold: a post
    spilled meanwhile answers with its header fields, one not held is decoded."""

    def __init__(self, missing: Callable[[str], dict[str, Any]]) -> None:
        super().__init__()
        self.missing = missing

    def __missing__(self, post_key: str) -> dict[str, Any]:
        return self.missing(post_key)


def _options(index_in_cache: bool = False) -> rocksdict.Options:
    """The options of one worker's partition databases, with their one block cache and write
    buffer manager (`index_in_cache`: the earlier setting, which bench/rocks_read.py measures
    against)."""
    cache = rocksdict.Cache(BLOCK_CACHE_BYTES)
    buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
        ALL_WRITE_BUFFERS_BYTES, False, cache
    )
    table = rocksdict.BlockBasedOptions()
    table.set_block_cache(cache)
    table.set_bloom_filter(10, False)  # a get of a key never written (most loaded keys)
    # Index and filter blocks stay with their table readers (~2-3 bytes per key), not in the
    # cache: a table's whole-file blocks are hundreds of KB, more than a shard of this small
    # cache (which also carries the memtables) keeps, so each lookup read and decompressed them
    # again (docs/performance.md, "The index blocks that did not stay cached").
    table.set_cache_index_and_filter_blocks(index_in_cache)
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_block_based_table_factory(table)
    options.set_write_buffer_size(WRITE_BUFFER_BYTES)
    options.set_max_write_buffer_number(MAX_WRITE_BUFFERS)
    options.set_write_buffer_manager(buffers)
    options.set_max_background_jobs(2)
    options.set_max_open_files(256)
    options.set_keep_log_file_num(1)
    return options


class RocksStore(PostStore):
    def __init__(
        self,
        partitions: int,
        directory: Path,
        held_entries: int,
        idle_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        post_entries: int = HELD_POST_ENTRIES,
    ) -> None:
        super().__init__(partitions)
        self.states = _Held(self._not_held)
        self.held_entries, self.idle_seconds, self._clock = held_entries, idle_seconds, clock
        self.post_entries = post_entries
        # entries of the held states plus post_entries per post, the transient one excepted
        self.held = 0
        # held post -> (its cost: entries + post_entries, last use), least recent first (an
        # OrderedDict: state_cache.py)
        self._used: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._transient: str | None = None
        # post -> (header fields, encoded changed entries): changed posts dropped before the drain
        self._spilled: dict[str, tuple[dict[str, Any], dict[int, bytes]]] = {}
        # per partition: what the last drain wrote, for persist() (None: delete the key)
        self._drained: dict[int, list[tuple[bytes, bytes | None]]] = {}
        self._waiting_kept: set[str] = set()  # posts with a WAITING record in their database
        # per partition: the newest flush id read or written, and the posts it wrote
        self._newest: dict[int, int] = {}
        self._newest_posts: dict[int, set[str]] = {}
        self._dbs: dict[int, rocksdict.Rdict] = {}
        self._locks: dict[int, int] = {}  # partition -> locked file descriptor
        self.directory = directory
        self._private = directory / f"worker-{os.getpid()}"  # databases another worker has
        _remove_dead_workers(directory)
        shutil.rmtree(self._private, ignore_errors=True)  # a dead process with our pid
        self._options = _options()
        self._read = rocksdict.ReadOptions()  # _decode's, its upper bound set per post
        self._write = rocksdict.WriteOptions()
        # the checkpoint makes a database cut short safe (module doc); a property, the stubs
        # say a method
        self._write.disable_wal = True  # type: ignore[method-assign,assignment]
        atexit.register(self.close)
        log.info("aggregation state: RocksDB databases under %s", self.directory)

    # --- the partition databases

    def _path(self, partition: int) -> Path:
        return (self.directory if partition in self._locks else self._private) / f"p{partition}"

    def _db(self, partition: int) -> rocksdict.Rdict:
        db = self._dbs.get(partition)
        if db is None:
            if partition not in self._locks:
                self._lock(partition)
            path = self._path(partition)
            path.mkdir(parents=True, exist_ok=True)
            db = self._dbs[partition] = rocksdict.Rdict(str(path), self._options)
            db.set_write_options(self._write)
        return db

    def _lock(self, partition: int) -> None:
        """Take the partition's database, or else use a new private one."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / f"p{partition}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            log.warning(
                "the RocksDB database of partition %d is in use by another process: building "
                "a private one from the changelog",
                partition,
            )
            shutil.rmtree(self._private / f"p{partition}", ignore_errors=True)
            return
        self._locks[partition] = fd

    def _close_db(self, partition: int) -> None:
        """Close the partition's database; a private one is deleted, a shared one kept."""
        db = self._dbs.pop(partition, None)
        if db is not None:
            db.close()
        fd = self._locks.pop(partition, None)
        if fd is None:
            shutil.rmtree(self._private / f"p{partition}", ignore_errors=True)
        else:
            os.close(fd)  # releases the lock

    def _empty(self, partition: int) -> None:
        """Delete the partition's database and open an empty one (still locked)."""
        db = self._dbs.pop(partition, None)
        if db is not None:
            db.close()
        shutil.rmtree(self._path(partition), ignore_errors=True)
        self._db(partition)

    def close(self) -> None:
        for partition in list(self._dbs):
            self._close_db(partition)
        shutil.rmtree(self._private, ignore_errors=True)

    def _write_records(self, partition: int, records: Iterable[tuple[bytes, bytes | None]]) -> None:
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self._db(partition).write(batch)

    # --- held states

    def partition_of(self, post_key: str) -> int:
        if len(self._partition) > PARTITION_CACHE_POSTS:
            self._partition.clear()
        return super().partition_of(post_key)

    def get(self, post_key: str) -> dict[str, Any]:
        if self._transient is not None and self._transient != post_key:
            self._drop(self._transient)  # its one use is over
        state = dict.get(self.states, post_key)
        now = self._clock()
        if state is not None:
            self._used[post_key] = (self._used[post_key][0], now)
            self._used.move_to_end(post_key)
            return state
        state = self._decode(post_key)
        entries = self._cost(state)
        self.states[post_key] = state
        self._used[post_key] = (entries, now)
        self.held += entries
        self._fit(post_key, now)
        return state

    def _not_held(self, post_key: str) -> dict[str, Any]:
        spilled = self._spilled.get(post_key)
        return self.get(post_key) if spilled is None else spilled[0]

    def changed(self, post_key: str, entry_ids: Iterable[int]) -> None:
        super().changed(post_key, entry_ids)
        state = dict.get(self.states, post_key)
        if state is not None:  # the merge may have added entries: count them
            entries, used = self._used[post_key]
            grown = self._cost(state)
            self._used[post_key] = (grown, used)
            if post_key != self._transient:
                self.held += grown - entries
                self._fit(post_key, self._clock())

    def _cost(self, state: dict[str, Any]) -> int:
        return len(state["e"]) + len(state["s"]) + self.post_entries

    def _fit(self, post_key: str, now: float) -> None:
        """Within the budget again: drop the least recent posts unused for the idle time, else
        hold `post_key` for this use only."""
        while self.held > self.held_entries:
            oldest = next(iter(self._used))
            if oldest == post_key or now - self._used[oldest][1] < self.idle_seconds:
                break
            self._drop(oldest)
        if self.held > self.held_entries:
            if self._transient is not None:  # one transient post at a time
                self._drop(self._transient)
            self.held -= self._used[post_key][0]
            self._transient = post_key

    def _decode(self, post_key: str) -> dict[str, Any]:
        """The post's state from its partition database and what it spilled (a new one for a
        post never written)."""
        state = engine.new_state()
        head, spilled = self._spilled.pop(post_key, (None, {}))
        db = self._dbs.get(self.partition_of(post_key))
        if db is not None:
            # one scan: the header "<site>/<post_id>", then its entries "<site>/<post_id>/<cid>"
            # (post ids are digits, so no other post's key sorts between them)
            self._read.set_iterate_upper_bound(f"{post_key}0".encode())  # "0" follows "/"
            skip = len(post_key) + 1
            for item, value in db.items(from_key=post_key.encode(), read_opt=self._read):
                key = cast(bytes, item)
                if len(key) == skip - 1:
                    merge_header(state, orjson.loads(value))
                    continue
                cid = int(key[skip:])
                if cid not in spilled:  # else the spilled value is the newer
                    merge_entry_record(state, cid, orjson.loads(value))
        for cid, value in spilled.items():
            merge_entry_record(state, cid, orjson.loads(value))
        if head is not None:  # the flush may have moved v
            state.update(head)
        return state

    def _drop(self, post_key: str) -> None:
        """No longer hold the post decoded (spilled if it changed since the last drain)."""
        state = dict.pop(self.states, post_key)
        entries, _ = self._used.pop(post_key)
        if post_key == self._transient:
            self._transient = None
        else:
            self.held -= entries
        cids = self._dirty.get(post_key)
        if cids is None:
            return
        encoded = {cid: entry_value(state, cid) for cid in cids}
        self._spilled[post_key] = ({name: state[name] for name in _HEAD}, encoded)

    def _release_transient(self) -> None:
        if self._transient is not None:
            self._drop(self._transient)

    # --- flushes and loading

    def drain(self, flush: int) -> Iterator[Record]:
        """As PostStore.drain; the records go to the partitions' databases when persist() says
        they were delivered."""
        dirty, self._dirty = self._dirty, {}
        out: list[Record] = []
        for post_key, cids in dirty.items():
            partition = self.partition_of(post_key)
            waiting = self.waiting.get(post_key, (None, 0))
            state = dict.get(self.states, post_key)
            if state is None:
                head, encoded = self._spilled.pop(post_key)
                entries = [(cid, encoded[cid]) for cid in cids]
            else:
                head, entries = state, [(cid, entry_value(state, cid)) for cid in cids]
            records = post_records(post_key, head, waiting, flush, entries)
            self._note_flush(partition, post_key, flush)
            drained = self._drained.setdefault(partition, [])
            drained.extend(records)
            drained.extend(self._waiting_record(post_key, waiting))
            out.extend((partition, key, value) for key, value in records)
        self._release_transient()
        now = self._clock()
        while self._used:
            oldest = next(iter(self._used))
            if now - self._used[oldest][1] < self.idle_seconds:
                break
            self._drop(oldest)
        return iter(out)

    def persist(self, delivered: dict[int, int]) -> None:
        """The drained records of these partitions were delivered, up to these changelog offsets:
        each partition's go to its database with the offset as its checkpoint, in one write. A
        drained partition not named was not delivered (its transaction aborted): forgotten, so
        that its next use loads it again."""
        drained, self._drained = self._drained, {}
        for partition, records in drained.items():
            if partition in delivered:
                mark = dumps([delivered[partition], self.newest_flush])
                self._write_records(partition, [*records, (CHECKPOINT, mark)])
        undelivered = drained.keys() - delivered.keys()
        if undelivered:
            self.forget(undelivered)

    def resume_offset(self, partition: int, end: int) -> int:
        """Where loading the partition's changelog (now `end` records long) starts: the
        database's checkpoint, or 0 after emptying a database without a usable one."""
        db = self._db(partition)
        mark = db.get(CHECKPOINT)
        if mark is not None:
            offset, newest = orjson.loads(mark)
            if offset <= end:
                self.newest_flush = max(self.newest_flush, newest)
                read = rocksdict.ReadOptions()
                read.set_iterate_upper_bound(_WAITING_END)
                for key, value in db.items(from_key=WAITING, read_opt=read):
                    post_key = cast(bytes, key)[len(WAITING) :].decode()
                    self.set_waiting(post_key, *orjson.loads(value))
                    self._waiting_kept.add(post_key)
                return cast(int, offset)
            log.warning(
                "partition %d: the RocksDB checkpoint (%d) is past the changelog's end (%d): "
                "rebuilding it from the beginning",
                partition,
                offset,
                end,
            )
        self._empty(partition)
        return 0

    def loaded_to(self, partition: int, offset: int) -> None:
        """The changelog was read into the database up to `offset`: the new checkpoint."""
        self._db(partition).put(CHECKPOINT, dumps([offset, self.newest_flush]))

    def _note_flush(self, partition: int, post_key: str, flush: int) -> None:
        newest = self._newest.get(partition, 0)
        if flush > newest:
            self._newest[partition] = flush
            self._newest_posts[partition] = {post_key}
        elif flush and flush == newest:
            self._newest_posts[partition].add(post_key)

    def apply(self, key: bytes, value: bytes | None, partition: int | None = None) -> None:
        """Merge one changelog record into its partition's database (loading)."""
        if value is None:
            return
        site, post_id, *cid = key.decode().split("/")  # a site has no "/" (schemas.wire)
        post_key = f"{site}/{post_id}"
        if partition is None:
            partition = self.partition_of(post_key)
        db = self._db(partition)
        fields = orjson.loads(value)
        old = db.get(key)
        held = dict.get(self.states, post_key)
        if not cid:
            flush = flush_of(fields)
            self._note_flush(partition, post_key, flush)
            self.newest_flush = max(self.newest_flush, flush)
            waiting = (fields[4], fields[5])
            self.set_waiting(post_key, *waiting)  # the latest header says
            if held is not None:
                merge_header(held, fields)
            if old is not None:
                merged = engine.new_state()
                before = orjson.loads(old)
                merge_header(merged, before)
                merge_header(merged, fields)
                flush = max(flush, flush_of(before))
                value = header_value(merged, waiting, flush)
            self._write_records(partition, [(key, value), *self._waiting_record(post_key, waiting)])
            return
        if held is not None:
            merge_entry_record(held, int(cid[0]), fields)
        if old is not None and old != value:
            merged = engine.new_state()
            merge_entry_record(merged, int(cid[0]), orjson.loads(old))
            merge_entry_record(merged, int(cid[0]), fields)
            value = entry_value(merged, int(cid[0]))
        db.put(key, value)

    def last_flush(self, partitions: Iterable[int]) -> set[str]:
        return {post for p in set(partitions) for post in self._newest_posts.get(p, ())}

    def forget(self, partitions: Iterable[int]) -> None:
        """As PostStore.forget; the databases are kept (closed) for the partitions' next load."""
        gone = set(partitions)
        self.epoch += 1
        self.loaded -= gone
        for post_key in [k for k in self._used if self.partition_of(k) in gone]:
            self._dirty.pop(post_key, None)  # dropped, not spilled
            self._drop(post_key)
        for posts in (self._spilled, self._dirty, self.waiting):
            for post_key in [k for k in posts if self.partition_of(k) in gone]:
                del posts[post_key]
        self._waiting_kept = {k for k in self._waiting_kept if self.partition_of(k) not in gone}
        for partition in gone:
            self._drained.pop(partition, None)
            self._newest.pop(partition, None)
            self._newest_posts.pop(partition, None)
            self._close_db(partition)
        self._partition.clear()

    def clear(self) -> None:
        self.forget(set(range(self.partitions)) | set(self._dbs))

    def entries(self) -> int:
        return sum(cost for cost, _ in self._used.values()) - self.post_entries * len(self._used)

    def _waiting_record(
        self, post_key: str, waiting: tuple[float | None, int]
    ) -> list[tuple[bytes, bytes | None]]:
        """The write that keeps the post's WAITING record as `waiting` says (none if nothing to
        change: a delete of a key never written would still cost a tombstone)."""
        if waiting[1]:
            self._waiting_kept.add(post_key)
            return [(WAITING + post_key.encode(), dumps(list(waiting)))]
        if post_key in self._waiting_kept:
            self._waiting_kept.discard(post_key)
            return [(WAITING + post_key.encode(), None)]
        return []


def _remove_dead_workers(directory: Path) -> None:
    """Private databases of this machine's worker processes that are gone (killed)."""
    if not directory.is_dir():
        return
    for path in directory.glob("worker-*"):
        pid = path.name.removeprefix("worker-")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
