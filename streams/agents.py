"""The aggregation agent and the orphan-timeout timer (faust).

One agent reads the four input topics and the tick topic in batches, held in `Pending`: a
batch's events are acknowledged only after the flush that wrote their effects was delivered, so
committed offsets never pass unprocessed events. Per batch: decode (bad events -> dead-letter
topic) and group by post; per flush: merge into each post's state (streams/post_store.py: in
memory, loaded from the changelog when a partition is first seen), derive once per post, write
the changed entries to the changelog, then each changed aggregate once. A batch that only adds
new approved entries to a post seen before takes engine.derive_more (O(new entries), same result as the full derive +
diff); anything else takes the full derive. A batch closes at BATCH_MAX events or BATCH_WITHIN
seconds: under a backlog the per-post work and a post's outputs are shared by many events (each
aggregate changed in a flush is written once, like Kafka Streams' record cache), and at moderate
rates an event waits at most BATCH_WITHIN.

Every record the agent writes goes to the partition of its post (outputs and changelog), sent in
record batches (streams/kafka_batches.py). Output records carry the newest Kafka timestamp of the
input events that changed them, so the sink can time publish -> database.

Order within a flush: the changelog records are sent and their delivery awaited *before* the
outputs; the input events are acknowledged after both. A crash before the changelog landed
replays the events onto the old state, which emits the same changes again (the sink's version
guard makes repeats harmless). A crash after it landed and before the outputs did would leave
those outputs unsent, since the replayed events change nothing in the loaded state: so after
loading a partition the agent emits again every aggregate of the posts the partition's newest
flush wrote (streams/post_store.py, last_flush), with tombstones for every thread and window
those posts could have had and no longer have. (The other order had a window that no replay
closes: outputs delivered, changelog lost, and later events that revert the change leave the
killed worker's outputs standing: tests/unit/test_agent_crash_window.py.)

Dead letters are records of the flush too, on the partition of their source event, so they are
written once the flush is and not before. Under exactly_once (streams/transactions.py) a flush is
one Kafka transaction per input partition with its changelog records, outputs, dead letters and
the consumer offsets of its events; the order above and the refresh after a load are then not
needed, and are not done. Ticks are not part of any transaction: they go on the plain producer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from typing import Any, cast

import mode
import orjson

from schemas.json_bytes import dumps
from schemas.topic_names import DLQ_TOPIC, INPUT_TOPICS, TICK_TOPIC
from schemas.wire import FIELDS, InvalidEvent, cached_epoch_of, decode_event, epoch_of
from streams import engine, metrics, observability, transactions
from streams.faust_compat import stop_transaction_producers
from streams.kafka_batches import BatchSender, aiokafka_producer
from streams.post_store import PostStore, load, open_store
from streams.settings import Settings
from streams.state_cache import StateCache
from streams.topics import source_topic

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BATCH_MAX = 20000  # events per take_events batch
TICK_HOLD_BACKLOG = BATCH_MAX  # unread events of an input partition that hold its orphan ticks
BATCH_WITHIN = 0.05  # seconds a batch waits to fill (latency at moderate rates)
# Catching up (the newest input event is older than CATCH_UP_LAG seconds), changes coalesce over
# batches until FLUSH_MAX_SECONDS, FLUSH_MAX_EVENTS or FLUSH_MAX_POSTS (docs/performance.md).
# The posts bound is KIP-63's cache size: every post of a flush brings its decoded state,
# derivation, changes and rendered outputs into memory at once, and with many small posts a
# second of backlog is tens of thousands of them. It holds only while the held entries are spread
# thin (fewer than FLUSH_SHARED_EVENTS_PER_POST per post to fold): where posts repeat, a bigger
# flush derives each of them once for more events, and cutting it costs more time than it saves.
CATCH_UP_LAG = 1.0
FLUSH_MAX_SECONDS = 1.0
FLUSH_MAX_EVENTS = 100_000
FLUSH_MAX_POSTS = 5000
FLUSH_SHARED_EVENTS_PER_POST = 4 / 3

_INPUTS = frozenset(INPUT_TOPICS.values())

# Contract field names are a bounded set, so they may be label values; anything else is "other".
# The contract's fields, and the reasons the decoder and the key check name besides them.
_REASON_CODES = frozenset({"json", "utf8", "schema", "key", *FIELDS})

_load_lock = asyncio.Lock()

# Set by register_agents() from the worker's settings: one app per worker process, so these are
# module globals, as cheap to reach on the per-event path as constants.
app: Any = None
_settings: Settings
ORPHAN_TIMEOUT: float
TICK_INTERVAL: float
CHANGELOG_TOPIC: str
OUTPUT_TOPICS: dict[str, str]
store: PostStore
# post key -> (Derived, running totals) as last derived: saves deriving the old state again, and
# lets engine.derive_more() add a batch of new entries without a full derive. Bounded by entries
# (streams/state_cache.py); a miss derives the post in full. Cleared with the store's states.
_derived: StateCache
EXACTLY_ONCE: bool
aggregate: Any  # the faust agent (aggregate_batches registered on the app)


def register_agents(app_: Any, settings: Settings) -> None:
    """Set this module up for the worker's app and settings, and register the aggregation agent,
    its flush and orphan timers and its revocation handler on the app."""
    global app, _settings, ORPHAN_TIMEOUT, TICK_INTERVAL, CHANGELOG_TOPIC, OUTPUT_TOPICS, store
    global _derived, EXACTLY_ONCE, aggregate, _INPUTS, TICK_TOPIC
    app, _settings = app_, settings
    _INPUTS, TICK_TOPIC = frozenset(settings.input_topics.values()), settings.tick_topic
    ORPHAN_TIMEOUT = settings.orphan_timeout
    # Often enough that a worker-clock timeout fires within ~1/4 of its length, at most every 30 s.
    TICK_INTERVAL = max(1.0, min(ORPHAN_TIMEOUT / 4, 30.0))
    CHANGELOG_TOPIC = f"{settings.generation_app_id}-post-entries-changelog"
    OUTPUT_TOPICS = settings.output_topics
    store = open_store(settings)
    # with the RocksDB store a quiet post's derivation goes when its decoded state does
    idle = settings.store_idle_seconds if settings.store == "rocksdb" else None
    _derived = StateCache(settings.state_cache_entries, idle)
    pending.reset()
    EXACTLY_ONCE = settings.processing_guarantee == "exactly_once"
    aggregate = app_.agent(
        source_topic(app_, settings),
        name=f"{__name__}.aggregate",
        supervisor_strategy=mode.CrashingSupervisor,
    )(aggregate_batches)
    app_.timer(interval=FLUSH_MAX_SECONDS / 4)(flush_clock)
    app_.on_partitions_revoked.connect(_forget_revoked)
    app_.timer(interval=TICK_INTERVAL)(orphan_clock)


class BadKey(InvalidEvent):
    pass


def reason_code(field: str | None) -> str:
    """Bounded label value for blogpulse_dead_letters_total."""
    return field if field in _REASON_CODES else "other"


def decode(key: bytes | None, raw: bytes) -> tuple[str, engine.EventFields]:
    """Decode and check one input message; raises InvalidEvent naming the field."""
    event = decode_event(raw)
    post_key = f"{event['site']}/{event['post_id']}"
    try:
        text_key = key.decode("utf-8") if key is not None else None
    except UnicodeDecodeError:
        text_key = None
    if text_key != post_key:
        raise BadKey("key", "Kafka key must be '<site>/<post_id>' of the event")
    post_time = event["post_time"]
    return post_key, engine.EventFields(
        event["event_id"],
        event["type"],
        event["comment_id"],
        event["parent_id"],
        event["post_author"],
        event["author_key"],
        event["kind"],
        epoch_of(event["event_time"]),
        None if post_time is None else cached_epoch_of(post_time),
        event["status"],
    )


def dead_letter(event: Any, exc: InvalidEvent) -> None:
    """Hold the event for the dead-letter topic: written by the next flush, on the partition of
    the event (module doc)."""
    msg = event.message
    reason = f"{exc.field}: {exc.reason}"[:500]
    headers = [
        ("blogpulse.reason", reason.encode()),
        ("blogpulse.source_topic", str(msg.topic).encode()),
        ("blogpulse.source_partition", str(msg.partition).encode()),
        ("blogpulse.source_offset", str(msg.offset).encode()),
    ]
    pending.dead_letters.add(DLQ_TOPIC, msg.partition, msg.key, event.value, headers=headers)
    pending.dead_reasons[(msg.partition, reason_code(exc.field))] += 1


def render(post_key: str, version: int, change: engine.AggregateChange) -> tuple[str, bytes]:
    """Output key and JSON value of one change (docs/architecture.md, output topics)."""
    site, post_id = post_key.rsplit("/", 1)
    head = {"schema_version": SCHEMA_VERSION, "site": site, "post_id": int(post_id)}
    if change.aggregate == "posts":
        return post_key, dumps({**head, "version": version, **change.value})
    if change.aggregate == "threads":
        root = change.ident
        value = {
            **head,
            "root_comment_id": root,
            "version": version,
            **change.value,
            "deleted": change.deleted,
        }
        return f"{post_key}/{root}", dumps(value)
    window, start = change.ident
    value = {
        **head,
        "window": window,
        "window_start": start,
        "version": version,
        **change.value,
        "deleted": change.deleted,
    }
    return f"{post_key}/{window}/{start}", dumps(value)


def next_version(previous: int) -> int:
    """Grows per post, and also across workers and crashes: at least the wall clock in ms.

    Outputs are sent before the state is saved (module doc), so after a crash or a rebalance the
    next owner re-derives from the last *saved* state and emits the same changes again, possibly
    with more events folded in. With a plain counter that emission would reuse the version the
    lost worker already sent, and the sink's version guard would keep the older content."""
    return max(previous + 1, time.time_ns() // 1_000_000)


class Pending:
    """What batches brought and no flush has written yet: the decoded events per post (and ticks)
    not folded into the state yet; per post, its changed aggregates by identity (a later change of
    the same aggregate replaces the earlier: each is written once per flush); the newest input
    timestamp behind them; and the events, held unacknowledged."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Empty: nothing held."""
        self.unfolded: dict[str, list[engine.EventFields]] = defaultdict(list)
        self.ticks: dict[str, float] = {}
        self.changes: dict[str, dict[tuple[str, Any], engine.AggregateChange]] = {}
        self.timestamps: dict[str, int] = {}  # post -> newest input Kafka timestamp (ms)
        self.events: list[Any] = []
        self.dead_letters = BatchSender()
        self.dead_reasons: dict[tuple[int, str], int] = defaultdict(int)  # (partition, reason)
        # posts whose outputs are emitted again in full at the next flush (after a load)
        self.refresh: set[str] = set()
        self.since: float | None = None  # monotonic time of the first held event
        self.newest_input = 0.0  # newest input timestamp (s) of any held event

    def __bool__(self) -> bool:
        return bool(self.events or self.refresh)

    def hold(self, events: Iterable[Any]) -> None:
        for event in events:
            event.message.incref()  # take_events acks its own reference after the loop body
            self.events.append(event)
        if self.since is None:
            self.since = time.monotonic()

    def release(self) -> None:
        for event in self.events:
            event.ack()
        refresh = self.refresh  # added by a load while the flush ran: for the next flush
        self.reset()
        if refresh:
            self.refresh, self.since = refresh, time.monotonic()

    def drop(self, partitions: set[int]) -> None:
        """Forget what belongs to partitions that left: their events are never acknowledged, so
        their next owner reads them again."""
        self.events = [e for e in self.events if e.message.partition not in partitions]
        kept = self.dead_letters.by_partition()
        for partition, part in kept.items():
            if partition not in partitions:
                self.dead_letters.extend(part)
        for key in [k for k in self.dead_reasons if k[0] in partitions]:
            del self.dead_reasons[key]
        for posts in (self.changes, self.unfolded, self.ticks, self.timestamps):
            for post_key in [k for k in posts if store.partition_of(k) in partitions]:
                del posts[post_key]
        self.refresh = {k for k in self.refresh if store.partition_of(k) not in partitions}
        if not self:
            self.reset()

    def due(self) -> bool:
        """Flush after every batch while the input is fresh (latency); while catching up with a
        backlog, let events and changes gather for up to FLUSH_MAX_SECONDS, FLUSH_MAX_EVENTS
        events or FLUSH_MAX_POSTS posts spread thin (throughput: a post is then derived once per
        flush, not once per batch; memory: the posts bound)."""
        if not self.events:
            return bool(self.refresh)
        if time.time() - self.newest_input < CATCH_UP_LAG:
            return True
        return (
            time.monotonic() - cast(float, self.since) >= FLUSH_MAX_SECONDS  # set by hold()
            or len(self.events) >= FLUSH_MAX_EVENTS
            or self._posts_spread_thin()
        )

    def _posts_spread_thin(self) -> bool:
        """FLUSH_MAX_POSTS posts to fold (with entries or ticks: a tick's post is decoded and
        derived too) and fewer than FLUSH_SHARED_EVENTS_PER_POST entry events per post (ticks
        share no work: the ticks of a post coalesce into one)."""
        if len(self.unfolded) + len(self.ticks) < FLUSH_MAX_POSTS:
            return False
        posts = len(self.unfolded.keys() | self.ticks.keys())
        entries = sum(map(len, self.unfolded.values()))
        return posts >= FLUSH_MAX_POSTS and entries < FLUSH_SHARED_EVENTS_PER_POST * posts


pending = Pending()
_flush_lock = asyncio.Lock()


FOLD_YIELD_POSTS = 200  # posts folded between two turns of the event loop


async def fold(
    events_by_post: dict[str, list[engine.EventFields]],
    ticks: dict[str, float],
    refresh: AbstractSet[str] = frozenset(),
) -> int:
    """Merge and derive every touched post; its changed aggregates go to `pending` and its changed
    entries to the store. Posts in `refresh` emit all their aggregates (module doc). Each post is
    processed without a pause; between posts the event loop gets a turn now and then, so that a
    flush of a big backlog (seconds of work) does not stall heartbeats, fetching and timers. Runs
    under _flush_lock, which the revocation handler takes too: no state is dropped meanwhile.
    Returns the number of aggregate changes found."""
    found = 0
    # Metric increments are summed per batch: labels() per event cost more than the merge.
    consumed: dict[tuple[str, str], int] = defaultdict(int)
    for i, post_key in enumerate(events_by_post.keys() | ticks.keys() | refresh):
        if i % FOLD_YIELD_POSTS == FOLD_YIELD_POSTS - 1:
            await asyncio.sleep(0)
        state = store.get(post_key)
        cached = _derived.pop(post_key)
        renew = post_key in refresh
        if renew:
            cached = None
        if cached is None and (state["e"] or state["s"]) and not renew:
            # not cached: derive the state before the merge, as the cache would have held it, so
            # that the batch can still take derive_more (one full derive for the miss, not two)
            cached = engine.derive_with_totals(state, engine.now_of(state), ORPHAN_TIMEOUT)
        old = cached.derived if cached is not None else None
        events = events_by_post.get(post_key, ())
        applied, new_ids = engine.merge_batch(state, events)
        changed_ids = set()
        for fields, ok in zip(events, applied):
            consumed[(fields.type, "applied" if ok else "unchanged")] += 1
            if ok:
                changed_ids.add(fields.comment_id)
        changed = bool(changed_ids)
        if post_key in ticks:
            changed |= engine.merge_tick(state, ticks[post_key])
            new_ids = None
        changed |= renew
        if not changed:
            if cached is not None:
                _derived.put(post_key, cached, len(state["e"]))  # nothing changed
            continue
        fast = None
        if cached is not None and new_ids:
            fast = engine.derive_more(state, cached.derived, cached.totals, new_ids, ORPHAN_TIMEOUT)
        if fast is not None:
            new, totals, changes = fast
        else:
            new, totals = engine.derive_with_totals(state, engine.now_of(state), ORPHAN_TIMEOUT)
            changes = engine.diff(old, new)
            if renew:
                changes += engine.absent(state, new)
        if changes:
            mine = pending.changes.setdefault(post_key, {})
            for change in changes:
                mine[(change.aggregate, change.ident)] = change
            found += len(changes)
        store.set_waiting(post_key, new.waiting_since, new.post["waiting_replies"])
        store.changed(post_key, changed_ids)
        _derived.put(post_key, engine.Derivation(new, totals), len(state["e"]))
    for (type_, outcome), n in consumed.items():
        metrics.EVENTS_CONSUMED.labels(type=type_, outcome=outcome).inc(n)
    return found


async def flush() -> int:
    """Write what is pending: the changed entries to the changelog, delivered; then each changed
    aggregate once (one new version per post) and the dead letters, delivered; then acknowledge
    the events. Under exactly_once all of it, with the events' offsets, in one transaction per
    input partition (streams/transactions.py). Returns the number of aggregates written. On an
    error the in-memory state may be ahead of Kafka: it is dropped (and loaded again from the
    changelog) and the events stay unacknowledged."""
    outputs = BatchSender()
    by_aggregate: dict[tuple[int, str], int] = defaultdict(int)  # (partition, aggregate)
    left: set[int] = set()  # exactly_once: partitions that left this worker during the flush
    try:
        # taken before folding: a refresh that a load adds meanwhile is for the next flush
        unfolded, ticks, refresh = pending.unfolded, pending.ticks, pending.refresh
        pending.unfolded, pending.ticks, pending.refresh = defaultdict(list), {}, set()
        await fold(unfolded, ticks, refresh)
        for post_key, changes in pending.changes.items():
            state = store.states[post_key]
            state["v"] = next_version(state["v"])
            store.changed(post_key, ())  # the header carries the version
            partition = store.partition_of(post_key)
            ts = pending.timestamps.get(post_key)
            for change in changes.values():
                key, value = render(post_key, state["v"], change)
                outputs.add(OUTPUT_TOPICS[change.aggregate], partition, key.encode(), value, ts)
                by_aggregate[(partition, change.aggregate)] += 1
        outputs.extend(pending.dead_letters)
        changelog = BatchSender()
        for partition, entry_key, entry in store.drain(store.next_flush()):
            changelog.add(CHANGELOG_TOPIC, partition, entry_key, entry)
        if EXACTLY_ONCE:
            changelog.extend(outputs)
            left = await transactions.commit(app, TICK_TOPIC, changelog, pending.events)
        else:
            producer = await aiokafka_producer(app)
            if changelog.count:
                # before the outputs (module doc)
                await asyncio.gather(*await changelog.send(producer))
            if outputs.count:
                await asyncio.gather(*await outputs.send(producer))
        # delivered: a store kept on disk takes the records now (streams/rocks_store.py)
        store.persist(
            {
                partition: end
                for (topic, partition), end in changelog.delivered.items()
                if topic == CHANGELOG_TOPIC and partition not in left
            }
        )
    except BaseException:
        # The worker stops (the agent's supervisor crashes the app): a restart reads the held
        # events again from the committed offsets, and the state again from the changelog.
        store.clear()
        _derived.clear()
        pending.reset()  # never acknowledged
        raise
    if left:
        # Their transactions were aborted (streams/transactions.py): their events stay
        # unacknowledged and their state, ahead of the changelog now, is dropped; the partitions'
        # next owner (this worker too, if one comes back) reads both again.
        pending.drop(left)
        store.forget(left)
        _derived.clear()
    dead = pending.dead_reasons
    pending.release()
    for (_partition, reason), n in dead.items():
        metrics.DEAD_LETTERS.labels(reason=reason).inc(n)
        metrics.EVENTS_CONSUMED.labels(type="invalid", outcome="dead_letter").inc(n)
    written = 0
    for (partition, aggregate), n in by_aggregate.items():
        if partition not in left:
            metrics.AGGREGATES_EMITTED.labels(aggregate=aggregate).inc(n)
            written += n
    return written


async def ensure_loaded(partitions: Iterable[int]) -> None:
    """Load the state of partitions seen for the first time (or again after a rebalance)."""
    if set(partitions) <= store.loaded:
        return
    async with _load_lock:
        new = set(partitions) - store.loaded
        await load(store, CHANGELOG_TOPIC, new, _consumer_config())
        # this worker's own records of a partition it never gave up need no refresh: only loaded
        # partitions get here
        # exactly_once: what the load read was committed with its outputs (module doc)
        renew = set() if EXACTLY_ONCE else store.last_flush(new & store.loaded)
        if renew:
            pending.refresh |= renew
            if pending.since is None:
                pending.since = time.monotonic()


def _consumer_config() -> dict[str, Any]:
    return {
        "bootstrap_servers": _settings.bootstrap_servers,
        # exactly_once: the changelog records of aborted flushes are not state
        "isolation_level": _settings.isolation_level,
        **_settings.kafka_security.aiokafka_config(),
    }


async def process_batch(events: Iterable[Any]) -> int:
    """One take_events batch: decode, dead-letter, group by post into `pending` (folded into the
    state by the next flush). Returns the number of events decoded."""
    by_post, ticks, timestamps = pending.unfolded, pending.ticks, pending.timestamps
    decoded = 0
    partitions: set[int] = set()
    wall = time.time()
    newest = 0
    for event in events:
        msg = event.message
        partitions.add(msg.partition)
        if msg.topic == TICK_TOPIC:
            tick = _parse_tick(msg.key, event.value)
            if tick is not None:
                ticks[tick[0]] = max(ticks.get(tick[0], tick[1]), tick[1])
            continue
        try:
            post_key, fields = decode(msg.key, event.value)
        except InvalidEvent as exc:
            dead_letter(event, exc)
            continue
        by_post[post_key].append(fields)
        decoded += 1
        ts = msg.timestamp
        if ts is not None:
            ts_ms = int(ts * 1000)
            if ts_ms > timestamps.get(post_key, 0):
                timestamps[post_key] = ts_ms
            if ts_ms > newest:
                newest = ts_ms
        metrics.EVENT_LAG.observe(max(0.0, wall - fields.event_time))
        observability.activity.record(post_key)
    pending.newest_input = max(pending.newest_input, newest / 1000 if newest else wall)
    await ensure_loaded(partitions)
    return decoded


def _parse_tick(key: bytes | None, value: bytes) -> tuple[str, float] | None:
    # Ticks are internal (written by orphan_clock below); a malformed one is only logged.
    try:
        return key.decode("utf-8"), float(orjson.loads(value)["clock"])  # type: ignore[union-attr]  # None: AttributeError below
    except (
        AttributeError,
        UnicodeDecodeError,
        orjson.JSONDecodeError,
        KeyError,
        TypeError,
        ValueError,
    ):
        log.warning("ignoring malformed tick message")
        return None


async def aggregate_batches(stream):
    """Yields the number of events in each processed batch (tests wait on it)."""
    async for events in stream.take_events(BATCH_MAX, BATCH_WITHIN):
        async with _flush_lock:
            started = time.monotonic()
            # in parts of FLUSH_MAX_POSTS events, so that the posts bound can cut a batch
            for i in range(0, len(events), FLUSH_MAX_POSTS):
                part = events[i : i + FLUSH_MAX_POSTS]
                pending.hold(part)
                await process_batch(part)
                if pending.due():
                    await flush()
            metrics.BATCH_SECONDS.observe(time.monotonic() - started)
        yield len(events)


async def flush_if_stale() -> bool:
    """Flush changes held while catching up once no more events come. True if it flushed."""
    if _flush_lock.locked():
        return False  # the agent is at work and flushes when due
    if (
        pending
        and pending.since is not None
        and time.monotonic() - pending.since >= FLUSH_MAX_SECONDS
    ):
        async with _flush_lock:
            if pending:
                await flush()
                return True
    return False


async def flush_clock() -> None:
    await flush_if_stale()


async def _forget_revoked(app_: Any, revoked: set, **kwargs: Any) -> None:
    """A post whose partition left may change on another worker meanwhile: its state is loaded
    again from the changelog when the partition comes back. (Buffered events of a partition that
    moved away are still processed: skipping them would ack them, and faust's view of the
    assignment can lag the consumer's, so a skip could commit past unprocessed events.)"""
    gone = {tp.partition for tp in revoked if tp.topic in _INPUTS or tp.topic == TICK_TOPIC}
    if gone:
        async with _flush_lock:  # not while a flush folds (it yields between posts)
            pending.drop(gone)
            store.forget(gone)
            _derived.clear()
            if EXACTLY_ONCE:
                # faust starts new ones (new producer epochs) at the next assignment
                # (streams/faust_compat.py, stop_transaction_producers)
                await stop_transaction_producers(app, TICK_TOPIC, gone)


async def _partitions_behind() -> set[int]:
    """Input partitions with more than TICK_HOLD_BACKLOG events not fetched yet (aiokafka's
    highwater minus position: no request). Their posts get no tick until they are read: the clock
    says that a parent did not come in time, which only holds once the events up to now are read.
    Under a backlog (a rebuild, a worker back from an outage) the wall clock is far past the
    waiting replies' times, and every waiting reply would become its own thread at each tick and
    move under its parent again when that is read (docs/processing.md)."""
    behind: set[int] = set()
    try:
        consumer = app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic in _INPUTS]
    except Exception:  # no consumer yet: nothing known to be behind
        return behind
    for tp in tps:
        if tp.partition in behind:
            continue
        try:
            end, at = consumer.highwater(tp), await consumer.position(tp)
        except Exception:  # revoked meanwhile, or nothing fetched yet
            continue
        if end is not None and at is not None and end - at > TICK_HOLD_BACKLOG:
            behind.add(tp.partition)
    return behind


