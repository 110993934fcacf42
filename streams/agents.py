"""The aggregation agent and the orphan-timeout timer (faust).

One agent reads the four input topics and the tick topic in batches (streams/batching.py: a
batch's events are acknowledged only after the batch was processed without an error, so committed
offsets never pass unprocessed events). Per batch: decode (bad events -> dead-letter topic), group by post, merge into the state
table, derive once per post, emit the changed aggregates, then write the state. A batch that only
adds new approved entries to a post seen before takes engine.derive_more (O(new entries), same
result as the full derive + diff); anything else takes the full derive. Large batches (BATCH_MAX)
amortise the per-post work (state decode/encode, changelog write, post and window outputs) over
more events when there is a backlog; at moderate rates batches close on BATCH_WITHIN instead.

Order within a post's batch: outputs are sent and their delivery awaited *before* the new state is
written. A crash in between replays the events (offsets not committed), the merge changes the old
state again and the same aggregates are emitted again with the same version (the sink's version
guard makes that harmless). The other order could lose outputs: the replayed events would merge
into an already-updated state, change nothing and emit nothing.
"""
from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterable

import faust
import orjson
from aiokafka.partitioner import murmur2
from faust.streams import _current_event

from schemas.wire import InvalidEvent, decode_event
from streams import engine, metrics
from streams.app import app
from streams.batching import processed_batches
from streams.config import TICK_TOPIC, settings
from streams.state_cache import StateCache
from streams.tables import post_state, waiting_replies
from streams.topics import dlq_topic, output_topics, source_topic, tick_topic

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BATCH_MAX = 20000  # events per batch: one derive per post per batch (docs/performance.md)
BATCH_WITHIN = 0.1  # seconds to wait for a batch to fill (latency at moderate rates)

_settings = settings()
ORPHAN_TIMEOUT = _settings.orphan_timeout
# Often enough that a worker-clock timeout fires within ~1/4 of its length, at most every 30 s.
TICK_INTERVAL = max(1.0, min(ORPHAN_TIMEOUT / 4, 30.0))

# Contract field names are a bounded set, so they may be label values; anything else is "other".
_REASON_CODES = {"json", "utf8", "schema", "key", "schema_version", "event_id", "type", "site",
                 "post_id", "comment_id", "parent_id", "post_author", "author_key", "kind",
                 "source_url", "event_time", "post_time", "status"}

# post key -> (version, Derived, running totals, state bytes, decoded state) last emitted: saves
# decoding and deriving the old state again, and lets engine.derive_more() add a batch of new
# entries without a full derive. The decoded state is used only while the table still holds
# exactly the bytes it was encoded to. Bounded by entries (streams/state_cache.py).
_last_emitted = StateCache(_settings.state_cache_entries)


class BadKey(InvalidEvent):
    pass


def reason_code(field: str | None) -> str:
    """Bounded label value for blogpulse_dead_letters_total."""
    return field if field in _REASON_CODES else "other"


def _time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return engine.parse_time(value)


def _get(event: Any, name: str, default: Any = None) -> Any:
    if isinstance(event, dict):
        return event.get(name, default)
    return getattr(event, name, default)


def fields_of(event: Any) -> tuple[str, engine.EventFields]:
    """(post key, engine fields) of a decoded event (schemas.wire Record or dict)."""
    key = f"{_get(event, 'site')}/{_get(event, 'post_id')}"
    return key, engine.EventFields(
        event_id=_get(event, "event_id"),
        type=_get(event, "type"),
        comment_id=int(_get(event, "comment_id")),
        parent_id=int(_get(event, "parent_id") or 0),
        post_author=bool(_get(event, "post_author", False)),
        author_key=_get(event, "author_key") or "",
        kind=_get(event, "kind") or "comment",
        event_time=_time(_get(event, "event_time")),
        post_time=_time(_get(event, "post_time")),
        status=_get(event, "status"),
    )


def decode(key: bytes | None, raw: bytes) -> tuple[str, engine.EventFields]:
    """Decode and check one input message; raises InvalidEvent naming the field."""
    event = decode_event(raw)
    post_key, fields = fields_of(event)
    try:
        text_key = key.decode("utf-8") if key is not None else None
    except UnicodeDecodeError:
        text_key = None
    if text_key != post_key:
        raise BadKey("key", "Kafka key must be '<site>/<post_id>' of the event")
    return post_key, fields


async def dead_letter(event: Any, exc: InvalidEvent) -> None:
    msg = event.message
    reason = f"{exc.field}: {exc.reason}"[:500]
    await dlq_topic.send(
        key=msg.key,
        value=event.value,
        headers=[
            ("blogpulse.reason", reason.encode()),
            ("blogpulse.source_topic", str(msg.topic).encode()),
            ("blogpulse.source_partition", str(msg.partition).encode()),
            ("blogpulse.source_offset", str(msg.offset).encode()),
        ],
    )
    metrics.DEAD_LETTERS.labels(reason=reason_code(exc.field)).inc()
    metrics.EVENTS_CONSUMED.labels(type="invalid", outcome="dead_letter").inc()


