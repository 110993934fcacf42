"""The one place that touches faust's private API (and mode's, and aiokafka's as faust holds it).

Three kinds of use, all here, none elsewhere (tests/unit/test_faust_private_api.py walks the source):
- patches: faust methods replaced or wrapped (PATCHES, installed by apply() when streams.app is
  imported, and by durable_writes() for streams/durability.py);
- accessors: private attributes read for one purpose each (aiokafka_producer, committed_offsets,
  wait_on_metadata); where one is used on a hot path it is resolved once, never per event;
- check(): at worker start, the installed faust-streaming and mode-streaming must be the pinned
  versions (PINNED, the same as pyproject.toml) and every faust method the patches replace, wrap or
  rely on must have the source it had when the patch was written (FINGERPRINTS). Otherwise the
  worker refuses to start, in one line, unless BLOGPULSE_FAUST_COMPAT=ignore (then a patch whose
  methods changed is not installed, and a warning says so).

The patches (how each was found and shown: docs/reliability.md; costs: docs/performance.md):

1. Seek before resume (faust/tables/recovery.py, Recovery.on_recovery_completed): when table
recovery ends, faust resumes the stream partitions and *then* seeks them to their committed
offsets, waiting up to the broker request timeout for the seek. In between, the fetcher delivers
records from wherever the consumer stood, the agents process and acknowledge them, and the
consumer commits them. When the seek lands, faust's read offset has moved past records that the
seek threw away from the fetch buffer; they come again, are dropped as "already read", and later
offsets are committed over them (seen in tests/faults after a SIGKILL). Seeking while the
partitions are still paused and resuming afterwards leaves no window.
Upstream: faust-streaming/faust#216 (the same race in Recovery._resume_streams, the no-tables
branch; fixed there by PR #217, while on_recovery_completed still resumes first in 0.15.3) and
faust-streaming/faust#221 (prefetched records delivered after a rebalance).

2. Commits over compacted offsets (faust/transport/consumer.py, Consumer._new_offset and _add_gap):
faust commits the longest run of acknowledged offsets after the committed one, counting offsets
known not to exist (a "gap": a compacted topic, or transaction markers) as done. Its bookkeeping
goes wrong once gaps appear: merging a gap appends its offsets to the acked list even when they are
there already, and only the first run of that list is removed at a commit, so duplicates and
offsets below the committed one stay in it for good. From then on each commit finds the stale run
first, computes an offset that is not new, and commits nothing; the list grows with every
acknowledged message and is sorted on every commit (seen in a rebuild whose sink read compacted
output topics far behind their head). Also, faust's gap included the record that revealed it, so
that record counted as done before it was processed. Replaced by a walk from the committed offset
over acknowledged offsets and gaps (the gap now ends before the record that revealed it), which
removes what it passed.
Upstream: faust-streaming/faust#378 (a compacted topic with gaps never commits, after PR #313 for
#312), faust-streaming/faust#606 (open: wrong commit with gaps; open PR #707).

3. Four tasks per consumed message (mode's Service.wait_first, called by faust's
Consumer._drain_messages for every record as wait_first(callback(message),
suspend_flow.wait())): wait_first wraps each argument and the service's stopped/crashed events in
a task, waits for the first, and cancels the other three. The callback (hand the event to the
stream's queue) almost always finishes without waiting, so this was the largest single cost of
faust's per-message path. The consumer's wait_first now runs the first coroutine's first step
itself; when that finishes it, the result is what wait_first would have returned (the others are
closed unstarted). When it has to wait (a full stream buffer), or the service is stopping, the
coroutine goes on inside mode's wait_first exactly as before, so flow suspension during a
rebalance still interrupts it.
Upstream: no upstream issue found; behaviour in faust 0.15.3 faust/transport/consumer.py:
Consumer._drain_messages with mode-streaming 0.7.1 mode/services.py:Service.wait_first.

4. Held events at a clean stop (faust/app/base.py, App._stop_consumer): on SIGTERM faust
suspends the streams, stops the fetcher and its timers, then waits (`wait_empty`, no time limit)
until every message handed to a stream is acknowledged. The aggregation agent acknowledges events
only after the flush that wrote their effects (streams/agents.py, Pending), and a flush held back
while catching up is done by the next batch or by a timer, neither of which runs any more: the
stop waited until the process was killed (tests/faults/test_soak.py). The coroutine functions in
WHILE_WAIT_EMPTY (the worker registers one that flushes what the agent holds, streams/worker.py)
run as tasks during that wait and are cancelled after it.
Upstream: faust-streaming/faust#162 (open: a stream read with take(..., within=...) does not stop
on SIGINT); robinhood/faust#391 (wait_empty waits for ever for events never acknowledged).

5. Durable writes (faust/transport/drivers/aiokafka.py; durable_writes(), for streams/durability.py):
Producer._settings_extra turns idempotence on only inside transactions; Transport._topic_config has
no min.insync.replicas; Transport._really_create_topic returns before the producer's metadata knows
the new topic, and faust then picks a changelog record's partition from that metadata (on a
3-broker cluster the agent crashed with "'NoneType' object is not iterable" in aiokafka's
_partition). The wrappers add idempotence, the configured min ISR, and a wait for the metadata.
Upstream: no upstream issue found for idempotence or min ISR; behaviour in faust 0.15.3
faust/transport/drivers/aiokafka.py:Producer._settings_extra and Transport._topic_config.
The metadata race: faust-streaming/faust#390 shows the min ISR side; robinhood/faust#499 (PR #500:
metadata not refreshed for topics created at start-up).

6. Short fetch wait (faust/transport/drivers/aiokafka.py,
AIOKafkaConsumerThread._create_worker_consumer): faust creates the worker's consumer with
fetch_max_wait_ms=1500, fixed. aiokafka keeps one fetch request in flight per broker and leaves out
of it every partition whose fetched records the drain loop has not taken yet. When the agent is
busy, the request goes out for the partitions that get no records (the pingback and moderation
topics, the ticks), and the broker holds it for the full 1.5 s; the partitions that do get records
wait behind it, their backlog grows, the next drain is slower again, and latency stays at 2-4 s
(bench.faust_latency, docs/performance.md "Latency"). The wrapper sets FETCH_MAX_WAIT_MS.
Upstream: no upstream issue found; behaviour in faust 0.15.3
faust/transport/drivers/aiokafka.py:AIOKafkaConsumerThread._create_worker_consumer and aiokafka
0.14 aiokafka/consumer/fetcher.py:Fetcher._get_actions_per_node.

7. Offsets only in the agent's transactions (faust/transport/consumer.py,
TransactionManager.commit): under exactly_once faust's commit timer sends the acknowledged offsets
to each partition's transaction and commits it, whatever that transaction holds at the moment.
The agent commits its own transaction per input partition with the flush's records and the
offsets of the events behind them (streams/transactions.py), and acknowledges the events only
after that; faust's commit would commit a flush's transaction half-sent. The replacement writes
nothing and reports success (the offsets it is given are already in a committed transaction), so
faust's own bookkeeping of committed offsets goes on as before.
Upstream: no upstream issue found; behaviour in faust 0.15.3
faust/transport/consumer.py:TransactionManager.commit and
faust/transport/drivers/aiokafka.py:Producer.commit_transactions.

8. Fetch woken when a stream's buffer drains (faust/transport/consumer.py, Consumer.on_buffer_drop):
when a stream's queue is 80 % full faust takes the partition out of the set of partitions it
fetches for (on_buffer_full), and puts it back once the agent has drained the queue to 40 %
(on_buffer_drop). The drain loop's getmany hands that same set to aiokafka's
Fetcher.fetched_records in the consumer thread, which, finding records only for partitions not in
it, waits for new records up to getmany's 1 s timeout. Putting the partition back wakes nothing:
the records already fetched for it wait out the second. With the per-message fast path (patch 3)
the drain loop fills a stream's queue faster than the agent empties it, so a backlog read
stalled about a second after every fetch (found by logging around fetched_records in
bench.faust_floor with the fixes; figures in docs/performance.md). The wrapper, after putting a
partition back, wakes the fetch waiters in the consumer thread's loop, so fetched_records looks
again at once.
Upstream: no upstream issue found; behaviour in faust 0.15.3
faust/transport/consumer.py:Consumer.on_buffer_drop and aiokafka 0.14
aiokafka/consumer/fetcher.py:Fetcher.fetched_records.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from aiokafka.client import AIOKafkaClient
from aiokafka.consumer.fetcher import Fetcher
from faust.app.base import App
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer, TransactionManager
from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TP
from mode.services import Service, WaitResults

from schemas.errors import BlogpulseError

log = logging.getLogger(__name__)

# The versions the patches and fingerprints were written against (pyproject.toml pins the same).
PINNED = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1"}
OVERRIDE_VARIABLE = "BLOGPULSE_FAUST_COMPAT"
MODES = ("check", "ignore")

# "Class.method" -> (owner, attribute) of every faust/mode method a patch replaces, wraps or relies on
TARGETS: dict[str, tuple[type, str]] = {
    "Recovery.on_recovery_completed": (Recovery, "on_recovery_completed"),
    "App._stop_consumer": (App, "_stop_consumer"),
    "App._consumer_wait_empty": (App, "_consumer_wait_empty"),
    "Consumer._new_offset": (Consumer, "_new_offset"),
    "Consumer._add_gap": (Consumer, "_add_gap"),
    "Consumer._drain_messages": (Consumer, "_drain_messages"),
    "Service.wait_first": (Service, "wait_first"),
    "TransactionManager.commit": (TransactionManager, "commit"),
    "Producer.begin_transaction": (faust_kafka.Producer, "begin_transaction"),
    "Producer.stop_transaction": (faust_kafka.Producer, "stop_transaction"),
    "TransactionManager.on_rebalance": (TransactionManager, "on_rebalance"),
    "Producer._settings_extra": (faust_kafka.Producer, "_settings_extra"),
    "Transport._topic_config": (faust_kafka.Transport, "_topic_config"),
    "Transport._really_create_topic": (faust_kafka.Transport, "_really_create_topic"),
    "AIOKafkaClient._wait_on_metadata": (AIOKafkaClient, "_wait_on_metadata"),
    "Consumer.on_buffer_drop": (Consumer, "on_buffer_drop"),
    "Fetcher.fetched_records": (Fetcher, "fetched_records"),
    "AIOKafkaConsumerThread._create_worker_consumer": (
        faust_kafka.AIOKafkaConsumerThread,
        "_create_worker_consumer",
    ),
}
# Taken at import, before anything is patched: what fingerprints are computed on and what the
# wrappers call.
ORIGINALS: dict[str, Any] = {name: getattr(owner, attr) for name, (owner, attr) in TARGETS.items()}
# sha256 (first 16 hex digits) of each original's source without whitespace, in the PINNED
# versions (print the current ones: python -c 'from streams.faust_compat import *; print(current())')
FINGERPRINTS: dict[str, str] = {
    "Recovery.on_recovery_completed": "fd96eca747572393",
    "App._stop_consumer": "f07a854b2b9c180c",
    "App._consumer_wait_empty": "66afa5f0101799a5",
    "Consumer._new_offset": "d8eb69eb445f12c7",
    "Consumer._add_gap": "f01c595fb2b10a6e",
    "Consumer._drain_messages": "3f1b608ae6103283",
    "Service.wait_first": "2960fd3256a320ba",
    "TransactionManager.commit": "dff412ecdad2ed16",
    "Producer.begin_transaction": "e654a3bc237edd12",
    "Producer.stop_transaction": "271aea0efa2d849f",
    "TransactionManager.on_rebalance": "fdb552a5f7e4b541",
    "Producer._settings_extra": "2378aa8cbac788e8",
    "Transport._topic_config": "0e2a00c5c24077fc",
    "Transport._really_create_topic": "aabe5ba233456c88",
    "AIOKafkaClient._wait_on_metadata": "07fc3fdf7abf2203",
    "Consumer.on_buffer_drop": "fb14fc302d933b40",
    "Fetcher.fetched_records": "14a61876338b366f",
    "AIOKafkaConsumerThread._create_worker_consumer": "70e4db0e4dd3a466",
}

# faust's methods that apply() replaced, by "Class.method" (the tests run them to show the bug).
replaced: dict[str, Any] = {}
# Coroutine functions run as tasks while faust waits for unacknowledged messages at a stop, and
# cancelled when it is done (patch 4).
WHILE_WAIT_EMPTY: list[Any] = []


class FaustMismatch(BlogpulseError, RuntimeError):
    """The installed faust is not the one the patches were written for (one line: what differs and
    the override). Exit 2: the worker refuses to start."""

    exit_code = 2


# ------------------------------------------------------------------------------------ the check
def fingerprint(function: Any) -> str:
    source = "".join(inspect.getsource(function).split())
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def current() -> dict[str, str]:
    """The fingerprints of the installed methods (to update FINGERPRINTS after a review)."""
    return {name: fingerprint(function) for name, function in ORIGINALS.items()}


def mismatches() -> list[str]:
    """What differs from the versions and method sources the patches were written for."""
    found = [
        f"{dist} {installed_version(dist) or 'missing'} installed, {pinned} expected"
        for dist, pinned in PINNED.items()
        if installed_version(dist) != pinned
    ]
    changed = [
        name for name, expected in FINGERPRINTS.items() if fingerprint(ORIGINALS[name]) != expected
    ]
    if changed:
        found.append(f"changed since faust {PINNED['faust-streaming']}: {', '.join(changed)}")
    return found


def check(mode: str = "check") -> list[str]:
    """At worker start: raise FaustMismatch when faust differs (mode "check"), or log it and go on
    (mode "ignore", BLOGPULSE_FAUST_COMPAT=ignore). Returns what differs."""
    if mode not in MODES:
        raise FaustMismatch(
            f"{OVERRIDE_VARIABLE}: expected one of {', '.join(MODES)}, got {mode!r}"
        )
    found = mismatches()
    if found and mode == "check":
        raise FaustMismatch(
            f"faust differs from what streams/faust_compat.py patches: {'; '.join(found)} "
            f"(update the patches and PINNED/FINGERPRINTS, or set {OVERRIDE_VARIABLE}=ignore "
            f"to start anyway with the changed patches left out)"
        )
    if found:
        log.warning(
            "%s=ignore: starting although faust differs: %s (patches left out: %s)",
            OVERRIDE_VARIABLE,
            "; ".join(found),
            ", ".join(skipped) or "none",
        )
    return found


# ------------------------------------------------------------------------------------ accessors
async def aiokafka_producer(app: Any) -> Any:
    """The AIOKafkaProducer under the faust app's producer (started on first use), not
    transactional in either guarantee: the agent sends its record batches on it
    (streams/kafka_batches.py) under at_least_once, and its ticks in both. Once per flush, not
    per event. (app.maybe_start_producer() returns faust's TransactionManager under exactly_once.)"""
    producer = app.producer
    await producer.maybe_start()
    return producer._producer


class NoTransaction(BlogpulseError, RuntimeError):
    """No transactional producer for a partition this worker processes (fenced by another)."""


def transactional_id(app: Any, topic: str, partition: int) -> str:
    """faust's transactional id of a partition of `topic` (TransactionManager's format): the same
    on every worker, so the partition's producer on its next owner fences the one before."""
    return f"{app.conf.id}-{app.assignor.group_for_topic(topic)}-{partition}"


def transaction_producer(app: Any, topic: str, partition: int) -> tuple[asyncio.Lock, Any]:
    """Under exactly_once: the lock and the transactional AIOKafkaProducer that faust started for
    the partition's transactional id when it was assigned (faust/transport/consumer.py,
    TransactionManager; a producer with that id on another worker is fenced by it)."""
    tid = transactional_id(app, topic, partition)
    producers = app.producer._transaction_producers
    if tid not in producers:
        raise NoTransaction(f"no transactional producer {tid} (fenced, or the partition left)")
    return app.producer._trn_locks[tid], producers[tid]


def current_transaction_producer(app: Any, topic: str, partition: int) -> Any | None:
    """The transactional AIOKafkaProducer faust holds for the partition now (None: none)."""
    return app.producer._transaction_producers.get(transactional_id(app, topic, partition))


def producer_closed(producer: Any) -> bool:
    """Whether the AIOKafkaProducer was stopped (its sender no longer runs: a commit or abort
    begun on it would wait for ever)."""
    return bool(producer._closed)


async def stop_transaction_producers(app: Any, topic: str, partitions: Any) -> list[str]:
    """Stop the transactional producers of revoked partitions of `topic` (faust's public
    Producer.stop_transaction, under the producer's lock: never during a transaction of ours).
    faust 0.15.3 stops them itself only for partitions that are not standbys of this worker in
    the new assignment (TransactionManager.on_rebalance, _tps_to_active_tpgs): with two workers
    each is the other's standby, so the old producer stayed, was fenced by the partition's new
    owner, and was used again, fenced, when the partition came back (ProducerFenced: the worker
    crashed). Stopped here, faust starts a new producer (a new epoch) at the next assignment.
    Returns the transactional ids stopped."""
    producer = app.producer
    stopped = []
    for partition in sorted(partitions):
        tid = transactional_id(app, topic, partition)
        if tid not in producer._transaction_producers:
            continue
        async with producer._trn_locks[tid]:
            await producer.stop_transaction(tid)
        stopped.append(tid)
    return stopped


def in_transaction(producer: Any) -> bool:
    """Whether the transactional AIOKafkaProducer has begun a transaction not yet ended."""
    return bool(producer._txn_manager.is_in_transaction())


def committed_offsets(consumer: Any) -> Mapping[Any, int | None]:
    """The faust consumer's record of what it committed, by TP (empty before the first commit)."""
    return getattr(consumer, "_committed_offset", None) or {}


async def wait_on_metadata(client: Any, topic: str) -> Any:
    """Until the aiokafka client's metadata lists the topic's partitions."""
    return await client._wait_on_metadata(topic)


# ------------------------------------------------------------------------------------ patches 1-4
async def _consumer_wait_empty(self: App, consumer: Any, logger: Any) -> None:
    """faust 0.15.3's App._consumer_wait_empty with the WHILE_WAIT_EMPTY tasks running."""
    tasks = [asyncio.ensure_future(fn()) for fn in WHILE_WAIT_EMPTY]
    try:
        await ORIGINALS["App._consumer_wait_empty"](self, consumer, logger)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _on_recovery_completed(self: Recovery, generation_id: int = 0) -> None:
    """faust 0.15.3's Recovery.on_recovery_completed with perform_seek() moved before
    resume_partitions(); every other step is unchanged."""
    consumer = self.app.consumer
    self.log.info("Restore complete!")
    await self.app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callback_coros = [
        asyncio.ensure_future(
            table.on_recovery_completed(
                self.actives_for_table[table], self.standbys_for_table[table]
            )
        )
        for table in self.tables.values()
    ]
    if callback_coros:
        await asyncio.wait(callback_coros)
    assignment = consumer.assignment()
    if self.app.consumer_generation_id != generation_id:
        self.log.warning(
            "Recovery rebalancing again app id %s param %s",
            self.app.consumer_generation_id,
            generation_id,
        )
        return
    if assignment:
        self.log.info("Seek stream partitions to committed offsets (still paused).")
        await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
    consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
    self.completed.set()
    self.app.flow_control.resume()
    consumer.resume_flow()
    await cast(Any, self.app)._fetcher.maybe_start()
    self.tables.on_actives_ready()
    if not self.app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


def _new_offset(self: Consumer, tp: TP) -> int | None:
    """The offset to commit for tp (one past the last done offset), or None when the committed one
    is still the right one. Walks from the committed offset over acknowledged offsets and known
    gaps, then forgets what it walked over."""
    acked = self._acked[tp]
    if not acked:
        return None
    index, gaps = self._acked_index[tp], self._gap[tp]
    committed = self._committed_offset[tp]
    start = pos = min(acked) if committed is None else committed
    while True:
        if pos in index:
            pos += 1
        elif gaps and (covering := gaps.at(pos)):
            pos = max(interval.end for interval in covering)
        elif (
            pos == start
            and committed is not None
            and (after := _next_done(acked, gaps)) is not None
            and (after == pos + 1 or pos == 1)
        ):
            # Two holes in faust's gap records, both at the head: after a seek the read offset is
            # the committed offset itself, so a gap found by the first record read starts one
            # later (faust's own rule skipped that one offset); and the drain loop records no gap
            # after offset 0 (it tests the read offset for truth). A partition's records reach its
            # stream in order, so with a later offset done these cannot be records still waiting.
            pos = after
        else:
            break
    if pos == start:
        return None
    # acked and its index hold the same offsets (Consumer.ack adds to both); a gap can span
    # millions of offsets, so drop what the walk passed by what is held, not by the range.
    index.difference_update([offset for offset in acked if offset < pos])
    acked[:] = [offset for offset in acked if offset >= pos]
    if gaps:
        gaps.chop(0, pos)
    return pos


def _next_done(acked: list[int], gaps: Any) -> int | None:
    """The lowest offset known to be done (acked, or the start of a gap)."""
    candidates = [min(acked)] if acked else []
    if gaps:
        candidates.append(gaps.begin())
    return min(candidates, default=None)


async def _add_gap(self: Consumer, tp: TP, offset_from: int, offset_to: int) -> None:
    """Record that offsets offset_from .. offset_to - 1 do not exist: offset_to is the record
    that revealed the gap, and it is done only once it is processed and acknowledged."""
    committed = self._committed_offset[tp]
    if committed is not None:
        offset_from = max(offset_from, committed)
    if offset_from < offset_to:
        self._gap[tp].addi(offset_from, offset_to)


async def _wait_first(self: Consumer, *coros: Any, timeout: Any = None) -> WaitResults:
    """Service.wait_first with a fast path for a first coroutine that finishes without waiting."""
    first = coros[0] if coros else None
    if not asyncio.iscoroutine(first) or self._stopped.is_set() or self._crashed.is_set():
        return await _service_wait_first(self, *coros, timeout=timeout)
    try:
        yielded = first.send(None)
    except BaseException as exc:
        for other in coros[1:]:
            if asyncio.iscoroutine(other):
                other.close()  # never started: nothing to cancel
        if isinstance(exc, StopIteration):
            return WaitResults([first], [exc.value], False)
        raise
    return await _service_wait_first(self, _Continued(first, yielded), *coros[1:], timeout=timeout)


_service_wait_first = ORIGINALS["Service.wait_first"]


class _Continued:
    """Awaitable that goes on with a coroutine which already ran its first step and yielded
    `yielded` (what it waits on): that is handed to the task first, then the coroutine continues
    exactly as it would have in its own task (results, exceptions and cancellation pass through)."""

    def __init__(self, coro: Any, yielded: Any) -> None:
        self._coro, self._yielded = coro, yielded

    def __await__(self) -> Any:
        coro, value = self._coro, self._yielded
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # noqa: B036 - cancellation goes to the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as done:
                    return done.value


# ------------------------------------------------------------------------------------ patch 5
def _durable_wrappers(min_insync_replicas: int) -> list[tuple[type, str, Any]]:
    settings_extra = ORIGINALS["Producer._settings_extra"]
    topic_config = ORIGINALS["Transport._topic_config"]
    really_create_topic = ORIGINALS["Transport._really_create_topic"]

    def _settings_extra(self: Any) -> dict[str, Any]:
        # aiokafka requires acks=all with idempotence; a transaction's settings win.
        return {"acks": "all", "enable_idempotence": True, **settings_extra(self)}

    def _topic_config(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        config = dict(topic_config(self, *args, **kwargs))
        config.setdefault("min.insync.replicas", str(min_insync_replicas))
        return config

    async def _really_create_topic(
        self: Any, owner: Any, client: Any, topic: str, *args: Any, **kwargs: Any
    ) -> None:
        await really_create_topic(self, owner, client, topic, *args, **kwargs)
        # client is the producer's: wait until its metadata lists the topic's partitions
        await wait_on_metadata(client, topic)

    return [
        (faust_kafka.Producer, "_settings_extra", _settings_extra),
        (faust_kafka.Transport, "_topic_config", _topic_config),
        (faust_kafka.Transport, "_really_create_topic", _really_create_topic),
    ]


# ------------------------------------------------------------------------------------ patch 6
# The longest a fetch request waits at the broker for records (faust: 1,500 ms). An idle worker
# sends one empty fetch per this interval.
FETCH_MAX_WAIT_MS = 100


def _create_worker_consumer(self: Any, transport: Any) -> Any:
    consumer = ORIGINALS["AIOKafkaConsumerThread._create_worker_consumer"](self, transport)
    consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by start(), which builds the fetcher
    return consumer


# ------------------------------------------------------------------------------------ patch 7
async def _commit_nothing(self: Any, offsets: Any, start_new_transaction: bool = True) -> bool:
    return True  # the agent's own transactions hold these offsets (streams/transactions.py)


# ------------------------------------------------------------------------------------ patch 8
def _on_buffer_drop(self: Any, tp: TP) -> None:
    resumed = tp in self._buffered_partitions
    ORIGINALS["Consumer.on_buffer_drop"](self, tp)
    if resumed:
        _wake_fetch(self)


def _wake_fetch(consumer: Any) -> None:
    """Make a fetched_records call waiting in the consumer thread look at its records again."""
    thread: Any = getattr(consumer, "_thread", None)
    client = getattr(thread, "_consumer", None)
    if client is None or client._fetcher is None or thread.thread_loop.is_closed():
        return  # not started, or stopped: nothing waits
    thread.thread_loop.call_soon_threadsafe(_notify_waiters, client._fetcher)


def _notify_waiters(fetcher: Fetcher) -> None:
    for waiter in list(fetcher._fetch_waiters):
        if not waiter.done():
            waiter.set_result(None)


# ------------------------------------------------------------------------------------ installing
@dataclass(frozen=True)
class Patch:
    name: str
    # (owner, attribute, new function); the methods it relies on unchanged, by "Class.method"
    methods: Callable[[], list[tuple[type, str, Any]]]
    relies_on: tuple[str, ...] = ()


PATCHES = (
    Patch(
        "seek before resume", lambda: [(Recovery, "on_recovery_completed", _on_recovery_completed)]
    ),
    Patch(
        "flush before stop",
        lambda: [(App, "_consumer_wait_empty", _consumer_wait_empty)],
        relies_on=("App._stop_consumer",),
    ),
    Patch(
        "commits over gaps",
        lambda: [(Consumer, "_new_offset", _new_offset), (Consumer, "_add_gap", _add_gap)],
    ),
    Patch(
        "per-message fast path",
        lambda: [(Consumer, "wait_first", _wait_first)],
        relies_on=("Service.wait_first", "Consumer._drain_messages"),
    ),
    Patch(
        "offsets only in the agent's transactions",
        lambda: [(TransactionManager, "commit", _commit_nothing)],
        relies_on=("Producer.begin_transaction",),
    ),
    Patch(
        "fetch woken when a buffer drains",
        lambda: [(Consumer, "on_buffer_drop", _on_buffer_drop)],
        relies_on=("Fetcher.fetched_records",),
    ),
    Patch(
        "short fetch wait",
        lambda: [
            (
                faust_kafka.AIOKafkaConsumerThread,
                "_create_worker_consumer",
                _create_worker_consumer,
            )
        ],
    ),
)
_applied: set[str] = set()
skipped: list[str] = []  # patches not installed because a method they concern changed


def _install(patch: Patch) -> None:
    if patch.name in _applied:
        return
    _applied.add(patch.name)
    methods = patch.methods()
    names = [*(f"{owner.__name__}.{attr}" for owner, attr, _ in methods), *patch.relies_on]
    # Consumer.wait_first is mode's Service.wait_first (inherited): fingerprinted under that name
    names = ["Service.wait_first" if n == "Consumer.wait_first" else n for n in names]
    changed = [n for n in names if fingerprint(ORIGINALS[n]) != FINGERPRINTS[n]]
    if changed:
        skipped.append(patch.name)
        log.warning(
            "faust changed %s: the %r patch in streams/faust_compat.py is not installed "
            "(the worker refuses to start unless %s=ignore)",
            ", ".join(changed),
            patch.name,
            OVERRIDE_VARIABLE,
        )
        return
    for owner, attr, function in methods:
        replaced[f"{owner.__name__}.{attr}"] = getattr(owner, attr)
        setattr(owner, attr, function)


def apply() -> None:
    """Install patches 1-4 and 6-8 (once; streams.app calls it before the app is built)."""
    for patch in PATCHES:
        _install(patch)


def durable_writes(min_insync_replicas: int) -> None:
    """Install patch 5 with the configured min ISR (once)."""
    _install(
        Patch(
            "durable writes",
            lambda: _durable_wrappers(min_insync_replicas),
            relies_on=("AIOKafkaClient._wait_on_metadata",),
        )
    )
