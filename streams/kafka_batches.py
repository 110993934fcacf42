"""Batched sends on the faust app's aiokafka producer.

The aggregation agent writes thousands of output and changelog records per flush. Sent one by
one (faust's Topic.send, or aiokafka's send), each record costs a future, a partitioner call and
a coroutine; appended to an aiokafka record batch per topic partition and sent as a batch, a
fraction of that (docs/performance.md). The partition is always given: every record the agent
writes belongs to the partition of its post. Each batch is closed before it is handed over:
aiokafka sends a closed batch at once, an open one only after the producer's linger time (10 ms
here, set for faust's own sends), which a flush would wait twice (changelog, then outputs)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from functools import partial
from typing import Any

from streams.faust_compat import aiokafka_producer  # noqa: F401  (the producer the batches go to)

Key = tuple[str, int]  # (topic, partition)
Headers = list[tuple[str, bytes]]


class BatchSender:
    """Collects records per topic partition; send() hands them to the producer in record batches
    and returns their delivery futures. `delivered` says, per topic partition, the offset after
    the last record delivered (the RocksDB store's checkpoint)."""

    def __init__(self) -> None:
        self._records: dict[Key, list[tuple[bytes, bytes, int | None, Headers]]] = defaultdict(list)
        self.count = 0
        self.delivered: dict[Key, int] = {}

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes,
        value: bytes,
        timestamp_ms: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        self._records[(topic, partition)].append((key, value, timestamp_ms, headers or []))
        self.count += 1

    def take(self) -> dict[Key, list[tuple[bytes, bytes, int | None, Headers]]]:
        """The records by topic partition; this sender is empty after."""
        records, self._records, self.count = self._records, defaultdict(list), 0
        return records

    def extend(self, other: BatchSender) -> None:
        """Take the records of `other` (which is emptied)."""
        for key, items in other.take().items():
            self._records[key].extend(items)
            self.count += len(items)

    def by_partition(self) -> dict[int, BatchSender]:
        """The records split by partition number (one exactly-once transaction each); this
        sender is empty after."""
        parts: dict[int, BatchSender] = defaultdict(BatchSender)
        for (topic, partition), items in self.take().items():
            part = parts[partition]
            part.delivered = self.delivered  # deliveries are told to this sender
            for key, value, ts, headers in items:
                part.add(topic, partition, key, value, ts, headers)
        return parts

    def _done(self, key: Key, records: int, future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        end = future.result().offset + records  # a batch's future holds its base offset
        if end > self.delivered.get(key, 0):
            self.delivered[key] = end

    async def _send_batch(self, producer: Any, batch: Any, topic: str, partition: int) -> Any:
        records = batch.record_count()
        batch.close()
        future = await producer.send_batch(batch, topic, partition=partition)
        future.add_done_callback(partial(self._done, (topic, partition), records))
        return future

    async def send(self, producer: Any) -> list[asyncio.Future]:
        records = self.take()
        futures = []
        for (topic, partition), items in records.items():
            batch = producer.create_batch()
            for key, value, ts, headers in items:
                if batch.append(key=key, value=value, timestamp=ts, headers=headers) is None:
                    if batch.record_count() == 0:
                        raise ValueError(f"a record of {len(value)} bytes does not fit a batch")
                    futures.append(await self._send_batch(producer, batch, topic, partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=ts, headers=headers)
            futures.append(await self._send_batch(producer, batch, topic, partition))
        return futures
