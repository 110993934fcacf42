"""Per-post aggregation state of this worker's partitions: in memory, made durable as compacted
changelog records of one entry each plus one small header per post.

Changelog records (topic `<app_id>-post-entries-changelog`, partition = the post's input
partition, so the state of a post lives where its events are):
    key "<site>/<post_id>"          value [v, wm, clk, pt, waiting_since, waiting_count, flush]
    key "<site>/<post_id>/<cid>"    value [entry or null, status or null]
A flush writes the header of each changed post and only the entries that changed, so what a
batch costs does not grow with the size of the post. Loading a partition reads its records
with a plain consumer (batched fetches: far cheaper than faust's per-event recovery) and merges
them with the engine's own rules (header fields by max/min, entries by engine.merge_entry), so a
stale record read after a newer one changes nothing.

`flush` in the header is the id of the flush that wrote it (ids grow, also across workers). A
flush writes its changelog records before its outputs (streams/agents.py), so the posts whose
header carries their partition's newest flush id are the only ones whose outputs may not have
been delivered: last_flush() names them for the agent to emit again after a load.

Why not a faust Table: a Table holds every value again as bytes in its store, sends every
change through faust's per-message path, and its recovery reads the changelog through faust's
per-event machinery; the agent needs none of that (docs/performance.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from aiokafka.partitioner import murmur2

from schemas.json_bytes import dumps
from streams import engine
from streams.settings import Settings

log = logging.getLogger(__name__)

Record = tuple[int, bytes, bytes]  # (partition, key, value)


def partition_of(post_key: str, partitions: int) -> int:
    """The partition of a post: what the publisher's default (murmur2) partitioner picks."""
    return (murmur2(post_key.encode()) & 0x7FFFFFFF) % partitions


def header_value(state: dict[str, Any], waiting: tuple[float | None, int], flush: int) -> bytes:
    return dumps([state["v"], state["wm"], state["clk"], state["pt"], *waiting, flush])


def entry_value(state: dict[str, Any], cid: int) -> bytes:
    return dumps(engine.json_of(state, cid))


def post_records(
    post_key: str,
    head: dict[str, Any],
    waiting: tuple[float | None, int],
    flush: int,
    entries: Iterable[tuple[int, bytes]],
) -> list[tuple[bytes, bytes]]:
    """A post's changelog records: its header (from `head`'s fields), then each (cid, value)."""
    records = [(post_key.encode(), header_value(head, waiting, flush))]
    records += [(f"{post_key}/{cid}".encode(), value) for cid, value in entries]
    return records


def flush_of(header: list) -> int:
    return header[6] if len(header) > 6 else 0  # headers written before flush ids: 0


def merge_header(state: dict[str, Any], header: list) -> None:
    """A header record's version, watermark, clock and post time into the state (max/min)."""
    v, wm, clk, pt = header[:4]
    state["v"] = max(state["v"], v)
    state["wm"] = engine.max_opt(state["wm"], wm)
    state["clk"] = engine.max_opt(state["clk"], clk)
    state["pt"] = engine.min_opt(state["pt"], pt)


def merge_entry_record(state: dict[str, Any], cid: int, fields: list) -> None:
    entry, status = fields
    engine.merge_entry(
        state,
        cid,
        None if entry is None else engine.entry_of_json(entry),
        None if status is None else engine.status_of_json(status),
    )