def _active_partitions() -> set[int] | None:
    """Input partitions this worker owns (None when unknown: count everything)."""
    try:
        tps = app.assignor.assigned_actives()
    except Exception:  # assignor not ready (no rebalance yet)
        return None
    return {tp.partition for tp in tps if tp.topic == TICK_TOPIC}


async def orphan_tick(now: float | None = None) -> int:
    """Send a tick for each post of this worker whose oldest waiting reply reached the timeout,
    and update the waiting gauge. Returns the number of ticks sent.

    Ticks go through TICK_TOPIC (keyed by post, so to the partition that owns the post) rather than
    changing the state here: the agent stays the only writer of a post's state, so a timer never
    races a batch on the same post, and the change is processed and committed like any event."""
    now = time.time() if now is None else now
    active = _active_partitions()
    if active is not None:
        await ensure_loaded(active)  # a partition without new events still has waiting replies
    behind: set[int] | None = None  # asked of the consumer only once a tick is due
    total = sent = 0
    producer = None  # the plain one: a tick is an input, and no flush's transaction holds it
    for post_key, (since, count) in list(store.waiting.items()):
        partition = store.partition_of(post_key)
        if active is not None and partition not in active:
            continue  # partition moved away, not forgotten yet
        total += count
        if since is not None and since + ORPHAN_TIMEOUT <= now:
            if behind is None:
                behind = await _partitions_behind()
            if partition in behind:
                continue
            producer = producer or await aiokafka_producer(app)
            await producer.send(
                TICK_TOPIC,
                orjson.dumps({"clock": now}),
                key=post_key.encode(),
                partition=partition,
            )
            sent += 1
    metrics.REPLIES_WAITING.set(total)
    metrics.TICKS_SENT.inc(sent)
    return sent


async def orphan_clock() -> None:
    await orphan_tick()
