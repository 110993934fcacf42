"""The database sink: drains the compacted output topics into the database with batched fetches
(a plain aiokafka consumer: no faust per-event path for output messages, docs/performance.md).
It runs in its own process, started and watched by the worker (streams/sink_process.py), so its
decoding and database work use the second core instead of the aggregation's event loop.

Each fetch (up to BLOGPULSE_SINK_BATCH messages) is collapsed to the newest version per key
(sinks/upsert.py) and written in one transaction together with the next offset of every partition
it read (sinks.models.SinkOffset). The database, not the consumer group, says where the sink is:
on assignment each partition is sought to its stored offset, or to the beginning of the compacted
topic when the database has none, so a new, emptied or restored database converges to the current
aggregates by itself. Offsets are also committed to the group after the database commit, for lag
monitoring only.

Database outage: the RetryingWriter retries the same batch until it is written, and nothing more
is fetched meanwhile, so the position is held and nothing is lost. Output records carry the newest
Kafka timestamp of the input events behind them (streams/agents.py): after each commit the sink
observes publish -> database latency for every message it wrote
(blogpulse_end_to_end_latency_seconds)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from schemas.topic_names import output_kind
from sinks import metrics
from sinks.db import make_engine, masked, missing_tables
from sinks.retry import RetryingWriter, WriterStopped
from sinks.upsert import InvalidAggregate, Message, collapse, read_offsets
from streams.observability import CONSUMER_LAG, observe_end_to_end
from streams.settings import Settings

log = logging.getLogger(__name__)

# aiokafka keeps one fetch in flight per broker, without the partitions whose fetched records are
# still buffered (taken by the next getmany): while a write runs, that fetch goes out for the
# partitions with nothing new and the broker holds it this long, and the busy partitions' next
# records wait behind it. The worker's consumer has the same bound (streams/faust_compat.py, 6).
FETCH_MAX_WAIT_MS = 100


def decode(topic: str, key: bytes | None, raw: bytes | None) -> Message:
    """(kind, key, value dict) of one output message; InvalidAggregate if it is not JSON."""
    kind = output_kind(topic) or topic
    try:
        value = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError as exc:
        raise InvalidAggregate(kind, "value", f"not JSON ({exc})") from None
    text_key = key.decode("utf-8", "replace") if key is not None else None
    return kind, text_key, value


def _skip_invalid(message: Message, exc: InvalidAggregate) -> None:
    # Our engine cannot produce such a message (it renders every value from typed fields); one
    # here was written by something else. Skipping it loses nothing the engine emitted, and
    # blocking the whole sink on it would.
    metrics.SINK_ERRORS.labels(kind="invalid").inc()
    log.error("sink: skipping an output message that cannot be stored: key %r: %s", message[1], exc)


class _SeekToStored(ConsumerRebalanceListener):
    def __init__(self, sink: DatabaseSink) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: Any) -> None:
        pass  # every written batch carried its offsets into the database

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.sink.seek_to_stored(assigned)


class DatabaseSink:
    """Output topics -> database, positions kept in the database. run() until stop()."""

    def __init__(self, s: Settings) -> None:
        self.settings = s
        self.topics = sorted(s.output_topics.values())
        # One thread for the database: the event loop keeps fetching meanwhile.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blogpulse-sink")
        self.writer = RetryingWriter(
            make_engine(self.settings.db_url), generation=self.settings.generation
        )
        self.consumer: AIOKafkaConsumer | None = None
        self._lag_committed: dict[TopicPartition, int] = {}  # last commit for lag monitoring
        self._stopping = asyncio.Event()

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def stop(self) -> None:
        # Lets a write that is waiting for the database give up: its batch stays unwritten and
        # its offsets unstored, so it is read again.
        self.writer.stop()
        self._stopping.set()

    async def run(self) -> None:
        await self._in_thread(self._check_schema)
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers,
            group_id=s.sink_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=min(FETCH_MAX_WAIT_MS, int(s.sink_flush_seconds * 1000)),
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # exactly_once: an aborted flush's outputs never reach the database
            isolation_level=s.isolation_level,
            **s.kafka_security.aiokafka_config(),
        )
        self.consumer.subscribe(self.topics, listener=_SeekToStored(self))
        await self.consumer.start()
        try:
            while not self._stopping.is_set():
                fetched = await self.consumer.getmany(
                    timeout_ms=int(s.sink_flush_seconds * 1000), max_records=s.sink_batch
                )
                if fetched:
                    await self.write(fetched)
                else:
                    await self.commit_idle_positions()
        finally:
            await self.consumer.stop()
            self._executor.shutdown(wait=False)

    def _check_schema(self) -> None:
        engine = self.writer.engine
        try:
            missing = missing_tables(engine)
        except Exception:  # database down: the writer reports it with its retries
            return
        if missing:
            log.error(
                "sink: tables %s missing in %s: run `blogpulse db upgrade`",
                ", ".join(missing),
                masked(engine.url.render_as_string(hide_password=False)),
            )

    async def seek_to_stored(self, assigned: Any) -> None:
        consumer = self._started()
        stored = await self._in_thread(self._stored_offsets)
        ends = await consumer.end_offsets(list(assigned)) if assigned else {}
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is not None and offset > ends.get(tp, offset):
                # the topic is younger than the database's copy (deleted and created again)
                log.warning(
                    "sink: stored offset %d of %s/%d is past its end %d; reading it from the start",
                    offset,
                    tp.topic,
                    tp.partition,
                    ends[tp],
                )
                offset = None
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)

    def _started(self) -> AIOKafkaConsumer:
        if self.consumer is None:
            raise RuntimeError("the sink's consumer is used before run() started it")
        return self.consumer

    def _stored_offsets(self) -> dict[tuple[str, int], int]:
        delay = 0.1
        while True:  # the database may be down at start: wait for it (nothing is read before)
            try:
                return read_offsets(self.writer.engine, self.topics)
            except Exception as exc:
                if self.writer.stopping:
                    raise WriterStopped("sink stopping") from exc
                log.warning(
                    "sink: cannot read stored offsets yet (%s); retrying", type(exc).__name__
                )
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def write(self, fetched: dict[TopicPartition, list[Any]]) -> None:
        stamps = [r.timestamp for records in fetched.values() for r in records]
        offsets = {
            (tp.topic, tp.partition): records[-1].offset + 1 for tp, records in fetched.items()
        }
        try:
            await self._in_thread(self._write, fetched, offsets)
        except WriterStopped:
            return
        now_ms = time.time() * 1000
        for ts in stamps:
            observe_end_to_end((now_ms - ts) / 1000)
        await self._commit_for_lag({TopicPartition(t, p): o for (t, p), o in offsets.items()})

    async def commit_idle_positions(self) -> None:
        """After a fetch that returned nothing: commit, for lag monitoring, the positions that
        moved past the last commit without a record. Under exactly_once every transaction ends
        with a commit marker after its last record, so last record + 1 (what write() commits)
        stays one behind the end and the sink's lag would never read 0."""
        consumer = self._started()
        moved = {}
        for tp in consumer.assignment():
            try:
                position = await consumer.position(tp)
            except IllegalStateError:  # revoked meanwhile
                continue
            if position != self._lag_committed.get(tp):
                moved[tp] = position
        await self._commit_for_lag(moved)

    async def _commit_for_lag(self, offsets: dict[TopicPartition, int]) -> None:
        # for lag monitoring (blogpulse_consumer_lag); the database holds the real position
        consumer = self._started()
        # A rebalance during the write may have moved partitions away: the commit of those would
        # fail (and a failing sink restarts and rejoins, which rebalances the others again).
        assigned = consumer.assignment()
        committed = {tp: o for tp, o in offsets.items() if tp in assigned}
        try:
            if committed:
                await consumer.commit(committed)
        except (CommitFailedError, IllegalStateError) as exc:
            log.info("sink: offsets for lag monitoring not committed (%s)", type(exc).__name__)
            return
        self._lag_committed.update(committed)
        for tp, offset in committed.items():
            end = consumer.highwater(tp)
            if end is not None:
                CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    max(0, end - offset)
                )

    def _write(
        self, fetched: dict[TopicPartition, list[Any]], offsets: dict[tuple[str, int], int]
    ) -> None:
        """Decode, collapse and write one fetch (on the database thread)."""
        messages: list[Message] = []
        for tp, records in fetched.items():
            for record in records:
                try:
                    messages.append(decode(tp.topic, record.key, record.value))
                except InvalidAggregate as exc:
                    _skip_invalid((output_kind(tp.topic) or "", record.key, None), exc)
        batch = collapse(messages, on_invalid=_skip_invalid)
        batch.offsets = offsets
        self.writer.write(batch)


async def _stop_with_parent(sink: DatabaseSink, parent: int) -> None:
    """A worker killed without a clean stop (SIGKILL) cannot stop its sink: the sink notices that
    it was re-parented and stops itself."""
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.warning("sink: worker process %d is gone; stopping", parent)
    sink.stop()


def main(s: Settings, metrics_port: int, parent: int | None = None) -> int:
    """`blogpulse sink`: run the sink until SIGTERM/SIGINT (or until the worker process `parent`
    is gone), /metrics on 127.0.0.1:metrics_port (the worker serves them with its own,
    streams/sink_process.py)."""
    import signal

    from prometheus_client import start_http_server

    from streams.sink_process import drop_process_collectors

    drop_process_collectors()
    start_http_server(metrics_port, addr="127.0.0.1")
    sink = DatabaseSink(s)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, sink.stop)
        if parent is not None:
            watch = asyncio.create_task(_stop_with_parent(sink, parent))
        await sink.run()
        if parent is not None:
            watch.cancel()

    asyncio.run(serve())
    return 0