def render(post_key: str, version: int, change: engine.Change) -> tuple[str, bytes]:
    """Output key and JSON value of one change (docs/architecture.md, output topics)."""
    site, post_id = post_key.rsplit("/", 1)
    head = {"schema_version": SCHEMA_VERSION, "site": site, "post_id": int(post_id)}
    if change.aggregate == "posts":
        return post_key, orjson.dumps({**head, "version": version, **change.value})
    if change.aggregate == "threads":
        root = change.ident
        value = {**head, "root_comment_id": root, "version": version, **change.value,
                 "deleted": change.deleted}
        return f"{post_key}/{root}", orjson.dumps(value)
    window, start = change.ident
    value = {**head, "window": window, "window_start": start, "version": version,
             **change.value, "deleted": change.deleted}
    return f"{post_key}/{window}/{start}", orjson.dumps(value)


def next_version(previous: int) -> int:
    """Grows per post, and also across workers and crashes: at least the wall clock in ms.

    Outputs are sent before the state is saved (module doc), so after a crash or a rebalance the
    next owner re-derives from the last *saved* state and emits the same changes again, possibly
    with more events folded in. With a plain counter that emission would reuse the version the
    lost worker already sent, and the sink's version guard would keep the older content."""
    return max(previous + 1, time.time_ns() // 1_000_000)


def _old_derived(post_key: str, state: dict) -> engine.Derived | None:
    if not state["e"] and not state["s"]:
        return None  # never emitted
    cached = _last_emitted.get(post_key)
    if cached is not None and cached[0] == state["v"]:
        return cached[1]
    return engine.derive(state, engine.now_of(state), ORPHAN_TIMEOUT)


async def update_posts(events_by_post: dict[str, list[engine.EventFields]],
                       ticks: dict[str, float], source_events: dict[str, Any] | None = None) -> int:
    """Merge, derive, emit, store for each touched post. Returns the number of changes emitted.
    source_events: one faust event per post (any of its batch), see _as_current."""
    deliveries = []
    writes: list[tuple[str, dict, engine.Derived, Any]] = []
    emitted = 0
    # Metric increments are summed per batch: labels() per event cost more than the merge.
    consumed: dict[tuple[str, str], int] = defaultdict(int)
    by_aggregate: dict[str, int] = defaultdict(int)
    for post_key in events_by_post.keys() | ticks.keys():
        raw = post_state.get(post_key.encode())
        # Taken out while the post is processed: an exception half-way (state merged in place,
        # table not written) must not leave a cache entry that disagrees with the table.
        cached = _last_emitted.pop(post_key)
        if cached is not None and cached[3] == raw:
            state = cached[4]  # decoding a 100-entry state cost more than the whole fast path
        else:
            state = engine.loads_state(raw)
        cached_ok = cached is not None and cached[0] == state["v"]
        old_version_state = None if cached_ok else engine.loads_state(raw)
        events = events_by_post.get(post_key, ())
        applied, new_ids = engine.merge_batch(state, events)
        for fields, ok in zip(events, applied):
            consumed[(fields.type, "applied" if ok else "unchanged")] += 1
        changed = any(applied)
        if post_key in ticks:
            changed |= engine.merge_tick(state, ticks[post_key])
            new_ids = None
        if not changed:
            if cached_ok:
                # merges that change nothing leave the state as it was
                _last_emitted.put(post_key, cached, len(cached[4]["e"]))
            continue
        fast = None
        if cached_ok and new_ids:
            fast = engine.derive_more(state, cached[1], cached[2], new_ids)
        if fast is not None:
            new, totals, changes = fast
        else:
            old = cached[1] if cached_ok else _old_derived(post_key, old_version_state)
            new, totals = engine.derive_with_totals(state, engine.now_of(state), ORPHAN_TIMEOUT)
            changes = engine.diff(old, new)
        if changes:
            state["v"] = next_version(state["v"])
            for change in changes:
                key, value = render(post_key, state["v"], change)
                deliveries.append(await _send(output_topics[change.aggregate], key, value))
                by_aggregate[change.aggregate] += 1
            emitted += len(changes)
        writes.append((post_key, state, new, totals))
    if deliveries:
        await asyncio.gather(*deliveries)  # delivered before the state says so (module doc)
    for post_key, state, new, totals in writes:
        raw = engine.dumps_state(state)
        with _as_current(source_events.get(post_key) if source_events else None):
            post_state[post_key.encode()] = raw
            _record_waiting(post_key, new)
        _last_emitted.put(post_key, (state["v"], new, totals, raw, state), len(state["e"]))
    # The batch is acknowledged when this returns: its state must be in Kafka by then (tables.py).
    await post_state.delivered()
    await waiting_replies.delivered()
    for (type_, outcome), n in consumed.items():
        metrics.EVENTS_CONSUMED.labels(type=type_, outcome=outcome).inc(n)
    for aggregate, n in by_aggregate.items():
        metrics.AGGREGATES_EMITTED.labels(aggregate=aggregate).inc(n)
    return emitted


@contextmanager
def _as_current(event: Any):
    """Make `event` faust's current event for a table write. take_events fills its buffer in
    another task, so in the agent's body current_event() is None, and faust's RocksDB store picks
    the partition database of a write from current_event() (it asserts one exists; the memory
    store does not care). Any event of the post will do: inputs and ticks are co-partitioned by
    post, so its partition is the post's."""
    if event is None:
        yield
        return
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


async def _send(topic: Any, key: str, value: bytes) -> Any:
    """Send one output message; returns its delivery future.

    A faust Topic goes straight to the app's producer (the same one, so the same transactions
    under exactly_once): Topic.send wraps every message in a FutureMessage, runs the send sensors
    and logs it, which the profile showed as a third of the cost of an output message. Anything
    else (the unit tests' recorders) keeps the Topic.send interface."""
    if isinstance(topic, faust.Topic):
        producer = await app.maybe_start_producer()
        return await producer.send(topic.get_topic_name(), key.encode(), value, None, None, None)
    return await topic.send(key=key, value=value)


def _record_waiting(post_key: str, derived: engine.Derived) -> None:
    key = post_key.encode()
    count = derived.post["waiting_replies"]
    if count:
        value = orjson.dumps([derived.waiting_since, count])
        if waiting_replies.get(key) != value:
            waiting_replies[key] = value
    elif key in waiting_replies:
        del waiting_replies[key]


async def process_batch(events: Iterable[Any]) -> int:
    """One take_events batch: decode, dead-letter, group by post, update. Returns changes emitted."""
    started = time.monotonic()
    by_post: dict[str, list[engine.EventFields]] = defaultdict(list)
    ticks: dict[str, float] = {}
    source_events: dict[str, Any] = {}  # post -> one of its events (partition for table writes)
    wall = time.time()
    _forget_on_reassignment()
    for event in events:
        msg = event.message
        if msg.topic == TICK_TOPIC:
            tick = _parse_tick(msg.key, event.value)
            if tick is not None:
                ticks[tick[0]] = max(ticks.get(tick[0], tick[1]), tick[1])
                source_events.setdefault(tick[0], event)
            continue
        try:
            post_key, fields = decode(msg.key, event.value)
        except InvalidEvent as exc:
            await dead_letter(event, exc)
            continue
        by_post[post_key].append(fields)
        source_events.setdefault(post_key, event)
        metrics.EVENT_LAG.observe(max(0.0, wall - fields.event_time))
    emitted = await update_posts(by_post, ticks, source_events)
    metrics.BATCH_SECONDS.observe(time.monotonic() - started)
    return emitted


def _parse_tick(key: bytes | None, value: bytes) -> tuple[str, float] | None:
    # Ticks are internal (written by orphan_clock below); a malformed one is only logged.
    try:
        return key.decode("utf-8"), float(orjson.loads(value)["clock"])
    except (AttributeError, UnicodeDecodeError, orjson.JSONDecodeError, KeyError, TypeError,
            ValueError):
        log.warning("ignoring malformed tick message")
        return None


@app.agent(source_topic)
async def aggregate(stream):
    """Yields the number of events in each processed batch (tests wait on it; no sink in
    production)."""
    async for events in processed_batches(stream, BATCH_MAX, BATCH_WITHIN):
        await process_batch(events)
        yield len(events)


_last_owned: frozenset | None = None


def _forget_on_reassignment() -> None:
    """Empty the per-post cache when this worker's partitions change: a post that left and came
    back may have changed on another worker meanwhile. (Buffered events of a partition that moved
    away are still processed: skipping them would ack them, and faust's view of the assignment can
    lag the consumer's, so a skip could commit past unprocessed events.)"""
    global _last_owned
    try:
        owned = frozenset((tp.topic, tp.partition) for tp in app.assignor.assigned_actives())
    except Exception:  # assignor not ready (no rebalance yet)
        return
    if owned != _last_owned:
        _last_emitted.clear()
        _last_owned = owned


def _partition_of(post_key: str, partitions: int) -> int:
    return (murmur2(post_key.encode()) & 0x7FFFFFFF) % partitions


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
    updating the table here: the agent stays the only writer of a post's state, so a timer never
    races a batch on the same post, the change is processed and committed like any event, and the
    table write happens inside the owner's stream (right partition, right transaction)."""
    now = time.time() if now is None else now
    active = _active_partitions()
    partitions = _settings.partitions
    total = sent = 0
    for key, raw in list(waiting_replies.items()):
        post_key = key.decode()
        if active is not None and _partition_of(post_key, partitions) not in active:
            continue  # standby copy of another worker's post
        since, count = orjson.loads(raw)
        total += count
        if since is not None and since + ORPHAN_TIMEOUT <= now:
            await tick_topic.send(key=post_key, value=orjson.dumps({"clock": now}))
            sent += 1
    metrics.REPLIES_WAITING.set(total)
    metrics.TICKS_SENT.inc(sent)
    return sent


@app.timer(interval=TICK_INTERVAL)
async def orphan_clock() -> None:
    await orphan_tick()