class PostStore:
    """The decoded states of the posts of the partitions this worker has loaded."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.states: dict[str, dict[str, Any]] = {}
        self.loaded: set[int] = set()
        self._dirty: dict[str, set[int]] = {}  # post key -> entry ids changed since the last drain
        # posts with replies waiting for their parent: (earliest waiting event_time, count), for
        # the orphan timer; kept in the header so that a loaded partition knows it too
        self.waiting: dict[str, tuple[float | None, int]] = {}
        self.epoch = 0  # grows at every revocation: a load that overlapped one is not trusted
        self.flushed: dict[str, int] = {}  # post key -> id of the last flush that wrote it
        self.newest_flush = 0  # the greatest flush id written or loaded
        self._partition: dict[str, int] = {}  # murmur2 per post once

    def partition_of(self, post_key: str) -> int:
        partition = self._partition.get(post_key)
        if partition is None:
            partition = self._partition[post_key] = partition_of(post_key, self.partitions)
        return partition

    def get(self, post_key: str) -> dict[str, Any]:
        """The post's state (a new empty one for a post never seen). Changed in place by the
        engine's merge; call changed() afterwards with what changed."""
        state = self.states.get(post_key)
        if state is None:
            state = self.states[post_key] = engine.new_state()
        return state

    def changed(self, post_key: str, entry_ids: Iterable[int]) -> None:
        self._dirty.setdefault(post_key, set()).update(entry_ids)

    def set_waiting(self, post_key: str, since: float | None, count: int) -> None:
        if count:
            self.waiting[post_key] = (since, count)
        else:
            self.waiting.pop(post_key, None)

    def next_flush(self) -> int:
        """A new flush id: greater than every id written or loaded (the wall clock in ms, so a
        worker that takes a partition over also continues above the previous owner's)."""
        self.newest_flush = max(self.newest_flush + 1, time.time_ns() // 1_000_000)
        return self.newest_flush

    def drain(self, flush: int) -> Iterator[Record]:
        """Changelog records of everything changed since the last drain (header first), as
        written by flush `flush`."""
        dirty, self._dirty = self._dirty, {}
        for post_key, cids in dirty.items():
            state = self.states[post_key]
            partition = self.partition_of(post_key)
            self.flushed[post_key] = flush
            waiting = self.waiting.get(post_key, (None, 0))
            entries = ((cid, entry_value(state, cid)) for cid in cids)
            for key, value in post_records(post_key, state, waiting, flush, entries):
                yield partition, key, value

    def persist(self, delivered: dict[int, int]) -> None:
        """The last drain's records were delivered, up to these changelog offsets per partition
        (streams/agents.py, after the flush's outputs): a store kept on disk may keep them now.
        The memory store keeps nothing across processes."""

    def resume_offset(self, partition: int, end: int) -> int:
        """The changelog offset loading the partition starts at (its changelog is `end` records
        long): what this store already holds of it. The memory store: the beginning."""
        return 0

    def loaded_to(self, partition: int, offset: int) -> None:
        """The partition's changelog was loaded up to `offset`."""

    def apply(self, key: bytes, value: bytes | None, partition: int | None = None) -> None:
        """Merge one changelog record (of `partition`, when the caller knows it) into the state
        (loading)."""
        if value is None:
            return
        site, post_id, *cid = key.decode().split("/")  # a site has no "/" (schemas.wire)
        fields = orjson.loads(value)
        post_key = f"{site}/{post_id}"
        state = self.get(post_key)
        if not cid:
            flush = flush_of(fields)
            self.flushed[post_key] = max(self.flushed.get(post_key, 0), flush)
            self.newest_flush = max(self.newest_flush, flush)
            self.set_waiting(post_key, *fields[4:6])  # the latest header says
            merge_header(state, fields)
            return
        merge_entry_record(state, int(cid[0]), fields)

    def last_flush(self, partitions: Iterable[int]) -> set[str]:
        """Posts of these partitions written by their partition's newest flush (see module doc)."""
        wanted = set(partitions)
        newest: dict[int, int] = {}
        for post_key, flush in self.flushed.items():
            partition = self.partition_of(post_key)
            if partition in wanted and flush > newest.get(partition, 0):
                newest[partition] = flush
        return {
            post_key
            for post_key, flush in self.flushed.items()
            if flush and flush == newest.get(self.partition_of(post_key))
        }

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the states of partitions this worker no longer owns: when one comes back, it is
        loaded again from the changelog (another worker may have changed it meanwhile)."""
        gone = set(partitions)
        self.epoch += 1
        self.loaded -= gone
        for post_key in [k for k in self.states if self.partition_of(k) in gone]:
            del self.states[post_key]
            self._dirty.pop(post_key, None)
            self.waiting.pop(post_key, None)
            self.flushed.pop(post_key, None)
            self._partition.pop(post_key, None)

    def clear(self) -> None:
        self.epoch += 1
        self.states.clear()
        self.loaded.clear()
        self._dirty.clear()
        self.waiting.clear()
        self.flushed.clear()
        self._partition.clear()

    def entries(self) -> int:
        return sum(len(s["e"]) for s in self.states.values())


def open_store(settings: Settings) -> PostStore:
    """The store BLOGPULSE_STORE names, sized by its settings."""
    if settings.store == "rocksdb":
        from streams.rocks_store import RocksStore

        return RocksStore(
            settings.partitions,
            settings.store_path / settings.generation_app_id,
            settings.store_held_entries,
            settings.store_idle_seconds,
        )
    return PostStore(settings.partitions)


async def load(
    store: PostStore, topic: str, partitions: Iterable[int], consumer_config: dict
) -> int:
    """Read the changelog partitions from where the store's own copy ends (the beginning for the
    memory store) to their current end into the store, and mark them loaded. Returns the number
    of records read."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    wanted = sorted(set(partitions) - store.loaded)
    if not wanted:
        return 0
    began, epoch = time.monotonic(), store.epoch
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, group_id=None, auto_offset_reset="earliest", **consumer_config
    )
    await consumer.start()
    read = 0
    try:
        tps = [TopicPartition(topic, p) for p in wanted]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        remaining, from_start = set(), []
        for tp in tps:
            start = store.resume_offset(tp.partition, ends[tp])
            if start < ends[tp]:
                remaining.add(tp)
                if start:
                    consumer.seek(tp, start)
                else:
                    from_start.append(tp)
        if from_start:
            await consumer.seek_to_beginning(*from_start)
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=50_000)
            for tp_, records in batches.items():
                for record in records:
                    store.apply(record.key, record.value, tp_.partition)
                read += len(records)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    if store.epoch != epoch:
        # A rebalance happened meanwhile: what was read may already be stale. Read again.
        store.forget(wanted)
        return read + await load(store, topic, wanted, consumer_config)
    for tp in tps:
        store.loaded_to(tp.partition, ends[tp])
    store.loaded.update(wanted)
    log.info(
        "loaded partitions %s of %s: %d records in %.1fs",
        wanted,
        topic,
        read,
        time.monotonic() - began,
    )
    return read
